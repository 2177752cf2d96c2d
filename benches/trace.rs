//! What a full trace (`GET /trace`) costs a cold name (issue 24), for the
//! events of the commonest one, a name whose zone cut is cached: the cache
//! lookup (a miss), the closest delegation, where the walk starts, and one
//! upstream exchange, then the trace dropped. `recording/none` is the same
//! question's bookkeeping without a trace, the closures never called.
//!
//! Every miss is also recorded in case it fails (`[trace] keep_failures`),
//! but only with `Detail::Failures`, which keeps none of these events: the
//! miss path pays one clock reading for it. Recording all of them for
//! every miss cost 5-10% of a cold name's CPU in `bench/compare.sh`, far
//! more than the ~0.4 µs here, once 100 resolutions at a time each wrote
//! their kilobyte or two.
//!
//! Run: `cargo bench --bench trace`.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::rr::{Name, RecordType};
use taproot::trace::{
    CacheOutcome, EventKind, Exchange, ExchangeResult, StartSource, Trace, TraceClock, Transport,
};

struct Walk {
    qname: Name,
    zone: Name,
    ns: Name,
    server: IpAddr,
}

fn record(trace: &mut Option<Trace>, make: impl FnOnce() -> EventKind) {
    if let Some(t) = trace {
        t.push(make());
    }
}

/// The events a cold name under a cached cut records, as the driver
/// records them (`src/resolve/driver.rs`, `src/resolve/cut.rs`).
fn cold_name(w: &Walk, mut trace: Option<Trace>) -> usize {
    record(&mut trace, || EventKind::Cache {
        name: w.qname.clone(),
        qtype: RecordType::A,
        outcome: CacheOutcome::Miss,
        detail: None,
    });
    record(&mut trace, || EventKind::Cache {
        name: w.qname.clone(),
        qtype: RecordType::NS,
        outcome: CacheOutcome::Delegation,
        detail: Some(w.zone.clone()),
    });
    record(&mut trace, || EventKind::Start {
        zone: w.zone.clone(),
        source: StartSource::Cache,
        servers: vec![w.ns.clone()],
    });
    let started = trace.as_mut().map_or(0, Trace::now_us);
    let exchange = trace.is_some().then(|| Exchange {
        server: w.server,
        server_name: Some(w.ns.clone()),
        zone: w.zone.clone(),
        qname: w.qname.clone(),
        qtype: RecordType::A,
        transport: Transport::Udp,
        minimised: false,
        attempt: 1,
        timeout_ms: 376,
        rcode: Some("NOERROR".into()),
        aa: true,
        tc: false,
        answers: 1,
        size: 64,
        rtt_us: 0,
        result: ExchangeResult::Answer,
        referral_to: None,
    });
    if let (Some(mut x), Some(t)) = (exchange, trace.as_mut()) {
        x.rtt_us = t.now_us() - started;
        t.push_at(started, EventKind::Exchange(x));
    }
    trace.map_or(0, |t| t.events().len())
}

fn benches(c: &mut Criterion) {
    let w = Walk {
        qname: Name::from_ascii("c123456.bench.lab.").expect("literal"),
        zone: Name::from_ascii("bench.lab.").expect("literal"),
        ns: Name::from_ascii("ns.bench.lab.").expect("literal"),
        server: IpAddr::from([127, 0, 7, 3]),
    };
    let mut g = c.benchmark_group("recording");
    g.bench_function("cold_name", |b| {
        b.iter(|| {
            black_box(cold_name(
                black_box(&w),
                Some(Trace::new(TraceClock::Real(Instant::now()))),
            ))
        })
    });
    g.bench_function("none", |b| {
        b.iter(|| black_box(cold_name(black_box(&w), None)))
    });
    g.finish();
}

criterion_group!(trace, benches);
criterion_main!(trace);
