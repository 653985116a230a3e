//! Regular expressions for `re-find`, `re-matches`, `re-seq` and `re-pattern`: Java's
//! syntax (what Datascript's patterns are written in), run by the [`regex`] crate, which
//! matches in time linear in the text, never exponentially.
//!
//! A pattern is translated from Java's syntax to the crate's where the two spell the same
//! thing differently, so that it means what it means in Java:
//! * `\d \w \s` (and `\D \W \S`) are ASCII, as in Java by default: `[0-9]`,
//!   `[0-9A-Za-z_]` and `[\t\n\x0B\f\r ]` (the crate's are Unicode);
//! * `\e` is the escape character, `\0` followed by octal digits a character by its
//!   octal code.
//!
//! What stays different from Java (a pattern using these is an error, or as noted):
//! * backreferences (`\1`), lookahead and lookbehind, possessive quantifiers (`a*+`),
//!   atomic groups, `\Q…\E` quoting, `\G`, `\Z`, `\p{javaLowerCase}`-style classes,
//!   and inline flags other than `i`, `m`, `s`, `x`, `U` are errors;
//! * `$` without `(?m)` matches only at the very end of the text (Java's also matches
//!   before a final line terminator); `.` excludes only `\n` (Java's excludes `\r`,
//!   `\u0085`, `\u2028` and `\u2029` too);
//! * `(?i)` folds case by Unicode's rules (Java's, without `(?u)`, only ASCII's);
//!   `\b` is a Unicode word boundary, as Java's;
//! * `re-seq` skips an empty match that starts where the previous match ended (Java's
//!   `find` loop gives it).

use regex::{CaptureMatches, Captures, Regex};

/// A compiled Java-syntax pattern.
#[derive(Clone, Debug)]
pub(crate) struct JavaRegex {
    re: Regex,
}

impl JavaRegex {
    /// Compiles `src` (Java syntax) for searching anywhere in a text.
    pub(crate) fn new(src: &str) -> Result<JavaRegex, String> {
        compile(&translate(src)?).map(|re| JavaRegex { re })
    }

    /// Compiles `src` (Java syntax) so that it must match the whole text
    /// (`re-matches`).
    pub(crate) fn whole(src: &str) -> Result<JavaRegex, String> {
        compile(&format!(r"\A(?:{})\z", translate(src)?)).map(|re| JavaRegex { re })
    }

    /// The number of capturing groups.
    pub(crate) fn groups(&self) -> usize {
        self.re.captures_len() - 1
    }

    /// The first match in `text`.
    pub(crate) fn find<'t>(&self, text: &'t str) -> Option<Captures<'t>> {
        self.re.captures(text)
    }

    /// Every match in `text`, left to right, not overlapping.
    pub(crate) fn find_all<'r, 't>(&'r self, text: &'t str) -> CaptureMatches<'r, 't> {
        self.re.captures_iter(text)
    }
}

fn compile(src: &str) -> Result<Regex, String> {
    Regex::new(src).map_err(|e| format!("bad regex: {e}"))
}

/// Java's spelling of a pattern in the crate's (see the module docs).
fn translate(src: &str) -> Result<String, String> {
    let mut out = String::with_capacity(src.len() + 8);
    let mut chars = src.chars().peekable();
    // Inside a character class (nesting depth), and whether the last thing outside one
    // was a quantifier (so that a `+` after it makes it possessive).
    let mut class = 0usize;
    let mut after_quantifier = false;
    let mut last = None;
    while let Some(c) = chars.next() {
        if c != '\\' {
            if class == 0 {
                let quantifier = match c {
                    '*' | '{' if after_quantifier => {
                        return Err(format!(
                            "bad regex {src:?}: dangling quantifier {c} after a quantifier"
                        ))
                    }
                    '*' | '}' => true,
                    '+' if after_quantifier => {
                        return Err(format!(
                            "bad regex {src:?}: possessive quantifiers are not supported"
                        ))
                    }
                    '+' => true,
                    // `?` after a quantifier makes it lazy; after `(` it opens a group form.
                    '?' => !after_quantifier && last != Some('('),
                    _ => false,
                };
                after_quantifier = quantifier;
            }
            match c {
                '[' => class += 1,
                ']' if class > 0 => class -= 1,
                _ => {}
            }
            last = Some(c);
            out.push(c);
            continue;
        }
        after_quantifier = false;
        last = None;
        let Some(e) = chars.next() else {
            return Err(format!("bad regex {src:?}: a trailing backslash"));
        };
        match e {
            'd' => out.push_str("[0-9]"),
            'D' => out.push_str("[^0-9]"),
            'w' => out.push_str("[0-9A-Za-z_]"),
            'W' => out.push_str("[^0-9A-Za-z_]"),
            's' => out.push_str(r"[\t\n\x0B\f\r ]"),
            'S' => out.push_str(r"[^\t\n\x0B\f\r ]"),
            'e' => out.push_str(r"\x1B"),
            '0' => {
                let mut code = 0u32;
                let mut digits = 0;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(8)) {
                    if digits == 3 || code * 8 + d > 0o377 {
                        break;
                    }
                    code = code * 8 + d;
                    digits += 1;
                    chars.next();
                }
                if digits == 0 {
                    return Err(format!(
                        "bad regex {src:?}: \\0 must be followed by an octal digit"
                    ));
                }
                out.push_str(&format!(r"\x{{{code:X}}}"));
            }
            'Z' | 'G' | 'Q' | 'E' => {
                return Err(format!(
                    "bad regex {src:?}: \\{e} is not supported (use \\z or $ for the end)"
                ))
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(re: &str, text: &str) -> Option<String> {
        let r = JavaRegex::new(re).unwrap();
        r.find(text)
            .and_then(|c| c.get(0).map(|m| m.as_str().to_owned()))
    }

    #[test]
    fn java_syntax_finds_what_java_finds() {
        assert_eq!(find("b+", "aabbbc").as_deref(), Some("bbb"));
        assert_eq!(find("b+?", "aabbbc").as_deref(), Some("b"));
        assert_eq!(find("^I", "Ivan").as_deref(), Some("I"));
        assert_eq!(find("^I", "Oleg"), None);
        assert_eq!(find("(?i)^i", "Ivan").as_deref(), Some("I"));
        assert_eq!(find(r"\d{2,3}", "a12345").as_deref(), Some("123"));
        assert_eq!(find("[^a-c]+", "abcdefa").as_deref(), Some("def"));
        assert_eq!(find("cat|dog", "hotdog").as_deref(), Some("dog"));
        assert_eq!(find(r"\bfoo\b", "a foo b").as_deref(), Some("foo"));
        assert_eq!(find(r"a.c$", "xabc").as_deref(), Some("abc"));
        assert_eq!(find(r"(a|ab)(c|bcd)", "abcd").as_deref(), Some("abcd"));
        assert_eq!(find(r"[\d-]+", "x1-2y").as_deref(), Some("1-2"));
        assert_eq!(find(r"[^\s]+", " ab ").as_deref(), Some("ab"));
        assert_eq!(find(r"\e\011", "a\u{1b}\tb").as_deref(), Some("\u{1b}\t"));
    }

    #[test]
    fn shorthand_classes_are_ascii_as_in_java() {
        assert_eq!(find(r"\w+", "éa1_z").as_deref(), Some("a1_z"));
        assert_eq!(find(r"\d", "٣7").as_deref(), Some("7"));
        assert_eq!(find(r"\S+", "\u{a0}x").as_deref(), Some("\u{a0}x"));
    }

    #[test]
    fn unsupported_java_constructs_are_errors_not_wrong_matches() {
        for bad in [
            r"(a)\1", "(?=a)", "(?<=a)b", "a*+", r"\Qa\E", r"a\Z", "(a", "a**", r"\0",
        ] {
            assert!(JavaRegex::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_match_and_groups() {
        let r = JavaRegex::whole(r"(\w+)@(\w+)?\.com").unwrap();
        let c = r.find("ann@x.com").unwrap();
        assert_eq!(r.groups(), 2);
        assert_eq!(c.get(1).map(|m| m.as_str()), Some("ann"));
        assert_eq!(c.get(2).map(|m| m.as_str()), Some("x"));
        assert!(JavaRegex::whole("a*").unwrap().find("aab").is_none());
        assert!(JavaRegex::whole("a|ab").unwrap().find("ab").is_some());
    }

    #[test]
    fn pathological_patterns_stay_linear() {
        let r = JavaRegex::new("(a*)*b").unwrap();
        assert!(r.find(&"a".repeat(100_000)).is_none());
    }
}
