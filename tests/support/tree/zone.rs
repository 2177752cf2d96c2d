//! One authoritative zone held in memory, parsed from RFC 1035 §5 master-file
//! text, with the name-tree look-ups the answering rules of RFC 1034 §4.3.2
//! need: zone cuts, DNAME ancestors, empty non-terminals and wildcards.

use std::collections::{HashMap, HashSet};

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

use super::dname;

/// The data of one zone, including occluded names below its cuts (glue).
pub(super) struct Zone {
    origin: Name,
    /// Every owner name and its records, all types together.
    nodes: HashMap<Name, Vec<Record>>,
    /// Owner names plus every ancestor up to the apex, so that empty
    /// non-terminals exist (RFC 4592 §2.2.2) and answer NODATA, not NXDOMAIN.
    existing: HashSet<Name>,
    soa: Record,
}

/// Something on the path from the apex to a name that stops the plain
/// name look-up before it reaches the name (RFC 1034 §4.3.2 step 3b, RFC 6672 §3.2).
pub(super) enum Interruption {
    /// The name is at or below this delegation point: answer with a referral.
    Cut(Name),
    /// This DNAME at a proper ancestor of the name redirects it.
    Dname(Record),
}

impl Zone {
    /// Parses `text` as the zone `origin`.
    ///
    /// Fails with a sentence naming the zone if the text does not parse, has
    /// no SOA at the apex, or holds a record outside the zone.
    pub(super) fn parse(origin: &str, text: &str) -> Result<Self, String> {
        let origin = fqdn(
            Name::from_ascii(origin)
                .map_err(|e| format!("zone origin {origin:?} is not a name: {e}"))?,
        );
        let shimmed = dname::shim_dname_types(text);
        let (_, rrsets) = Parser::new(shimmed, None, Some(origin.clone()))
            .parse()
            .map_err(|e| format!("zone {origin} does not parse: {e}"))?;

        let mut nodes: HashMap<Name, Vec<Record>> = HashMap::new();
        for rrset in rrsets.into_values() {
            for record in rrset.records_without_rrsigs() {
                let record = restore_dname(record.clone());
                if !origin.zone_of(&record.name) {
                    return Err(format!(
                        "zone {origin} holds {} {}, which is outside it",
                        record.name,
                        record.record_type()
                    ));
                }
                nodes
                    .entry(fqdn(record.name.clone()))
                    .or_default()
                    .push(record);
            }
        }

        let soa = nodes
            .get(&origin)
            .and_then(|records| records.iter().find(|r| r.record_type() == RecordType::SOA))
            .cloned()
            .ok_or_else(|| format!("zone {origin} has no SOA record at its apex"))?;

        let mut existing = HashSet::new();
        for owner in nodes.keys() {
            for depth in label_count(&origin)..=label_count(owner) {
                existing.insert(owner.trim_to(depth));
            }
        }

        Ok(Self {
            origin,
            nodes,
            existing,
            soa,
        })
    }

    /// The apex name.
    pub(super) fn origin(&self) -> &Name {
        &self.origin
    }

    /// Whether `name` is at or below the apex.
    pub(super) fn contains(&self, name: &Name) -> bool {
        self.origin.zone_of(name)
    }

    /// All records owned by `name`, if it owns any.
    pub(super) fn node(&self, name: &Name) -> Option<&[Record]> {
        self.nodes.get(name).map(Vec::as_slice)
    }

    /// The records of one type owned by `name` (empty if none).
    pub(super) fn rrset(&self, name: &Name, rtype: RecordType) -> Vec<Record> {
        self.node(name)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.record_type() == rtype)
            .cloned()
            .collect()
    }

    /// Whether `name` exists, as an owner or as an empty non-terminal.
    pub(super) fn exists(&self, name: &Name) -> bool {
        self.existing.contains(name)
    }

    /// The SOA to put in the authority section of a negative answer, its TTL
    /// lowered to the SOA MINIMUM field if that is smaller (RFC 2308 §3).
    pub(super) fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(SOA { minimum, .. }) = &self.soa.data {
            soa.ttl = soa.ttl.min(*minimum);
        }
        soa
    }

    /// The topmost zone cut or DNAME on the path from the apex to `name`.
    ///
    /// NS records at the apex are not a cut; a DNAME applies only to names
    /// strictly below its owner (RFC 6672 §2.3). A DS query for the cut name
    /// itself is answered by the parent (RFC 4035 §3.1.4.1), so that cut does
    /// not interrupt it.
    pub(super) fn interruption(&self, name: &Name, qtype: RecordType) -> Option<Interruption> {
        let apex_depth = label_count(&self.origin);
        let depth = label_count(name);
        for d in apex_depth..=depth {
            let ancestor = name.trim_to(d);
            let Some(records) = self.nodes.get(&ancestor) else {
                continue;
            };
            let at_name = d == depth;
            let has_ns = records.iter().any(|r| r.record_type() == RecordType::NS);
            if d > apex_depth && has_ns && !(at_name && qtype == RecordType::DS) {
                return Some(Interruption::Cut(ancestor));
            }
            if !at_name
                && let Some(dname) = records
                    .iter()
                    .find(|r| r.record_type() == RecordType::DNAME)
            {
                return Some(Interruption::Dname(dname.clone()));
            }
        }
        None
    }

    /// The wildcard owner `*.<closest encloser>` that would match `name`
    /// (RFC 4592 §3.3.1), if the zone has one. Call only for names that do not exist.
    pub(super) fn wildcard_for(&self, name: &Name) -> Option<&[Record]> {
        let apex_depth = label_count(&self.origin);
        let closest_encloser = (apex_depth..label_count(name))
            .rev()
            .map(|d| name.trim_to(d))
            .find(|ancestor| self.exists(ancestor))?;
        let source = closest_encloser.prepend_label("*").ok()?;
        self.node(&source)
    }

    /// A and AAAA records this zone holds for the given name-server names:
    /// glue for a referral, or additional data for an NS answer.
    pub(super) fn addresses_of(&self, ns_records: &[Record]) -> Vec<Record> {
        let mut out = Vec::new();
        for ns in ns_records {
            let RData::NS(target) = &ns.data else {
                continue;
            };
            if !self.contains(&target.0) {
                continue;
            }
            out.extend(self.rrset(&target.0, RecordType::A));
            out.extend(self.rrset(&target.0, RecordType::AAAA));
        }
        out
    }
}

/// Turns a parsed stand-in record back into the DNAME it was written as.
fn restore_dname(record: Record) -> Record {
    match &record.data {
        RData::ANAME(target) if record.record_type() == dname::STAND_IN => {
            let mut restored = dname::dname_record(record.name.clone(), record.ttl, &target.0);
            restored.dns_class = record.dns_class;
            restored
        }
        _ => record,
    }
}

/// The number of labels in `name`, counting a leading `*`
/// (unlike `Name::num_labels`).
pub(super) fn label_count(name: &Name) -> usize {
    name.iter().count()
}

/// `name` marked fully qualified, so that it compares equal to names read
/// from the wire.
pub(super) fn fqdn(mut name: Name) -> Name {
    name.set_fqdn(true);
    name
}
