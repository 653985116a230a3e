//! A small regular expression engine for `re-find`, `re-matches` and `re-seq`, with
//! Java's syntax for the common constructs and no dependency.
//!
//! Supported: literals and escapes (`\t \n \r \f \e \0 \xhh \uhhhh`, escaped
//! punctuation), `.`, classes `[a-z]`, `[^…]` with `\d \w \s` (and negations) inside and
//! outside them, anchors `^ $ \A \z \Z \b \B`, groups `( )`, non-capturing `(?: )`,
//! leading inline flags `(?i)` `(?s)` `(?m)` (combinable, e.g. `(?is)`), alternation `|`,
//! quantifiers `* + ? {n} {n,} {n,m}` and their lazy forms (`*?` …). Not supported:
//! backreferences, lookaround, possessive quantifiers, named groups, `\p{…}` (they are
//! errors, never silently wrong matches).
//!
//! Matching is backtracking with the usual leftmost-first priorities, memoized on
//! (instruction, position) so it runs in O(program × text) time, never exponentially.

use std::fmt;

const MAX_PROGRAM: usize = 20_000;
const MAX_REPEAT: u32 = 1_000;
const MAX_MEMO_BITS: usize = 1 << 28;

#[derive(Clone, Debug)]
struct Class {
    ranges: Vec<(char, char)>,
    negated: bool,
}

impl Class {
    fn matches(&self, c: char, ci: bool) -> bool {
        let hit = |c: char| self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
        let mut found = hit(c);
        if !found && ci {
            found = c.to_lowercase().any(hit) || c.to_uppercase().any(hit);
        }
        found != self.negated
    }
}

#[derive(Clone, Debug)]
enum Node {
    Empty,
    Char(char),
    Any,
    Class(Class),
    Bol,
    Eol,
    TextStart,
    TextEnd,
    TextEndNl,
    WordB,
    NotWordB,
    Group(Box<Node>, Option<usize>),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
}

#[derive(Clone, Debug)]
enum Inst {
    Char(char),
    Any,
    Class(Class),
    Bol,
    Eol,
    TextStart,
    TextEnd,
    TextEndNl,
    WordB,
    NotWordB,
    Split(usize, usize),
    Jmp(usize),
    Save(usize),
    Match,
}

/// A compiled regular expression.
#[derive(Clone)]
pub(crate) struct Regex {
    prog: Vec<Inst>,
    groups: usize,
    ci: bool,
    dotall: bool,
    multiline: bool,
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({} instructions)", self.prog.len())
    }
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    groups: usize,
    src: &'a str,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("invalid regex {:?} at {}: {what}", self.src, self.pos)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn alt(&mut self, depth: usize) -> Result<Node, String> {
        if depth > 200 {
            return Err(self.err("nesting too deep"));
        }
        let mut branches = vec![self.concat(depth)?];
        while self.eat('|') {
            branches.push(self.concat(depth)?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(branches)
        })
    }

    fn concat(&mut self, depth: usize) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom(depth)?;
            let atom = self.quantified(atom)?;
            items.push(atom);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return None;
        }
        self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let (min, max) = match self.peek() {
            Some('*') => {
                self.pos += 1;
                (0, None)
            }
            Some('+') => {
                self.pos += 1;
                (1, None)
            }
            Some('?') => {
                self.pos += 1;
                (0, Some(1))
            }
            Some('{') => {
                let save = self.pos;
                self.pos += 1;
                let Some(min) = self.number() else {
                    self.pos = save;
                    return Err(self.err("expected a number after {"));
                };
                let max = if self.eat(',') {
                    self.number()
                } else {
                    Some(min)
                };
                if !self.eat('}') {
                    return Err(self.err("expected } to close a repetition"));
                }
                if max.is_some_and(|m| m < min) {
                    return Err(self.err("repetition {n,m} with m < n"));
                }
                if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
                    return Err(self.err("repetition count too large"));
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        if matches!(
            atom,
            Node::Bol | Node::Eol | Node::TextStart | Node::TextEnd | Node::TextEndNl
        ) {
            return Err(self.err("nothing to repeat"));
        }
        let greedy = !self.eat('?');
        if self.peek() == Some('+') {
            return Err(self.err("possessive quantifiers are not supported"));
        }
        if matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
            return Err(self.err("dangling quantifier"));
        }
        Ok(Node::Repeat {
            node: Box::new(atom),
            min,
            max,
            greedy,
        })
    }

    fn atom(&mut self, depth: usize) -> Result<Node, String> {
        let Some(c) = self.peek() else {
            return Err(self.err("unexpected end"));
        };
        self.pos += 1;
        match c {
            '.' => Ok(Node::Any),
            '^' => Ok(Node::Bol),
            '$' => Ok(Node::Eol),
            '*' | '+' | '?' | '{' => Err(self.err("nothing to repeat")),
            '[' => self.class().map(Node::Class),
            '(' => {
                let index = if self.eat('?') {
                    if self.eat(':') {
                        None
                    } else {
                        return Err(
                            self.err("only (?:…) groups and leading flags like (?i) are supported")
                        );
                    }
                } else {
                    self.groups += 1;
                    Some(self.groups)
                };
                let inner = self.alt(depth + 1)?;
                if !self.eat(')') {
                    return Err(self.err("unclosed group"));
                }
                Ok(Node::Group(Box::new(inner), index))
            }
            '\\' => self.escape(false).map(|e| match e {
                Esc::Char(c) => Node::Char(c),
                Esc::Class(cl) => Node::Class(cl),
                Esc::Node(n) => n,
            }),
            c => Ok(Node::Char(c)),
        }
    }

    fn hex(&mut self, n: usize) -> Result<char, String> {
        let text: String = self.chars.iter().skip(self.pos).take(n).collect();
        if text.chars().count() != n {
            return Err(self.err("truncated hex escape"));
        }
        self.pos += n;
        u32::from_str_radix(&text, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| self.err("bad hex escape"))
    }

    fn escape(&mut self, in_class: bool) -> Result<Esc, String> {
        let Some(c) = self.peek() else {
            return Err(self.err("trailing backslash"));
        };
        self.pos += 1;
        let class = |ranges: Vec<(char, char)>, negated| Esc::Class(Class { ranges, negated });
        Ok(match c {
            't' => Esc::Char('\t'),
            'n' => Esc::Char('\n'),
            'r' => Esc::Char('\r'),
            'f' => Esc::Char('\u{c}'),
            'e' => Esc::Char('\u{1b}'),
            'a' => Esc::Char('\u{7}'),
            '0' => Esc::Char('\0'),
            'x' => Esc::Char(self.hex(2)?),
            'u' => Esc::Char(self.hex(4)?),
            'd' => class(digit(), false),
            'D' => class(digit(), true),
            'w' => class(word(), false),
            'W' => class(word(), true),
            's' => class(space(), false),
            'S' => class(space(), true),
            'b' if !in_class => Esc::Node(Node::WordB),
            'B' if !in_class => Esc::Node(Node::NotWordB),
            'A' if !in_class => Esc::Node(Node::TextStart),
            'z' if !in_class => Esc::Node(Node::TextEnd),
            'Z' if !in_class => Esc::Node(Node::TextEndNl),
            c if c.is_ascii_alphanumeric() => {
                return Err(self.err(&format!("unsupported escape \\{c}")))
            }
            c => Esc::Char(c),
        })
    }

    fn class(&mut self) -> Result<Class, String> {
        let negated = self.eat('^');
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unclosed character class"));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            if c == '[' {
                return Err(self.err("nested character classes are not supported"));
            }
            self.pos += 1;
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Esc::Char(c) => c,
                    Esc::Class(cl) => {
                        if cl.negated {
                            return Err(
                                self.err("negated escapes inside a class are not supported")
                            );
                        }
                        ranges.extend(cl.ranges);
                        continue;
                    }
                    Esc::Node(_) => return Err(self.err("anchor inside a class")),
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let Some(h) = self.peek() else {
                    return Err(self.err("unclosed character class"));
                };
                self.pos += 1;
                let hi = if h == '\\' {
                    match self.escape(true)? {
                        Esc::Char(c) => c,
                        _ => return Err(self.err("bad range end")),
                    }
                } else {
                    h
                };
                if hi < lo {
                    return Err(self.err("range out of order"));
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Class { ranges, negated })
    }
}

enum Esc {
    Char(char),
    Class(Class),
    Node(Node),
}

fn digit() -> Vec<(char, char)> {
    vec![('0', '9')]
}

fn word() -> Vec<(char, char)> {
    vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]
}

fn space() -> Vec<(char, char)> {
    vec![(' ', ' '), ('\t', '\r')]
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

struct Compiler {
    prog: Vec<Inst>,
}

impl Compiler {
    fn push(&mut self, i: Inst) -> Result<usize, String> {
        if self.prog.len() >= MAX_PROGRAM {
            return Err("regex too large".into());
        }
        self.prog.push(i);
        Ok(self.prog.len() - 1)
    }

    fn compile(&mut self, n: &Node) -> Result<(), String> {
        match n {
            Node::Empty => {}
            Node::Char(c) => {
                self.push(Inst::Char(*c))?;
            }
            Node::Any => {
                self.push(Inst::Any)?;
            }
            Node::Class(c) => {
                self.push(Inst::Class(c.clone()))?;
            }
            Node::Bol => {
                self.push(Inst::Bol)?;
            }
            Node::Eol => {
                self.push(Inst::Eol)?;
            }
            Node::TextStart => {
                self.push(Inst::TextStart)?;
            }
            Node::TextEnd => {
                self.push(Inst::TextEnd)?;
            }
            Node::TextEndNl => {
                self.push(Inst::TextEndNl)?;
            }
            Node::WordB => {
                self.push(Inst::WordB)?;
            }
            Node::NotWordB => {
                self.push(Inst::NotWordB)?;
            }
            Node::Group(inner, None) => self.compile(inner)?,
            Node::Group(inner, Some(i)) => {
                self.push(Inst::Save(2 * i))?;
                self.compile(inner)?;
                self.push(Inst::Save(2 * i + 1))?;
            }
            Node::Concat(items) => {
                for i in items {
                    self.compile(i)?;
                }
            }
            Node::Alt(branches) => {
                let mut jumps = Vec::new();
                for (k, b) in branches.iter().enumerate() {
                    if k + 1 < branches.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.compile(b)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, next);
                    } else {
                        self.compile(b)?;
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.prog[j] = Inst::Jmp(end);
                }
            }
            Node::Repeat {
                node,
                min,
                max,
                greedy,
            } => {
                for _ in 0..*min {
                    self.compile(node)?;
                }
                let split = |greedy: bool, body: usize, out: usize| {
                    if greedy {
                        Inst::Split(body, out)
                    } else {
                        Inst::Split(out, body)
                    }
                };
                match max {
                    None => {
                        let l = self.push(Inst::Split(0, 0))?;
                        self.compile(node)?;
                        self.push(Inst::Jmp(l))?;
                        let out = self.prog.len();
                        self.prog[l] = split(*greedy, l + 1, out);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.compile(node)?;
                        }
                        let out = self.prog.len();
                        for s in splits {
                            self.prog[s] = split(*greedy, s + 1, out);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// A match: the whole match and each group, as char ranges.
pub(crate) type Captures = Vec<Option<(usize, usize)>>;

impl Regex {
    /// Compiles a pattern.
    pub(crate) fn new(src: &str) -> Result<Regex, String> {
        let mut p = Parser {
            chars: src.chars().collect(),
            pos: 0,
            groups: 0,
            src,
        };
        let (mut ci, mut dotall, mut multiline) = (false, false, false);
        // Leading inline flags such as (?i) or (?ims).
        while p.chars.get(p.pos) == Some(&'(') && p.chars.get(p.pos + 1) == Some(&'?') {
            let mut q = p.pos + 2;
            let mut flags = (ci, dotall, multiline);
            let mut ok = false;
            while let Some(&c) = p.chars.get(q) {
                match c {
                    'i' => flags.0 = true,
                    's' => flags.1 = true,
                    'm' => flags.2 = true,
                    'u' | 'U' | 'x' | 'd' => {}
                    ')' => {
                        ok = q > p.pos + 2;
                        break;
                    }
                    _ => break,
                }
                q += 1;
            }
            if !ok {
                break;
            }
            (ci, dotall, multiline) = flags;
            p.pos = q + 1;
        }
        let ast = p.alt(0)?;
        if p.pos != p.chars.len() {
            return Err(p.err("unbalanced )"));
        }
        let mut c = Compiler { prog: Vec::new() };
        c.push(Inst::Save(0))?;
        c.compile(&ast)?;
        c.push(Inst::Save(1))?;
        c.push(Inst::Match)?;
        Ok(Regex {
            prog: c.prog,
            groups: p.groups,
            ci,
            dotall,
            multiline,
        })
    }

    /// The number of capturing groups.
    pub(crate) fn groups(&self) -> usize {
        self.groups
    }

    fn char_eq(&self, a: char, b: char) -> bool {
        a == b || (self.ci && a.to_lowercase().eq(b.to_lowercase()))
    }

    /// The leftmost match starting at or after `from` (`whole`: the match must start at
    /// `from` and end at the end of the text).
    ///
    /// # Errors
    /// When the text is too long for this program (the memo table would pass 32 MiB).
    pub(crate) fn search(
        &self,
        text: &[char],
        from: usize,
        whole: bool,
    ) -> Result<Option<Captures>, String> {
        let width = text.len() + 1;
        let bits = self.prog.len().saturating_mul(width);
        if bits > MAX_MEMO_BITS {
            return Err(format!(
                "text of {} characters is too long for this regex",
                text.len()
            ));
        }
        let mut visited = vec![0u64; bits.div_ceil(64)];
        let starts: Box<dyn Iterator<Item = usize>> = if whole {
            Box::new(std::iter::once(from))
        } else {
            Box::new(from..=text.len())
        };
        for start in starts {
            let mut caps = vec![None; 2 * (self.groups + 1)];
            if self.run(text, start, whole, &mut visited, &mut caps) {
                return Ok(Some(
                    (0..=self.groups)
                        .map(|g| match (caps[2 * g], caps[2 * g + 1]) {
                            (Some(a), Some(b)) => Some((a, b)),
                            _ => None,
                        })
                        .collect(),
                ));
            }
        }
        Ok(None)
    }

    fn run(
        &self,
        text: &[char],
        start: usize,
        whole: bool,
        visited: &mut [u64],
        caps: &mut [Option<usize>],
    ) -> bool {
        enum Job {
            Try(usize, usize),
            Restore(usize, Option<usize>),
        }
        let width = text.len() + 1;
        let mut stack = vec![Job::Try(0, start)];
        while let Some(job) = stack.pop() {
            let (mut pc, mut pos) = match job {
                Job::Restore(slot, old) => {
                    caps[slot] = old;
                    continue;
                }
                Job::Try(pc, pos) => (pc, pos),
            };
            loop {
                let seen = pc * width + pos;
                let (word, bit) = (seen / 64, 1u64 << (seen % 64));
                if visited[word] & bit != 0 {
                    break;
                }
                visited[word] |= bit;
                let Some(inst) = self.prog.get(pc) else {
                    break;
                };
                let at = text.get(pos).copied();
                let before = pos.checked_sub(1).and_then(|p| text.get(p)).copied();
                match inst {
                    Inst::Char(c) => match at {
                        Some(t) if self.char_eq(t, *c) => {
                            pc += 1;
                            pos += 1;
                        }
                        _ => break,
                    },
                    Inst::Any => match at {
                        Some(t) if self.dotall || (t != '\n' && t != '\r') => {
                            pc += 1;
                            pos += 1;
                        }
                        _ => break,
                    },
                    Inst::Class(cl) => match at {
                        Some(t) if cl.matches(t, self.ci) => {
                            pc += 1;
                            pos += 1;
                        }
                        _ => break,
                    },
                    Inst::Bol => {
                        if pos == 0 || (self.multiline && before == Some('\n')) {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::Eol => {
                        let at_end = pos == text.len()
                            || (pos + 1 == text.len() && at == Some('\n'))
                            || (self.multiline && at == Some('\n'));
                        if at_end {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::TextStart => {
                        if pos == 0 {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::TextEnd => {
                        if pos == text.len() {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::TextEndNl => {
                        if pos == text.len() || (pos + 1 == text.len() && at == Some('\n')) {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::WordB | Inst::NotWordB => {
                        let b = before.is_some_and(is_word) != at.is_some_and(is_word);
                        if b == matches!(inst, Inst::WordB) {
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::Split(x, y) => {
                        stack.push(Job::Try(*y, pos));
                        pc = *x;
                    }
                    Inst::Jmp(x) => pc = *x,
                    Inst::Save(slot) => {
                        stack.push(Job::Restore(*slot, caps[*slot]));
                        caps[*slot] = Some(pos);
                        pc += 1;
                    }
                    Inst::Match => {
                        if !whole || pos == text.len() {
                            return true;
                        }
                        break;
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(re: &str, text: &str) -> Option<String> {
        let r = Regex::new(re).unwrap();
        let chars: Vec<char> = text.chars().collect();
        r.search(&chars, 0, false)
            .unwrap()
            .and_then(|c| c[0])
            .map(|(a, b)| chars[a..b].iter().collect())
    }

    #[test]
    fn basics() {
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
        assert!(Regex::new("(?<n>x)").is_err());
        assert!(Regex::new("a**").is_err());
        assert!(Regex::new("(a").is_err());
        assert!(Regex::new(r"\1").is_err());
    }

    #[test]
    fn whole_match_and_groups() {
        let r = Regex::new(r"(\w+)@(\w+)?\.com").unwrap();
        let t: Vec<char> = "ann@x.com".chars().collect();
        let c = r.search(&t, 0, true).unwrap().unwrap();
        assert_eq!(c, vec![Some((0, 9)), Some((0, 3)), Some((4, 5))]);
        let r = Regex::new("a*").unwrap();
        let t: Vec<char> = "aab".chars().collect();
        assert!(r.search(&t, 0, true).unwrap().is_none());
    }

    #[test]
    fn pathological_patterns_stay_linear() {
        let r = Regex::new("(a*)*b").unwrap();
        let t: Vec<char> = "a".repeat(2000).chars().collect();
        assert!(r.search(&t, 0, false).unwrap().is_none());
    }
}
