//! DNAME records (RFC 6672), which hickory-proto 0.26 cannot parse from zone
//! text nor represent as a typed `RData`.
//!
//! On the wire a DNAME travels as `RData::Unknown { code: DNAME, .. }` whose
//! bytes are the uncompressed target name (RFC 6672 §2.5 forbids compressing
//! it). This module builds such records, reads their target back, and lets the
//! zone-file parser accept `DNAME` by renaming the type token to `ANAME` (a
//! type it parses into a plain name) before parsing; the zone then turns every
//! `ANAME` back into a DNAME. The price: real ANAME records cannot appear in a
//! fake zone.

use std::borrow::Cow;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};

/// The type the zone text's `DNAME` is renamed to so that the parser accepts it.
pub(super) const STAND_IN: RecordType = RecordType::ANAME;

/// A DNAME record `owner ttl IN DNAME target`, ready to put in a message.
pub fn dname_record(owner: Name, ttl: u32, target: &Name) -> Record {
    // A name always encodes (it is at most 255 octets by construction), and a
    // fresh encoder has nothing to compress against, so the bytes are the
    // uncompressed form RFC 6672 §2.5 asks for.
    let bytes = target
        .to_bytes()
        .expect("a parsed domain name always encodes");
    Record::from_rdata(
        owner,
        ttl,
        RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(bytes),
        },
    )
}

/// The target of a DNAME record as decoded by hickory-proto, or `None` if the
/// record is not a DNAME or its rdata is not a valid name.
pub fn dname_target(record: &Record) -> Option<Name> {
    match &record.data {
        RData::Unknown { code, rdata } if *code == RecordType::DNAME => {
            let mut decoder = BinDecoder::new(&rdata.anything);
            Name::read(&mut decoder).ok()
        }
        _ => None,
    }
}

/// Rewrites the type token `DNAME` to [`STAND_IN`] in RFC 1035 zone text.
///
/// Only the type position is touched: the owner (a token at column 0), TTLs
/// and classes are skipped, and continuation lines inside parentheses are left
/// alone, so a host called `dname` keeps its name.
pub(super) fn shim_dname_types(text: &str) -> Cow<'_, str> {
    if !text.to_ascii_uppercase().contains("DNAME") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for line in text.split_inclusive('\n') {
        if depth == 0 {
            out.push_str(&shim_line(line));
        } else {
            out.push_str(line);
        }
        depth = paren_depth_after(line, depth);
    }
    Cow::Owned(out)
}

/// One entry line with its type token renamed if it is `DNAME`.
fn shim_line(line: &str) -> String {
    if line.starts_with('$') {
        return line.to_string();
    }
    let owner_present = !line.starts_with([' ', '\t']);
    let mut tokens_seen = 0usize;
    let mut pos = 0usize;
    let bytes = line.as_bytes();
    while pos < bytes.len() {
        // Skip blanks.
        while pos < bytes.len() && (bytes[pos] == b' ' || bytes[pos] == b'\t') {
            pos += 1;
        }
        if pos >= bytes.len() || matches!(bytes[pos], b';' | b'\n' | b'\r' | b'"' | b'(') {
            break;
        }
        let start = pos;
        while pos < bytes.len() && !matches!(bytes[pos], b' ' | b'\t' | b'\n' | b'\r' | b';') {
            pos += 1;
        }
        let token = &line[start..pos];
        tokens_seen += 1;
        if owner_present && tokens_seen == 1 {
            continue;
        }
        if is_ttl_or_class(token) {
            continue;
        }
        if token.eq_ignore_ascii_case("DNAME") {
            return format!("{}{}{}", &line[..start], STAND_IN, &line[pos..]);
        }
        break;
    }
    line.to_string()
}

/// Whether a token in the `[ttl] [class]` prefix of an entry is a TTL or class.
fn is_ttl_or_class(token: &str) -> bool {
    let upper = token.to_ascii_uppercase();
    matches!(upper.as_str(), "IN" | "CH" | "CS" | "HS")
        || token.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Parenthesis nesting after `line`, ignoring quoted text and comments.
fn paren_depth_after(line: &str, mut depth: usize) -> usize {
    let mut quoted = false;
    let mut escaped = false;
    for c in line.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => break,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}
