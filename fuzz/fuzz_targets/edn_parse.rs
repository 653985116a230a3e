//! EDN parsing: arbitrary text through `edn::parse_all` (and as a schema). Printing a
//! parsed form gives text that parses back and prints the same (a fixed point).
#![no_main]

use datoms_core::edn::{parse, parse_all, parse_schema_with_warnings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_schema_with_warnings(text);
    let Ok(forms) = parse_all(text) else {
        return;
    };
    for form in forms {
        let printed = form.to_string();
        let again = match parse(&printed) {
            Ok(again) => again,
            Err(e) => panic!("{printed:?}, the print of a parsed form, does not parse: {e}"),
        };
        assert_eq!(again.to_string(), printed, "printing is not a fixed point");
    }
});
