//! RE2 → Rust `regex` translation: full-match anchoring, ASCII Perl classes, `\1` rewrites.
//!
//! Istio hands Envoy RE2 patterns. RE2's `\d \w \s \b` are ASCII-only while the `regex` crate's
//! are Unicode, so those classes are spelled out in ASCII here; `.` keeps matching one code point
//! as RE2 does in UTF-8 mode. Inside a character class RE2 takes `[`, `&&`, `--` and `~~`
//! literally where `regex` would read nested classes or set operations, so those are escaped.

use regex::{Regex, RegexBuilder};

/// Compiled-program and lazy-DFA cache limits per regex (RE2 rejects oversized programs too).
const SIZE_LIMIT: usize = 1 << 20;
const DFA_SIZE_LIMIT: usize = 1 << 20;

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
/// RE2 `\s` is `[\t\n\f\r ]` — no vertical tab, unlike Perl and the `regex` crate.
const SPACE: &str = r"\t\n\x0C\r ";

/// Compiles an RE2 pattern. `anchored` wraps it as `^(?:…)$` (full match, as Envoy's
/// `safe_regex` matchers do); unanchored is for `uriRegexRewrite`, which replaces every match.
pub(crate) fn compile(pattern: &str, anchored: bool) -> Result<Regex, String> {
    let body = translate(pattern)?;
    let full = if anchored {
        format!("^(?:{body})$")
    } else {
        body
    };
    RegexBuilder::new(&full)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

/// Rewrites RE2-only syntax into equivalent `regex` syntax.
fn translate(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    // True right after `[` or `[^`, where `]` is a literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    return Err("trailing backslash".into());
                };
                if e == 'Q' && !in_class {
                    let mut lit = String::new();
                    while let Some(q) = chars.next() {
                        if q == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        lit.push(q);
                    }
                    out.push_str(&regex::escape(&lit));
                } else {
                    push_escape(&mut out, e, in_class);
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // POSIX class `[:alpha:]`: same meaning in both engines (ASCII).
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            '[' => out.push_str(r"\["),
            ']' if in_class && !at_class_start => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.peek() == Some(&'-') => {
                chars.next();
                out.push_str(r"-\-");
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn push_escape(out: &mut String, e: char, in_class: bool) {
    let (set, negated) = match e {
        'd' => (DIGIT, false),
        'D' => (DIGIT, true),
        'w' => (WORD, false),
        'W' => (WORD, true),
        's' => (SPACE, false),
        'S' => (SPACE, true),
        'b' | 'B' if !in_class => {
            out.push_str(if e == 'b' { r"(?-u:\b)" } else { r"(?-u:\B)" });
            return;
        }
        _ => {
            out.push('\\');
            out.push(e);
            return;
        }
    };
    match (in_class, negated) {
        (true, false) => out.push_str(set),
        // `regex` allows a nested class inside a class: a union with the complement.
        (_, true) => {
            out.push_str("[^");
            out.push_str(set);
            out.push(']');
        }
        (false, false) => {
            out.push('[');
            out.push_str(set);
            out.push(']');
        }
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
