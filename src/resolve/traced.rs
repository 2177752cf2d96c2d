//! Questions asked with a trace: `GET /trace/{name}/{type}` (a resolution
//! of its own, outside the coalescing of client questions, so its events
//! are all its own) and the failures kept for `GET /trace/recent`.

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::{Request, ResolveError, Resolver};
use crate::cache::Resolution;
use crate::trace::{Ede, EventKind, Report, Trace, TraceClock, TracedAnswer, TracedQuestion};

/// How a traced question is asked.
#[derive(Debug)]
pub struct TraceOptions {
    /// Resolve from the root hints as the note's diagram does, ignoring
    /// cached RRsets, negatives and delegations (`cache=bypass`); what is
    /// learnt is cached as usual.
    pub bypass_cache: bool,
    /// Real time, or ticks for golden tests.
    pub clock: TraceClock,
}

impl Resolver {
    /// Resolves (name, qtype) as a client without DO or CD would, records
    /// every step, caches the answer as usual, and returns the trace.
    pub async fn trace(&self, name: &Name, qtype: RecordType, options: TraceOptions) -> Report {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        let mut req = Request::new(&self.config);
        req.bypass_cache = options.bypass_cache;
        req.trace = Some(Trace::new(options.clock));
        let result = self.resolve_with(&name, qtype, &mut req, false).await;
        if let (Ok(resolution), Ok(wire)) = (&result, name.to_bytes()) {
            let mut buf = [0u8; crate::wire::KEY_MAX];
            let key = crate::wire::answer_key(&wire, qtype.into(), 1, 0, &mut buf);
            self.cache.store_answer(key, &name, qtype, resolution);
        }
        let cache = if options.bypass_cache {
            "bypass"
        } else {
            "use"
        };
        let trace = req
            .trace
            .take()
            .unwrap_or_else(|| Trace::new(TraceClock::Ticks(0)));
        report(trace, &name, qtype, cache, &result)
    }
}

/// Ends `trace` with the answer the client got.
pub(super) fn report(
    mut trace: Trace,
    name: &Name,
    qtype: RecordType,
    cache: &'static str,
    result: &Result<Resolution, ResolveError>,
) -> Report {
    let answer = match result {
        Ok(resolution) => TracedAnswer {
            rcode: crate::wire::rcode_mnemonic(resolution.rcode.into()).into_owned(),
            ede: None,
            security: resolution.security.label().to_string(),
            // As a client without DO sees them: no RRSIGs.
            records: resolution
                .answers
                .iter()
                .filter(|r| r.record_type() != RecordType::RRSIG)
                .map(|r| r.to_string())
                .collect(),
            elapsed_us: 0,
        },
        Err(e) => TracedAnswer {
            rcode: "SERVFAIL".to_string(),
            ede: Some(Ede {
                code: e.ede_code(),
                text: e.to_string(),
            }),
            security: match e {
                ResolveError::Bogus(_) => "bogus",
                _ => "indeterminate",
            }
            .to_string(),
            records: Vec::new(),
            elapsed_us: 0,
        },
    };
    trace.push(EventKind::Answer {
        rcode: answer.rcode.clone(),
        ede: answer.ede.clone(),
        security: answer.security.clone(),
        answers: answer.records.len(),
    });
    let elapsed_us = trace.events().last().map_or(0, |e| e.at_us);
    let unix_time = trace.unix_time();
    trace.finish(
        TracedQuestion {
            name: name.clone(),
            qtype,
            cache,
            unix_time,
        },
        TracedAnswer {
            elapsed_us,
            ..answer
        },
    )
}
