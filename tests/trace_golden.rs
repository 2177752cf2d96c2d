//! Golden files for the text and Mermaid traces of fixed walks on fake
//! trees with one server per zone, taken on the trace's manual clock (every reading is one
//! millisecond later, so RTTs and timestamps depend only on the order of
//! the steps): a change in what the walk does, or in how it is drawn,
//! shows as a diff of `tests/golden/`.
//!
//! `UPDATE_GOLDEN=1 cargo test --test trace_golden` rewrites the files;
//! review the diff before committing it.

mod support;

use std::path::PathBuf;

use hickory_proto::rr::{Name, RecordType};
use support::lab::{self, COKR, EX1, GLUELESS_ZONE, KR, KR_ZONE, LAB, LAB_ZONE, PROVIDER, ROOT};
use support::signed_tree::{SignedTree, Validating};
use support::start_taproot;
use support::tree::FakeTree;
use taproot::resolve::traced::TraceOptions;
use taproot::server::Running;
use taproot::trace::{Format, Report, TraceClock};

/// Compares `actual` with `tests/golden/<file>`, or writes it there.
fn golden(file: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; UPDATE_GOLDEN=1 writes it. This run gave:\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from this run at line {}:\n  golden: {:?}\n  now:    {:?}\n\
             This run gave:\n{actual}\n(UPDATE_GOLDEN=1 rewrites it after review.)",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first),
        );
    }
}

/// The trace of (name, type) from the root hints, on the manual clock.
async fn traced(running: &Running, name: &str, qtype: RecordType) -> Report {
    let name = Name::from_ascii(name).expect("a valid name");
    running
        .handler
        .resolver
        .trace(
            &name,
            qtype,
            TraceOptions {
                bypass_cache: true,
                clock: TraceClock::Ticks(0),
            },
        )
        .await
}

/// `co.kr.` with one server for `example.co.kr.`: a zone with several
/// servers is asked one of them at random now and then (the infra cache's
/// exploration), which a golden file cannot hold.
const COKR_ZONE: &str = r#"
$TTL 3600
@            IN SOA ns hostmaster 1 1800 900 604800 600
@            IN NS  ns
ns           IN A   127.0.2.4
example      IN NS  ns1.example
ns1.example  IN A   127.0.2.6
"#;

const EXAMPLE_ZONE: &str = r#"
$TTL 3600
@          IN SOA ns1 hostmaster 2024010101 3600 600 86400 300
@          IN NS  ns1
ns1        IN A   127.0.2.6
www        IN A   127.5.0.1
"#;

/// `provider.lab.` with a CNAME into `glueless.kr.`, a zone whose NS has no
/// glue: a restart across zones. The NS name's address is already cached
/// from the walk to `provider.lab.` (its glue there), so the target's walk
/// shows no nested lookup; `a_glueless_walk_reads_as_its_golden_files` does.
const PROVIDER_ZONE: &str = r#"
$TTL 3600
@            IN SOA ns hostmaster 1 1800 900 604800 300
@            IN NS  ns
ns           IN A   127.0.2.5
alias        IN CNAME www.glueless.kr.
"#;

/// The lab tree with one server per zone.
async fn golden_tree() -> FakeTree {
    FakeTree::builder()
        .zone(".", lab::ROOT_ZONE, &[ROOT])
        .zone("kr.", KR_ZONE, &[KR])
        .zone("co.kr.", COKR_ZONE, &[COKR])
        .zone("example.co.kr.", EXAMPLE_ZONE, &[EX1])
        .zone("lab.", LAB_ZONE, &[LAB])
        .zone("provider.lab.", PROVIDER_ZONE, &[PROVIDER])
        .zone("glueless.kr.", GLUELESS_ZONE, &[PROVIDER])
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_note_s_walk_root_kr_co_kr_zone_reads_as_its_golden_files() {
    let tree = golden_tree().await;
    // 0x20 would make the names as sent random.
    let t = start_taproot(&tree, |c| c.resolver.use_0x20 = false).await;
    let report = traced(&t.running, "www.example.co.kr.", RecordType::A).await;
    golden(
        "trace-www.example.co.kr-A.txt",
        &report.render(Format::Text),
    );
    golden(
        "trace-www.example.co.kr-A.mmd",
        &report.render(Format::Mermaid),
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glueless_walk_reads_as_its_golden_files() {
    let tree = golden_tree().await;
    let t = start_taproot(&tree, |c| c.resolver.use_0x20 = false).await;
    let report = traced(&t.running, "www.glueless.kr.", RecordType::A).await;
    golden("trace-www.glueless.kr-A.txt", &report.render(Format::Text));
    golden(
        "trace-www.glueless.kr-A.mmd",
        &report.render(Format::Mermaid),
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_into_a_glueless_zone_reads_as_its_golden_files() {
    let tree = golden_tree().await;
    let t = start_taproot(&tree, |c| c.resolver.use_0x20 = false).await;
    let report = traced(&t.running, "alias.provider.lab.", RecordType::A).await;
    golden(
        "trace-alias.provider.lab-A.txt",
        &report.render(Format::Text),
    );
    golden(
        "trace-alias.provider.lab-A.mmd",
        &report.render(Format::Mermaid),
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validated_walk_reads_as_its_golden_files() {
    let tree = SignedTree::start().await;
    let t = Validating::start(&tree, |c| c.resolver.use_0x20 = false).await;
    let report = traced(&t.running, "www.sec.lab.", RecordType::A).await;
    assert_eq!(
        report.answer.security,
        "secure",
        "{}",
        report.render(Format::Text)
    );
    golden("trace-www.sec.lab-A.txt", &report.render(Format::Text));
    golden("trace-www.sec.lab-A.mmd", &report.render(Format::Mermaid));
    t.stop().await;
}

#[test]
fn the_readme_shows_the_golden_validated_trace() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let golden = std::fs::read_to_string(root.join("tests/golden/trace-www.sec.lab-A.mmd"))
        .expect("the golden trace");
    assert!(
        readme.contains(&format!("```mermaid\n{golden}```")),
        "README.md's trace is not tests/golden/trace-www.sec.lab-A.mmd: copy it over"
    );
}
