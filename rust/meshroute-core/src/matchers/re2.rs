//! RE2 → Rust `regex` translation: full-match anchoring, ASCII Perl classes, `\1` rewrites, and
//! RE2's own syntax rules.
//!
//! Istio hands Envoy RE2 patterns. RE2's `\d \w \s \b` are ASCII-only while the `regex` crate's
//! are Unicode, so those classes are spelled out in ASCII here; `.` keeps matching one code point
//! as RE2 does in UTF-8 mode. Inside a character class RE2 takes `[`, `&&`, `--` and `~~`
//! literally where `regex` would read nested classes or set operations, so those are escaped;
//! a `{` that does not start a repeat count is a literal in RE2, an error in `regex`.
//!
//! The two engines also disagree on what is a valid pattern, and this module is the one place
//! that decides it (the router compiles with it; validation asks [`check_regex`]): RE2
//! rejects what `regex` would accept — stacked repetition operators (`a**`, possessive `a*+`),
//! repeat counts over 1000 (alone or multiplied by nesting), unknown POSIX classes, the flags
//! `x`, `u`, `R` — and these are reported here; `\<` is RE2's literal `<`, not `regex`'s word
//! boundary. Syntax errors are `regex`'s own, with the position mapped back to the pattern.

use std::borrow::Cow;

use regex::{Regex, RegexBuilder};

/// Compiled-program and lazy-DFA cache limits per regex (RE2 rejects oversized programs too).
const SIZE_LIMIT: usize = 1 << 20;
const DFA_SIZE_LIMIT: usize = 1 << 20;
/// Longest pattern accepted, in bytes.
const MAX_LEN: usize = 1024;
/// RE2's largest repeat count, also the limit of nested counts multiplied together.
const MAX_REPEAT: u32 = 1000;

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
/// RE2 `\s` is `[\t\n\f\r ]` — no vertical tab, unlike Perl and the `regex` crate.
const SPACE: &str = r"\t\n\x0C\r ";
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Compiles an RE2 pattern. `anchored` wraps it as `^(?:…)$` (full match, as Envoy's
/// `safe_regex` matchers do); unanchored is for `uriRegexRewrite`, which replaces every match.
///
/// The error says what is wrong and, for syntax, where: ``invalid regex: unclosed group at
/// position 3`` (a character index into `pattern`).
pub(crate) fn compile(pattern: &str, anchored: bool) -> Result<Regex, String> {
    if pattern.len() > MAX_LEN {
        return Err(format!("regex is longer than {MAX_LEN} bytes"));
    }
    let (body, at) = Translator::new(pattern).run()?;
    let full = if anchored {
        Cow::Owned(format!("^(?:{body})$"))
    } else {
        Cow::Borrowed(body.as_str())
    };
    RegexBuilder::new(&full)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("regex is too large: its compiled program exceeds the {limit}-byte limit")
            }
            other => syntax_error(&body, &at).unwrap_or_else(|| {
                let text = other.to_string();
                let last = text.lines().last().unwrap_or_default();
                format!("invalid regex: {}", last.trim_start_matches("error: "))
            }),
        })
}

/// What `regex`'s parser rejects in the translated `body` and where, as a character index into
/// the pattern (`at` maps bytes of `body` back to it). `regex` itself reports errors as display
/// text only.
fn syntax_error(body: &str, at: &[usize]) -> Option<String> {
    let e = regex_syntax::ParserBuilder::new()
        .build()
        .parse(body)
        .err()?;
    let (what, offset) = match &e {
        regex_syntax::Error::Parse(e) => (e.kind().to_string(), e.span().start.offset),
        regex_syntax::Error::Translate(e) => (e.kind().to_string(), e.span().start.offset),
        _ => return None,
    };
    let position = at.get(offset).or(at.last()).copied().unwrap_or(0);
    Some(format!("invalid regex: {what} at position {position}"))
}

/// Checks an RE2 pattern with the compiler route tables use (so validation and routing agree).
///
/// `anchored` as for a `StringMatch` regex (full match); `false` for a `uriRegexRewrite` match.
///
/// # Errors
/// What is wrong with the pattern: an RE2 feature it lacks (backreferences, lookaround,
/// possessive quantifiers, ...), a syntax error and its position, or a size limit.
pub fn check_regex(pattern: &str, anchored: bool) -> Result<(), String> {
    compile(pattern, anchored).map(drop)
}

/// The previous item, for the repetition rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Start of the pattern or a group, after `|` or a flag group: nothing to repeat.
    Nothing,
    /// Something a repetition applies to; `weight` is the largest product of repeat counts in it.
    Atom { weight: u32 },
    /// A repetition operator (with its optional `?`) starting at `from`: another one would be
    /// stacked; `weight` as for `Atom`, counts included.
    Repeat { from: usize, weight: u32 },
}

/// One pass over the pattern: RE2 syntax in, `regex` syntax out, RE2-only errors on the way.
struct Translator {
    chars: Vec<char>,
    i: usize,
    out: String,
    /// For each byte of `out`, the index of the pattern character it came from (plus the end).
    at: Vec<usize>,
    last: Last,
    /// Largest repeat-count product seen so far, per open group (the first is the whole pattern).
    groups: Vec<u32>,
}

impl Translator {
    fn new(pattern: &str) -> Self {
        Self {
            chars: pattern.chars().collect(),
            i: 0,
            out: String::with_capacity(pattern.len() + 16),
            at: Vec::with_capacity(pattern.len() + 17),
            last: Last::Nothing,
            groups: vec![1],
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn rest_starts_with(&self, s: &str) -> bool {
        let mut rest = self.chars.iter().skip(self.i);
        s.chars().all(|c| rest.next() == Some(&c))
    }

    /// Appends `s`, coming from the pattern character at `from`.
    fn emit(&mut self, s: &str, from: usize) {
        self.out.push_str(s);
        self.at.extend(std::iter::repeat(from).take(s.len()));
    }

    fn emit_char(&mut self, c: char, from: usize) {
        let mut buf = [0; 4];
        self.emit(c.encode_utf8(&mut buf), from);
    }

    /// The pattern text from character `from` up to the current one.
    fn text(&self, from: usize) -> String {
        self.chars[from..self.i.min(self.chars.len())]
            .iter()
            .collect()
    }

    /// Folds the previous item's weight into its group's.
    fn commit(&mut self) {
        if let Last::Atom { weight } | Last::Repeat { weight, .. } =
            std::mem::replace(&mut self.last, Last::Nothing)
        {
            let top = self
                .groups
                .last_mut()
                .expect("the whole pattern is a group");
            *top = (*top).max(weight);
        }
    }

    fn atom(&mut self, weight: u32) {
        self.commit();
        self.last = Last::Atom { weight };
    }

    fn run(mut self) -> Result<(String, Vec<usize>), String> {
        while let Some(c) = self.peek(0) {
            let start = self.i;
            match c {
                '\\' => self.escape(false)?,
                '[' => self.class()?,
                '(' => self.group()?,
                ')' => {
                    self.i += 1;
                    self.emit(")", start);
                    self.commit();
                    if self.groups.len() > 1 {
                        let weight = self.groups.pop().unwrap_or(1);
                        self.last = Last::Atom { weight };
                    }
                }
                '|' => {
                    self.i += 1;
                    self.emit("|", start);
                    self.commit();
                }
                '*' | '+' | '?' => {
                    self.i += 1;
                    self.repeat(start, None)?;
                }
                '{' => match self.counts() {
                    Some((n, m)) => self.repeat(start, Some((n, m)))?,
                    None => {
                        // RE2: a `{` that does not start `{n}`, `{n,}` or `{n,m}` is a literal.
                        self.i += 1;
                        self.emit(r"\{", start);
                        self.atom(1);
                    }
                },
                _ => {
                    self.i += 1;
                    self.emit_char(c, start);
                    self.atom(1);
                }
            }
        }
        self.commit();
        let end = self.chars.len();
        self.at.push(end);
        Ok((self.out, self.at))
    }

    /// `{n}`, `{n,}` or `{n,m}` at the current position (counts saturate): `(n, m)`, `m` being
    /// `None` for `{n,}`.
    fn counts(&self) -> Option<(u32, Option<Option<u32>>)> {
        let mut k = self.i + 1;
        let number = |k: &mut usize| -> Option<u32> {
            let from = *k;
            let mut n: u32 = 0;
            while let Some(d) = self.chars.get(*k).and_then(|c| c.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(d);
                *k += 1;
            }
            (*k > from).then_some(n)
        };
        let min = number(&mut k)?;
        let max = match self.chars.get(k) {
            Some('}') => None,
            Some(',') => {
                k += 1;
                Some(number(&mut k))
            }
            _ => return None,
        };
        (self.chars.get(k) == Some(&'}')).then_some((min, max))
    }

    /// A repetition operator at `start` (`self.i` is past `*`, `+`, `?`; at `{` for counts).
    fn repeat(
        &mut self,
        start: usize,
        counts: Option<(u32, Option<Option<u32>>)>,
    ) -> Result<(), String> {
        if counts.is_some() {
            while self.chars.get(self.i).is_some_and(|&c| c != '}') {
                self.i += 1;
            }
            self.i += 1;
        }
        if self.peek(0) == Some('?') {
            self.i += 1; // non-greedy
        }
        let weight = match self.last {
            Last::Repeat { from, .. } => {
                return Err(format!(
                    "invalid nested repetition operator `{}` at position {from}: RE2 does not \
                     stack repetitions (no possessive quantifiers)",
                    self.text(from)
                ))
            }
            Last::Atom { weight } => weight,
            Last::Nothing => 1, // "missing expression": `regex` says so
        };
        let weight = match counts {
            None => weight,
            Some((min, max)) => {
                let op = self.text(start);
                let largest = match max {
                    None => min,
                    Some(None) => min,
                    Some(Some(max)) => max,
                };
                if min > MAX_REPEAT || largest > MAX_REPEAT {
                    return Err(format!(
                        "invalid repeat count `{op}` at position {start}: RE2 allows at most \
                         {MAX_REPEAT} repetitions"
                    ));
                }
                // Go's repeatIsValid: counts multiply through nesting; `{0}` contributes nothing.
                match (min, max) {
                    (0, None | Some(Some(0))) => 0,
                    (0, Some(None)) => weight,
                    _ => {
                        let product = weight.saturating_mul(largest.max(1));
                        if product > MAX_REPEAT {
                            return Err(format!(
                                "invalid repeat count `{op}` at position {start}: nested repeat \
                                 counts multiply to {product}, RE2 allows at most {MAX_REPEAT}"
                            ));
                        }
                        product
                    }
                }
            }
        };
        let text = self.text(start);
        self.emit(&text, start);
        self.last = Last::Repeat {
            from: start,
            weight,
        };
        Ok(())
    }

    /// `(`: a group, or one of the `(?` forms RE2 does not have.
    fn group(&mut self) -> Result<(), String> {
        let start = self.i;
        self.commit();
        if self.peek(1) != Some('?') {
            self.i += 1;
            self.emit("(", start);
            self.groups.push(1);
            return Ok(());
        }
        for (prefix, what) in [
            ("(?=", "lookahead"),
            ("(?!", "negative lookahead"),
            ("(?<=", "lookbehind"),
            ("(?<!", "negative lookbehind"),
            ("(?>", "atomic group"),
            ("(?#", "comment group"),
            ("(?(", "conditional group"),
            ("(?P=", "named backreference"),
            ("(?P>", "recursion"),
            ("(?R", "recursion"),
            ("(?&", "recursion"),
            ("(?|", "branch reset group"),
            ("(?'", "quoted group name"),
        ] {
            if self.rest_starts_with(prefix) {
                return Err(format!(
                    "{what} `{prefix}` at position {start} is not supported by RE2"
                ));
            }
        }
        if self.rest_starts_with("(?P<") || self.rest_starts_with("(?<") {
            // Named group: the name up to `>` goes through as is (`regex` checks it).
            while let Some(c) = self.peek(0) {
                self.i += 1;
                if c == '>' {
                    break;
                }
            }
            let text = self.text(start);
            self.emit(&text, start);
            self.groups.push(1);
            return Ok(());
        }
        self.i += 2;
        while self.peek(0).is_some_and(|c| c != ')' && c != ':') {
            self.i += 1;
        }
        let flags = self.text(start + 2);
        let Some(end) = self.peek(0) else {
            return Err(format!(
                "invalid or unsupported Perl syntax `(?` at position {start}: missing `)`"
            ));
        };
        let valid = !flags.is_empty()
            && flags.chars().all(|f| "imsU-".contains(f))
            && flags.matches('-').count() <= 1
            && !flags.ends_with('-');
        if !valid {
            return Err(format!(
                "invalid or unsupported flags `(?{flags}` at position {start}: RE2 supports i, m, s, U"
            ));
        }
        self.i += 1;
        let text = self.text(start);
        self.emit(&text, start);
        if end == ':' {
            self.groups.push(1);
        }
        Ok(())
    }

    /// `[...]`: RE2 reads `[` (outside `[:name:]`), `&&`, `--`, `~~` and a leading `]` literally.
    fn class(&mut self) -> Result<(), String> {
        let start = self.i;
        self.i += 1;
        self.emit("[", start);
        if self.peek(0) == Some('^') {
            self.i += 1;
            self.emit("^", start + 1);
        }
        if self.peek(0) == Some(']') {
            self.emit(r"\]", self.i);
            self.i += 1;
        }
        while let Some(c) = self.peek(0) {
            let here = self.i;
            match c {
                '\\' => {
                    self.escape(true)?;
                    continue;
                }
                ']' => {
                    self.i += 1;
                    self.emit("]", here);
                    self.atom(1);
                    return Ok(());
                }
                '[' if self.peek(1) == Some(':') => self.posix()?,
                '[' | '&' | '~' => {
                    self.i += 1;
                    self.emit_char('\\', here);
                    self.emit_char(c, here);
                }
                '-' if self.peek(1) == Some('-') => {
                    self.i += 2;
                    self.emit(r"-\-", here);
                }
                _ => {
                    self.i += 1;
                    self.emit_char(c, here);
                }
            }
        }
        Ok(()) // unclosed: `regex` reports it at the `[`
    }

    /// `[:name:]` or `[:^name:]` inside a class (a `[` not closed by `:]` is a literal).
    fn posix(&mut self) -> Result<(), String> {
        let start = self.i;
        let rest: String = self.chars[start + 2..].iter().collect();
        let Some(len) = rest.find(":]") else {
            self.i += 1;
            self.emit(r"\[", start);
            return Ok(());
        };
        let name = &rest[..len];
        if !POSIX_CLASSES.contains(&name.strip_prefix('^').unwrap_or(name)) {
            return Err(format!(
                "unknown character class `[:{name}:]` at position {start}"
            ));
        }
        self.i = start + 2 + rest[..len].chars().count() + 2;
        let text = self.text(start);
        self.emit(&text, start);
        Ok(())
    }

    /// A backslash escape, outside or inside a class.
    fn escape(&mut self, in_class: bool) -> Result<(), String> {
        let start = self.i;
        let Some(e) = self.peek(1) else {
            return Err(format!(
                "trailing backslash at position {start}: nothing to escape"
            ));
        };
        self.i += 2;
        let unsupported =
            |what: &str| format!("{what} at position {start} is not supported by RE2");
        match e {
            'Q' if in_class => return Err(unsupported(r"`\Q` inside a character class")),
            'Q' => {
                while let Some(c) = self.peek(0) {
                    if c == '\\' && self.peek(1) == Some('E') {
                        self.i += 2;
                        break;
                    }
                    self.emit(&regex::escape(c.encode_utf8(&mut [0; 4])), self.i);
                    self.i += 1;
                    self.atom(1);
                }
                return Ok(());
            }
            'd' | 'D' | 'w' | 'W' | 's' | 'S' => {
                let set = match e.to_ascii_lowercase() {
                    'd' => DIGIT,
                    'w' => WORD,
                    _ => SPACE,
                };
                let text = match (in_class, e.is_ascii_uppercase()) {
                    (true, false) => set.to_string(),
                    // `regex` allows a nested class inside a class: a union with the complement.
                    (_, true) => format!("[^{set}]"),
                    (false, false) => format!("[{set}]"),
                };
                self.emit(&text, start);
            }
            'b' | 'B' | 'A' | 'z' if in_class => {
                return Err(format!(
                    r"escape sequence \{e} at position {start} is not allowed in a character class"
                ))
            }
            'b' => self.emit(r"(?-u:\b)", start),
            'B' => self.emit(r"(?-u:\B)", start),
            'A' | 'z' | 'a' | 'f' | 'n' | 'r' | 't' | 'v' => self.emit(&self.text(start), start),
            'p' | 'P' | 'x' => {
                // `\pL`, `\p{Greek}`, `\x41`, `\x{1F600}`: `regex` checks the name or the digits.
                if self.peek(0) == Some('{') {
                    while self.peek(0).is_some_and(|c| c != '}') {
                        self.i += 1;
                    }
                    if self.peek(0).is_none() {
                        return Err(format!(
                            r"invalid escape \{e}{{ at position {start}: missing closing }}"
                        ));
                    }
                    self.i += 1;
                } else if e == 'x' {
                    let hex =
                        (0..2).take_while(|&k| self.peek(k).is_some_and(|c| c.is_ascii_hexdigit()));
                    self.i += hex.count();
                } else if self.peek(0).is_some() {
                    self.i += 1;
                }
                self.emit(&self.text(start), start);
            }
            '0'..='9' => {
                // Go: `\0` and `\1`..`\7` followed by an octal digit start an octal escape (up to
                // three digits); a lone `\1`..`\9` is a backreference.
                let octal = |c: Option<char>| c.is_some_and(|c| ('0'..='7').contains(&c));
                if e == '8' || e == '9' {
                    return Err(unsupported(&format!(r"escape sequence \{e}")));
                }
                if e != '0' && !octal(self.peek(0)) {
                    return Err(unsupported(&format!(r"backreference \{e}")));
                }
                let mut value = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek(0).and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.i += 1;
                        }
                        None => break,
                    }
                }
                self.emit(&format!(r"\x{{{value:X}}}"), start);
            }
            c if c.is_ascii_alphanumeric() || c == '_' || !c.is_ascii() => {
                return Err(unsupported(&format!(r"escape sequence \{c}")))
            }
            // Escaped punctuation is that character (RE2 has no `\<` `\>` word boundaries).
            c => self.emit(&regex::escape(c.encode_utf8(&mut [0; 4])), start),
        }
        if !in_class {
            self.atom(1);
        }
        Ok(())
    }
}

/// The literal text every full match must start with (`/re/7/` for `/re/7/[0-9]+`), or `""`.
///
/// Conservative: any alternation, escape, group or class ends (or voids) the prefix, and a
/// literal followed by a quantifier is not counted. Used only to index candidates; the regex is
/// still evaluated.
pub(crate) fn literal_prefix(pattern: &str) -> &str {
    if pattern.contains('|') {
        return "";
    }
    // A leading `^` is redundant under full-match anchoring.
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    let is_meta = |c: char| "\\.+*?()[]{}^$|".contains(c);
    let end = pattern.find(is_meta).unwrap_or(pattern.len());
    let rest = &pattern[end..];
    if rest.starts_with(['*', '?', '{', '+']) {
        // The quantifier applies to the last literal character, which may then be absent.
        let cut = pattern[..end].char_indices().last().map_or(0, |(i, _)| i);
        return &pattern[..cut];
    }
    &pattern[..end]
}

/// Translates an RE2 rewrite template (`\1`, `\\`) into `regex` replacement syntax (`${1}`, `$$`).
pub(crate) fn rewrite_template(template: &str, groups: usize) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(d @ '0'..='9') => {
                    let n = d as usize - '0' as usize;
                    if n >= groups {
                        return Err(format!(
                            "rewrite references group \\{n}, the regex has {} groups",
                            groups - 1
                        ));
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('\\') => out.push('\\'),
                Some(other) => {
                    return Err(format!(
                        "invalid escape \\{other} in rewrite (use \\0-\\9 or \\\\)"
                    ))
                }
                None => return Err("trailing backslash in rewrite".into()),
            },
            '$' => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(p: &str, s: &str) -> bool {
        compile(p, true).unwrap().is_match(s)
    }

    #[test]
    fn full_match_not_search() {
        assert!(full(r"\d+", "123"));
        assert!(!full(r"\d+$", "a123"));
        assert!(!full("a|b", "ab"));
        assert!(full("a|b", "b"));
    }

    #[test]
    fn perl_classes_are_ascii() {
        assert!(!full(r"\d", "٣")); // ARABIC-INDIC DIGIT THREE
        assert!(!full(r"\w", "é"));
        assert!(full(r"\W", "é"));
        assert!(!full(r"\s", "\u{2003}"));
        assert!(!full(r"\s", "\u{0B}"));
        assert!(full(r"[\d_]+", "1_2"));
        assert!(full(r"[\D]", "x"));
        assert!(full(r"a\b.*", "a b"));
    }

    #[test]
    fn dot_is_one_code_point() {
        assert!(full("^.$", "é"));
        assert!(full("(?i)straße", "STRAßE"));
    }

    #[test]
    fn class_literals_re2_style() {
        assert!(full("[[]", "["));
        assert!(full("[a&&b]+", "a&b"));
        assert!(full("[[:alpha:]]+", "abc"));
        assert!(full("[]a]+", "]a"));
        assert!(full(r"\Q.*\E", ".*"));
        assert!(!full(r"\Q.*\E", "ab"));
    }

    #[test]
    fn bad_patterns_rejected() {
        assert!(compile("(", true).is_err());
        assert!(compile(r"a\", true).is_err());
        assert!(compile("a{100000}{100000}", true).is_err());
    }

    fn problem(p: &str) -> String {
        check_regex(p, true).unwrap_err()
    }

    #[test]
    fn re2_syntax_accepted() {
        for p in [
            "^/api/v[0-9]+$",
            "(?i)abc",
            "a(?i)b",
            "(?P<name>x)",
            "(?<name>x)",
            "(?i-s:x)",
            "[[:alpha:]]+",
            "[[:^digit:]]",
            r"\pL+",
            r"\p{Greek}",
            r"\PN",
            r"\x{1F600}",
            r"\x41",
            r"\Qa.b\E",
            r"a\z",
            r"\Aa",
            r"\d{1,1000}",
            "(a{10}){100}",
            "((a{1000}){0}){5}",
            "a*?",
            "a{2}?",
            r"[\d\-]",
            r"\0",
            r"\12",
            "[]a]",
            "[^]a]",
            ".*",
            "a{",
            "a{,5}",
            "x{abc}",
            "a}",
            "^*",
        ] {
            assert_eq!(check_regex(p, true), Ok(()), "{p}");
            assert_eq!(check_regex(p, false), Ok(()), "{p}");
        }
    }

    #[test]
    fn re2_literal_readings() {
        assert!(full("a{", "a{"));
        assert!(full("a{,5}", "a{,5}"));
        assert!(full(r"\<a\>", "<a>"));
        assert!(full(r"\12", "\n"));
        assert!(full(r"\0", "\0"));
        assert!(full(r"[\101-\103]+", "ABC"));
        assert!(full(r"\pL+", "éa"));
        assert!(!full(r"\p{Greek}", "a"));
    }

    #[test]
    fn what_re2_rejects_says_what_and_where() {
        assert_eq!(
            problem(r"(a)\1"),
            r"backreference \1 at position 3 is not supported by RE2"
        );
        assert_eq!(
            problem("foo(?=bar)"),
            "lookahead `(?=` at position 3 is not supported by RE2"
        );
        assert_eq!(
            problem("a*+"),
            "invalid nested repetition operator `*+` at position 1: RE2 does not stack \
             repetitions (no possessive quantifiers)"
        );
        assert_eq!(
            problem("a{1001}"),
            "invalid repeat count `{1001}` at position 1: RE2 allows at most 1000 repetitions"
        );
        assert_eq!(
            problem("((a{10}){10}){11}"),
            "invalid repeat count `{11}` at position 13: nested repeat counts multiply to 1100, \
             RE2 allows at most 1000"
        );
        assert_eq!(
            problem("(?x)a"),
            "invalid or unsupported flags `(?x` at position 0: RE2 supports i, m, s, U"
        );
        assert_eq!(
            problem("[[:nope:]]"),
            "unknown character class `[:nope:]` at position 1"
        );
        assert_eq!(
            problem(r"a\Z"),
            r"escape sequence \Z at position 1 is not supported by RE2"
        );
        assert_eq!(
            problem(&"x".repeat(1025)),
            "regex is longer than 1024 bytes"
        );
        for p in [
            "a**", "a++", "a{2}+", "a?{2}", "(?>a)", "(?#c)", "(?P=n)", r"\8", r"\e", r"\_",
        ] {
            assert!(check_regex(p, true).is_err(), "{p}");
        }
    }

    #[test]
    fn syntax_errors_point_into_the_pattern() {
        assert_eq!(
            problem("x(a"),
            "invalid regex: unclosed group at position 1"
        );
        assert_eq!(
            problem("é[z-a]"),
            "invalid regex: invalid character class range, the start must be <= the end at position 2"
        );
        // positions count characters of the pattern, not bytes of its translation
        assert_eq!(
            problem(r"\d\Qé.\E*(?x"),
            "invalid or unsupported Perl syntax `(?` at position 9: missing `)`"
        );
        assert_eq!(
            problem(r"[\w]é*+"),
            "invalid nested repetition operator `*+` at position 5: RE2 does not stack \
             repetitions (no possessive quantifiers)"
        );
        assert_eq!(
            problem(r"\w\s)"),
            "invalid regex: unopened group at position 4"
        );
        assert_eq!(
            problem("*a"),
            "invalid regex: repetition operator missing expression at position 0"
        );
        assert_eq!(
            problem(r"\p{Nope}"),
            "invalid regex: Unicode property not found at position 0"
        );
    }

    #[test]
    fn size_limit_is_reported() {
        let err = problem(r"\pL{1000}");
        assert!(err.starts_with("regex is too large"), "{err}");
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("/re/7/[0-9]+"), "/re/7/");
        assert_eq!(literal_prefix("/ab*"), "/a");
        assert_eq!(literal_prefix("/a|/b"), "");
        assert_eq!(literal_prefix("(?i)/x"), "");
        assert_eq!(literal_prefix(r"/a\.b"), "/a");
        assert_eq!(literal_prefix("/é?"), "/");
        assert_eq!(literal_prefix("/plain"), "/plain");
        assert_eq!(literal_prefix("^/api/.*"), "/api/");
    }

    #[test]
    fn rewrite_templates() {
        assert_eq!(rewrite_template(r"/b/\1", 2).unwrap(), "/b/${1}");
        assert_eq!(rewrite_template(r"\0$x\\", 1).unwrap(), r"${0}$$x\");
        assert!(rewrite_template(r"\2", 2).is_err());
        assert!(rewrite_template(r"\n", 2).is_err());
    }
}
