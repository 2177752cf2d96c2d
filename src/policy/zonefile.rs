//! A hand-written reader of RFC 1035 §5.1 zone-file text, for RPZ files
//! and `[[local_zone]] records`.
//!
//! hickory's zone parser builds a `Name` and a `Record` per line and a
//! `BTreeMap` of RRsets; an RPZ feed of a million names needs neither, so
//! this reader only splits the text into records of tokens (borrowed from
//! the text: no allocation per line) and converts names straight into
//! lower-cased wire form. What it understands: `$ORIGIN`, `$TTL`, comments
//! (`;` outside quotes), parentheses spanning lines, quoted strings,
//! backslash escapes (`\.`, `\DDD`), `@`, relative and absolute owners, an
//! omitted owner (a line that starts with a blank repeats the previous
//! one), omitted TTL and class. `$INCLUDE` is refused.

use crate::wire::{MAX_LABEL_LEN, MAX_NAME_LEN};

/// One logical record: its tokens and where it starts.
#[derive(Debug)]
pub struct Line<'a> {
    /// 1-based line number of its first token.
    pub number: usize,
    /// The line started with a blank: the owner is the previous record's.
    pub owner_omitted: bool,
    /// The tokens; a quoted string keeps its quotes.
    pub tokens: Vec<&'a str>,
}

/// Splits zone-file text into logical records.
pub struct Tokens<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl<'a> Tokens<'a> {
    pub fn new(text: &'a str) -> Tokens<'a> {
        Tokens {
            text,
            at: 0,
            line: 1,
        }
    }

    /// The next record with at least one token, into `out` (reused so that
    /// its buffer is allocated once); `Ok(false)` at the end of the text.
    pub fn next_into(&mut self, out: &mut Line<'a>) -> Result<bool, (usize, String)> {
        let bytes = self.text.as_bytes();
        out.tokens.clear();
        let mut depth = 0u32;
        let mut start_line = self.line;
        let mut at_line_start = true;
        out.owner_omitted = false;
        while self.at < bytes.len() {
            let b = bytes[self.at];
            match b {
                b'\n' => {
                    self.line += 1;
                    self.at += 1;
                    if depth == 0 {
                        if !out.tokens.is_empty() {
                            break;
                        }
                        start_line = self.line;
                        at_line_start = true;
                        out.owner_omitted = false;
                    }
                    continue;
                }
                b' ' | b'\t' | b'\r' => {
                    if at_line_start && depth == 0 && out.tokens.is_empty() && b != b'\r' {
                        out.owner_omitted = true;
                    }
                    self.at += 1;
                }
                b';' => {
                    while self.at < bytes.len() && bytes[self.at] != b'\n' {
                        self.at += 1;
                    }
                }
                b'(' => {
                    depth += 1;
                    self.at += 1;
                }
                b')' => {
                    if depth == 0 {
                        return Err((self.line, "\")\" without \"(\"".into()));
                    }
                    depth -= 1;
                    self.at += 1;
                }
                b'"' => {
                    let from = self.at;
                    self.at += 1;
                    loop {
                        match bytes.get(self.at) {
                            None => return Err((self.line, "unterminated quoted string".into())),
                            Some(b'\\') => self.at += 2,
                            Some(b'"') => {
                                self.at += 1;
                                break;
                            }
                            Some(b'\n') => {
                                self.line += 1;
                                self.at += 1;
                            }
                            Some(_) => self.at += 1,
                        }
                    }
                    let to = self.at.min(bytes.len());
                    out.tokens.push(&self.text[from..to]);
                }
                _ => {
                    let from = self.at;
                    while let Some(&c) = bytes.get(self.at) {
                        match c {
                            b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                            b'\\' => self.at += 2,
                            _ => self.at += 1,
                        }
                    }
                    let to = self.at.min(bytes.len());
                    // Only ASCII delimiters end a token, so `to` is a char boundary
                    // unless an escape ran past a multi-byte character.
                    let Some(token) = self.text.get(from..to) else {
                        return Err((self.line, "an escape before a non-ASCII character".into()));
                    };
                    out.tokens.push(token);
                }
            }
            at_line_start = false;
        }
        if depth != 0 {
            return Err((start_line, "\"(\" without \")\"".into()));
        }
        out.number = start_line;
        Ok(!out.tokens.is_empty())
    }
}

impl Line<'_> {
    pub fn new() -> Self {
        Line {
            number: 0,
            owner_omitted: false,
            tokens: Vec::with_capacity(8),
        }
    }
}

impl Default for Line<'_> {
    fn default() -> Self {
        Line::new()
    }
}

/// Appends `text` (a name in presentation format, RFC 1035 §5.1) to `out`
/// as lower-cased wire labels, followed by `origin`'s labels (lower-cased
/// wire, ending in the root) when the name is relative; `@` is the origin.
pub fn name_to_wire(text: &str, origin: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    if text == "@" {
        out.extend_from_slice(origin);
        return Ok(());
    }
    if text == "." {
        out.push(0);
        return Ok(());
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut absolute = false;
    while i < bytes.len() {
        let len_at = out.len();
        out.push(0);
        let mut len = 0usize;
        while i < bytes.len() && bytes[i] != b'.' {
            let mut c = bytes[i];
            if c == b'\\' {
                let digits = bytes.get(i + 1..i + 4);
                match digits {
                    Some(d) if d.iter().all(u8::is_ascii_digit) => {
                        let v = u32::from(d[0] - b'0') * 100
                            + u32::from(d[1] - b'0') * 10
                            + u32::from(d[2] - b'0');
                        c = u8::try_from(v)
                            .map_err(|_| format!("{text:?}: \\{v} is not a byte"))?;
                        i += 4;
                    }
                    _ => {
                        c = *bytes
                            .get(i + 1)
                            .ok_or_else(|| format!("{text:?} ends in a backslash"))?;
                        i += 2;
                    }
                }
            } else {
                i += 1;
            }
            out.push(c.to_ascii_lowercase());
            len += 1;
        }
        if len == 0 {
            return Err(format!("{text:?} has an empty label"));
        }
        if len > MAX_LABEL_LEN {
            return Err(format!("{text:?} has a label over {MAX_LABEL_LEN} bytes"));
        }
        out[len_at] = len as u8;
        if i < bytes.len() {
            // The dot.
            i += 1;
            if i == bytes.len() {
                absolute = true;
            }
        }
    }
    if absolute {
        out.push(0);
    } else {
        out.extend_from_slice(origin);
    }
    if out.len() - start > MAX_NAME_LEN {
        return Err(format!("{text:?} is longer than {MAX_NAME_LEN} bytes"));
    }
    Ok(())
}

/// The number of labels of a wire name (the root has none), and the
/// offsets at which each of its labels starts, into `starts`; `None` when
/// it is not a well-formed uncompressed name.
#[inline]
pub fn label_starts(name: &[u8], starts: &mut [u8; 128]) -> Option<usize> {
    let mut at = 0usize;
    let mut n = 0usize;
    loop {
        let len = *name.get(at)? as usize;
        if len == 0 {
            return (at + 1 == name.len()).then_some(n);
        }
        if len > MAX_LABEL_LEN || n == starts.len() {
            return None;
        }
        starts[n] = at as u8;
        n += 1;
        at += 1 + len;
    }
}

/// A zone-file TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`).
pub fn parse_ttl(text: &str) -> Option<u32> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let mut total: u64 = 0;
    let mut n: u64 = 0;
    let mut digits = false;
    for b in text.bytes() {
        match b {
            b'0'..=b'9' => {
                n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                digits = true;
            }
            _ => {
                let unit = match b.to_ascii_lowercase() {
                    b's' => 1,
                    b'm' => 60,
                    b'h' => 3600,
                    b'd' => 86_400,
                    b'w' => 604_800,
                    _ => return None,
                };
                if !digits {
                    return None;
                }
                total = total.checked_add(n.checked_mul(unit)?)?;
                n = 0;
                digits = false;
            }
        }
    }
    if digits {
        return None;
    }
    u32::try_from(total).ok()
}

/// Whether a token can only be a TTL (it starts with a digit).
pub fn looks_like_ttl(token: &str) -> bool {
    token.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(text: &str, origin: &[u8]) -> Result<Vec<u8>, String> {
        let mut v = Vec::new();
        name_to_wire(text, origin, &mut v).map(|()| v)
    }

    fn records(text: &str) -> Vec<(usize, bool, Vec<String>)> {
        let mut t = Tokens::new(text);
        let mut line = Line::new();
        let mut out = Vec::new();
        while t.next_into(&mut line).expect("parses") {
            out.push((
                line.number,
                line.owner_omitted,
                line.tokens.iter().map(|s| s.to_string()).collect(),
            ));
        }
        out
    }

    #[test]
    fn an_absolute_name_ignores_the_origin_and_is_lower_cased() {
        assert_eq!(
            wire("Ex.COM.", b"\x03rpz\x00").unwrap(),
            b"\x02ex\x03com\x00"
        );
    }

    #[test]
    fn a_relative_name_gets_the_origin_appended() {
        assert_eq!(
            wire("evil", b"\x03rpz\x00").unwrap(),
            b"\x04evil\x03rpz\x00"
        );
        assert_eq!(wire("@", b"\x03rpz\x00").unwrap(), b"\x03rpz\x00");
        assert_eq!(wire(".", b"\x03rpz\x00").unwrap(), b"\x00");
    }

    #[test]
    fn escapes_become_the_bytes_they_stand_for() {
        assert_eq!(wire("a\\.b.", b"\x00").unwrap(), b"\x03a.b\x00");
        assert_eq!(wire("\\065.", b"\x00").unwrap(), b"\x01a\x00");
        assert!(wire("\\999.", b"\x00").is_err());
    }

    #[test]
    fn empty_and_overlong_labels_are_refused() {
        assert!(wire("a..b.", b"\x00").is_err());
        assert!(wire(&format!("{}.", "a".repeat(64)), b"\x00").is_err());
        let long = format!("{}.", vec!["a".repeat(60); 5].join("."));
        assert!(wire(&long, b"\x00").is_err());
    }

    #[test]
    fn comments_parentheses_and_omitted_owners_are_understood() {
        let text = "; a comment\n$TTL 60\n@ SOA ns. h. ( 1 2 ; serial\n 3 4 5 )\n  NS ns.\nx CNAME . ; done\n\"a;b\" TXT \"c d\"\n";
        let r = records(text);
        assert_eq!(r.len(), 5, "{r:?}");
        assert_eq!(r[0], (2, false, vec!["$TTL".into(), "60".into()]));
        assert_eq!(r[1].0, 3);
        assert_eq!(r[1].2.len(), 9);
        assert_eq!(r[2], (5, true, vec!["NS".into(), "ns.".into()]));
        assert_eq!(
            r[3],
            (6, false, vec!["x".into(), "CNAME".into(), ".".into()])
        );
        assert_eq!(r[4].2, vec!["\"a;b\"", "TXT", "\"c d\""]);
    }

    #[test]
    fn unbalanced_parentheses_name_their_line() {
        let mut t = Tokens::new("a A 1.2.3.4\nb ( A\n");
        let mut line = Line::new();
        assert!(t.next_into(&mut line).unwrap());
        let err = t.next_into(&mut line).unwrap_err();
        assert_eq!(err.0, 2);
    }

    #[test]
    fn ttls_take_units() {
        assert_eq!(parse_ttl("300"), Some(300));
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1w"), Some(604_800));
        assert_eq!(parse_ttl("h"), None);
        assert_eq!(parse_ttl("10x"), None);
    }

    #[test]
    fn label_starts_counts_labels_and_refuses_junk() {
        let mut s = [0u8; 128];
        assert_eq!(label_starts(b"\x02ex\x03com\x00", &mut s), Some(2));
        assert_eq!(&s[..2], &[0, 3]);
        assert_eq!(label_starts(b"\x00", &mut s), Some(0));
        assert_eq!(label_starts(b"\x05ex", &mut s), None);
        assert_eq!(label_starts(b"\x02ex\x00junk", &mut s), None);
    }

    /// Property: any name built from random labels survives text → wire
    /// with the same labels, lower-cased.
    #[test]
    fn random_names_round_trip_through_text() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let labels = 1 + next() % 5;
            let mut text = String::new();
            let mut expect = Vec::new();
            for _ in 0..labels {
                let len = 1 + next() % 12;
                expect.push(len as u8);
                for _ in 0..len {
                    let c = b"abcXYZ019-_."[(next() % 12) as usize];
                    if c == b'.' {
                        text.push_str("\\.");
                    } else {
                        text.push(c as char);
                    }
                    expect.push(c.to_ascii_lowercase());
                }
                text.push('.');
            }
            expect.push(0);
            assert_eq!(wire(&text, b"\x00").unwrap(), expect, "{text}");
        }
    }
}
