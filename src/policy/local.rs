//! Local zones: names answered from the config, with Unbound's meanings
//! (unbound.conf(5) `local-zone:`), and the special-use names every
//! resolver answers itself (RFC 6761 §6, RFC 6303 §4, RFC 8375, RFC 7686).
//!
//! The longest matching zone wins. A zone's answers are authoritative
//! (AA=1) and never go upstream, except a `transparent` zone's names that
//! have no local records. The default zones are Unbound's
//! (`services/localzone.c`, `local_zone_enter_defaults`): `localhost.`
//! with its A, AAAA, NS and SOA; the loopback reverse zones with their
//! PTR to `localhost.`; `onion.`, `test.`, `invalid.`, `home.arpa.`; and
//! the RFC 6303 AS112 reverse zones (RFC 1918, RFC 6598, link local, the
//! documentation prefixes, ULA and link-local IPv6). A configured zone of
//! the same name replaces a default; `type = "nodefault"` removes it.
//!
//! A lookup walks the query name's suffixes from the top label down and
//! stops at the first suffix that is neither a zone nor above one, so a
//! name under `com.` costs one hash probe of a small table.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::rpz::lower_wire;
use super::zonefile::{self, Line, Tokens};
use super::{PolicyAnswer, PolicyError, Verdict};
use crate::config::{LocalZoneConfig, LocalZoneType};

type Hasher = foldhash::fast::FixedState;

/// Unbound's SOA for default zones (and taproot's for a configured zone
/// without one): `localhost. nobody.invalid. 1 3600 1200 604800 10800`.
const DEFAULT_SOA_TTL: u32 = 10_800;

/// One local zone.
#[derive(Debug)]
pub struct LocalZone {
    /// The apex as written (no trailing dot), for metrics and logs.
    pub name: Arc<str>,
    pub apex: Name,
    pub kind: LocalZoneType,
    /// Records by owner (lower-cased wire).
    data: HashMap<Box<[u8]>, Vec<Record>, Hasher>,
    /// Names with records, and the empty non-terminals above them.
    exists: HashSet<Box<[u8]>, Hasher>,
    /// The SOA negative answers carry (RFC 2308 §3).
    soa: Record,
}

/// Every local zone, indexed for the walk described in the module doc.
#[derive(Debug, Default)]
pub struct LocalZones {
    /// Zone apexes (`Some(index)`) and every name above one (`None`),
    /// lower-cased wire, the root excluded.
    names: HashMap<Box<[u8]>, Option<u32>, Hasher>,
    root: Option<u32>,
    zones: Vec<LocalZone>,
}

/// A built-in zone: its name and its records (besides the SOA and NS
/// every default zone has).
struct Default {
    zone: &'static str,
    records: &'static [&'static str],
}

const V6_LOOPBACK: &str =
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.";
const V6_UNSPECIFIED: &str =
    "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.";

/// The RFC 6761/6303 zones with records of their own.
const DEFAULTS_WITH_DATA: [Default; 3] = [
    Default {
        zone: "localhost.",
        records: &[
            "localhost. 10800 IN A 127.0.0.1",
            "localhost. 10800 IN AAAA ::1",
        ],
    },
    Default {
        zone: "127.in-addr.arpa.",
        records: &["1.0.0.127.in-addr.arpa. 10800 IN PTR localhost."],
    },
    Default {
        zone: V6_LOOPBACK,
        records: &["@ 10800 IN PTR localhost."],
    },
];

/// The default zones that hold only their SOA and NS: answered NXDOMAIN.
fn empty_defaults() -> Vec<String> {
    let mut v: Vec<String> = ["onion.", "test.", "invalid.", "home.arpa."]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push("10.in-addr.arpa.".into());
    v.extend((16..=31).map(|n| format!("{n}.172.in-addr.arpa.")));
    v.push("168.192.in-addr.arpa.".into());
    v.push("0.in-addr.arpa.".into());
    v.extend((64..=127).map(|n| format!("{n}.100.in-addr.arpa.")));
    for z in [
        "254.169.in-addr.arpa.",
        "2.0.192.in-addr.arpa.",
        "100.51.198.in-addr.arpa.",
        "113.0.203.in-addr.arpa.",
        "255.255.255.255.in-addr.arpa.",
        V6_UNSPECIFIED,
        "d.f.ip6.arpa.",
        "8.e.f.ip6.arpa.",
        "9.e.f.ip6.arpa.",
        "a.e.f.ip6.arpa.",
        "b.e.f.ip6.arpa.",
        "8.b.d.0.1.0.0.2.ip6.arpa.",
    ] {
        v.push(z.into());
    }
    v
}

impl LocalZones {
    /// The configured zones plus every default not replaced or switched off.
    pub fn from_config(configs: &[LocalZoneConfig]) -> Result<LocalZones, PolicyError> {
        let mut zones = LocalZones::default();
        let mut taken: HashSet<Vec<u8>> = HashSet::new();
        for (index, c) in configs.iter().enumerate() {
            let apex = Name::from_ascii(&c.zone).map_err(|e| PolicyError::LocalZone {
                index,
                problem: format!("{:?} is not a domain name: {e}", c.zone),
            })?;
            let wire = lower_wire(&apex);
            if !taken.insert(wire) {
                return Err(PolicyError::LocalZone {
                    index,
                    problem: format!("zone {:?} is configured twice", c.zone),
                });
            }
            if c.kind == LocalZoneType::Nodefault {
                continue;
            }
            let records: Vec<&str> = c.records.iter().map(String::as_str).collect();
            let zone = LocalZone::build(&c.zone, c.kind, &records, false).map_err(
                |(record, problem)| PolicyError::LocalRecord {
                    index,
                    zone: c.zone.clone(),
                    record,
                    problem,
                },
            )?;
            zones.insert(zone);
        }
        let empty = empty_defaults();
        let defaults = DEFAULTS_WITH_DATA
            .iter()
            .map(|d| (d.zone, d.records))
            .chain(empty.iter().map(|z| (z.as_str(), &[][..])));
        for (zone, records) in defaults {
            let apex = Name::from_ascii(zone).map_err(|e| PolicyError::LocalZone {
                index: usize::MAX,
                problem: e.to_string(),
            })?;
            if taken.contains(&lower_wire(&apex)) {
                continue;
            }
            let built = LocalZone::build(zone, LocalZoneType::Static, records, true).map_err(
                |(_, problem)| PolicyError::LocalZone {
                    index: usize::MAX,
                    problem: format!("built-in zone {zone}: {problem}"),
                },
            )?;
            zones.insert(built);
        }
        Ok(zones)
    }

    fn insert(&mut self, zone: LocalZone) {
        let index = self.zones.len() as u32;
        let wire = lower_wire(&zone.apex);
        self.zones.push(zone);
        if wire == [0] {
            self.root = Some(index);
            return;
        }
        // Every suffix above the apex is a step of the walk.
        let mut at = 0;
        while wire[at] != 0 {
            let suffix: Box<[u8]> = wire[at..].into();
            if at == 0 {
                self.names.insert(suffix, Some(index));
            } else {
                self.names.entry(suffix).or_insert(None);
            }
            at += 1 + wire[at] as usize;
        }
    }

    /// How many zones there are (defaults included).
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The closest enclosing zone of a query name (lower-cased wire, with
    /// its label offsets). Allocates nothing.
    #[inline]
    pub fn find(&self, lower: &[u8], starts: &[u8; 128], labels: usize) -> Option<&LocalZone> {
        let mut best = self.root;
        for d in 1..=labels {
            let suffix = &lower[starts[labels - d] as usize..];
            match self.names.get(suffix) {
                None => break,
                Some(Some(i)) => best = Some(*i),
                Some(None) => {}
            }
        }
        best.and_then(|i| self.zones.get(i as usize))
    }
}

impl LocalZone {
    /// Builds a zone from its record texts; errors name the record's index.
    fn build(
        zone: &str,
        kind: LocalZoneType,
        records: &[&str],
        default: bool,
    ) -> Result<LocalZone, (usize, String)> {
        let apex = {
            let mut n = Name::from_ascii(zone).map_err(|e| (0, e.to_string()))?;
            n.set_fqdn(true);
            n
        };
        let apex_wire = lower_wire(&apex);
        let mut z = LocalZone {
            name: {
                let s = zone.trim_end_matches('.');
                if s.is_empty() { "." } else { s }.into()
            },
            soa: Record::from_rdata(
                apex.clone(),
                DEFAULT_SOA_TTL,
                RData::SOA(SOA::new(
                    Name::from_ascii("localhost.").map_err(|e| (0, e.to_string()))?,
                    Name::from_ascii("nobody.invalid.").map_err(|e| (0, e.to_string()))?,
                    1,
                    3600,
                    1200,
                    604_800,
                    10_800,
                )),
            ),
            apex: apex.clone(),
            kind,
            data: HashMap::default(),
            exists: HashSet::default(),
        };
        if default {
            let soa = z.soa.clone();
            z.add(&apex_wire, soa);
            let ns = Record::from_rdata(
                apex.clone(),
                DEFAULT_SOA_TTL,
                RData::NS(NS(
                    Name::from_ascii("localhost.").map_err(|e| (0, e.to_string()))?
                )),
            );
            z.add(&apex_wire, ns);
        }
        for (i, text) in records.iter().enumerate() {
            let (owner, record) = parse_record(text, &apex_wire).map_err(|p| (i, p))?;
            if super::rpz::trigger_of(&owner, &apex_wire).is_none() {
                return Err((i, format!("{text:?} is outside the zone {zone}")));
            }
            if owner == apex_wire && record.record_type() == RecordType::SOA {
                z.soa = record.clone();
            }
            z.add(&owner, record);
        }
        Ok(z)
    }

    fn add(&mut self, owner: &[u8], record: Record) {
        // The owner and its ancestors inside the zone exist.
        let apex_len = lower_wire(&self.apex).len();
        let mut at = 0;
        while owner.len() - at >= apex_len {
            self.exists.insert(owner[at..].into());
            if owner[at] == 0 {
                break;
            }
            at += 1 + owner[at] as usize;
        }
        self.data.entry(owner.into()).or_default().push(record);
    }

    /// What this zone says about a query (`lower`: the query name,
    /// lower-cased wire; `qname`: as the client spelled it).
    pub fn answer(&self, lower: &[u8], qname: &[u8], qtype: u16) -> Verdict {
        let negative = |rcode: u8| {
            Verdict::Answer(PolicyAnswer {
                rcode,
                answers: Vec::new(),
                authority: vec![self.soa.clone()],
                ede: None,
            })
        };
        let bare = |rcode: u8| {
            Verdict::Answer(PolicyAnswer {
                rcode,
                answers: Vec::new(),
                authority: Vec::new(),
                ede: None,
            })
        };
        match self.kind {
            LocalZoneType::Deny => Verdict::Drop,
            LocalZoneType::Refuse => bare(5),
            LocalZoneType::AlwaysNxdomain => bare(3),
            LocalZoneType::AlwaysNodata => bare(0),
            LocalZoneType::Nodefault => Verdict::Resolve,
            LocalZoneType::Redirect => {
                let apex = lower_wire(&self.apex);
                match self.data.get(&apex[..]) {
                    Some(rrs) => records_for(rrs, qtype, Some(qname))
                        .map_or_else(|| negative(0), answer_with),
                    None => negative(0),
                }
            }
            LocalZoneType::Static | LocalZoneType::Transparent => match self.data.get(lower) {
                Some(rrs) => records_for(rrs, qtype, None).map_or_else(|| negative(0), answer_with),
                None if self.kind == LocalZoneType::Transparent => Verdict::Resolve,
                None if self.exists.contains(lower) => negative(0),
                None => negative(3),
            },
        }
    }
}

fn answer_with(answers: Vec<Record>) -> Verdict {
    Verdict::Answer(PolicyAnswer {
        rcode: 0,
        answers,
        authority: Vec::new(),
        ede: None,
    })
}

/// The records of `rrs` that answer `qtype` (a CNAME answers any type but
/// CNAME's own), renamed to `rename` when given; `None` when none does.
pub fn records_for(rrs: &[Record], qtype: u16, rename: Option<&[u8]>) -> Option<Vec<Record>> {
    let qtype = RecordType::from(qtype);
    let mut out: Vec<Record> = rrs
        .iter()
        .filter(|r| r.record_type() == qtype || qtype == RecordType::ANY)
        .cloned()
        .collect();
    if out.is_empty() {
        out = rrs
            .iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .cloned()
            .collect();
    }
    if out.is_empty() {
        return None;
    }
    if let Some(wire) = rename
        && let Ok(name) = Name::read(&mut BinDecoder::new(wire))
    {
        for r in &mut out {
            r.name = name.clone();
        }
    }
    Some(out)
}

/// Reads one record of a `records` list: `owner [ttl] [class] type data`,
/// the owner relative to the zone unless it ends in a dot.
fn parse_record(text: &str, origin: &[u8]) -> Result<(Vec<u8>, Record), String> {
    let mut tokens = Tokens::new(text);
    let mut line = Line::new();
    match tokens.next_into(&mut line) {
        Ok(true) => {}
        Ok(false) => return Err("the record is empty".into()),
        Err((_, p)) => return Err(p),
    }
    if line.owner_omitted {
        return Err(format!("{text:?} does not start with an owner name"));
    }
    let mut owner = Vec::new();
    zonefile::name_to_wire(line.tokens[0], origin, &mut owner)?;
    let mut rest = &line.tokens[1..];
    let mut ttl = DEFAULT_SOA_TTL;
    for _ in 0..2 {
        match rest.first() {
            Some(t) if zonefile::looks_like_ttl(t) => {
                ttl = zonefile::parse_ttl(t).ok_or_else(|| format!("{t:?} is not a TTL"))?;
                rest = &rest[1..];
            }
            Some(t) if t.eq_ignore_ascii_case("IN") => rest = &rest[1..],
            _ => break,
        }
    }
    let Some((rtype, rdata)) = rest.split_first() else {
        return Err(format!("{text:?} has no record type"));
    };
    let parsed: RecordType = rtype
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("{rtype:?} is not a record type"))?;
    if let RecordType::Unknown(_) = parsed {
        return Err(format!("{rtype:?} is not a record type taproot knows"));
    }
    let data_text = rdata.join(" ");
    let data = RData::try_from_str(parsed, &data_text)
        .map_err(|e| format!("bad {rtype} data {data_text:?}: {e}"))?;
    let name = Name::read(&mut BinDecoder::new(&owner)).map_err(|e| e.to_string())?;
    Ok((owner, Record::from_rdata(name, ttl, data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone_for(zones: &LocalZones, name: &str) -> Option<String> {
        let mut wire = Vec::new();
        zonefile::name_to_wire(name, b"\x00", &mut wire).unwrap();
        let mut starts = [0u8; 128];
        let n = zonefile::label_starts(&wire, &mut starts).unwrap();
        zones.find(&wire, &starts, n).map(|z| z.name.to_string())
    }

    #[test]
    fn the_longest_matching_zone_wins_and_defaults_are_there() {
        let zones = LocalZones::from_config(&[LocalZoneConfig {
            zone: "x.home.arpa".into(),
            kind: LocalZoneType::Transparent,
            records: vec![],
        }])
        .unwrap();
        assert_eq!(
            zone_for(&zones, "a.x.home.arpa.").as_deref(),
            Some("x.home.arpa")
        );
        assert_eq!(
            zone_for(&zones, "a.home.arpa.").as_deref(),
            Some("home.arpa")
        );
        assert_eq!(zone_for(&zones, "localhost.").as_deref(), Some("localhost"));
        assert_eq!(
            zone_for(&zones, "4.3.2.10.in-addr.arpa.").as_deref(),
            Some("10.in-addr.arpa")
        );
        assert_eq!(zone_for(&zones, "www.example.com."), None);
        assert_eq!(zone_for(&zones, "arpa."), None);
    }

    #[test]
    fn nodefault_removes_a_built_in_zone() {
        let zones = LocalZones::from_config(&[LocalZoneConfig {
            zone: "10.in-addr.arpa.".into(),
            kind: LocalZoneType::Nodefault,
            records: vec![],
        }])
        .unwrap();
        assert_eq!(zone_for(&zones, "1.10.in-addr.arpa."), None);
        assert_eq!(zone_for(&zones, "test.").as_deref(), Some("test"));
    }

    #[test]
    fn a_record_outside_its_zone_is_refused_with_its_index() {
        let err = LocalZones::from_config(&[LocalZoneConfig {
            zone: "home.arpa".into(),
            kind: LocalZoneType::Static,
            records: vec![
                "a.home.arpa. A 192.0.2.1".into(),
                "b.example. A 192.0.2.1".into(),
            ],
        }])
        .unwrap_err()
        .to_string();
        assert!(err.contains("local_zone[0].records[1]"), "{err}");
    }
}
