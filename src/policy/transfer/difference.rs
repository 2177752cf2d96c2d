//! The net effect of an incremental transfer's sequences on a held zone.
//!
//! RFC 1995 §4 sends a list of differences, oldest first, each "deleting
//! RRs" of one version and "adding RRs" to make the next; the old and new
//! SOA open each half. Applied in order, one record at a time, to a copy
//! of millions of records, each sequence would cost a pass over the copy.
//! So the sequences are folded into one [`Difference`] as they arrive
//! (its size is that of the changes, not the zone), and the result is
//! applied in two passes: one that checks every deleted record is held,
//! and one that removes and appends. Until the check passes, the held
//! copy is not touched: a difference that does not fit it leaves it as it
//! was, and the caller falls back to a full transfer (as BIND and Unbound
//! do, RFC 1995 §4 "the client should ... AXFR").
//!
//! Records are equal when name, class, type and data are, case aside and
//! TTL aside (RFC 2136 §1.1.1, hickory's `Record` equality): a TTL change
//! is a deletion and an addition of the "same" record, and the addition's
//! TTL wins. The SOA is a record like any other here: each sequence's old
//! SOA deletes the current one and its new SOA is added, so a sequence
//! that does not start from the version held fails the check.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Why a difference does not apply to the held copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistent {
    /// A sequence deletes a record that is not there (never was, or an
    /// earlier sequence deleted it): the primary's history and our copy
    /// have parted.
    #[error("the difference deletes {name} {rtype}, which the held copy does not hold")]
    Absent { name: Name, rtype: RecordType },
    /// The first sequence does not start from the version held.
    #[error("the difference starts from serial {from}, the held copy has {held}")]
    FromSerial { from: u32, held: u32 },
    /// A sequence's old SOA is not the version the previous one made.
    #[error("a sequence starts from serial {from} after one that made {made}")]
    Gap { from: u32, made: u32 },
}

/// What a record is compared by: name, class and data (the type is in the
/// data). Implemented by `Record`, so a held record can be looked up in a
/// set of owned ones without a clone.
trait Identity {
    fn identity(&self) -> (&Name, DNSClass, &RData);
}

impl Identity for Record {
    fn identity(&self) -> (&Name, DNSClass, &RData) {
        (&self.name, self.dns_class, &self.data)
    }
}

impl Hash for dyn Identity + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Name and RData hash case-insensitively, as they compare.
        self.identity().hash(state);
    }
}

impl PartialEq for dyn Identity + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl Eq for dyn Identity + '_ {}

/// A record keyed by its identity, TTL aside.
#[derive(Debug, Clone)]
struct Rr(Record);

impl<'a> Borrow<dyn Identity + 'a> for Rr {
    fn borrow(&self) -> &(dyn Identity + 'a) {
        &self.0
    }
}

impl Hash for Rr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Borrow::<dyn Identity>::borrow(self).hash(state);
    }
}

impl PartialEq for Rr {
    fn eq(&self, other: &Self) -> bool {
        Borrow::<dyn Identity>::borrow(self) == Borrow::<dyn Identity>::borrow(other)
    }
}

impl Eq for Rr {}

/// What the difference does to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A held record goes.
    Delete,
    /// A record comes; the number orders the additions.
    Add(u64),
    /// A held record goes and comes back (a TTL change, or deleted and
    /// re-added by a later sequence).
    Replace(u64),
}

impl Change {
    /// Whether the held copy must hold the record.
    fn needs_held(self) -> bool {
        matches!(self, Change::Delete | Change::Replace(_))
    }
}

/// One record's change, and whether the held copy was seen to hold it.
#[derive(Debug)]
struct Entry {
    change: Change,
    found: bool,
}

/// The net change of one or more RFC 1995 sequences: records the held
/// copy must lose, and records it gains (with the order they came in).
/// One map, so that applying it looks each held record up once.
#[derive(Debug, Default)]
pub struct Difference {
    changes: HashMap<Rr, Entry, foldhash::fast::RandomState>,
    next: u64,
}

impl Difference {
    /// Deletes `record`: one added by an earlier sequence goes again,
    /// otherwise a held one must go.
    pub fn delete(&mut self, record: Record) -> Result<(), Inconsistent> {
        let rr = Rr(record);
        let change = match self.changes.get(&rr).map(|e| e.change) {
            None => Some(Change::Delete),
            Some(Change::Add(_)) => None,
            Some(Change::Replace(_)) => Some(Change::Delete),
            Some(Change::Delete) => {
                return Err(Inconsistent::Absent {
                    name: rr.0.name.clone(),
                    rtype: rr.0.record_type(),
                });
            }
        };
        self.changes.remove(&rr);
        if let Some(change) = change {
            self.changes.insert(
                rr,
                Entry {
                    change,
                    found: false,
                },
            );
        }
        Ok(())
    }

    /// Adds `record`; adding one already there replaces it (its TTL).
    pub fn add(&mut self, record: Record) {
        let n = self.next;
        self.next += 1;
        let rr = Rr(record);
        let change = match self.changes.get(&rr).map(|e| e.change) {
            None | Some(Change::Add(_)) => Change::Add(n),
            Some(Change::Delete | Change::Replace(_)) => Change::Replace(n),
        };
        // `insert` keeps the old key: take it out so the new TTL is kept.
        self.changes.remove(&rr);
        self.changes.insert(
            rr,
            Entry {
                change,
                found: false,
            },
        );
    }

    /// Applies the difference to `zone`, or leaves it untouched and says
    /// why not. A held record equal to an added one is replaced by it.
    pub fn apply(mut self, zone: &mut Vec<Record>) -> Result<(), Inconsistent> {
        // Pass one: what goes, and whether every deletion finds its record.
        let mut gone = Vec::new();
        for (i, r) in zone.iter().enumerate() {
            if let Some(entry) = self.changes.get_mut(r as &dyn Identity) {
                entry.found = true;
                gone.push(i);
            }
        }
        if let Some((missing, _)) = self
            .changes
            .iter()
            .find(|(_, e)| e.change.needs_held() && !e.found)
        {
            return Err(Inconsistent::Absent {
                name: missing.0.name.clone(),
                rtype: missing.0.record_type(),
            });
        }
        // Pass two: remove, then append in arrival order.
        let mut gone = gone.into_iter().peekable();
        let mut i = 0;
        zone.retain(|_| {
            let keep = gone.peek() != Some(&i);
            if !keep {
                gone.next();
            }
            i += 1;
            keep
        });
        let mut added: Vec<(u64, Record)> = self
            .changes
            .into_iter()
            .filter_map(|(rr, e)| match e.change {
                Change::Add(n) | Change::Replace(n) => Some((n, rr.0)),
                Change::Delete => None,
            })
            .collect();
        added.sort_unstable_by_key(|(n, _)| *n);
        zone.extend(added.into_iter().map(|(_, r)| r));
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, CNAME, SOA};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("a literal name")
    }

    fn a(owner: &str, ttl: u32, last: u8) -> Record {
        Record::from_rdata(name(owner), ttl, RData::A(A::new(192, 0, 2, last)))
    }

    fn cname(owner: &str, target: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name(target))))
    }

    pub(crate) fn soa(serial: u32) -> Record {
        Record::from_rdata(
            name("rpz.test."),
            300,
            RData::SOA(SOA::new(
                name("ns.rpz.test."),
                name("hostmaster.rpz.test."),
                serial,
                3600,
                600,
                86400,
                60,
            )),
        )
    }

    fn zone() -> Vec<Record> {
        vec![
            soa(1),
            cname("bad.example.rpz.test.", "."),
            a("ns.rpz.test.", 300, 53),
        ]
    }

    fn sorted(mut v: Vec<Record>) -> Vec<String> {
        let mut out: Vec<String> = v.drain(..).map(|r| r.to_string()).collect();
        out.sort();
        out
    }

    #[test]
    fn one_sequence_removes_and_adds_records() {
        let mut d = Difference::default();
        d.delete(soa(1)).expect("held");
        d.delete(cname("bad.example.rpz.test.", ".")).expect("held");
        d.add(soa(2));
        d.add(cname("worse.example.rpz.test.", "*."));
        let mut z = zone();
        d.apply(&mut z).expect("applies");
        assert_eq!(
            sorted(z),
            sorted(vec![
                soa(2),
                a("ns.rpz.test.", 300, 53),
                cname("worse.example.rpz.test.", "*."),
            ])
        );
    }

    #[test]
    fn sequences_apply_in_order_so_a_later_one_can_undo_an_earlier_one() {
        let mut d = Difference::default();
        // 1 → 2: add worse; 2 → 3: delete worse again and delete bad.
        d.delete(soa(1)).expect("held");
        d.add(soa(2));
        d.add(cname("worse.example.rpz.test.", "."));
        d.delete(soa(2)).expect("added by the first sequence");
        d.delete(cname("worse.example.rpz.test.", "."))
            .expect("added by the first sequence");
        d.delete(cname("bad.example.rpz.test.", ".")).expect("held");
        d.add(soa(3));
        let mut z = zone();
        d.apply(&mut z).expect("applies");
        assert_eq!(sorted(z), sorted(vec![soa(3), a("ns.rpz.test.", 300, 53)]));
    }

    #[test]
    fn a_record_deleted_and_added_again_keeps_the_new_ttl() {
        let mut d = Difference::default();
        d.delete(a("ns.rpz.test.", 300, 53)).expect("held");
        d.add(a("ns.rpz.test.", 60, 53));
        let mut z = zone();
        d.apply(&mut z).expect("applies");
        let ns: Vec<u32> = z
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .map(|r| r.ttl)
            .collect();
        assert_eq!(ns, [60]);
    }

    #[test]
    fn deleting_a_record_the_copy_does_not_hold_leaves_the_copy_untouched() {
        let mut d = Difference::default();
        d.delete(soa(1)).expect("held");
        d.delete(cname("never.example.rpz.test.", "."))
            .expect("checked when applied");
        d.add(soa(2));
        let mut z = zone();
        let err = d.apply(&mut z).expect_err("the record is not held");
        assert_eq!(
            err,
            Inconsistent::Absent {
                name: name("never.example.rpz.test."),
                rtype: RecordType::CNAME
            }
        );
        assert_eq!(sorted(z), sorted(zone()));
    }

    #[test]
    fn deleting_the_same_record_twice_is_refused_at_once() {
        let mut d = Difference::default();
        d.delete(cname("bad.example.rpz.test.", ".")).expect("held");
        assert!(d.delete(cname("bad.example.rpz.test.", ".")).is_err());
    }

    #[test]
    fn records_compare_without_case_as_dns_names_do() {
        let mut d = Difference::default();
        d.delete(cname("BAD.Example.rpz.test.", ".")).expect("held");
        let mut z = zone();
        d.apply(&mut z).expect("applies");
        assert_eq!(z.len(), 2);
    }

    #[test]
    fn a_deletion_from_an_older_soa_does_not_apply() {
        let mut d = Difference::default();
        d.delete(soa(7)).expect("checked when applied");
        d.add(soa(8));
        let mut z = zone();
        assert!(d.apply(&mut z).is_err(), "the copy holds serial 1, not 7");
        assert_eq!(sorted(z), sorted(zone()));
    }
}
