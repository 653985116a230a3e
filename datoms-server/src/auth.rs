//! Bearer tokens: writes need the server's token; reads need it too unless the server
//! was started with public reads (or without a token, when it takes no writes).

use axum::http::{header, HeaderMap};

use crate::error::ApiError;
use crate::Config;

/// What a route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// Checks the request's `Authorization: Bearer …` for `access`.
pub(crate) fn check(config: &Config, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
    let Some(token) = &config.token else {
        return match access {
            Access::Read => Ok(()),
            Access::Write => Err(ApiError::ReadOnly),
        };
    };
    if access == Access::Read && config.public_reads {
        return Ok(());
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized(
            "this request needs Authorization: Bearer <token>",
        ))?;
    if equal_in_constant_time(given.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized(
            "the bearer token is not this server's",
        ))
    }
}

/// Compares without stopping at the first difference, so the time taken does not tell
/// how much of a guess was right.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(equal_in_constant_time(b"abc", b"abc"));
        assert!(!equal_in_constant_time(b"abc", b"abd"));
        assert!(!equal_in_constant_time(b"abc", b"ab"));
    }
}
