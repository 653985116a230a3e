//! Content addresses: the BLAKE3 hash of a node's or commit's canonical bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;
use crate::value::{Bin, ByteBuf};

/// The BLAKE3 hash of a node's or commit's encoded bytes. Equal addresses mean equal
/// content, which is what lets store skip what is stored and restore skip what is held.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

impl Address {
    /// The address of `bytes`.
    pub fn of(bytes: &[u8]) -> Address {
        Address(*blake3::hash(bytes).as_bytes())
    }

    /// Checks that `bytes` hash to this address; [`Error::Corrupt`] otherwise.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), Error> {
        let actual = Address::of(bytes);
        if actual == *self {
            Ok(())
        } else {
            Err(Error::Corrupt {
                address: *self,
                actual,
            })
        }
    }

    /// The lowercase hex form (64 characters), used as storage key.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Twelve hex digits identify a node in logs without drowning them.
        write!(f, "#{}", &self.to_hex()[..12])
    }
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address, Error> {
        let bad = || Error::InvalidValue {
            reason: format!("{s:?} is not a 64-digit hex address"),
        };
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Address(out))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Bin(&self.0).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let b = ByteBuf::deserialize(d)?;
        let arr: [u8; 32] =
            b.0.as_ref()
                .try_into()
                .map_err(|_| serde::de::Error::custom("address must be 32 bytes"))?;
        Ok(Address(arr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let a = Address::of(b"hello");
        assert_eq!(a.to_hex().parse::<Address>().unwrap(), a);
        assert!("xyz".parse::<Address>().is_err());
    }

    #[test]
    fn verify_detects_changed_bytes() {
        let a = Address::of(b"hello");
        assert!(a.verify(b"hello").is_ok());
        assert!(matches!(a.verify(b"hellp"), Err(Error::Corrupt { address, .. }) if address == a));
    }
}
