//! Reading a transfer's records: what the reply is, and where it ends.
//!
//! No I/O here: the session feeds the answer records of each message in
//! order, and [`ReplyReader`] says when the closing SOA has come and what
//! the reply was, so the rules are tested on constructed record lists.
//!
//! ```text
//! AXFR (RFC 5936 §2.2):  SOA(S)  records…  SOA(S)
//! IXFR (RFC 1995 §4):    SOA(S)                                   our serial is current
//!                        SOA(S)  records…  SOA(S)                 a full zone, "AXFR-style"
//!                        SOA(S) [SOA(old) deleted… SOA(new) added…]+ SOA(S)
//! ```
//!
//! The second record tells IXFR replies apart: an SOA opens the first
//! sequence, anything else is the zone's content.

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, SerialNumber};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::TransferError;
use super::difference::{Difference, Inconsistent};

/// What a complete transfer reply said.
#[derive(Debug)]
pub enum Reply {
    /// A single SOA whose serial is not newer than ours (RFC 1995 §4).
    Current,
    /// The whole zone, its SOA first and once.
    Full { serial: u32, records: Vec<Record> },
    /// The net change from our serial to `serial`.
    Incremental { serial: u32, difference: Difference },
}

enum State {
    /// Nothing read.
    Start,
    /// The opening SOA only (boxed: the other states are a few words).
    Opened {
        soa: Box<Record>,
    },
    /// A full zone, records so far (the opening SOA first).
    Full {
        records: Vec<Record>,
    },
    /// Inside a sequence's deletions.
    Deleting {
        difference: Difference,
    },
    /// Inside a sequence's additions; `to` is its new serial.
    Adding {
        difference: Difference,
        to: u32,
    },
    Done(Reply),
    /// After an error: nothing more is read.
    Failed,
}

/// Reads one transfer's records in order.
pub struct ReplyReader {
    zone: Name,
    /// Our serial when we asked for IXFR; `None` for AXFR.
    ours: Option<u32>,
    /// The serial of the opening SOA.
    serial: u32,
    state: State,
    records: u64,
    max_records: u64,
}

/// The serial of `record` when it is `zone`'s SOA.
pub fn soa_serial(zone: &Name, record: &Record) -> Option<u32> {
    match &record.data {
        RData::SOA(SOA { serial, .. }) if record.name == *zone => Some(*serial),
        _ => None,
    }
}

/// RFC 1982 §3.2: whether serial `a` is newer than `b`. Serials exactly
/// half the space apart are not comparable, and not newer.
pub fn newer(a: u32, b: u32) -> bool {
    SerialNumber::new(a) > SerialNumber::new(b)
}

impl ReplyReader {
    /// A reader for `zone`'s transfer; `ours` is the serial sent in an
    /// IXFR query. At most `max_records` answer records are taken.
    pub fn new(zone: Name, ours: Option<u32>, max_records: u64) -> ReplyReader {
        ReplyReader {
            zone,
            ours,
            serial: 0,
            state: State::Start,
            records: 0,
            max_records,
        }
    }

    /// Whether the closing SOA has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// Takes the next answer record.
    pub fn feed(&mut self, record: Record) -> Result<(), TransferError> {
        let result = self.step(record);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn step(&mut self, record: Record) -> Result<(), TransferError> {
        self.records += 1;
        if self.records > self.max_records {
            return Err(TransferError::TooLarge {
                what: "records",
                limit: self.max_records,
            });
        }
        if !self.zone.zone_of(&record.name) {
            return Err(TransferError::OutOfZone { name: record.name });
        }
        if record.dns_class != DNSClass::IN {
            return Err(TransferError::Class(record.dns_class));
        }
        let serial = soa_serial(&self.zone, &record);
        if record.record_type() == RecordType::SOA && serial.is_none() {
            // An SOA at a name below the apex: not a zone's content.
            return Err(TransferError::OutOfZone { name: record.name });
        }
        self.state = match (std::mem::replace(&mut self.state, State::Failed), serial) {
            (State::Start, Some(s)) => {
                self.serial = s;
                State::Opened {
                    soa: Box::new(record),
                }
            }
            (State::Start, None) => return Err(TransferError::NoOpeningSoa),
            (State::Opened { soa }, None) => State::Full {
                records: vec![*soa, record],
            },
            (State::Opened { soa }, Some(s)) => match self.ours {
                // An SOA-only zone: the opening SOA again.
                Some(_) | None if s == self.serial && soa.data == record.data => {
                    State::Done(Reply::Full {
                        serial: s,
                        records: vec![*soa],
                    })
                }
                None => {
                    return Err(TransferError::SerialMismatch {
                        opened: self.serial,
                        closed: s,
                    });
                }
                Some(held) if s != held => {
                    return Err(Inconsistent::FromSerial { from: s, held }.into());
                }
                Some(_) => {
                    let mut difference = Difference::default();
                    difference.delete(record)?;
                    State::Deleting { difference }
                }
            },
            (State::Full { mut records }, None) => {
                records.push(record);
                State::Full { records }
            }
            (State::Full { records }, Some(s)) => {
                if s != self.serial {
                    return Err(TransferError::SerialMismatch {
                        opened: self.serial,
                        closed: s,
                    });
                }
                State::Done(Reply::Full { serial: s, records })
            }
            (State::Deleting { mut difference }, None) => {
                difference.delete(record)?;
                State::Deleting { difference }
            }
            (State::Deleting { mut difference }, Some(to)) => {
                difference.add(record);
                State::Adding { difference, to }
            }
            (State::Adding { mut difference, to }, None) => {
                difference.add(record);
                State::Adding { difference, to }
            }
            (State::Adding { difference, to }, Some(s)) if to == self.serial => {
                if s != self.serial {
                    return Err(TransferError::SerialMismatch {
                        opened: self.serial,
                        closed: s,
                    });
                }
                State::Done(Reply::Incremental {
                    serial: s,
                    difference,
                })
            }
            (State::Adding { mut difference, to }, Some(s)) => {
                if s != to {
                    return Err(Inconsistent::Gap { from: s, made: to }.into());
                }
                difference.delete(record)?;
                State::Deleting { difference }
            }
            (State::Done(_), _) => return Err(TransferError::AfterClosingSoa),
            (State::Failed, _) => return Err(TransferError::AfterClosingSoa),
        };
        Ok(())
    }

    /// Called after each message's records: an IXFR reply whose first
    /// message is one SOA not newer than ours is complete (RFC 1995 §4,
    /// "the response will only contain a single SOA").
    pub fn end_of_message(&mut self) {
        if let (State::Opened { .. }, Some(ours)) = (&self.state, self.ours)
            && !newer(self.serial, ours)
        {
            self.state = State::Done(Reply::Current);
        }
    }

    /// The reply, once its closing SOA was read; called early (the
    /// primary closed the connection), why there is none.
    pub fn finish(self) -> Result<Reply, TransferError> {
        match self.state {
            State::Done(reply) => Ok(reply),
            // RFC 1995 §4 has a server that cannot send the difference
            // answer with its SOA alone (over UDP: "use TCP"); some do so
            // over TCP too. Only a full transfer will do then.
            State::Opened { .. } if self.ours.is_some() => Err(TransferError::SoaOnly),
            _ => Err(TransferError::Incomplete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::transfer::difference::tests::soa;
    use hickory_proto::rr::rdata::{A, CNAME};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("a literal name")
    }

    fn zone() -> Name {
        name("rpz.test.")
    }

    fn cname(owner: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::CNAME(CNAME(name("."))))
    }

    fn ns_a() -> Record {
        Record::from_rdata(name("ns.rpz.test."), 300, RData::A(A::new(192, 0, 2, 53)))
    }

    /// Feeds `records` as one message and finishes.
    fn read(ours: Option<u32>, records: Vec<Record>) -> Result<Reply, TransferError> {
        let mut reader = ReplyReader::new(zone(), ours, 1000);
        for r in records {
            reader.feed(r)?;
        }
        reader.end_of_message();
        reader.finish()
    }

    fn held() -> Vec<Record> {
        vec![soa(1), cname("bad.example.rpz.test."), ns_a()]
    }

    fn names(records: &[Record]) -> Vec<String> {
        let mut v: Vec<String> = records.iter().map(|r| r.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn an_axfr_is_the_records_between_two_soas_with_the_soa_once() {
        let reply = read(None, vec![soa(5), ns_a(), cname("x.rpz.test."), soa(5)]);
        let Ok(Reply::Full { serial, records }) = reply else {
            panic!("a full zone: {reply:?}");
        };
        assert_eq!(serial, 5);
        assert_eq!(
            names(&records),
            names(&[soa(5), ns_a(), cname("x.rpz.test.")])
        );
    }

    #[test]
    fn an_ixfr_reply_of_two_sequences_applies_in_order() {
        let reply = read(
            Some(1),
            vec![
                soa(3),
                // 1 → 2: bad goes, worse comes.
                soa(1),
                cname("bad.example.rpz.test."),
                soa(2),
                cname("worse.example.rpz.test."),
                // 2 → 3: worse goes again, evil comes.
                soa(2),
                cname("worse.example.rpz.test."),
                soa(3),
                cname("evil.example.rpz.test."),
                soa(3),
            ],
        );
        let Ok(Reply::Incremental { serial, difference }) = reply else {
            panic!("incremental: {reply:?}");
        };
        assert_eq!(serial, 3);
        let mut zone = held();
        difference.apply(&mut zone).expect("applies");
        assert_eq!(
            names(&zone),
            names(&[soa(3), ns_a(), cname("evil.example.rpz.test.")])
        );
    }

    #[test]
    fn an_ixfr_reply_whose_second_record_is_not_an_soa_is_a_full_zone() {
        let reply = read(Some(1), vec![soa(2), ns_a(), soa(2)]);
        assert!(
            matches!(reply, Ok(Reply::Full { serial: 2, ref records }) if records.len() == 2),
            "{reply:?}"
        );
    }

    #[test]
    fn a_single_soa_with_our_serial_means_the_copy_is_current() {
        let reply = read(Some(7), vec![soa(7)]);
        assert!(matches!(reply, Ok(Reply::Current)), "{reply:?}");
    }

    #[test]
    fn a_single_newer_soa_is_only_the_start_of_a_transfer() {
        let mut reader = ReplyReader::new(zone(), Some(1), 1000);
        reader.feed(soa(2)).expect("opens");
        reader.end_of_message();
        assert!(!reader.is_done(), "the next message carries the rest");
        assert!(
            matches!(reader.finish(), Err(TransferError::SoaOnly)),
            "none came: the primary offers no difference"
        );
    }

    #[test]
    fn a_record_outside_the_zone_fails_the_transfer() {
        let outside = Record::from_rdata(
            name("www.example.com."),
            300,
            RData::A(A::new(192, 0, 2, 1)),
        );
        let reply = read(None, vec![soa(1), outside, soa(1)]);
        assert!(
            matches!(reply, Err(TransferError::OutOfZone { ref name }) if *name == Name::from_ascii("www.example.com.").expect("name")),
            "{reply:?}"
        );
    }

    #[test]
    fn a_transfer_must_open_with_the_zones_soa() {
        let reply = read(None, vec![ns_a(), soa(1)]);
        assert!(
            matches!(reply, Err(TransferError::NoOpeningSoa)),
            "{reply:?}"
        );
    }

    #[test]
    fn a_closing_soa_with_another_serial_fails_the_transfer() {
        let reply = read(None, vec![soa(1), ns_a(), soa(2)]);
        assert!(
            matches!(
                reply,
                Err(TransferError::SerialMismatch {
                    opened: 1,
                    closed: 2
                })
            ),
            "{reply:?}"
        );
    }

    #[test]
    fn records_after_the_closing_soa_fail_the_transfer() {
        let reply = read(None, vec![soa(1), ns_a(), soa(1), ns_a()]);
        assert!(
            matches!(reply, Err(TransferError::AfterClosingSoa)),
            "{reply:?}"
        );
    }

    #[test]
    fn a_difference_from_another_serial_than_ours_is_inconsistent() {
        let reply = read(Some(1), vec![soa(3), soa(2), soa(3), soa(3)]);
        assert!(
            matches!(
                reply,
                Err(TransferError::Ixfr(Inconsistent::FromSerial {
                    from: 2,
                    held: 1
                }))
            ),
            "{reply:?}"
        );
    }

    #[test]
    fn a_transfer_with_more_records_than_allowed_fails() {
        let mut reader = ReplyReader::new(zone(), None, 2);
        reader.feed(soa(1)).expect("one");
        reader.feed(ns_a()).expect("two");
        assert!(matches!(
            reader.feed(soa(1)),
            Err(TransferError::TooLarge {
                what: "records",
                ..
            })
        ));
    }

    #[test]
    fn serials_compare_in_sequence_space() {
        assert!(newer(2, 1));
        assert!(newer(0, u32::MAX), "wraps around (RFC 1982 §3.2)");
        assert!(!newer(1, 1));
        assert!(!newer(1, 2));
        assert!(!newer(1 << 31, 0), "half the space apart: not comparable");
    }
}
