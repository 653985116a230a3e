//! The EDN printer: `Display` for [`Edn`], writing text that the reader reads back.

use std::fmt::{self, Write};

use super::Edn;

/// Writes the form as EDN on one line: collections separate their forms with a space,
/// maps their entries with `, `. Strings and characters are escaped so they read back
/// unchanged; floats always carry a `.` or an exponent (or are `##Inf`, `##-Inf`,
/// `##NaN`) so they read back as floats.
///
/// ```
/// use datoms_core::edn::Edn;
/// let form = Edn::Vector(vec![Edn::Float(1.0), Edn::String("a\"b".into()), Edn::Char('\n')]);
/// assert_eq!(form.to_string(), r#"[1.0 "a\"b" \newline]"#);
/// ```
impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Float(x) if x.is_nan() => f.write_str("##NaN"),
            Edn::Float(x) if x.is_infinite() => {
                f.write_str(if *x > 0.0 { "##Inf" } else { "##-Inf" })
            }
            // `Debug` for f64 is the shortest text that reads back exactly, and it always
            // has a `.` or an exponent (`1.0`, `1e16`, `1e-7`).
            Edn::Float(x) => write!(f, "{x:?}"),
            Edn::String(s) => write_string(f, s),
            Edn::Char(c) => write_char(f, *c),
            Edn::Symbol(s) => f.write_str(s),
            Edn::Keyword(k) => write!(f, "{k}"),
            Edn::List(items) => write_seq(f, "(", items, ")"),
            Edn::Vector(items) => write_seq(f, "[", items, "]"),
            Edn::Set(items) => write_seq(f, "#{", items, "}"),
            Edn::Map(pairs) => {
                f.write_char('{')?;
                for (n, (k, v)) in pairs.iter().enumerate() {
                    if n > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_char('}')
            }
            Edn::Tagged(tag, form) => write!(f, "#{tag} {form}"),
        }
    }
}

fn write_seq(f: &mut fmt::Formatter<'_>, open: &str, items: &[Edn], close: &str) -> fmt::Result {
    f.write_str(open)?;
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            f.write_char(' ')?;
        }
        write!(f, "{item}")?;
    }
    f.write_str(close)
}

fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            // Control characters are all in the Basic Multilingual Plane.
            c if c.is_control() => write!(f, "\\u{:04X}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn write_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\n' => f.write_str("\\newline"),
        ' ' => f.write_str("\\space"),
        '\t' => f.write_str("\\tab"),
        '\r' => f.write_str("\\return"),
        '\u{8}' => f.write_str("\\backspace"),
        '\u{c}' => f.write_str("\\formfeed"),
        // Whitespace and control characters are all in the Basic Multilingual Plane.
        c if c.is_whitespace() || c.is_control() || c == '\u{feff}' => {
            write!(f, "\\u{:04X}", u32::from(c))
        }
        c => write!(f, "\\{c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edn::parse;
    use crate::value::Keyword;
    use proptest::prelude::*;

    #[test]
    fn every_form_prints_as_expected() {
        use Edn::*;
        let cases: Vec<(Edn, &str)> = vec![
            (Nil, "nil"),
            (Bool(true), "true"),
            (Int(-42), "-42"),
            (Float(1.0), "1.0"),
            (Float(-0.0), "-0.0"),
            (Float(0.1), "0.1"),
            (Float(1e16), "1e16"),
            (Float(1.5e-7), "1.5e-7"),
            (Float(f64::INFINITY), "##Inf"),
            (Float(f64::NEG_INFINITY), "##-Inf"),
            (Float(f64::NAN), "##NaN"),
            (
                String("a\"b\\c\nd\te\r\u{8}\u{c}".into()),
                r#""a\"b\\c\nd\te\r\b\f""#,
            ),
            (String("\u{0}\u{7f}é😀".into()), "\"\\u0000\\u007Fé😀\""),
            (Char('a'), "\\a"),
            (Char('\n'), "\\newline"),
            (Char(' '), "\\space"),
            (Char('\t'), "\\tab"),
            (Char('\u{a0}'), "\\u00A0"),
            (Char('\u{0}'), "\\u0000"),
            (Char('('), "\\("),
            (Symbol("?e".into()), "?e"),
            (
                Keyword(crate::value::Keyword::new(":person/name")),
                ":person/name",
            ),
            (List(vec![Int(1), Int(2)]), "(1 2)"),
            (Vector(vec![]), "[]"),
            (Set(vec![Int(1), Char('b')]), "#{1 \\b}"),
            (
                Map(vec![(Int(1), Char('x')), (Int(2), Nil)]),
                "{1 \\x, 2 nil}",
            ),
            (
                Tagged("inst".into(), Box::new(String("x".into()))),
                "#inst \"x\"",
            ),
        ];
        for (form, text) in cases {
            assert_eq!(form.to_string(), text);
        }
    }

    fn name() -> impl Strategy<Value = std::string::String> {
        prop_oneof![
            "[a-zA-Z*!_?<>=$%&][a-zA-Z0-9*!_?<>=$%&.:#'+-]{0,8}",
            "[+.-]([a-zA-Z*!_?<>=$%&][a-zA-Z0-9*!_?<>=.-]{0,4})?",
            "[a-z][a-z0-9.-]{0,5}/[a-zA-Z_?][a-zA-Z0-9_?-]{0,6}",
            Just("/".to_owned()),
            Just("...".to_owned()),
            Just("größe".to_owned()),
        ]
    }

    fn symbol() -> impl Strategy<Value = Edn> {
        name()
            .prop_filter("reads as nil or a boolean", |s| {
                !matches!(s.as_str(), "nil" | "true" | "false")
            })
            .prop_map(Edn::Symbol)
    }

    fn without_duplicates<T>(items: Vec<T>, key: impl Fn(&T) -> &Edn) -> Vec<T> {
        let mut seen = std::collections::HashSet::new();
        items
            .into_iter()
            .filter(|item| seen.insert(key(item).to_string()))
            .collect()
    }

    pub(crate) fn edn_tree() -> impl Strategy<Value = Edn> {
        let leaf = prop_oneof![
            Just(Edn::Nil),
            any::<bool>().prop_map(Edn::Bool),
            any::<i64>().prop_map(Edn::Int),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(Edn::Float),
            any::<std::string::String>().prop_map(Edn::String),
            any::<char>().prop_map(Edn::Char),
            symbol(),
            prop_oneof![name(), "[0-9][a-z0-9]{0,3}"]
                .prop_filter("auto-resolved", |s| !s.starts_with(':'))
                .prop_map(|s| Edn::Keyword(Keyword::new(&s))),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Edn::List),
                prop::collection::vec(inner.clone(), 0..6).prop_map(Edn::Vector),
                prop::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| Edn::Set(without_duplicates(v, |x| x))),
                prop::collection::vec((inner.clone(), inner.clone()), 0..6)
                    .prop_map(|v| Edn::Map(without_duplicates(v, |(k, _)| k))),
                ("[a-zA-Z][a-zA-Z0-9.-]{0,6}(/[a-z]{1,4})?", inner)
                    .prop_map(|(tag, form)| Edn::Tagged(tag, Box::new(form))),
            ]
        })
    }

    proptest! {
        #[test]
        fn printed_forms_read_back_equal(form in edn_tree()) {
            let text = form.to_string();
            prop_assert_eq!(parse(&text), Ok(form), "{}", text);
        }
    }
}
