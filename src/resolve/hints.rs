//! Root hints: where the walk starts before the root NS set is primed
//! (RFC 8109). Built in, from a named.root-format file, or listed inline.

use std::net::IpAddr;
use std::path::Path;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

/// The IANA root servers (named.root, 2024), A and AAAA.
const BUILT_IN: &[(&str, &str, &str)] = &[
    ("a.root-servers.net.", "198.41.0.4", "2001:503:ba3e::2:30"),
    ("b.root-servers.net.", "170.247.170.2", "2801:1b8:10::b"),
    ("c.root-servers.net.", "192.33.4.12", "2001:500:2::c"),
    ("d.root-servers.net.", "199.7.91.13", "2001:500:2d::d"),
    ("e.root-servers.net.", "192.203.230.10", "2001:500:a8::e"),
    ("f.root-servers.net.", "192.5.5.241", "2001:500:2f::f"),
    ("g.root-servers.net.", "192.112.36.4", "2001:500:12::d0d"),
    ("h.root-servers.net.", "198.97.190.53", "2001:500:1::53"),
    ("i.root-servers.net.", "192.36.148.17", "2001:7fe::53"),
    ("j.root-servers.net.", "192.58.128.30", "2001:503:c27::2:30"),
    ("k.root-servers.net.", "193.0.14.129", "2001:7fd::1"),
    ("l.root-servers.net.", "199.7.83.42", "2001:500:9f::42"),
    ("m.root-servers.net.", "202.12.27.33", "2001:dc3::35"),
];

/// A root server known before priming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootHint {
    pub name: Name,
    pub addrs: Vec<IpAddr>,
}

/// Why the hints could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HintsError {
    #[error("cannot read root hints file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("root hints file {path} is not in named.root format: {reason}")]
    Parse { path: String, reason: String },
    #[error("root hints file {path} lists no root server with an address")]
    Empty { path: String },
}

/// The built-in IANA root servers.
pub fn built_in() -> Vec<RootHint> {
    BUILT_IN
        .iter()
        .filter_map(|(name, v4, v6)| {
            Some(RootHint {
                name: Name::from_ascii(name).ok()?,
                addrs: vec![v4.parse().ok()?, v6.parse().ok()?],
            })
        })
        .collect()
}

/// Inline addresses from the config; names are synthesised.
pub fn from_addresses(addrs: &[IpAddr]) -> Vec<RootHint> {
    addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            Some(RootHint {
                name: Name::from_ascii(format!("hint{i}.root-servers.invalid.")).ok()?,
                addrs: vec![*a],
            })
        })
        .collect()
}

/// Reads a named.root-format file: `. NS name` lines and their A/AAAA records.
pub fn from_file(path: &Path) -> Result<Vec<RootHint>, HintsError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| HintsError::Read {
        path: shown.clone(),
        source,
    })?;
    let hints = parse(&text).map_err(|reason| HintsError::Parse {
        path: shown.clone(),
        reason,
    })?;
    if hints.iter().all(|h| h.addrs.is_empty()) {
        return Err(HintsError::Empty { path: shown });
    }
    Ok(hints)
}

/// Parses named.root text.
pub fn parse(text: &str) -> Result<Vec<RootHint>, String> {
    let parser = Parser::new(text, None, Some(Name::root()));
    let (_origin, rrsets) = parser.parse().map_err(|e| e.to_string())?;
    let records: Vec<Record> = rrsets
        .into_values()
        .flat_map(|set| set.records_without_rrsigs().cloned().collect::<Vec<_>>())
        .collect();
    let mut hints: Vec<RootHint> = records
        .iter()
        .filter(|r| r.record_type() == RecordType::NS && r.name.is_root())
        .filter_map(|r| match &r.data {
            RData::NS(ns) => Some(RootHint {
                name: ns.0.to_lowercase(),
                addrs: Vec::new(),
            }),
            _ => None,
        })
        .collect();
    for hint in &mut hints {
        for r in &records {
            if r.name.to_lowercase() != hint.name {
                continue;
            }
            match &r.data {
                RData::A(a) => hint.addrs.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => hint.addrs.push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    if hints.is_empty() {
        return Err("no \". NS\" records".into());
    }
    Ok(hints)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_named_root() {
        let text = ".  3600000  NS  a.root.fake.\na.root.fake. 3600000 A 127.0.0.10\na.root.fake. 3600000 AAAA ::1\n";
        let hints = parse(text).expect("parses");
        assert_eq!(hints.len(), 1);
        assert_eq!(hints[0].addrs.len(), 2);
    }

    #[test]
    fn built_in_has_thirteen() {
        assert_eq!(built_in().len(), 13);
    }
}
