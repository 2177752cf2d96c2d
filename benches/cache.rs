//! Cache microbenchmarks (issue 3): the costs a query pays before any socket.
//!
//! Every group runs against a cache already holding 2^20 (1,048,576) answers,
//! so lookups pay for a realistically large hash table and cold CPU caches,
//! not for a toy map that fits in L2:
//!
//! - `answer/hit`: [`wire::answer_key`] + [`AnswerCache::find_fresh`] as a
//!   UDP worker does them: in batches of 32 under one epoch pin and one
//!   clock reading, the batch's slots and entries prefetched first
//!   ([`AnswerCache::prefetch`], called by `Handler::prefetch`); the
//!   question sits in a stack buffer as in the receive buffer
//!   (target: median ≤ 250 ns);
//! - `answer/hit_no_prefetch`: the same without the prefetch pass, so each
//!   lookup waits for its own two DRAM misses;
//! - `answer/hit_zipf`: `hit` with names drawn Zipf (s = 1) over all
//!   2^20, the popularity skew resolvers see;
//! - `answer/hit_hot`: `hit` over 1,024 names that stay in CPU caches;
//! - `answer/hit_alone`: one [`AnswerCache::lookup_fresh`] at a time, each
//!   with its own pin, clock reading and reference count, the way lookups
//!   outside a UDP batch pay (the walk's `RecordCache::entry`, the
//!   serve-stale `AnswerCache::get`); their fences stop lookups from
//!   overlapping;
//! - `answer/hit_render`: `hit_alone` plus [`CachedAnswer::render`] into a
//!   reused buffer (what a UDP worker does before `send_to`);
//! - `answer/miss`: a name that was never cached;
//! - `answer/insert`: a new answer into the full cache (evictions included);
//! - `handler/fast_hit_*`: the whole synchronous hot path,
//!   [`Handler::fast`], with the rate limiter off and at its default;
//! - `delegation/closest`: [`Cache::closest_delegation`] for a name one
//!   label below one of 100,000 cached zones with two glued servers each
//!   (target: ≤ 1 µs).
//!
//! - `baseline/dram_miss`: one dependent random read from 256 MiB, the
//!   unit the lookups above are really paying in.
//!
//! Names are visited in a scrambled order (an odd multiplier modulo 2^20),
//! so consecutive lookups do not touch neighbouring memory.
//!
//! Run: `cargo bench --bench cache` (a few minutes; sample sizes are modest).
//! One group: `cargo bench --bench cache -- delegation`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, NS};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use taproot::cache::Resolution;
use taproot::cache::{Cache, CachedAnswer, Pinned, Rank, pin};
use taproot::clock::Clock;
use taproot::config::{CacheConfig, Config, RateLimitConfig};
use taproot::metrics::Metrics;
use taproot::resolve::Resolver;
use taproot::server::Transport;
use taproot::server::handler::{Fast, Handler, Live};
use taproot::wire::{self, ClientEdns, ClientQuery, KEY_MAX, flags};

/// 2^20 cached answers: "1M entries", and a power of two for the scramble.
const ENTRIES: usize = 1 << 20;
const MASK: usize = ENTRIES - 1;
/// Odd, so `i * SCRAMBLE mod 2^20` visits every index once per cycle.
const SCRAMBLE: usize = 0x9E37_79B1;
/// Zipf draws replayed by `answer/hit_zipf`: four times the names, so the
/// replay keeps most of the distribution's tail.
const ZIPF_DRAWS: usize = 1 << 22;
/// Zones for the delegation benchmark.
const ZONES: usize = 100_000;
/// Lookups per epoch pin and clock reading: a UDP worker's batch.
const BATCH: u64 = 32;
const QTYPE_A: u16 = 1;
const QCLASS_IN: u16 = 1;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("a valid name")
}

/// The `i`-th cached host, `h<i>.bench.lab.`.
fn host(i: usize) -> String {
    format!("h{i}.bench.lab.")
}

/// A lower-cased uncompressed wire name.
fn wire_name(s: &str) -> Vec<u8> {
    taproot::cache::answer::name_wire_lower(&name(s))
}

/// A client query as dnsperf sends it: RD, one question, EDNS with 1232.
fn query_packet(qname: &[u8], id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + qname.len() + 15);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&flags::RD.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    q.extend_from_slice(qname);
    q.extend_from_slice(&QTYPE_A.to_be_bytes());
    q.extend_from_slice(&QCLASS_IN.to_be_bytes());
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

/// The encoded positive answer the resolver would store for `qname` A.
fn answer_records(qname: &str, last: u8) -> Vec<Record> {
    vec![Record::from_rdata(
        name(qname),
        3600,
        RData::A(A::new(127, 0, 0, last)),
    )]
}

/// Caches `qname` A as a resolution does: the RRset into the record cache
/// at `AuthAnswer` (`Resolver::cache_records`), then the answer
/// (`Cache::store_answer`, which finds the RRset's entry answers it).
fn store_like_the_resolver(cache: &Cache, key: &[u8], qname: &str, last: u8) {
    let rrset = answer_records(qname, last);
    cache.store_rrset(rrset.clone(), Rank::AuthAnswer);
    let res = Resolution {
        rcode: ResponseCode::NoError,
        answers: rrset,
        authorities: Vec::new(),
        security: taproot::dnssec::Security::Indeterminate,
    };
    cache
        .store_answer(key, &name(qname), RecordType::A, &res)
        .expect("cacheable");
}

fn answer_key_of(qname_wire: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; KEY_MAX];
    wire::answer_key(qname_wire, QTYPE_A, QCLASS_IN, 0, &mut buf).to_vec()
}

/// A cache big enough that 2^20 answers (and their RRsets) are never evicted
/// before the insert benchmark starts pushing past it.
fn big_cache() -> Cache {
    let config = CacheConfig {
        size_mb: 2048,
        ..CacheConfig::default()
    };
    Cache::new(&config, Clock::system())
}

/// The shared fixture: a cache with `ENTRIES` answers and the query packets
/// that hit them, in wire form.
struct Fixture {
    cache: Arc<Cache>,
    /// Query packets for `h<i>.bench.lab.` A, EDNS on.
    packets: Vec<Box<[u8]>>,
}

impl Fixture {
    fn build() -> Fixture {
        let cache = Arc::new(big_cache());
        let mut packets = Vec::with_capacity(ENTRIES);
        for i in 0..ENTRIES {
            let text = host(i);
            let qname = wire_name(&text);
            let key = answer_key_of(&qname);
            store_like_the_resolver(&cache, &key, &text, (i % 251) as u8);
            packets.push(query_packet(&qname, i as u16).into_boxed_slice());
        }
        cache.sync();
        assert_eq!(
            cache.usage().record_entries,
            ENTRIES as u64,
            "nothing evicted"
        );
        Fixture { cache, packets }
    }

    /// What the hot path does before rendering: the key, then the lookup,
    /// inside the batch's epoch pin and at the batch's clock reading.
    #[inline]
    fn lookup<'g>(
        &'g self,
        qname: &[u8],
        now_ms: u64,
        guard: &'g Pinned,
    ) -> Option<&'g CachedAnswer> {
        let mut keybuf = [0u8; KEY_MAX];
        let key = wire::answer_key(qname, QTYPE_A, QCLASS_IN, 0, &mut keybuf);
        let hash = self.cache.answers().fingerprint(key);
        self.cache.answers().find_fresh(key, hash, now_ms, guard)
    }

    /// Times `iters` lookups of the names `pick` draws, in batches of
    /// [`BATCH`] as a UDP worker answers them: one epoch pin and one clock
    /// reading per batch, and the batch's table slots and entries
    /// prefetched before the lookups (`prefetch`), as `Handler::prefetch`
    /// does; `prefetch = false` leaves each lookup to wait for its own misses.
    fn time_hits(
        &self,
        iters: u64,
        prefetch: bool,
        mut pick: impl FnMut(u64) -> usize,
    ) -> Duration {
        let mut buf = [0u8; 32];
        let mut keybuf = [0u8; KEY_MAX];
        let mut hashes = [0u64; BATCH as usize];
        let start = Instant::now();
        let mut n = 0u64;
        while n < iters {
            let guard = pin();
            let now = self.cache.clock().now_ms();
            let len = BATCH.min(iters - n);
            if prefetch {
                for (i, hash) in hashes.iter_mut().take(len as usize).enumerate() {
                    let qname = write_qname(pick(n + 1 + i as u64), &mut buf);
                    let key = wire::answer_key(qname, QTYPE_A, QCLASS_IN, 0, &mut keybuf);
                    *hash = self.cache.answers().fingerprint(key);
                }
                self.cache.answers().warm(&hashes[..len as usize], &guard);
            }
            for _ in 0..len {
                n += 1;
                let qname = write_qname(pick(n), &mut buf);
                black_box(self.lookup(qname, now, &guard));
            }
        }
        start.elapsed()
    }

    /// The question name of packet `i` as the client spelled it.
    fn qname(&self, i: usize) -> &[u8] {
        let p = &self.packets[i];
        &p[wire::HEADER_LEN..p.len() - 4 - 11]
    }
}

/// `count` popularity ranks drawn from Zipf(s = 1) over `ENTRIES` names
/// (inverse CDF with a fixed xorshift seed, so every run asks the same).
fn zipf_draws(count: usize) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(ENTRIES);
    let mut total = 0.0f64;
    for rank in 1..=ENTRIES {
        total += 1.0 / rank as f64;
        cdf.push(total);
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64 * total;
            cdf.partition_point(|&c| c < u).min(ENTRIES - 1)
        })
        .collect()
}

/// Writes `h<i>.bench.lab.` in wire form into `buf`, the way a received
/// packet sits in the worker's buffer: hot in L1, not behind a pointer.
#[inline]
fn write_qname(i: usize, buf: &mut [u8; 32]) -> &[u8] {
    let mut digits = [0u8; 20];
    let mut n = i;
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let label = 1 + digits.len() - d;
    buf[0] = label as u8;
    buf[1] = b'h';
    buf[2..1 + label].copy_from_slice(&digits[d..]);
    let tail = b"\x05bench\x03lab\x00";
    buf[1 + label..1 + label + tail.len()].copy_from_slice(tail);
    &buf[..1 + label + tail.len()]
}

/// The `n`-th index of the scrambled visiting order.
#[inline]
fn scrambled(n: usize) -> usize {
    n.wrapping_mul(SCRAMBLE) & MASK
}

fn answer_benches(c: &mut Criterion, fx: &Fixture) {
    let mut g = c.benchmark_group("answer");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // The question is written into a stack buffer, as it sits in the
    // worker's receive buffer: hot in L1, not one more DRAM miss away.
    g.bench_function("hit", |b| {
        let mut buf = [0u8; 32];
        assert_eq!(write_qname(123_456, &mut buf), fx.qname(123_456));
        b.iter_custom(|iters| fx.time_hits(iters, true, |n| scrambled(n as usize)))
    });

    // The same without the batch's prefetch: each lookup waits for its
    // own two misses (the slot, then the entry).
    g.bench_function("hit_no_prefetch", |b| {
        b.iter_custom(|iters| fx.time_hits(iters, false, |n| scrambled(n as usize)))
    });

    // Popularity as resolvers see it: Zipf (s = 1) over all 2^20 names,
    // the most popular scattered through the table like the rest: the head
    // stays in the CPU caches, the tail pays DRAM misses.
    let draws = zipf_draws(ZIPF_DRAWS);
    g.bench_function("hit_zipf", |b| {
        b.iter_custom(|iters| {
            fx.time_hits(iters, true, |n| scrambled(draws[n as usize % ZIPF_DRAWS]))
        })
    });

    // The same lookup over 1,024 names only: the table's lines stay in the
    // CPU caches, so this is the instruction cost without DRAM misses
    // (prefetch included: on a hot set it is pure overhead).
    g.bench_function("hit_hot", |b| {
        b.iter_custom(|iters| fx.time_hits(iters, true, |n| scrambled(n as usize & 1023)))
    });

    // One lookup at a time, each with its own pin, clock reading and
    // reference count, as lookups outside a UDP batch pay them: the fences
    // stop the CPU from overlapping lookups.
    g.bench_function("hit_alone", |b| {
        let mut n = 0usize;
        let mut buf = [0u8; 32];
        b.iter(|| {
            n = n.wrapping_add(1);
            let qname = write_qname(scrambled(n), &mut buf);
            let mut keybuf = [0u8; KEY_MAX];
            let key = wire::answer_key(qname, QTYPE_A, QCLASS_IN, 0, &mut keybuf);
            black_box(
                fx.cache
                    .answers()
                    .lookup_fresh(key, fx.cache.clock().now_ms()),
            )
        })
    });

    g.bench_function("hit_render", |b| {
        let mut n = 0usize;
        let mut out = Vec::with_capacity(4096);
        let edns = Some(ClientEdns {
            payload: 1232,
            dnssec_ok: false,
            version: 0,
            keepalive: false,
            padding: false,
        });
        b.iter(|| {
            n = n.wrapping_add(1);
            let qname = fx.qname(scrambled(n));
            let mut keybuf = [0u8; KEY_MAX];
            let key = wire::answer_key(qname, QTYPE_A, QCLASS_IN, 0, &mut keybuf);
            let now = fx.cache.clock().now_ms();
            let answer = fx.cache.answers().lookup_fresh(key, now).expect("a hit");
            let q = ClientQuery {
                id: n as u16,
                flags: flags::RD,
                qname,
                qtype: QTYPE_A,
                qclass: QCLASS_IN,
                question_end: wire::HEADER_LEN + qname.len() + 4,
                edns,
            };
            black_box(answer.render(&q, now, true, None, 1232, &mut out));
            black_box(out.len())
        })
    });

    g.bench_function("miss", |b| {
        let misses: Vec<Vec<u8>> = (0..65_536)
            .map(|i| wire_name(&format!("m{i}.bench.lab.")))
            .collect();
        let mut n = 0usize;
        b.iter(|| {
            n = n.wrapping_add(1);
            let qname = &misses[n & 0xffff];
            let mut keybuf = [0u8; KEY_MAX];
            let key = wire::answer_key(qname, QTYPE_A, QCLASS_IN, 0, &mut keybuf);
            black_box(
                fx.cache
                    .answers()
                    .lookup_fresh(key, fx.cache.clock().now_ms()),
            )
        })
    });

    // New names past the 2^20 already cached: each insert is a fresh key,
    // so the store's admission and eviction work is part of the cost, and
    // so is encoding the RRset (the record cache stores it in wire form).
    g.bench_function("insert", |b| {
        let mut n = ENTRIES;
        b.iter_batched(
            || {
                n += 1;
                answer_records(&format!("i{n}.bench.lab."), 7)
            },
            |rrset| black_box(fx.cache.store_rrset(rrset, Rank::AuthAnswer)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A handler around `cache`, with the rate limiter as `ratelimit` says.
fn handler(
    runtime: &tokio::runtime::Runtime,
    cache: Arc<Cache>,
    ratelimit: RateLimitConfig,
    rpz: Vec<taproot::config::RpzConfig>,
) -> Handler {
    let config = Config {
        ratelimit,
        rpz,
        ..Config::default()
    };
    let metrics = Arc::new(Metrics::new());
    let _enter = runtime.enter(); // the resolver spawns its prefetch task
    let resolver = Resolver::start(
        config.resolver.clone(),
        cache.clone(),
        Vec::new(),
        metrics.clone(),
        taproot::resolve::Validation::off(cache.clock().clone()),
        config.server.max_inflight_resolutions,
        config.trace.keep_failures,
    );
    Handler {
        live: ArcSwap::from_pointee(Live::from_config(
            &config,
            Arc::new(
                taproot::policy::Policy::from_config(&config).expect("the default policy builds"),
            ),
        )),
        cache,
        resolver,
        metrics,
    }
}

fn handler_benches(c: &mut Criterion, fx: &Fixture) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let src: SocketAddr = "127.0.0.1:40000".parse().expect("literal address");
    let mut g = c.benchmark_group("handler");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let cases = [
        (
            "fast_hit_ratelimit_off",
            RateLimitConfig {
                qps: 0,
                ..RateLimitConfig::default()
            },
        ),
        // The default limiter, with a rate so high it never limits: what
        // the check itself costs per query.
        (
            "fast_hit_ratelimit_on",
            RateLimitConfig {
                qps: u32::MAX,
                burst: u32::MAX,
                ..RateLimitConfig::default()
            },
        ),
    ];
    // bench/rpz.sh's mix: a million triggers, exact ones three labels deep
    // and wildcards over two- and three-label bases, none matching a
    // cached name: what a big policy costs the names it leaves alone.
    let rpz_file = std::env::temp_dir().join(format!("taproot-bench-{}.rpz", std::process::id()));
    let mut text =
        String::from("$TTL 300\n@ SOA ns.block.rpz. h.block.rpz. 1 3600 600 86400 300\n");
    for i in 0..1_000_000u32 {
        match i % 20 {
            0..16 => text.push_str(&format!("d{i}.b{}.com CNAME .\n", i % 5000)),
            16 => text.push_str(&format!("n{i}.b{}.com CNAME *.\n", i % 5000)),
            17 | 18 => text.push_str(&format!("*.w{i}.net CNAME .\n")),
            _ => text.push_str(&format!("*.z{i}.t{}.org CNAME .\n", i % 100)),
        }
    }
    std::fs::write(&rpz_file, text).expect("write the RPZ");
    let one_million = vec![taproot::config::RpzConfig {
        zone: "block.rpz".into(),
        file: rpz_file.display().to_string(),
        primary: String::new(),
        ede: taproot::config::RpzEde::Blocked,
    }];
    let cases = cases.into_iter().map(|(l, r)| (l, r, Vec::new())).chain([(
        "fast_hit_ratelimit_off_rpz_1m",
        RateLimitConfig {
            qps: 0,
            ..RateLimitConfig::default()
        },
        one_million,
    )]);
    for (label, ratelimit, rpz) in cases {
        let h = handler(&runtime, fx.cache.clone(), ratelimit, rpz);
        // One pass over every cached name first: the steady state, where
        // each entry carries the policy's stamp (see Policy::stamp), is
        // what is measured, not the first hit of each of 2^20 names.
        let mut out = Vec::with_capacity(4096);
        for packet in &fx.packets {
            let prepared = h.prepare(packet);
            black_box(h.fast(packet, &prepared, src, Transport::Udp, &mut out));
        }
        g.bench_function(label, |b| {
            let mut n = 0usize;
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                n = n.wrapping_add(1);
                let packet = &fx.packets[scrambled(n)];
                let prepared = h.prepare(packet);
                let verdict = h.fast(packet, &prepared, src, Transport::Udp, &mut out);
                debug_assert_eq!(verdict, Fast::Reply);
                black_box(verdict)
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_file(rpz_file);
}

/// 100,000 zones `z<i>.lab.`, each with two NS and an A for each server,
/// cached the way the walk caches a referral (NS at `Referral`, glue at
/// `Additional`), under a root and `lab.` delegation.
fn delegation_cache() -> Cache {
    let cache = big_cache();
    let ns = |zone: &str, target: &str| {
        Record::from_rdata(name(zone), 86_400, RData::NS(NS(name(target))))
    };
    let a = |owner: &str, last: u8| {
        Record::from_rdata(name(owner), 86_400, RData::A(A::new(127, 77, 0, last)))
    };
    cache.store_rrset(vec![ns(".", "a.root-servers.lab.")], Rank::AuthAuthority);
    cache.store_rrset(vec![a("a.root-servers.lab.", 1)], Rank::Additional);
    cache.store_rrset(vec![ns("lab.", "ns.lab.")], Rank::Referral);
    cache.store_rrset(vec![a("ns.lab.", 2)], Rank::Additional);
    for i in 0..ZONES {
        let zone = format!("z{i}.lab.");
        let ns1 = format!("ns1.z{i}.lab.");
        let ns2 = format!("ns2.z{i}.lab.");
        cache.store_rrset(vec![ns(&zone, &ns1), ns(&zone, &ns2)], Rank::Referral);
        cache.store_rrset(vec![a(&ns1, 3)], Rank::Additional);
        cache.store_rrset(vec![a(&ns2, 4)], Rank::Additional);
    }
    cache.sync();
    cache
}

fn delegation_benches(c: &mut Criterion) {
    let cache = delegation_cache();
    // Scrambled over the zones; the qname is one label below the cut, so the
    // walk up misses once (`www.z<i>.lab.` NS) before it finds the cut.
    let qnames: Vec<Name> = (0..ZONES)
        .map(|i| name(&format!("www.z{}.lab.", (i * 7919) % ZONES)))
        .collect();
    let mut g = c.benchmark_group("delegation");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("closest", |b| {
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 1) % ZONES;
            let cut = cache.closest_delegation(&qnames[n], true).expect("a cut");
            debug_assert_eq!(cut.servers.len(), 2);
            black_box(cut)
        })
    });
    // The same walk for a name under no cached zone: up to `lab.`.
    let uncached: Vec<Name> = (0..ZONES)
        .map(|i| name(&format!("www.y{i}.lab.")))
        .collect();
    g.bench_function("closest_tld_only", |b| {
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 1) % ZONES;
            black_box(cache.closest_delegation(&uncached[n], true))
        })
    });
    g.finish();
    std::mem::forget(cache);
}

/// One dependent random read from 256 MiB: the price of a DRAM miss on
/// this machine, to read the other numbers against.
fn baseline_benches(c: &mut Criterion) {
    const WORDS: usize = 32 << 20;
    // A single cycle through all words (Sattolo), so each read depends on the last.
    let mut next: Vec<u32> = (0..WORDS as u32).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in (1..WORDS).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % i as u64) as usize;
        next.swap(i, j);
    }
    let mut g = c.benchmark_group("baseline");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    g.bench_function("dram_miss", |b| {
        let mut at = 0u32;
        b.iter(|| {
            at = next[at as usize];
            black_box(at)
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    baseline_benches(c);
    let fx = Fixture::build();
    answer_benches(c, &fx);
    handler_benches(c, &fx);
    // Freeing a million entries takes seconds and measures nothing.
    std::mem::forget(fx);
    delegation_benches(c);
}

criterion_group!(cache, benches);
criterion_main!(cache);
