//! Resident memory of the cache per cached name (issue 3).
//!
//! Caches N distinct A RRsets the way a resolution does — the RRset in the
//! record cache at `AuthAnswer` (`Resolver::cache_records`), then the encoded
//! response in the answer cache (`Resolver::lead`) — and reads the process's
//! VmRSS from /proc/self/status before and after. Target: 1M names in
//! ≤ 350 MiB, i.e. ≤ 367 bytes per name.
//!
//! It allocates with mimalloc, as the daemon does (src/main.rs): the
//! allocator's size classes are part of what an entry costs.
//!
//! `cargo run --release --example cache_memory [-- N]` (N defaults to 1,000,000).

use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use taproot::cache::Resolution;
use taproot::cache::answer::name_wire_lower;
use taproot::cache::{Cache, Rank};
use taproot::clock::Clock;
use taproot::config::CacheConfig;
use taproot::wire::{self, MAX_NAME_LEN};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// VmRSS of this process in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N must be a number"))
        .unwrap_or(1_000_000);
    // Large enough that nothing is evicted: this measures cost per entry.
    let config = CacheConfig {
        size_mb: 4096,
        ..CacheConfig::default()
    };
    let cache = Cache::new(&config, Clock::system());
    let before = rss_kib();
    let started = Instant::now();
    let mut keybuf = [0u8; MAX_NAME_LEN + 5];
    for i in 0..n {
        let owner = Name::from_ascii(format!("h{i}.bench.lab.")).expect("a valid name");
        let rrset = vec![Record::from_rdata(
            owner.clone(),
            3600,
            RData::A(A::new(127, 0, (i >> 8) as u8, i as u8)),
        )];
        let resolution = Resolution {
            rcode: ResponseCode::NoError,
            answers: rrset.clone(),
            authorities: Vec::new(),
            security: taproot::dnssec::Security::Indeterminate,
        };
        cache.store_rrset(rrset, Rank::AuthAnswer);
        let qname = name_wire_lower(&owner);
        let key = wire::answer_key(&qname, 1, 1, 0, &mut keybuf);
        cache
            .store_answer(key, &owner, RecordType::A, &resolution)
            .expect("cacheable");
    }
    cache.sync();
    let after = rss_kib();
    let usage = cache.usage();
    let grown = after.saturating_sub(before) * 1024;
    println!("names cached:         {n}");
    println!(
        "entries:              {} answers, {} RRsets",
        usage.answer_entries, usage.record_entries
    );
    println!(
        "insert time:          {:.2} s",
        started.elapsed().as_secs_f64()
    );
    println!("VmRSS before / after: {before} KiB / {after} KiB");
    println!(
        "RSS growth:           {:.1} MiB ({:.0} bytes per name; target <= 350 MiB per 1M)",
        grown as f64 / (1024.0 * 1024.0),
        grown as f64 / n as f64
    );
    println!(
        "weigher's estimate:   {:.1} MiB ({:.0} bytes per name)",
        usage.bytes as f64 / (1024.0 * 1024.0),
        usage.bytes as f64 / n as f64
    );
}
