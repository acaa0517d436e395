//! The request as the filter hands it over: raw header bytes, decoded once, pseudo-headers split
//! out — and the few Python string rules serve's answers were defined with (`str.lower`,
//! `str.strip`), so both engines read a header the same way.

use std::borrow::Cow;

/// One request's headers, decoded. Borrowed from the caller unless a value is not UTF-8.
#[derive(Debug)]
pub(crate) struct Input<'h> {
    pub(crate) authority: Cow<'h, str>,
    pub(crate) path: Cow<'h, str>,
    pub(crate) method: Cow<'h, str>,
    pub(crate) scheme: Cow<'h, str>,
    /// Every header that is not a pseudo-header, in arrival order, names as sent.
    pub(crate) headers: Vec<(Cow<'h, str>, Cow<'h, str>)>,
}

impl<'h> Input<'h> {
    /// Reads `:authority`, `:path`, `:method`, `:scheme` (the last occurrence wins; defaults
    /// `""`, `/`, `GET`, `http`) and keeps the other headers; other pseudo-headers are dropped.
    pub(crate) fn parse(raw: &[(&'h [u8], &'h [u8])]) -> Self {
        let mut input = Input {
            authority: Cow::Borrowed(""),
            path: Cow::Borrowed("/"),
            method: Cow::Borrowed("GET"),
            scheme: Cow::Borrowed("http"),
            headers: Vec::with_capacity(raw.len()),
        };
        for &(name, value) in raw {
            let slot = match name {
                b":authority" => &mut input.authority,
                b":path" => &mut input.path,
                b":method" => &mut input.method,
                b":scheme" => &mut input.scheme,
                [b':', ..] => continue,
                _ => {
                    input.headers.push((decode(name), decode(value)));
                    continue;
                }
            };
            *slot = decode(value);
        }
        input
    }

    /// `(name, value)` views for `Request::headers`.
    pub(crate) fn views(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(k, v)| (&**k, &**v)).collect()
    }

    /// Every value of header `name` (given lower-case) joined with `,`, as Envoy presents a
    /// repeated header; `None` when absent. Names compare as Python's `k.lower() == name`.
    pub(crate) fn header_value(&self, name: &str) -> Option<Cow<'_, str>> {
        self.joined(name, ",")
    }

    /// [`Self::header_value`] with another separator (cookies are joined with `"; "`).
    pub(crate) fn joined(&self, name: &str, sep: &str) -> Option<Cow<'_, str>> {
        let mut found: Option<Cow<'_, str>> = None;
        for (k, v) in &self.headers {
            if !lower_eq(k, name) {
                continue;
            }
            found = Some(match found {
                None => Cow::Borrowed(&**v),
                Some(prev) => {
                    let mut joined = prev.into_owned();
                    joined.push_str(sep);
                    joined.push_str(v);
                    Cow::Owned(joined)
                }
            });
        }
        found
    }
}

/// A header value as serve decodes it: UTF-8, else Latin-1 (HTTP allows obs-text; such a value
/// cannot equal a UTF-8 config value anyway).
pub(crate) fn decode(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(raw.iter().map(|&b| char::from(b)).collect()),
    }
}

/// Python's `s.lower()`: borrowed when there is nothing to lower.
pub(crate) fn lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        // `str::to_lowercase` applies the full Unicode mapping, final sigma included, as Python.
        let lowered = s.to_lowercase();
        if lowered == s {
            Cow::Borrowed(s)
        } else {
            Cow::Owned(lowered)
        }
    }
}

/// Python's `name.lower() == want` for a `want` that is already lower-case.
pub(crate) fn lower_eq(name: &str, want: &str) -> bool {
    if name.is_ascii() {
        name.len() == want.len()
            && name
                .bytes()
                .zip(want.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b)
    } else {
        // Rare (Envoy's header names are ASCII tokens); U+212A KELVIN SIGN lowers to `k`.
        name.to_lowercase() == want
    }
}

/// Python's `str.isspace()`: Unicode whitespace plus the four information separators.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.strip()`.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_last_wins_and_defaults() {
        let raw: [(&[u8], &[u8]); 5] = [
            (b":authority", b"a"),
            (b":authority", b"B:80"),
            (b":protocol", b"x"),
            (b"x-a", b"1"),
            (b"X-A", b"\xff"),
        ];
        let input = Input::parse(&raw);
        assert_eq!(input.authority, "B:80");
        assert_eq!(
            (&*input.path, &*input.method, &*input.scheme),
            ("/", "GET", "http")
        );
        assert_eq!(input.views(), vec![("x-a", "1"), ("X-A", "ÿ")]);
        assert_eq!(input.header_value("x-a").as_deref(), Some("1,ÿ"));
        assert_eq!(input.joined("x-a", "; ").as_deref(), Some("1; ÿ"));
        assert_eq!(input.header_value("x-b"), None);
    }

    #[test]
    fn non_utf8_is_latin1() {
        assert_eq!(decode(b"caf\xe9"), "café");
        assert_eq!(decode("café".as_bytes()), "café");
        assert!(matches!(decode(b"plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn python_lower_and_strip() {
        assert!(matches!(lower("reviews"), Cow::Borrowed(_)));
        assert_eq!(lower("Reviews:9080"), "reviews:9080");
        assert_eq!(lower("ÉCHO"), "écho");
        assert!(lower_eq("Cookie", "cookie"));
        assert!(lower_eq("\u{212a}", "k"));
        assert!(!lower_eq("cookies", "cookie"));
        assert_eq!(strip("\u{1f} a=b \u{a0}"), "a=b");
        assert_eq!(strip(" "), "");
    }
}
