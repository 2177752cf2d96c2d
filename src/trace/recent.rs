//! The traces of the last questions that failed (SERVFAIL or bogus), for
//! `GET /trace/recent`: an operator asked about one SERVFAIL a minute ago
//! sees what the walk did then, without turning on debug logs for
//! everything (Unbound's verbosity 4) and waiting for it to happen again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::Report;

/// A ring buffer of the last `capacity` failed questions' traces.
#[derive(Debug)]
pub struct RecentFailures {
    capacity: usize,
    kept: Mutex<VecDeque<Arc<Report>>>,
}

impl RecentFailures {
    /// `capacity` 0 keeps nothing, and then the miss path records nothing.
    pub fn new(capacity: usize) -> RecentFailures {
        RecentFailures {
            capacity,
            kept: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Whether failures are kept at all (`[trace] keep_failures` > 0).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Keeps `report`, dropping the oldest when full.
    pub fn keep(&self, report: Report) {
        if self.capacity == 0 {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= self.capacity {
            kept.pop_front();
        }
        kept.push_back(Arc::new(report));
    }

    /// The kept traces, newest first.
    pub fn list(&self) -> Vec<Arc<Report>> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Trace, TraceClock, TracedAnswer, TracedQuestion};
    use hickory_proto::rr::{Name, RecordType};

    fn report(name: &str) -> Report {
        Trace::new(TraceClock::Ticks(0)).finish(
            TracedQuestion {
                name: Name::from_ascii(name).unwrap(),
                qtype: RecordType::A,
                cache: "use",
                unix_time: 0,
            },
            TracedAnswer {
                rcode: "SERVFAIL".into(),
                ede: None,
                security: "indeterminate".into(),
                records: Vec::new(),
                elapsed_us: 0,
            },
        )
    }

    #[test]
    fn the_oldest_failure_makes_room_for_the_newest() {
        let recent = RecentFailures::new(2);
        for name in ["a.", "b.", "c."] {
            recent.keep(report(name));
        }
        let names: Vec<String> = recent
            .list()
            .iter()
            .map(|r| r.question.name.to_string())
            .collect();
        assert_eq!(names, ["c.", "b."]);
    }

    #[test]
    fn a_capacity_of_zero_keeps_nothing() {
        let recent = RecentFailures::new(0);
        recent.keep(report("a."));
        assert!(!recent.enabled());
        assert!(recent.list().is_empty());
    }
}
