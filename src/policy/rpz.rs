//! Response policy zones: QNAME triggers and their actions, as BIND and
//! Unbound implement the RPZ draft (draft-vixie-dnsop-dns-rpz-00 §4, §5).
//!
//! An RPZ is a zone whose owner names, relative to its origin, are
//! triggers: `evil.example.block.rpz.` matches the query name
//! `evil.example.`, and `*.evil.example.block.rpz.` every name below it
//! (not `evil.example.` itself). The records at a trigger are the action:
//!
//! | RPZ record                | action                                   |
//! |---------------------------|------------------------------------------|
//! | `CNAME .`                 | NXDOMAIN                                 |
//! | `CNAME *.`                | NODATA                                   |
//! | `CNAME rpz-passthru.`     | PASSTHRU: answer as if no policy applied |
//! | `CNAME rpz-drop.`         | DROP: send nothing                       |
//! | `CNAME rpz-tcp-only.`     | TC=1 over UDP, normal answer over TCP    |
//! | any other RRset           | local data (a CNAME is followed)         |
//!
//! An exact trigger beats a wildcard, and a longer wildcard beats a
//! shorter one (draft §5.5 "the longest match").
//!
//! # The table
//! A feed of a million names has to load in a few hundred milliseconds
//! and stay small, and a query the policy does not touch has to pay almost
//! nothing. So [`Rules`] holds no `Name` or `Record` per rule: every
//! trigger is its lower-cased wire name in one byte arena, followed by one
//! action byte; two open-addressing tables of `u32` arena offsets (exact
//! and wildcard) index it, each slot tagged with 32 bits of the name's
//! hash so that a probe past other names' slots never reads the arena.
//! A 128-bit mask per table records which label
//! counts have rules, so a lookup probes only the suffixes of the query
//! name that can match: a cached `www.example.com.` against a feed whose
//! rules are all 2 and 3 labels deep costs one exact probe and at most
//! two wildcard probes, and none at all when the depths do not occur.

use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};

use super::zonefile::{self, Line, Tokens};
use crate::config::{RpzConfig, RpzEde};

/// What a trigger does (draft §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `CNAME .`: NXDOMAIN.
    Nxdomain,
    /// `CNAME *.`: NOERROR with no records.
    Nodata,
    /// `CNAME rpz-passthru.`: no policy for this name (later zones included).
    Passthru,
    /// `CNAME rpz-drop.`: no response at all.
    Drop,
    /// `CNAME rpz-tcp-only.`: TC=1 over UDP; over TCP, answered as usual.
    TcpOnly,
    /// Any other RRset: answered from the rule's records (index into
    /// [`Rules::local_data`]).
    LocalData(u32),
}

impl Action {
    /// The `action` label of `taproot_policy_hits_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Nxdomain => "nxdomain",
            Action::Nodata => "nodata",
            Action::Passthru => "passthru",
            Action::Drop => "drop",
            Action::TcpOnly => "tcp_only",
            Action::LocalData(_) => "local_data",
        }
    }

    fn tag(self) -> u8 {
        match self {
            Action::Nxdomain => 0,
            Action::Nodata => 1,
            Action::Passthru => 2,
            Action::Drop => 3,
            Action::TcpOnly => 4,
            Action::LocalData(_) => 5,
        }
    }
}

/// A rule that cannot be built; the caller adds the file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

/// The slot value of an empty index slot.
const EMPTY: u64 = u64::MAX;

/// An open-addressing set of arena offsets (linear probing, load ≤ 1/2).
/// A slot holds the offset in its low 32 bits and the top 32 bits of the
/// name's hash in its high ones, so a probe that meets another name's slot
/// moves on without reading the arena: a name no rule matches costs one
/// cache line of slots, not a cache miss into the arena per slot.
#[derive(Debug, Default)]
struct Index {
    slots: Vec<u64>,
    len: usize,
}

#[inline]
fn slot(hash: u64, off: u32) -> u64 {
    (hash & 0xffff_ffff_0000_0000) | u64::from(off)
}

/// A fixed seed: the table is built from operator data, not attacker
/// data, and a fixed hash keeps load times reproducible.
const HASHER: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x7a9c_0f3e_51d2_b846);

#[inline]
fn hash(name: &[u8]) -> u64 {
    HASHER.hash_one(name)
}

/// The name stored at `off` in the arena (a length byte, then the name).
#[inline]
fn name_at(arena: &[u8], off: u32) -> &[u8] {
    let off = off as usize;
    let len = arena[off] as usize;
    &arena[off + 1..off + 1 + len]
}

impl Index {
    fn with_capacity(n: usize) -> Index {
        let cap = (n.max(4) * 2).next_power_of_two();
        Index {
            slots: vec![EMPTY; cap],
            len: 0,
        }
    }

    #[inline]
    fn find(&self, arena: &[u8], name: &[u8]) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let h = hash(name);
        let tag = h & 0xffff_ffff_0000_0000;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            let off = s as u32;
            if s & 0xffff_ffff_0000_0000 == tag && name_at(arena, off) == name {
                return Some(off);
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `off` (whose name is not in the index yet).
    fn insert(&mut self, arena: &[u8], off: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(arena);
        }
        let mask = self.slots.len() - 1;
        let h = hash(name_at(arena, off));
        let mut i = h as usize & mask;
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot(h, off);
        self.len += 1;
    }

    fn grow(&mut self, arena: &[u8]) {
        let old = std::mem::take(&mut self.slots);
        let mut bigger = Index::with_capacity(old.len().max(4));
        for s in old.into_iter().filter(|&s| s != EMPTY) {
            bigger.insert(arena, s as u32);
        }
        *self = bigger;
    }

    fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8
    }
}

/// One RPZ zone's triggers and actions; see the module doc for the layout.
#[derive(Debug, Default)]
pub struct Rules {
    /// Per rule: name length, lower-cased wire name, action tag, and for
    /// local data a little-endian `u32` index into `local_data`.
    arena: Vec<u8>,
    exact: Index,
    wild: Index,
    /// Bit `d`: an exact trigger of `d` labels exists.
    exact_depths: u128,
    /// Bit `d`: a wildcard whose base (the name after `*.`) has `d` labels exists.
    wild_depths: u128,
    /// The records of local-data rules, owned by the trigger name.
    local_data: Vec<Vec<Record>>,
    /// Lines skipped because their trigger kind is not supported
    /// (rpz-ip, rpz-nsdname, rpz-nsip, rpz-client-ip).
    pub skipped: usize,
}

/// A trigger that matched, and what it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub action: Action,
    /// Whether a wildcard matched (local data is then owned by the query name).
    pub wildcard: bool,
}

/// Labels under an RPZ origin that start trigger kinds taproot does not
/// implement (response IP, NSDNAME, NSIP, client IP: draft §4.1–§4.4).
const UNSUPPORTED_TRIGGERS: [&[u8]; 4] = [b"rpz-ip", b"rpz-nsdname", b"rpz-nsip", b"rpz-client-ip"];

impl Rules {
    /// How many triggers are loaded.
    pub fn len(&self) -> usize {
        self.exact.len + self.wild.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes this table holds on the heap (local data not counted).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.exact.heap_bytes() + self.wild.heap_bytes()
    }

    /// The records of a local-data rule.
    pub fn local_data(&self, index: u32) -> &[Record] {
        self.local_data
            .get(index as usize)
            .map_or(&[][..], Vec::as_slice)
    }

    /// The rule for a query name: `lower` is its lower-cased wire form,
    /// `starts` the offset of each of its `labels` labels. Allocates nothing.
    #[inline]
    pub fn lookup(&self, lower: &[u8], starts: &[u8; 128], labels: usize) -> Option<Hit> {
        if labels < 128
            && self.exact_depths & (1u128 << labels) != 0
            && let Some(off) = self.exact.find(&self.arena, lower)
        {
            return Some(Hit {
                action: self.action_at(off),
                wildcard: false,
            });
        }
        // Bases strictly shorter than the name, longest first.
        let below = if labels >= 128 {
            u128::MAX
        } else {
            (1u128 << labels) - 1
        };
        let mut depths = self.wild_depths & below;
        while depths != 0 {
            let d = 127 - depths.leading_zeros() as usize;
            depths &= !(1u128 << d);
            let base = if d == 0 {
                &lower[lower.len().saturating_sub(1)..]
            } else {
                &lower[starts[labels - d] as usize..]
            };
            if let Some(off) = self.wild.find(&self.arena, base) {
                return Some(Hit {
                    action: self.action_at(off),
                    wildcard: true,
                });
            }
        }
        None
    }

    fn action_at(&self, off: u32) -> Action {
        let off = off as usize;
        let tag_at = off + 1 + self.arena[off] as usize;
        match self.arena[tag_at] {
            0 => Action::Nxdomain,
            1 => Action::Nodata,
            2 => Action::Passthru,
            3 => Action::Drop,
            4 => Action::TcpOnly,
            _ => {
                let b = &self.arena[tag_at + 1..tag_at + 5];
                Action::LocalData(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
        }
    }

    /// Adds one trigger (its owner's labels below the origin, lower-cased
    /// wire) with an action. A second special action for the same trigger
    /// is ignored (the first wins); local data for the same trigger joins
    /// one RRset list.
    fn add(&mut self, trigger: &[u8], action: Action, record: Option<Record>) {
        let (wildcard, body) = match trigger {
            [1, b'*', rest @ ..] => (true, rest),
            _ => (false, trigger),
        };
        // The trigger as an absolute name (a query name's wire form).
        let mut buf = [0u8; 256];
        let len = body.len().min(255);
        buf[..len].copy_from_slice(&body[..len]);
        let name = &buf[..len + 1];
        let index = if wildcard { &self.wild } else { &self.exact };
        if let Some(off) = index.find(&self.arena, name) {
            if let (Action::LocalData(i), Some(record)) = (self.action_at(off), record)
                && let Some(list) = self.local_data.get_mut(i as usize)
            {
                list.push(record);
            }
            return;
        }
        let action = match (action, record) {
            (Action::LocalData(_), Some(record)) => {
                self.local_data.push(vec![record]);
                Action::LocalData((self.local_data.len() - 1) as u32)
            }
            (action, _) => action,
        };
        let mut starts = [0u8; 128];
        let depth = zonefile::label_starts(name, &mut starts).unwrap_or(0);
        // Offsets are u32 (u32::MAX marks an empty slot): a 4 GiB arena is
        // some 150 million rules; past it, rules are skipped, not wrapped.
        let Some(off) = u32::try_from(self.arena.len())
            .ok()
            .filter(|&o| o < u32::MAX - 300)
        else {
            self.skipped += 1;
            return;
        };
        self.arena.push(name.len() as u8);
        self.arena.extend_from_slice(name);
        self.arena.push(action.tag());
        if let Action::LocalData(i) = action {
            self.arena.extend_from_slice(&i.to_le_bytes());
        }
        if wildcard {
            self.wild.insert(&self.arena, off);
            self.wild_depths |= 1u128 << depth.min(127);
        } else {
            self.exact.insert(&self.arena, off);
            self.exact_depths |= 1u128 << depth.min(127);
        }
    }

    /// Builds a zone's rules from RPZ zone-file text. `origin` is the
    /// zone's name (lower-cased wire); errors carry the line number.
    pub fn from_text(text: &str, origin: &[u8]) -> Result<Rules, (usize, RuleError)> {
        // A rule is about 25 bytes of text; size the tables once.
        let guess = text.len() / 25;
        let mut rules = Rules {
            arena: Vec::with_capacity(text.len()),
            exact: Index::with_capacity(guess),
            wild: Index::with_capacity(guess / 8),
            ..Rules::default()
        };
        let mut origin = origin.to_vec();
        let mut owner: Vec<u8> = Vec::with_capacity(256);
        let mut target: Vec<u8> = Vec::with_capacity(256);
        let mut default_ttl: Option<u32> = None;
        let zone_origin = origin.clone();
        let mut tokens = Tokens::new(text);
        let mut line = Line::new();
        loop {
            match tokens.next_into(&mut line) {
                Ok(true) => {}
                Ok(false) => break,
                Err((n, problem)) => return Err((n, RuleError(problem))),
            }
            let n = line.number;
            let fail = |problem: String| (n, RuleError(problem));
            let first = line.tokens[0];
            if first.starts_with('$') {
                match (first.to_ascii_uppercase().as_str(), line.tokens.get(1)) {
                    ("$ORIGIN", Some(name)) => {
                        let mut o = Vec::new();
                        zonefile::name_to_wire(name, &origin, &mut o).map_err(fail)?;
                        origin = o;
                    }
                    ("$TTL", Some(ttl)) => {
                        default_ttl = Some(
                            zonefile::parse_ttl(ttl)
                                .ok_or_else(|| fail(format!("{ttl:?} is not a TTL")))?,
                        );
                    }
                    ("$INCLUDE", _) => return Err(fail("$INCLUDE is not supported".into())),
                    _ => return Err(fail(format!("{first:?} is not a directive taproot knows"))),
                }
                continue;
            }
            let mut rest = &line.tokens[..];
            if !line.owner_omitted {
                owner.clear();
                zonefile::name_to_wire(rest[0], &origin, &mut owner).map_err(fail)?;
                rest = &rest[1..];
            } else if owner.is_empty() {
                return Err(fail("the first record has no owner name".into()));
            }
            let mut ttl = None;
            for _ in 0..2 {
                match rest.first() {
                    Some(t) if zonefile::looks_like_ttl(t) => {
                        ttl = Some(
                            zonefile::parse_ttl(t)
                                .ok_or_else(|| fail(format!("{t:?} is not a TTL")))?,
                        );
                        rest = &rest[1..];
                    }
                    Some(t) if t.eq_ignore_ascii_case("IN") => rest = &rest[1..],
                    Some(t) if is_other_class(t) => {
                        return Err(fail(format!("class {t} is not supported, only IN")));
                    }
                    _ => break,
                }
            }
            let Some((rtype, rdata)) = rest.split_first() else {
                return Err(fail("a record type is missing".into()));
            };
            let ttl = ttl.or(default_ttl).unwrap_or(300);
            let Some(trigger) = trigger_of(&owner, &zone_origin) else {
                return Err(fail(format!(
                    "the owner {} is outside the policy zone {}",
                    crate::wire::name_to_string(&owner),
                    crate::wire::name_to_string(&zone_origin)
                )));
            };
            if trigger.is_empty() || unsupported(trigger) {
                // The apex (SOA, NS) holds no rule; other trigger kinds are skipped.
                if !trigger.is_empty() {
                    rules.skipped += 1;
                }
                continue;
            }
            if rtype.eq_ignore_ascii_case("CNAME") {
                let [t] = rdata else {
                    return Err(fail("a CNAME has exactly one target".into()));
                };
                target.clear();
                zonefile::name_to_wire(t, &origin, &mut target).map_err(fail)?;
                let (action, record) = cname_action(&target, &owner, ttl).map_err(|e| fail(e.0))?;
                rules.add(trigger, action, record);
                continue;
            }
            let rtype_parsed: RecordType = rtype
                .to_ascii_uppercase()
                .parse()
                .map_err(|_| fail(format!("{rtype:?} is not a record type")))?;
            if let RecordType::Unknown(_) = rtype_parsed {
                return Err(fail(format!(
                    "{rtype:?} is not a record type taproot knows"
                )));
            }
            let text = rdata.join(" ");
            let data = RData::try_from_str(rtype_parsed, &text)
                .map_err(|e| fail(format!("bad {rtype} data {text:?}: {e}")))?;
            let record = Record::from_rdata(owner_name(&owner).map_err(fail)?, ttl, data);
            rules.add(trigger, Action::LocalData(0), Some(record));
        }
        Ok(rules)
    }

    /// Builds a zone's rules from records, with the checks the file gets.
    ///
    /// This is the entry point for zone transfers (`src/policy/transfer.rs`):
    /// `records` is the transferred zone as AXFR delivers it (absolute owner
    /// names at or below `origin`; the SOA and NS at the apex are not rules).
    /// Hand the result to [`RpzZone::replace_rules`].
    pub fn from_records(origin: &Name, records: &[Record]) -> Result<Rules, RuleError> {
        let zone_origin = lower_wire(origin);
        let mut rules = Rules {
            arena: Vec::with_capacity(records.len() * 24),
            exact: Index::with_capacity(records.len()),
            wild: Index::with_capacity(records.len() / 8),
            ..Rules::default()
        };
        for record in records {
            if record.dns_class != DNSClass::IN {
                return Err(RuleError(format!(
                    "{}: class {} is not supported, only IN",
                    record.name, record.dns_class
                )));
            }
            let owner = lower_wire(&record.name);
            let Some(trigger) = trigger_of(&owner, &zone_origin) else {
                return Err(RuleError(format!(
                    "the owner {} is outside the policy zone {origin}",
                    record.name
                )));
            };
            if trigger.is_empty() || unsupported(trigger) {
                if !trigger.is_empty() {
                    rules.skipped += 1;
                }
                continue;
            }
            match &record.data {
                RData::CNAME(CNAME(target)) => {
                    let target = lower_wire(target);
                    let (action, local) = cname_action(&target, &owner, record.ttl)?;
                    rules.add(trigger, action, local);
                }
                _ => {
                    let mut local = record.clone();
                    local.name = owner_name(&owner).map_err(RuleError)?;
                    rules.add(trigger, Action::LocalData(0), Some(local));
                }
            }
        }
        Ok(rules)
    }
}

fn is_other_class(t: &str) -> bool {
    ["CH", "HS", "CS", "ANY"]
        .iter()
        .any(|c| t.eq_ignore_ascii_case(c))
}

/// The owner's labels above `origin` (with their own length bytes, no
/// root): `Some(empty)` for the apex, `None` outside the zone.
pub(super) fn trigger_of<'o>(owner: &'o [u8], origin: &[u8]) -> Option<&'o [u8]> {
    if owner.len() < origin.len() {
        return None;
    }
    let cut = owner.len() - origin.len();
    if &owner[cut..] != origin {
        return None;
    }
    // `cut` must fall on a label boundary.
    let mut at = 0;
    while at < cut {
        at += 1 + owner[at] as usize;
    }
    (at == cut).then(|| &owner[..cut])
}

/// Whether a trigger's last label (nearest the origin) names a trigger
/// kind taproot skips.
fn unsupported(trigger: &[u8]) -> bool {
    let mut at = 0;
    let mut last = &trigger[0..0];
    while at < trigger.len() {
        let len = trigger[at] as usize;
        last = &trigger[at + 1..(at + 1 + len).min(trigger.len())];
        at += 1 + len;
    }
    UNSUPPORTED_TRIGGERS.contains(&last)
}

/// Reads what a CNAME at a trigger means (draft §5.1–§5.6); a CNAME that
/// is none of the special targets is local data, owned by `owner`.
fn cname_action(
    target: &[u8],
    owner: &[u8],
    ttl: u32,
) -> Result<(Action, Option<Record>), RuleError> {
    Ok(match target {
        [0] => (Action::Nxdomain, None),
        [1, b'*', 0] => (Action::Nodata, None),
        b"\x0crpz-passthru\x00" => (Action::Passthru, None),
        b"\x08rpz-drop\x00" => (Action::Drop, None),
        b"\x0crpz-tcp-only\x00" => (Action::TcpOnly, None),
        [1, b'*', ..] => {
            return Err(RuleError(
                "a CNAME to a wildcard (rewriting to *.name) is not supported".into(),
            ));
        }
        _ => {
            let target = owner_name(target).map_err(RuleError)?;
            let record = Record::from_rdata(
                owner_name(owner).map_err(RuleError)?,
                ttl,
                RData::CNAME(CNAME(target)),
            );
            (Action::LocalData(0), Some(record))
        }
    })
}

/// A name's lower-cased, uncompressed wire form.
pub fn lower_wire(name: &Name) -> Vec<u8> {
    let mut name = name.to_lowercase();
    name.set_fqdn(true);
    name.to_bytes().unwrap_or_else(|_| vec![0])
}

fn owner_name(wire: &[u8]) -> Result<Name, String> {
    Name::read(&mut BinDecoder::new(wire)).map_err(|e| format!("bad name: {e}"))
}

/// The source of a zone's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(std::path::PathBuf),
    /// Transferred from this primary (`src/policy/transfer.rs`); no rules
    /// until the first transfer.
    Primary(std::net::SocketAddr),
}

/// One `[[rpz]]`: its name, its EDE, and its rules behind an `ArcSwap`
/// so that a transfer replaces them while queries read the old ones.
#[derive(Debug)]
pub struct RpzZone {
    /// The origin as written, for logs, metrics and the EDE text.
    pub name: Arc<str>,
    /// The origin, lower-cased wire.
    pub origin: Vec<u8>,
    pub ede: RpzEde,
    pub source: Source,
    rules: ArcSwap<Rules>,
    /// The policy's generation counter, bumped when the rules change.
    pub(super) generation: Arc<std::sync::atomic::AtomicU64>,
}

impl RpzZone {
    /// Loads a `[[rpz]]` (reading its file, if it has one). `index` is its
    /// position in the config, for the error's key.
    pub fn load(
        index: usize,
        config: &RpzConfig,
        generation: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<RpzZone, super::PolicyError> {
        let origin_name = Name::from_ascii(&config.zone).map_err(|e| super::PolicyError::Rpz {
            index,
            zone: config.zone.clone(),
            problem: format!("{:?} is not a domain name: {e}", config.zone),
        })?;
        let origin = lower_wire(&origin_name);
        let (source, rules) = if config.file.is_empty() {
            let addr = config
                .primary
                .parse()
                .map_err(|_| super::PolicyError::Rpz {
                    index,
                    zone: config.zone.clone(),
                    problem: format!("{:?} is not an address:port", config.primary),
                })?;
            (Source::Primary(addr), Rules::default())
        } else {
            let path = Path::new(&config.file);
            let text = std::fs::read_to_string(path).map_err(|e| super::PolicyError::RpzFile {
                index,
                zone: config.zone.clone(),
                path: path.to_path_buf(),
                line: None,
                problem: format!("cannot read it: {e}"),
            })?;
            let rules = Rules::from_text(&text, &origin).map_err(|(line, e)| {
                super::PolicyError::RpzFile {
                    index,
                    zone: config.zone.clone(),
                    path: path.to_path_buf(),
                    line: Some(line),
                    problem: e.0,
                }
            })?;
            (Source::File(path.to_path_buf()), rules)
        };
        Ok(RpzZone {
            name: config.zone.trim_end_matches('.').to_string().into(),
            origin,
            ede: config.ede,
            source,
            rules: ArcSwap::from_pointee(rules),
            generation,
        })
    }

    /// The rules in force now.
    #[inline]
    pub fn rules(&self) -> arc_swap::Guard<Arc<Rules>> {
        self.rules.load()
    }

    /// Replaces this zone's rules in the running policy, without a reload.
    ///
    /// For the zone transfer (`src/policy/transfer.rs`): build the rules
    /// with [`Rules::from_records`] and hand them here. Queries see the new
    /// rules at once, cached names included, because the policy is
    /// consulted before the answer cache.
    pub fn replace_rules(&self, rules: Rules) {
        self.rules.store(Arc::new(rules));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Shares the rules of `other` (a reload keeps what was transferred).
    pub(super) fn adopt_rules(&self, other: &RpzZone) {
        self.rules.store(other.rules.load_full());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &[u8] = b"\x05block\x03rpz\x00";

    fn lookup(rules: &Rules, name: &str) -> Option<Hit> {
        let mut wire = Vec::new();
        zonefile::name_to_wire(name, b"\x00", &mut wire).expect("a name");
        let mut starts = [0u8; 128];
        let n = zonefile::label_starts(&wire, &mut starts).expect("labels");
        rules.lookup(&wire, &starts, n)
    }

    fn action(rules: &Rules, name: &str) -> Option<Action> {
        lookup(rules, name).map(|h| h.action)
    }

    const FILE: &str = "$TTL 60
@ SOA ns.block.rpz. h.block.rpz. ( 1 3600 600 86400 60 )
  NS ns.block.rpz.
evil.example CNAME .
*.evil.example CNAME .
nodata.example.block.rpz. 60 IN CNAME *.
pass.evil.example CNAME rpz-passthru.
drop.example CNAME rpz-drop.
tcp.example CNAME rpz-tcp-only.
local.example A 192.0.2.1
              A 192.0.2.2
              AAAA 2001:db8::1
rewrite.example CNAME www.example.co.kr.
32.1.2.0.192.rpz-ip CNAME .
";

    #[test]
    fn each_action_is_read_from_its_cname_target() {
        let rules = Rules::from_text(FILE, ORIGIN).expect("loads");
        assert_eq!(action(&rules, "evil.example."), Some(Action::Nxdomain));
        assert_eq!(action(&rules, "nodata.example."), Some(Action::Nodata));
        assert_eq!(action(&rules, "pass.evil.example."), Some(Action::Passthru));
        assert_eq!(action(&rules, "drop.example."), Some(Action::Drop));
        assert_eq!(action(&rules, "tcp.example."), Some(Action::TcpOnly));
        assert!(matches!(
            action(&rules, "local.example."),
            Some(Action::LocalData(_))
        ));
        assert_eq!(action(&rules, "example."), None);
        assert_eq!(action(&rules, "other.example."), None);
        assert_eq!(rules.skipped, 1, "the rpz-ip trigger is skipped");
    }

    #[test]
    fn local_data_of_one_trigger_is_one_list_owned_by_the_trigger() {
        let rules = Rules::from_text(FILE, ORIGIN).expect("loads");
        let Some(Action::LocalData(i)) = action(&rules, "local.example.") else {
            panic!("local data");
        };
        let data = rules.local_data(i);
        assert_eq!(data.len(), 3);
        assert!(
            data.iter()
                .all(|r| r.name.to_ascii() == "local.example.block.rpz.")
        );
    }

    #[test]
    fn a_wildcard_matches_below_its_base_but_not_the_base() {
        let rules = Rules::from_text("*.ads CNAME .\n", ORIGIN).expect("loads");
        assert_eq!(action(&rules, "x.ads."), Some(Action::Nxdomain));
        assert_eq!(action(&rules, "a.b.c.ads."), Some(Action::Nxdomain));
        assert_eq!(action(&rules, "ads."), None);
        assert!(lookup(&rules, "x.ads.").is_some_and(|h| h.wildcard));
    }

    #[test]
    fn an_exact_trigger_beats_a_wildcard_and_a_longer_wildcard_a_shorter() {
        let text = "*.example CNAME .\nwww.example CNAME *.\n*.sub.example CNAME rpz-drop.\n";
        let rules = Rules::from_text(text, ORIGIN).expect("loads");
        assert_eq!(action(&rules, "www.example."), Some(Action::Nodata));
        assert_eq!(action(&rules, "a.sub.example."), Some(Action::Drop));
        assert_eq!(action(&rules, "a.example."), Some(Action::Nxdomain));
    }

    #[test]
    fn case_in_the_file_does_not_matter() {
        let rules = Rules::from_text("EVIL.Example CNAME .\n", ORIGIN).expect("loads");
        assert_eq!(action(&rules, "evil.example."), Some(Action::Nxdomain));
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        for (text, line) in [
            ("ok CNAME .\nbad CNAME\n", 2),
            ("ok CNAME .\n\nbad NOSUCHTYPE 1\n", 3),
            ("a A 999.1.1.1\n", 1),
            ("a.example.com. CNAME .\n", 1),
            ("x CH TXT \"a\"\n", 1),
            ("$INCLUDE other\n", 1),
            ("a ( CNAME .\n", 1),
        ] {
            let Err((n, e)) = Rules::from_text(text, ORIGIN) else {
                panic!("{text:?} loads");
            };
            assert_eq!(n, line, "{text:?}: {e:?}");
        }
    }

    #[test]
    fn records_load_like_the_file() {
        let origin = Name::from_ascii("block.rpz.").unwrap();
        let records = vec![
            Record::from_rdata(
                Name::from_ascii("block.rpz.").unwrap(),
                60,
                RData::NS(hickory_proto::rr::rdata::NS(
                    Name::from_ascii("ns.block.rpz.").unwrap(),
                )),
            ),
            Record::from_rdata(
                Name::from_ascii("Evil.Example.block.rpz.").unwrap(),
                60,
                RData::CNAME(CNAME(Name::root())),
            ),
            Record::from_rdata(
                Name::from_ascii("*.ads.block.rpz.").unwrap(),
                60,
                RData::CNAME(CNAME(Name::from_ascii("rpz-drop.").unwrap())),
            ),
        ];
        let rules = Rules::from_records(&origin, &records).expect("loads");
        assert_eq!(rules.len(), 2);
        assert_eq!(action(&rules, "evil.example."), Some(Action::Nxdomain));
        assert_eq!(action(&rules, "x.ads."), Some(Action::Drop));
        let outside = vec![Record::from_rdata(
            Name::from_ascii("evil.example.").unwrap(),
            60,
            RData::CNAME(CNAME(Name::root())),
        )];
        assert!(Rules::from_records(&origin, &outside).is_err());
    }

    /// Property: for random sets of exact and wildcard triggers, the table
    /// answers what a plain scan of the rules answers.
    #[test]
    fn lookups_agree_with_a_scan_of_the_rules() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let labels = ["a", "b", "c", "d"];
        for _ in 0..50 {
            let mut text = String::new();
            let mut rules_list: Vec<(bool, String, bool)> = Vec::new();
            for _ in 0..(next() % 30) {
                let depth = 1 + next() % 3;
                let name: Vec<&str> = (0..depth).map(|_| labels[(next() % 4) as usize]).collect();
                let name = name.join(".");
                let wild = next() % 3 == 0;
                let nx = next() % 2 == 0;
                let owner = if wild {
                    format!("*.{name}")
                } else {
                    name.clone()
                };
                if !rules_list.iter().any(|(w, n, _)| *w == wild && *n == name) {
                    rules_list.push((wild, name, nx));
                }
                text.push_str(&format!("{owner} CNAME {}\n", if nx { "." } else { "*." }));
            }
            let rules = Rules::from_text(&text, ORIGIN).expect("loads");
            for _ in 0..100 {
                let depth = 1 + next() % 5;
                let q: Vec<&str> = (0..depth).map(|_| labels[(next() % 4) as usize]).collect();
                let q = q.join(".");
                let exact = rules_list.iter().find(|(w, n, _)| !w && *n == q);
                let wild = rules_list
                    .iter()
                    .filter(|(w, n, _)| *w && q.ends_with(&format!(".{n}")))
                    .max_by_key(|(_, n, _)| n.len());
                let want = exact.or(wild).map(|(_, _, nx)| {
                    if *nx {
                        Action::Nxdomain
                    } else {
                        Action::Nodata
                    }
                });
                assert_eq!(action(&rules, &format!("{q}.")), want, "{q} in\n{text}");
            }
        }
    }
}
