//! The EDN reader: a hand-written reader over the characters of the text that tracks
//! the line and column of each one for error messages. Nesting is kept on an explicit
//! stack, not the call stack, so no input can overflow the stack while reading.

use std::collections::HashSet;

use super::Edn;
use crate::error::Error;
use crate::value::Keyword;

/// The deepest nesting of collections, tagged literals and `#_` discards the reader
/// accepts; deeper input is an [`Error::EdnSyntax`] rather than a stack overflow.
pub const MAX_DEPTH: usize = 512;

/// Reads exactly one EDN form. Whitespace, commas, comments and `#_` discards may
/// surround it; anything else after it is an error.
///
/// ```
/// use datoms_core::edn::{parse, Edn};
/// assert_eq!(parse(" ; the answer\n 42 ").unwrap(), Edn::Int(42));
/// assert!(parse("1 2").is_err());
/// assert!(parse("").is_err());
/// ```
pub fn parse(text: &str) -> Result<Edn, Error> {
    let mut r = Reader::new(text);
    let Some((_, form)) = r.next_form()? else {
        return Err(r.here("expected a form, found end of input"));
    };
    match r.next_form()? {
        None => Ok(form),
        Some((at, _)) => Err(err(
            at,
            "expected end of input after the form, found a second form",
        )),
    }
}

/// Reads every EDN form in `text`, in order (none for empty or comment-only text).
///
/// ```
/// use datoms_core::edn::{parse_all, Edn};
/// assert_eq!(parse_all("1, 2 #_3").unwrap(), vec![Edn::Int(1), Edn::Int(2)]);
/// ```
pub fn parse_all(text: &str) -> Result<Vec<Edn>, Error> {
    let mut r = Reader::new(text);
    let mut forms = Vec::new();
    while let Some((_, form)) = r.next_form()? {
        forms.push(form);
    }
    Ok(forms)
}

/// A 1-based line and column.
#[derive(Clone, Copy, Debug)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    /// The position `n` characters to the right (tokens never span lines).
    fn plus(self, n: usize) -> Pos {
        Pos {
            line: self.line,
            column: self.column + n,
        }
    }
}

fn err(at: Pos, message: impl Into<String>) -> Error {
    Error::EdnSyntax {
        line: at.line,
        column: at.column,
        message: message.into(),
    }
}

/// Whitespace: Unicode whitespace, commas, and a byte-order mark.
fn is_ws(c: char) -> bool {
    c.is_whitespace() || c == ',' || c == '\u{feff}'
}

/// Characters that end a token (besides whitespace).
fn is_terminating(c: char) -> bool {
    matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | '"' | ';' | '\\')
}

fn is_closing(c: char) -> bool {
    matches!(c, ')' | ']' | '}')
}

struct Reader<'a> {
    src: &'a str,
    /// Byte offset of the next character (always a char boundary).
    i: usize,
    line: usize,
    column: usize,
}

impl<'a> Reader<'a> {
    fn new(src: &'a str) -> Reader<'a> {
        Reader {
            src,
            i: 0,
            line: 1,
            column: 1,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.i..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    /// An error at the next character (or just past the end of input).
    fn here(&self, message: impl Into<String>) -> Error {
        err(self.pos(), message)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    /// Reads the characters up to the next whitespace or terminating character.
    fn token(&mut self) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|c| !is_ws(c) && !is_terminating(c)) {
            self.bump();
        }
        self.src.get(start..self.i).unwrap_or_default()
    }

    /// Skips whitespace and `;` and `#!` comments.
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if is_ws(c) {
                self.bump();
            } else if c == ';' || (c == '#' && self.peek2() == Some('!')) {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    /// Reads the next top-level form and where it starts, skipping whitespace, comments
    /// and discarded forms; `None` at the end of the input.
    fn next_form(&mut self) -> Result<Option<(Pos, Edn)>, Error> {
        let mut stack: Vec<Frame<'a>> = Vec::new();
        loop {
            self.skip_ws();
            let start = self.pos();
            let (first, second) = (self.peek(), self.peek2());
            // Open a frame, or get a complete form.
            let form = match (first, second) {
                (Some('('), _) | (Some('['), _) | (Some('{'), _) | (Some('#'), Some('{')) => {
                    let kind = match first {
                        Some('(') => Kind::List,
                        Some('[') => Kind::Vector,
                        Some('{') => Kind::Map,
                        _ => Kind::Set,
                    };
                    push(
                        &mut stack,
                        start,
                        Frame::Seq(kind, start, Vec::new(), Vec::new()),
                    )?;
                    if self.bump() == Some('#') {
                        self.bump();
                    }
                    continue;
                }
                (Some('#'), Some('_')) => {
                    push(&mut stack, start, Frame::Discard(start))?;
                    self.bump();
                    self.bump();
                    continue;
                }
                (Some('#'), Some(c)) if c.is_alphabetic() => {
                    self.bump();
                    let tag = self.read_tag()?;
                    push(&mut stack, start, Frame::Tagged(start, tag))?;
                    continue;
                }
                (Some(c), _) if is_closing(c) => match stack.pop() {
                    Some(Frame::Seq(kind, _, items, positions)) if kind.close() == c => {
                        self.bump();
                        kind.finish(items, &positions)?
                    }
                    Some(Frame::Seq(kind, open, ..)) => {
                        return Err(mismatched(start, open, kind, c))
                    }
                    Some(frame) => return Err(frame.incomplete()),
                    None => return Err(self.here(format!("unexpected `{c}`"))),
                },
                (None, _) => match stack.pop() {
                    Some(frame) => return Err(frame.incomplete()),
                    None => return Ok(None),
                },
                _ => self.read_atom()?,
            };
            // Hand the form to the innermost open frame, closing tags as they fill.
            let (mut at, mut form) = (start, form);
            loop {
                match stack.last_mut() {
                    None => return Ok(Some((at, form))),
                    Some(Frame::Seq(_, _, items, positions)) => {
                        items.push(form);
                        positions.push(at);
                        break;
                    }
                    Some(Frame::Tagged(tag_at, tag)) => {
                        form = Edn::Tagged((*tag).to_owned(), Box::new(form));
                        at = *tag_at;
                        stack.pop();
                    }
                    Some(Frame::Discard(_)) => {
                        stack.pop();
                        break;
                    }
                }
            }
        }
    }

    fn read_tag(&mut self) -> Result<&'a str, Error> {
        let start = self.pos();
        let tag = self.token();
        check_name(tag, start, false)?;
        Ok(tag)
    }

    /// Reads a form that holds no other form, or fails on what cannot start a form.
    fn read_atom(&mut self) -> Result<Edn, Error> {
        let start = self.pos();
        let Some(c) = self.peek() else {
            return Err(self.here("expected a form, found end of input"));
        };
        match c {
            ')' | ']' | '}' => Err(self.here(format!("unexpected `{c}`"))),
            '"' => self.read_string(),
            '\\' => self.read_char(),
            ':' => self.read_keyword(),
            '#' => self.read_dispatch(),
            '\'' | '`' | '~' | '@' | '^' => {
                Err(self.here(format!("`{c}` is a Clojure reader macro, not EDN")))
            }
            c if c.is_ascii_digit()
                || (matches!(c, '+' | '-') && self.peek2().is_some_and(|d| d.is_ascii_digit())) =>
            {
                let token = self.token();
                number(token).map_err(|e| match e {
                    NumberError::Syntax(offset, message) => err(start.plus(offset), message),
                    NumberError::Unsupported(reason) => Error::UnsupportedNumber {
                        literal: token.to_owned(),
                        line: start.line,
                        column: start.column,
                        reason,
                    },
                })
            }
            c if c.is_control() => Err(self.here(format!("unexpected character {c:?}"))),
            _ => {
                let token = self.token();
                match token {
                    "nil" => Ok(Edn::Nil),
                    "true" => Ok(Edn::Bool(true)),
                    "false" => Ok(Edn::Bool(false)),
                    _ => {
                        check_name(token, start, false)?;
                        Ok(Edn::Symbol(token.to_owned()))
                    }
                }
            }
        }
    }

    fn read_string(&mut self) -> Result<Edn, Error> {
        let open = self.pos();
        let unterminated = || {
            err(
                open,
                "unterminated string: end of input before its closing `\"`",
            )
        };
        self.bump();
        let mut s = String::new();
        loop {
            let at = self.pos();
            match self.bump() {
                None => return Err(unterminated()),
                Some('"') => return Ok(Edn::String(s)),
                Some('\\') => {
                    let c = match self.bump() {
                        None => return Err(unterminated()),
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('u') => self.unicode_escape(at)?,
                        Some(c) => {
                            return Err(err(at, format!("unknown escape `\\{c}` in string")))
                        }
                    };
                    s.push(c);
                }
                Some(c) => s.push(c),
            }
        }
    }

    /// The character of a `\uXXXX` escape (after its `u`), joining a UTF-16 surrogate
    /// pair written as two escapes. `at` is the escape's backslash.
    fn unicode_escape(&mut self, at: Pos) -> Result<char, Error> {
        let bad = |what: &str| err(at, format!("bad unicode escape in string: {what}"));
        let high = self
            .hex4()
            .ok_or_else(|| bad("`\\u` must be followed by four hex digits"))?;
        let code = match high {
            0xD800..=0xDBFF => {
                if self.peek() != Some('\\') || self.peek2() != Some('u') {
                    return Err(bad("unpaired surrogate"));
                }
                self.bump();
                self.bump();
                match self.hex4() {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    }
                    _ => return Err(bad("unpaired surrogate")),
                }
            }
            0xDC00..=0xDFFF => return Err(bad("unpaired surrogate")),
            code => code,
        };
        char::from_u32(code).ok_or_else(|| bad("not a character"))
    }

    /// Reads four hex digits.
    fn hex4(&mut self) -> Option<u32> {
        let mut code = 0;
        for _ in 0..4 {
            code = code * 16 + self.bump()?.to_digit(16)?;
        }
        Some(code)
    }

    fn read_char(&mut self) -> Result<Edn, Error> {
        let start = self.pos();
        self.bump();
        let first = match self.peek() {
            Some(c) if !c.is_whitespace() => c,
            _ => return Err(err(start, "expected a character after `\\`")),
        };
        self.bump();
        if is_ws(first) || is_terminating(first) {
            return Ok(Edn::Char(first));
        }
        let rest = self.token();
        if rest.is_empty() {
            return Ok(Edn::Char(first));
        }
        let name = format!("{first}{rest}");
        let c = match name.as_str() {
            "newline" => Some('\n'),
            "space" => Some(' '),
            "tab" => Some('\t'),
            "return" => Some('\r'),
            "backspace" => Some('\u{8}'),
            "formfeed" => Some('\u{c}'),
            _ if first == 'u' && rest.len() == 4 => u32::from_str_radix(rest, 16)
                .ok()
                .filter(|_| rest.chars().all(|c| c.is_ascii_hexdigit()))
                .and_then(char::from_u32),
            _ if first == 'o' && rest.len() <= 3 => u32::from_str_radix(rest, 8)
                .ok()
                .filter(|&n| n <= 0o377 && rest.chars().all(|c| c.is_digit(8)))
                .and_then(char::from_u32),
            _ => None,
        };
        c.map(Edn::Char)
            .ok_or_else(|| err(start, format!("unsupported character `\\{name}`")))
    }

    fn read_keyword(&mut self) -> Result<Edn, Error> {
        let start = self.pos();
        self.bump();
        let name = self.token();
        if name.is_empty() {
            return Err(err(start, "expected a keyword name after `:`"));
        }
        if let Some((offset, message)) = keyword_problem(name) {
            return Err(err(start.plus(1 + offset), message));
        }
        Ok(Edn::Keyword(Keyword::new_stored(name)))
    }

    /// Reads what follows a `#` that is not a set, a tag or a discard: a symbolic
    /// value such as `##Inf`, or an error.
    fn read_dispatch(&mut self) -> Result<Edn, Error> {
        let start = self.pos();
        self.bump();
        match self.peek() {
            Some('#') => {
                self.bump();
                match self.token() {
                    "Inf" => Ok(Edn::Float(f64::INFINITY)),
                    "-Inf" => Ok(Edn::Float(f64::NEG_INFINITY)),
                    "NaN" => Ok(Edn::Float(f64::NAN)),
                    other => Err(err(
                        start,
                        format!("unknown symbolic value `##{other}`, expected ##Inf, ##-Inf or ##NaN"),
                    )),
                }
            }
            None => Err(err(start, "`#` at end of input")),
            Some(c) => Err(err(
                start,
                format!("unsupported dispatch `#{c}`: EDN has `#{{` sets, `#_` discards and `#tag` literals"),
            )),
        }
    }
}

/// A form being read whose inner forms are still to come.
enum Frame<'a> {
    /// A collection: its kind, where it opened, its forms so far and where they start.
    Seq(Kind, Pos, Vec<Edn>, Vec<Pos>),
    /// A tagged literal waiting for its form: where its `#` is, and its tag.
    Tagged(Pos, &'a str),
    /// A `#_` waiting for the form to discard: where its `#` is.
    Discard(Pos),
}

impl Frame<'_> {
    /// The error for a frame that the input leaves incomplete: a collection at the end
    /// of input, or a tag or discard followed by a closing delimiter or end of input.
    fn incomplete(&self) -> Error {
        match self {
            Frame::Seq(kind, open, ..) => err(
                *open,
                format!(
                    "unterminated {}: end of input before its closing `{}`",
                    kind.name(),
                    kind.close()
                ),
            ),
            Frame::Tagged(at, tag) => err(*at, format!("tag `#{tag}` must be followed by a form")),
            Frame::Discard(at) => err(*at, "`#_` must be followed by a form to discard"),
        }
    }
}

/// Pushes a frame, failing if that nests deeper than [`MAX_DEPTH`].
fn push<'a>(stack: &mut Vec<Frame<'a>>, at: Pos, frame: Frame<'a>) -> Result<(), Error> {
    if stack.len() >= MAX_DEPTH {
        return Err(err(at, format!("nesting deeper than {MAX_DEPTH} levels")));
    }
    stack.push(frame);
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    List,
    Vector,
    Map,
    Set,
}

impl Kind {
    fn close(self) -> char {
        match self {
            Kind::List => ')',
            Kind::Vector => ']',
            Kind::Map | Kind::Set => '}',
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::Vector => "vector",
            Kind::Map => "map",
            Kind::Set => "set",
        }
    }

    /// The collection of `items`, which start at `positions`.
    fn finish(self, items: Vec<Edn>, positions: &[Pos]) -> Result<Edn, Error> {
        match self {
            Kind::List => Ok(Edn::List(items)),
            Kind::Vector => Ok(Edn::Vector(items)),
            Kind::Map => into_map(items, positions),
            Kind::Set => {
                check_unique(items.iter().zip(positions.iter().copied()), "set element")?;
                Ok(Edn::Set(items))
            }
        }
    }
}

fn mismatched(at: Pos, open: Pos, kind: Kind, found: char) -> Error {
    err(
        at,
        format!(
            "expected `{}` to close the {} opened at line {}, column {}, found `{found}`",
            kind.close(),
            kind.name(),
            open.line,
            open.column
        ),
    )
}

/// Pairs the forms read between `{` and `}`, rejecting an odd count and duplicate keys.
fn into_map(items: Vec<Edn>, positions: &[Pos]) -> Result<Edn, Error> {
    if items.len() % 2 == 1 {
        if let (Some(key), Some(&at)) = (items.last(), positions.last()) {
            return Err(err(
                at,
                format!("map has an odd number of forms: key `{key}` has no value"),
            ));
        }
    }
    let mut items = items.into_iter();
    let mut pairs = Vec::new();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        pairs.push((k, v));
    }
    let key_positions = positions.iter().step_by(2).copied();
    check_unique(pairs.iter().map(|(k, _)| k).zip(key_positions), "map key")?;
    Ok(Edn::Map(pairs))
}

/// Checks a symbol name (`keyword` false) or a keyword name without its colon. `start`
/// is the position of its first character.
fn check_name(name: &str, start: Pos, keyword: bool) -> Result<(), Error> {
    match name_problem(name, keyword) {
        None => Ok(()),
        Some((offset, message)) => Err(err(start.plus(offset), message)),
    }
}

/// What makes `text` (a keyword without its colon) something other than the keyword
/// the reader reads from `:text`, with the character offset of the offending character;
/// `None` for a valid keyword. The one home of keyword validity: the reader and
/// [`Keyword::parse`](crate::Keyword::parse) both ask it.
pub(crate) fn keyword_problem(text: &str) -> Option<(usize, String)> {
    if text.is_empty() {
        return Some((0, "a keyword needs a name after `:`".to_owned()));
    }
    if let Some((n, c)) = text
        .chars()
        .enumerate()
        .find(|&(_, c)| is_ws(c) || is_terminating(c) || c.is_control())
    {
        return Some((n, format!("a keyword cannot contain {c:?}")));
    }
    name_problem(text, true)
}

/// What is wrong with a symbol name (`keyword` false) or a keyword name without its
/// colon, as read from one token, with the character offset of the offending character.
fn name_problem(name: &str, keyword: bool) -> Option<(usize, String)> {
    let mut chars = name.chars();
    let first = chars.next();
    let second = chars.next();
    if let Some((n, c)) = name.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Some((n, format!("unexpected character {c:?}")));
    }
    if keyword && first == Some(':') {
        return Some((
            0,
            "`::` auto-resolved keywords are Clojure, not EDN".to_owned(),
        ));
    }
    if !keyword
        && matches!(first, Some('+' | '-' | '.'))
        && second.is_some_and(|c| c.is_ascii_digit())
    {
        return Some((
            1,
            format!(
                "a symbol starting with `{}` cannot continue with a digit",
                first.unwrap_or('.')
            ),
        ));
    }
    if name == "/" {
        return None;
    }
    let (ns, local) = name.split_once('/')?;
    let ns_len = ns.chars().count();
    let what = if keyword { "keyword" } else { "symbol" };
    if ns.is_empty() {
        return Some((0, format!("{what} `{name}` has an empty namespace")));
    }
    if local.is_empty() {
        return Some((ns_len, format!("{what} `{name}` has no name after `/`")));
    }
    if let Some(extra) = local.find('/') {
        let offset = ns_len + 1 + local.get(..extra).unwrap_or_default().chars().count();
        return Some((offset, format!("{what} `{name}` has more than one `/`")));
    }
    None
}

/// Rejects a duplicate among `items`, reporting the position of the second occurrence.
/// Forms are compared by their printed text, which is what EDN equality means here.
fn check_unique<'e>(items: impl Iterator<Item = (&'e Edn, Pos)>, what: &str) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for (item, at) in items {
        let text = item.to_string();
        if seen.contains(&text) {
            return Err(err(at, format!("duplicate {what} `{text}`")));
        }
        seen.insert(text);
    }
    Ok(())
}

/// Why a number token is not read.
enum NumberError {
    /// Not an EDN number: the character offset of the offending character, and why.
    Syntax(usize, String),
    /// An EDN number datoms cannot hold exactly, and why.
    Unsupported(String),
}

/// Reads a number token. An `N` integer that fits in 64 bits is the same long as without
/// its `N` (exact, as Clojure's `(= 1 1N)`); an integer that does not fit and any `M`
/// decimal are [`NumberError::Unsupported`], never rounded.
fn number(token: &str) -> Result<Edn, NumberError> {
    use NumberError::{Syntax, Unsupported};
    let b = token.as_bytes();
    let digits_from = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let slice = |from: usize, to: usize| token.get(from..to).unwrap_or_default();
    let int_start = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits_from(int_start);
    let mut i = int_end;
    let mut fraction = None;
    let mut exponent = None;
    if b.get(i) == Some(&b'.') {
        let end = digits_from(i + 1);
        fraction = Some(slice(i + 1, end));
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let end = digits_from(i + 1 + sign);
        if end == i + 1 + sign {
            return Err(Syntax(end, format!("exponent of `{token}` has no digits")));
        }
        exponent = Some(slice(i + 1, end));
        i = end;
    }
    let is_float = fraction.is_some() || exponent.is_some();
    let mut big_decimal = false;
    match b.get(i) {
        Some(b'M') => {
            big_decimal = true;
            i += 1;
        }
        Some(b'N') if !is_float => i += 1,
        _ => {}
    }
    if let Some(c) = token.get(i..).and_then(|s| s.chars().next()) {
        return Err(Syntax(i, format!("unexpected {c:?} in number `{token}`")));
    }
    if big_decimal {
        return Err(Unsupported(
            "`M` marks an arbitrary-precision decimal, which datoms does not store; write \
             a double without `M` (rounded to 64 bits) or a string"
                .to_owned(),
        ));
    }
    let int = slice(0, int_end);
    if is_float {
        let text = format!(
            "{int}.{}e{}",
            fraction.filter(|f| !f.is_empty()).unwrap_or("0"),
            exponent.unwrap_or("0")
        );
        return text
            .parse()
            .map(Edn::Float)
            .map_err(|_| Syntax(0, format!("invalid float `{token}`")));
    }
    if int_end - int_start > 1 && b.get(int_start) == Some(&b'0') {
        return Err(Syntax(
            int_start + 1,
            format!("integer `{token}` has a leading zero (octal is not EDN)"),
        ));
    }
    int.parse().map(Edn::Int).map_err(|_| {
        Unsupported(
            "the integer does not fit in 64 bits: datoms stores 64-bit longs and has no \
             big integers"
                .to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kw(s: &str) -> Edn {
        Edn::Keyword(Keyword::new(s))
    }

    fn sym(s: &str) -> Edn {
        Edn::Symbol(s.to_owned())
    }

    fn s(text: &str) -> Edn {
        Edn::String(text.to_owned())
    }

    #[test]
    fn every_syntax_element_reads_to_its_form() {
        use Edn::*;
        let cases: Vec<(&str, Edn)> = vec![
            ("nil", Nil),
            ("true", Bool(true)),
            ("false", Bool(false)),
            // integers
            ("0", Int(0)),
            ("42", Int(42)),
            ("-7", Int(-7)),
            ("+7", Int(7)),
            ("-0", Int(0)),
            ("42N", Int(42)),
            ("-7N", Int(-7)),
            ("9223372036854775807N", Int(i64::MAX)),
            ("9223372036854775807", Int(i64::MAX)),
            ("-9223372036854775808", Int(i64::MIN)),
            // floats
            ("1.5", Float(1.5)),
            ("-1.5", Float(-1.5)),
            ("1.", Float(1.0)),
            ("0.25", Float(0.25)),
            ("1e3", Float(1000.0)),
            ("1E3", Float(1000.0)),
            ("1.5e-3", Float(0.0015)),
            ("2.5e+2", Float(250.0)),
            ("1.e2", Float(100.0)),
            ("01.5", Float(1.5)),
            ("##Inf", Float(f64::INFINITY)),
            ("##-Inf", Float(f64::NEG_INFINITY)),
            // strings
            ("\"\"", s("")),
            ("\"abc\"", s("abc")),
            (r#""a\nb\tc\rd""#, s("a\nb\tc\rd")),
            (r#""q\"b\\""#, s("q\"b\\")),
            (r#""\b\f""#, s("\u{8}\u{c}")),
            (r#""\u00e9\u0041""#, s("éA")),
            (r#""\uD83D\uDE00""#, s("😀")),
            ("\"héllo 😀\"", s("héllo 😀")),
            ("\"two\nlines\"", s("two\nlines")),
            // characters
            ("\\a", Char('a')),
            ("\\A", Char('A')),
            ("\\newline", Char('\n')),
            ("\\space", Char(' ')),
            ("\\tab", Char('\t')),
            ("\\return", Char('\r')),
            ("\\backspace", Char('\u{8}')),
            ("\\formfeed", Char('\u{c}')),
            ("\\u00e9", Char('é')),
            ("\\u", Char('u')),
            ("\\o101", Char('A')),
            ("\\(", Char('(')),
            ("\\\\", Char('\\')),
            ("\\\"", Char('"')),
            ("\\,", Char(',')),
            ("\\é", Char('é')),
            // symbols
            ("foo", sym("foo")),
            ("?x", sym("?x")),
            ("_", sym("_")),
            ("...", sym("...")),
            ("+", sym("+")),
            ("-", sym("-")),
            ("<=", sym("<=")),
            ("!=", sym("!=")),
            ("re-find", sym("re-find")),
            ("/", sym("/")),
            ("clojure.string/blank?", sym("clojure.string/blank?")),
            ("a:b#c", sym("a:b#c")),
            ("nil?", sym("nil?")),
            ("-a", sym("-a")),
            ("->x", sym("->x")),
            ("x'", sym("x'")),
            ("größe", sym("größe")),
            // keywords
            (":a", kw(":a")),
            (":person/name", kw(":person/name")),
            (":db/id", kw(":db/id")),
            (":person/_friend", kw(":person/_friend")),
            (":_friend", kw(":_friend")),
            (":db.type/ref", kw(":db.type/ref")),
            (":1", kw(":1")),
            // collections
            ("()", List(vec![])),
            ("(1 2)", List(vec![Int(1), Int(2)])),
            ("[]", Vector(vec![])),
            ("[1,2 ,3]", Vector(vec![Int(1), Int(2), Int(3)])),
            ("{}", Map(vec![])),
            (
                "{:b 1, :a 2}",
                Map(vec![(kw(":b"), Int(1)), (kw(":a"), Int(2))]),
            ),
            ("#{}", Set(vec![])),
            ("#{1 :a}", Set(vec![Int(1), kw(":a")])),
            (
                "[[1] (2) {3 4} #{5}]",
                Vector(vec![
                    Vector(vec![Int(1)]),
                    List(vec![Int(2)]),
                    Map(vec![(Int(3), Int(4))]),
                    Set(vec![Int(5)]),
                ]),
            ),
            (
                "[a(b)c]",
                Vector(vec![sym("a"), List(vec![sym("b")]), sym("c")]),
            ),
            ("[\\a\\b]", Vector(vec![Char('a'), Char('b')])),
            ("[:a\"s\"]", Vector(vec![kw(":a"), s("s")])),
            // tagged literals
            (
                "#inst \"2020-01-01T00:00:00Z\"",
                Tagged("inst".into(), Box::new(s("2020-01-01T00:00:00Z"))),
            ),
            (
                "#uuid\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\"",
                Tagged(
                    "uuid".into(),
                    Box::new(s("6ba7b810-9dad-11d1-80b4-00c04fd430c8")),
                ),
            ),
            (
                "#datom [1 :a 2 3 true]",
                Tagged(
                    "datom".into(),
                    Box::new(Vector(vec![Int(1), kw(":a"), Int(2), Int(3), Bool(true)])),
                ),
            ),
            (
                "#my.app/point {:x 1}",
                Tagged(
                    "my.app/point".into(),
                    Box::new(Map(vec![(kw(":x"), Int(1))])),
                ),
            ),
            ("#t #_1 2", Tagged("t".into(), Box::new(Int(2)))),
            // whitespace, comments, discard
            (" \t\n, 1 ,\n", Int(1)),
            ("; comment\n1 ; trailing", Int(1)),
            ("#! shebang\n1", Int(1)),
            ("#_ 1 2", Int(2)),
            ("#_#_ 1 2 3", Int(3)),
            ("[1 #_2 3 #_ (4 5)]", Vector(vec![Int(1), Int(3)])),
            ("{:a #_:b 1}", Map(vec![(kw(":a"), Int(1))])),
            ("\u{feff}1", Int(1)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "reading {text:?}");
        }
    }

    #[test]
    fn datascript_query_reads_as_nested_forms() {
        let q = parse(
            "[:find ?e ?name . :in $ [?x ...] :where [?e :person/name ?name] [(re-find #\"x\" ?name)]]",
        );
        // `#"…"` regexes are Clojure, not EDN.
        assert!(q.is_err());
        let q = parse(
            "[:find (pull ?e [*]) :where [?e :person/age ?a] [(<= 18 ?a)] (not [?e :person/_friend _])]",
        )
        .unwrap();
        let Edn::Vector(items) = q else {
            panic!("not a vector")
        };
        assert_eq!(items.len(), 6);
        assert_eq!(
            items[1],
            Edn::List(vec![sym("pull"), sym("?e"), Edn::Vector(vec![sym("*")])])
        );
        assert_eq!(
            items[4],
            Edn::Vector(vec![Edn::List(vec![sym("<="), Edn::Int(18), sym("?a")])])
        );
    }

    #[test]
    fn every_syntax_error_reports_its_line_and_column() {
        let cases: &[(&str, usize, usize, &str)] = &[
            ("", 1, 1, "end of input"),
            ("  \n ", 2, 2, "end of input"),
            ("\"abc", 1, 1, "unterminated string"),
            ("[1\n  \"abc", 2, 3, "unterminated string"),
            ("\"ab\\", 1, 1, "unterminated string"),
            ("(1 2", 1, 1, "unterminated list"),
            ("[1\n [2]", 1, 1, "unterminated vector"),
            ("{:a 1", 1, 1, "unterminated map"),
            (" #{1", 1, 2, "unterminated set"),
            (
                "(1 2]",
                1,
                5,
                "expected `)` to close the list opened at line 1, column 1",
            ),
            (")", 1, 1, "unexpected `)`"),
            ("1 )", 1, 3, "unexpected `)`"),
            ("[1 2]\n]", 2, 1, "unexpected `]`"),
            ("1 2", 1, 3, "second form"),
            (
                "{:a 1 :b}",
                1,
                7,
                "odd number of forms: key `:b` has no value",
            ),
            ("{:a}", 1, 2, "odd number of forms"),
            ("{:a 1 :a 2}", 1, 7, "duplicate map key `:a`"),
            ("#{1 2 1}", 1, 7, "duplicate set element `1`"),
            ("1.2.3", 1, 4, "unexpected '.' in number `1.2.3`"),
            ("[0 12x]", 1, 6, "unexpected 'x' in number"),
            ("1e", 1, 3, "exponent of `1e` has no digits"),
            ("1e+", 1, 4, "exponent"),
            ("1.5N", 1, 4, "unexpected 'N'"),
            ("1/2", 1, 2, "unexpected '/'"),
            ("0x1F", 1, 2, "unexpected 'x'"),
            ("017", 1, 2, "leading zero"),
            ("1.5MN", 1, 5, "unexpected 'N'"),
            ("1M5", 1, 3, "unexpected '5'"),
            ("\"a\\qb\"", 1, 3, "unknown escape `\\q`"),
            ("\n  \"\\u12\"", 2, 4, "four hex digits"),
            ("\"\\uD83D\"", 1, 2, "unpaired surrogate"),
            ("\"\\uDE00\"", 1, 2, "unpaired surrogate"),
            ("\\", 1, 1, "expected a character"),
            ("[\\ ]", 1, 2, "expected a character"),
            ("\\abc", 1, 1, "unsupported character `\\abc`"),
            ("\\uD800", 1, 1, "unsupported character"),
            ("\\o400", 1, 1, "unsupported character"),
            (":", 1, 1, "expected a keyword name"),
            ("[: a]", 1, 2, "expected a keyword name"),
            ("::a", 1, 2, "auto-resolved"),
            (":a/", 1, 3, "no name after `/`"),
            (":/a", 1, 2, "empty namespace"),
            ("a/b/c", 1, 4, "more than one `/`"),
            (".5x", 1, 2, "cannot continue with a digit"),
            ("a\u{1}b", 1, 2, "unexpected character"),
            ("\u{0}", 1, 1, "unexpected character"),
            ("'a", 1, 1, "reader macro"),
            ("@a", 1, 1, "reader macro"),
            ("^:m a", 1, 1, "reader macro"),
            ("#", 1, 1, "`#` at end of input"),
            ("#\"re\"", 1, 1, "unsupported dispatch `#\"`"),
            ("#(inc %)", 1, 1, "unsupported dispatch `#(`"),
            ("#:a{:b 1}", 1, 1, "unsupported dispatch `#:`"),
            ("##Foo", 1, 1, "unknown symbolic value `##Foo`"),
            ("#inst", 1, 1, "tag `#inst` must be followed by a form"),
            ("[#inst]", 1, 2, "tag `#inst` must be followed by a form"),
            ("#_", 1, 1, "`#_` must be followed by a form"),
            ("[1 #_]", 1, 4, "`#_` must be followed by a form"),
            ("1 #_", 1, 3, "`#_` must be followed by a form"),
        ];
        for &(text, line, column, needle) in cases {
            match parse(text) {
                Err(Error::EdnSyntax {
                    line: l,
                    column: c,
                    message,
                }) => {
                    assert_eq!((l, c), (line, column), "position for {text:?}: {message}");
                    assert!(
                        message.contains(needle),
                        "message for {text:?} is {message:?}, expected it to contain {needle:?}"
                    );
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = parse("[\"é😀\" 1.2.3]").unwrap_err();
        assert!(
            matches!(
                e,
                Error::EdnSyntax {
                    line: 1,
                    column: 10,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = parse(":größe/").unwrap_err();
        assert!(
            matches!(
                e,
                Error::EdnSyntax {
                    line: 1,
                    column: 7,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn parse_all_reads_every_form_and_none_from_blank_text() {
        assert_eq!(parse_all(""), Ok(vec![]));
        assert_eq!(parse_all(" ; only a comment\n#_ 1"), Ok(vec![]));
        assert_eq!(
            parse_all("1 :a\n[2]"),
            Ok(vec![Edn::Int(1), kw(":a"), Edn::Vector(vec![Edn::Int(2)])])
        );
        assert!(matches!(
            parse_all("1 2 )"),
            Err(Error::EdnSyntax {
                line: 1,
                column: 5,
                ..
            })
        ));
    }

    #[test]
    fn nesting_up_to_the_limit_reads_and_deeper_is_an_error() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = parse(&deep).unwrap_err();
        assert!(
            matches!(e, Error::EdnSyntax { line: 1, column, ref message }
                if column == MAX_DEPTH + 1 && message.contains("nesting")),
            "{e:?}"
        );
        for open in ["(", "[", "{", "#{", "#t ", "#_ ", "#t #_"] {
            let text = open.repeat(100_000);
            assert!(
                matches!(parse(&text), Err(Error::EdnSyntax { .. })),
                "{open}"
            );
        }
    }

    /// Big decimals and integers past 64 bits are a typed error naming the literal and
    /// where it is, never a double or a long that differs from what was written.
    #[test]
    fn big_decimals_and_big_integers_are_unsupported_not_rounded() {
        let cases: &[(&str, usize, usize, &str, &str)] = &[
            (
                "12345678901234567890.123456789M",
                1,
                1,
                "12345678901234567890.123456789M",
                "arbitrary-precision decimal",
            ),
            ("1M", 1, 1, "1M", "arbitrary-precision decimal"),
            ("[1 -2.5M]", 1, 4, "-2.5M", "arbitrary-precision decimal"),
            ("{:a\n 1e3M}", 2, 2, "1e3M", "arbitrary-precision decimal"),
            (
                "9223372036854775808",
                1,
                1,
                "9223372036854775808",
                "64 bits",
            ),
            (
                "-9223372036854775809N",
                1,
                1,
                "-9223372036854775809N",
                "64 bits",
            ),
            (
                "[12345678901234567890N]",
                1,
                2,
                "12345678901234567890N",
                "64 bits",
            ),
        ];
        for &(text, line, column, literal, needle) in cases {
            match parse(text) {
                Err(Error::UnsupportedNumber {
                    literal: l,
                    line: ln,
                    column: c,
                    reason,
                }) => {
                    assert_eq!((l.as_str(), ln, c), (literal, line, column), "{text:?}");
                    assert!(reason.contains(needle), "{text:?}: {reason}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        // An `N` integer that fits is exactly the long.
        assert_eq!(parse("1N"), Ok(Edn::Int(1)));
        assert_eq!(parse("-9223372036854775808N"), Ok(Edn::Int(i64::MIN)));
    }

    #[test]
    fn numbers_out_of_float_range_read_as_infinities() {
        assert_eq!(parse("1e999"), Ok(Edn::Float(f64::INFINITY)));
        assert_eq!(parse("-1e999"), Ok(Edn::Float(f64::NEG_INFINITY)));
        assert!(matches!(parse("##NaN"), Ok(Edn::Float(x)) if x.is_nan()));
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_text(text in ".*") {
            let _ = parse(&text);
            let _ = parse_all(&text);
        }

        #[test]
        fn whatever_parses_prints_back_to_the_same_text(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    "(", ")", "[", "]", "{", "}", "#{", "#_", "#", "##", "\"", "\\", ";", "\n",
                    " ", ",", ":", "a", "b/", "1", "0", "-", "+", ".", "e", "E", "N", "M", "/",
                    "#inst", "\\u", "00e9", "\\n", "x", "?", "_", "é", "😀", "Inf", "'", "^",
                    "!", "\t", "D83D", "uD83D", "nil", "true",
                ]),
                0..40,
            )
        ) {
            let text = parts.concat();
            if let Ok(forms) = parse_all(&text) {
                for form in forms {
                    let printed = form.to_string();
                    let again = parse(&printed);
                    prop_assert!(again.is_ok(), "{text:?} printed as {printed:?}: {again:?}");
                    let reprinted = again.map(|f| f.to_string()).unwrap_or_default();
                    prop_assert_eq!(reprinted, printed);
                }
            }
        }
    }
}
