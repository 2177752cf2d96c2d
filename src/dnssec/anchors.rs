//! Trust anchors (RFC 4033 §2): the DS or DNSKEY records a validator trusts
//! without proof, from which every chain of trust starts.
//!
//! The built-in set is the root zone's two key-signing keys, KSK-2017 (key
//! tag 20326) and KSK-2024 (38696), as IANA publishes them (RFC 7958); their
//! public keys come from hickory-proto, and their DS digests are computed
//! from them (a test checks KSK-2017's against IANA's published digest).
//!
//! A `trust_anchor_file` holds DS and DNSKEY records in zone-file syntax
//! (RFC 1035 §5.1), as Unbound's `trust-anchor-file` does:
//! `owner [TTL] [IN] DS tag alg type hex` or
//! `owner [TTL] [IN] DNSKEY flags 3 alg base64`. As operators paste them
//! from a zone or from `dig`: `;` starts a comment, parentheses continue a
//! record over several lines (with comments inside), and the algorithm may
//! be a number or its mnemonic (`RSASHA256`, `ECDSAP256SHA256`, RFC 4034
//! Appendix A.1 and the IANA registry). Owners are absolute (a missing
//! final dot is added). A bad record is an error naming the file and the
//! line it starts on.

use std::path::Path;

use data_encoding::{BASE64, HEXUPPER_PERMISSIVE};
use hickory_proto::dnssec::rdata::{DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKeyBuf};
use hickory_proto::rr::Name;

/// What is wrong with a trust-anchor file.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot read the trust anchor file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {problem}")]
    Line {
        path: String,
        line: usize,
        problem: String,
    },
    #[error("{path} holds no DS or DNSKEY record")]
    Empty { path: String },
}

/// The anchors a validation starts from.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    /// DS anchors: the hash of a key the zone must still publish.
    pub ds: Vec<(Name, DS)>,
    /// DNSKEY anchors: the key itself.
    pub keys: Vec<(Name, DNSKEY)>,
}

/// DNSKEY flags of a key-signing key: Zone Key and Secure Entry Point.
const KSK_FLAGS: u16 = 257;

impl TrustAnchors {
    /// The root's KSK-2017 and KSK-2024 as SHA-256 DS records.
    pub fn root() -> TrustAnchors {
        let builtin = hickory_proto::dnssec::TrustAnchors::default();
        let mut ds = Vec::new();
        for i in 0..builtin.len() {
            let Some(key) = builtin.get(i) else { continue };
            let dnskey = DNSKEY::with_flags(KSK_FLAGS, key.clone());
            let Ok(tag) = dnskey.calculate_key_tag() else {
                continue;
            };
            let Ok(digest) = dnskey.to_digest(&Name::root(), DigestType::SHA256) else {
                continue;
            };
            ds.push((
                Name::root(),
                DS::new(
                    tag,
                    Algorithm::RSASHA256,
                    DigestType::SHA256,
                    digest.as_ref().to_vec(),
                ),
            ));
        }
        TrustAnchors {
            ds,
            keys: Vec::new(),
        }
    }

    /// Reads a trust-anchor file (see the module doc for its syntax).
    pub fn from_file(path: &Path) -> Result<TrustAnchors, AnchorError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AnchorError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses anchor records; `path` names the source in errors.
    pub fn parse(text: &str, path: &str) -> Result<TrustAnchors, AnchorError> {
        let mut anchors = TrustAnchors::default();
        let error = |line: usize, problem: String| AnchorError::Line {
            path: path.to_string(),
            line,
            problem,
        };
        for (line, fields) in records(text).map_err(|(line, problem)| error(line, problem))? {
            parse_record(&fields, &mut anchors).map_err(|problem| error(line, problem))?;
        }
        if anchors.ds.is_empty() && anchors.keys.is_empty() {
            return Err(AnchorError::Empty {
                path: path.to_string(),
            });
        }
        Ok(anchors)
    }

    /// The deepest anchored name at or above `name`.
    pub fn closest(&self, name: &Name) -> Option<&Name> {
        self.ds
            .iter()
            .map(|(n, _)| n)
            .chain(self.keys.iter().map(|(n, _)| n))
            .filter(|anchor| anchor.zone_of(name))
            .max_by_key(|anchor| anchor.num_labels())
    }
}

/// One record of a zone-file text: the line it starts on and its fields.
type Fields<'t> = (usize, Vec<&'t str>);

/// The records of a zone-file text (RFC 1035 §5.1): each as its fields
/// and the (1-based) line it starts on. Comments are dropped; a record in
/// parentheses runs on until they close. `Err` names the line of an
/// unbalanced parenthesis.
fn records(text: &str) -> Result<Vec<Fields<'_>>, (usize, String)> {
    let mut records = Vec::new();
    let mut fields: Vec<&str> = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap_or("");
        // Parentheses may touch the fields beside them: "(AwEAA".
        for word in line.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
            if word.is_empty() {
                continue;
            }
            if fields.is_empty() {
                start = i + 1;
            }
            fields.push(word);
        }
        for c in line.chars() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => return Err((i + 1, "a \")\" closes no \"(\"".into())),
                ')' => depth -= 1,
                _ => {}
            }
        }
        if depth == 0 && !fields.is_empty() {
            records.push((start, std::mem::take(&mut fields)));
        }
    }
    if depth > 0 {
        return Err((start.max(1), "a \"(\" is never closed".into()));
    }
    Ok(records)
}

/// DNSSEC algorithm mnemonics (RFC 4034 Appendix A.1, RFC 5155 §2, RFC
/// 5702, RFC 6605, RFC 8080 and the IANA registry), as zone files and
/// Unbound's anchor files may write them in place of the number.
const ALGORITHMS: [(&str, u8); 14] = [
    ("RSAMD5", 1),
    ("DH", 2),
    ("DSA", 3),
    ("RSASHA1", 5),
    ("DSA-NSEC3-SHA1", 6),
    ("RSASHA1-NSEC3-SHA1", 7),
    ("RSASHA256", 8),
    ("RSASHA512", 10),
    ("ECC-GOST", 12),
    ("ECDSAP256SHA256", 13),
    ("ECDSAP384SHA384", 14),
    ("ED25519", 15),
    ("ED448", 16),
    ("PRIVATEDNS", 253),
];

/// An algorithm field: its number, or its mnemonic in any case.
fn algorithm(field: Option<&&str>) -> Result<u8, String> {
    let text = field.ok_or("the algorithm is missing")?;
    if let Ok(number) = text.parse() {
        return Ok(number);
    }
    ALGORITHMS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|(_, number)| *number)
        .ok_or_else(|| format!("{text:?} is not a DNSSEC algorithm number or mnemonic"))
}

fn parse_record(fields: &[&str], anchors: &mut TrustAnchors) -> Result<(), String> {
    let mut fields = fields.iter().copied();
    let owner_text = fields.next().ok_or("an empty record")?;
    let mut owner = Name::from_ascii(owner_text)
        .map_err(|e| format!("{owner_text:?} is not a domain name: {e}"))?;
    owner.set_fqdn(true);
    let owner = owner.to_lowercase();
    // [TTL] [IN] TYPE, in either order of TTL and class.
    let mut rtype = None;
    for field in fields.by_ref() {
        let upper = field.to_ascii_uppercase();
        match upper.as_str() {
            "IN" => continue,
            "DS" | "DNSKEY" => {
                rtype = Some(upper);
                break;
            }
            _ if field.bytes().all(|b| b.is_ascii_digit()) => continue,
            _ => return Err(format!("expected DS or DNSKEY, found {field:?}")),
        }
    }
    let rest: Vec<&str> = fields.collect();
    match rtype.as_deref() {
        Some("DS") => anchors.ds.push((owner, parse_ds(&rest)?)),
        Some("DNSKEY") => anchors.keys.push((owner, parse_dnskey(&rest)?)),
        _ => return Err("no DS or DNSKEY record here".into()),
    }
    Ok(())
}

fn number<T: std::str::FromStr>(field: Option<&&str>, what: &str) -> Result<T, String> {
    let text = field.ok_or_else(|| format!("the {what} is missing"))?;
    text.parse()
        .map_err(|_| format!("{text:?} is not a valid {what}"))
}

fn parse_ds(fields: &[&str]) -> Result<DS, String> {
    let tag: u16 = number(fields.first(), "key tag")?;
    let algorithm = algorithm(fields.get(1))?;
    let digest_type: u8 = number(fields.get(2), "digest type")?;
    let hex: String = fields.get(3..).unwrap_or_default().concat();
    if hex.is_empty() {
        return Err("the digest is missing".into());
    }
    let digest = HEXUPPER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|e| format!("the digest is not hexadecimal: {e}"))?;
    Ok(DS::new(
        tag,
        Algorithm::from_u8(algorithm),
        DigestType::from(digest_type),
        digest,
    ))
}

fn parse_dnskey(fields: &[&str]) -> Result<DNSKEY, String> {
    let flags: u16 = number(fields.first(), "flags field")?;
    let protocol: u8 = number(fields.get(1), "protocol field")?;
    if protocol != 3 {
        return Err(format!(
            "the protocol field must be 3 (RFC 4034 §2.1.2), not {protocol}"
        ));
    }
    let algorithm = algorithm(fields.get(2))?;
    let b64: String = fields.get(3..).unwrap_or_default().concat();
    if b64.is_empty() {
        return Err("the public key is missing".into());
    }
    let key = BASE64
        .decode(b64.as_bytes())
        .map_err(|e| format!("the public key is not base64: {e}"))?;
    Ok(DNSKEY::with_flags(
        flags,
        PublicKeyBuf::new(key, Algorithm::from_u8(algorithm)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::dnssec::PublicKey;

    #[test]
    fn the_built_in_root_anchors_are_ianas_ksk_2017_and_ksk_2024() {
        let root = TrustAnchors::root();
        let tags: Vec<u16> = root.ds.iter().map(|(_, ds)| ds.key_tag()).collect();
        assert_eq!(tags, [20326, 38696]);
        // https://data.iana.org/root-anchors/root-anchors.xml, KSK-2017.
        let ksk2017 = HEXUPPER_PERMISSIVE
            .decode(b"E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D")
            .expect("hex");
        assert_eq!(root.ds[0].1.digest(), ksk2017.as_slice());
    }

    #[test]
    fn ds_and_dnskey_lines_parse_with_ttl_class_and_comments() {
        let text = "; the lab's anchors\n\
                    lab. 3600 IN DS 12345 13 2 0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef\n\
                    \n\
                    example.lab IN DNSKEY 257 3 15 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4= ; trailing\n";
        let anchors = TrustAnchors::parse(text, "anchors.txt").expect("parses");
        assert_eq!(anchors.ds.len(), 1);
        assert_eq!(anchors.ds[0].1.key_tag(), 12345);
        assert_eq!(anchors.keys.len(), 1);
        assert_eq!(
            anchors.keys[0].0,
            Name::from_ascii("example.lab.").expect("name")
        );
        let deep = Name::from_ascii("www.example.lab.").expect("name");
        assert_eq!(anchors.closest(&deep), Some(&anchors.keys[0].0));
    }

    #[test]
    fn records_in_parentheses_span_lines_with_comments_and_mnemonics() {
        // As `dig DNSKEY .` and zone files print them.
        let text = "; pasted from the zone\n\
                    example.lab. 3600 IN DNSKEY 257 3 ECDSAP256SHA256 (\n\
                    \tl02Woi0iS8Aa25FQ ; first half of the key\n\
                    \tkUd9RMzZHJpBoRQwAQEX1SxZJA4= ) ; KSK; alg = ECDSAP256SHA256\n\
                    rsa.lab. IN DNSKEY 256 3 rsasha1-nsec3-sha1 (AwEAAQ==)\n\
                    lab. DS 12345 RSASHA256 2 (\n\
                    \t0123456789abcdef0123456789ABCDEF\n\
                    \t0123456789abcdef0123456789abcdef )\n\
                    ed.lab. DNSKEY 257 3 ED25519 l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=\n\
                    old.lab. DS 1 RSASHA1 1 0123456789abcdef0123456789abcdef01234567\n";
        let anchors = TrustAnchors::parse(text, "anchors.txt").expect("parses");
        let algorithms: Vec<u8> = anchors
            .keys
            .iter()
            .map(|(_, k)| u8::from(k.public_key().algorithm()))
            .collect();
        assert_eq!(algorithms, [13, 7, 15]);
        assert_eq!(
            anchors.keys[0].1.public_key().public_bytes(),
            BASE64
                .decode(b"l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=")
                .expect("base64")
        );
        let ds: Vec<(u16, u8, usize)> = anchors
            .ds
            .iter()
            .map(|(_, d)| (d.key_tag(), u8::from(d.algorithm()), d.digest().len()))
            .collect();
        assert_eq!(ds, [(12345, 8, 32), (1, 5, 20)]);
    }

    #[test]
    fn an_error_inside_parentheses_names_the_line_the_record_starts_on() {
        let text = "lab. DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
                    example.lab. DNSKEY 257 3 NOSUCHALG (\n\
                    \tAwEAAa== )\n";
        let err = TrustAnchors::parse(text, "f").expect_err("unknown mnemonic");
        assert_eq!(
            err.to_string(),
            "f line 2: \"NOSUCHALG\" is not a DNSSEC algorithm number or mnemonic"
        );
        let err = TrustAnchors::parse("\n. DS 1 8 2 (\n00\n", "f").expect_err("open");
        assert_eq!(err.to_string(), "f line 2: a \"(\" is never closed");
        let err = TrustAnchors::parse(". DS 1 8 2 00 )\n", "f").expect_err("close");
        assert_eq!(err.to_string(), "f line 1: a \")\" closes no \"(\"");
    }

    #[test]
    fn a_bad_line_names_the_file_and_the_line() {
        let text = ". DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n\
                    . DNSKEY 257 2 8 AwEAAa==\n";
        let err = TrustAnchors::parse(text, "/etc/taproot/root.key").expect_err("protocol 2");
        assert_eq!(
            err.to_string(),
            "/etc/taproot/root.key line 2: the protocol field must be 3 (RFC 4034 §2.1.2), not 2"
        );
        let err = TrustAnchors::parse(". A 127.0.0.1\n", "f").expect_err("not an anchor");
        assert!(
            err.to_string()
                .starts_with("f line 1: expected DS or DNSKEY"),
            "{err}"
        );
        let err = TrustAnchors::parse("; nothing\n", "f").expect_err("empty");
        assert_eq!(err.to_string(), "f holds no DS or DNSKEY record");
    }
}
