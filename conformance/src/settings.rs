//! How much the property case runs, from the environment.

/// The variable that sets how many random histories the property case runs.
pub const CASES_VAR: &str = "DATOMS_CONFORMANCE_CASES";

/// The variable that sets the seed of the first random history (decimal, or hex with
/// `0x`); history `i` uses seed `seed + i`.
pub const SEED_VAR: &str = "DATOMS_CONFORMANCE_SEED";

/// Histories per run when [`CASES_VAR`] is not set: enough to cover every restore route
/// each run, few enough that the suite stays well under a minute per backend on two
/// cores in a debug build. Raise it for a soak run.
pub const DEFAULT_CASES: u32 = 6;

/// The seed when [`SEED_VAR`] is not set: fixed, so every run is reproducible. Set the
/// variable to explore other histories.
pub const DEFAULT_SEED: u64 = 0xDA70_5EED;

/// How many random histories to run: [`CASES_VAR`], or [`DEFAULT_CASES`] if it is not
/// set or not a number.
pub fn cases() -> u32 {
    std::env::var(CASES_VAR)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The seed of the first random history: [`SEED_VAR`], or [`DEFAULT_SEED`] if it is not
/// set or not a number.
pub fn seed() -> u64 {
    std::env::var(SEED_VAR)
        .ok()
        .and_then(|v| parse_seed(&v))
        .unwrap_or(DEFAULT_SEED)
}

fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seed;

    #[test]
    fn seeds_parse_as_decimal_or_hex() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed(" 0x2a "), Some(42));
        assert_eq!(parse_seed("forty-two"), None);
    }
}
