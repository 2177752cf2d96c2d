//! The walk against what real authoritative servers send: answers without
//! AA, recursive servers in NS sets, referrals with AA, lame upward
//! referrals, glueless delegations whose first server is dead, child zones
//! whose own NS data is broken, servers that fail on minimised names, NS
//! cycles, dead roots, failing names asked again and again, servers that
//! slow down. Unbound's `iter_resptype.c`, `iter_scrub.c` and `iterator.c`
//! are the reference for what each of these should give.
//!
//! The tree, on 127.0.9.0/24 (addresses ending in 9x have nothing on them):
//!
//! ```text
//! .               127.0.9.1
//! └─ lab.         127.0.9.2
//!    ├─ example.lab.   127.0.9.3, 127.0.9.4   (two servers: one misbehaves)
//!    ├─ solo.lab.      127.0.9.5              (its only server misbehaves)
//!    ├─ hosts.lab.     127.0.9.6              (ns-dead → .99, ns-alive → .7)
//!    ├─ glueless.lab.  NS ns-dead.hosts.lab., ns-alive.hosts.lab. (127.0.9.7)
//!    ├─ broken.lab.    glue 127.0.9.8; the child says its NS is at .98
//!    ├─ deep.lab.      127.0.9.9 (refuses minimised names)
//!    └─ a.lab. NS ns.b.lab.,  b.lab. NS ns.a.lab.  (an NS cycle, no glue)
//! ```
//!
//! Some tests add 127.0.9.66, a spoofer's server with its own copy of
//! `example.lab.`: where a poisoned delegation would send the walk.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, NS, NULL};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::client::{self, ask_udp, ask_udp_within, first_a};
use support::tree::{Behaviour, FakeTree, FakeTreeBuilder, Rewrite};
use support::{Taproot, start_taproot, start_taproot_on};
use taproot::clock::Clock;

const ROOT: IpAddr = ip(1);
const LAB: IpAddr = ip(2);
const EX1: IpAddr = ip(3);
const EX2: IpAddr = ip(4);
const SOLO: IpAddr = ip(5);
const HOSTS: IpAddr = ip(6);
const ALIVE: IpAddr = ip(7);
const BROKEN: IpAddr = ip(8);
const DEEP: IpAddr = ip(9);
const SPOOF: IpAddr = ip(66);

const fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 9, last))
}

const ROOT_ZONE: &str = r#"
$TTL 86400
@                IN SOA a.root.lab. hostmaster.root.lab. 1 1800 900 604800 86400
@                IN NS  a.root.lab.
a.root.lab.      IN A   127.0.9.1
lab.     172800  IN NS  ns.lab.
ns.lab.  172800  IN A   127.0.9.2
"#;

const LAB_ZONE: &str = r#"
$TTL 3600
@             IN SOA ns.lab. hostmaster.lab. 1 1800 900 604800 600
@             IN NS  ns
ns            IN A   127.0.9.2
example       IN NS  ns1.example
example       IN NS  ns2.example
ns1.example   IN A   127.0.9.3
ns2.example   IN A   127.0.9.4
solo          IN NS  ns.solo
ns.solo       IN A   127.0.9.5
hosts         IN NS  ns.hosts
ns.hosts      IN A   127.0.9.6
glueless      IN NS  ns-dead.hosts.lab.
glueless      IN NS  ns-alive.hosts.lab.
broken        IN NS  ns.broken
ns.broken     IN A   127.0.9.8
deep          IN NS  ns.deep
ns.deep       IN A   127.0.9.9
a             IN NS  ns.b.lab.
b             IN NS  ns.a.lab.
"#;

const EXAMPLE_ZONE: &str = r#"
$TTL 3600
@      IN SOA ns1 hostmaster 1 3600 600 86400 300
@      IN NS  ns1
@      IN NS  ns2
ns1    IN A   127.0.9.3
ns2    IN A   127.0.9.4
www    IN A   127.10.0.1
one    IN A   127.10.0.2
two    IN A   127.10.0.3
three  IN A   127.10.0.4
"#;

const SOLO_ZONE: &str = r#"
$TTL 3600
@      IN SOA ns hostmaster 1 3600 600 86400 300
@      IN NS  ns
ns     IN A   127.0.9.5
www    IN A   127.10.1.1
a      IN A   127.10.1.2
b      IN A   127.10.1.3
"#;

const HOSTS_ZONE: &str = r#"
$TTL 3600
@         IN SOA ns hostmaster 1 3600 600 86400 300
@         IN NS  ns
ns        IN A   127.0.9.6
ns-dead   IN A   127.0.9.99
ns-alive  IN A   127.0.9.7
"#;

const GLUELESS_ZONE: &str = r#"
$TTL 3600
@      IN SOA ns-alive.hosts.lab. hostmaster 1 3600 600 86400 300
@      IN NS  ns-dead.hosts.lab.
@      IN NS  ns-alive.hosts.lab.
www    IN A   127.10.3.1
"#;

/// The child lists a dead address for its own server.
const BROKEN_ZONE: &str = r#"
$TTL 3600
@      IN SOA ns hostmaster 1 3600 600 86400 300
@      IN NS  ns
ns     IN A   127.0.9.98
www    IN A   127.10.2.1
"#;

const DEEP_ZONE: &str = r#"
$TTL 3600
@        IN SOA ns hostmaster 1 3600 600 86400 300
@        IN NS  ns
ns       IN A   127.0.9.9
a.b.c    IN A   127.10.4.1
"#;

const CYCLE_A_ZONE: &str = r#"
$TTL 3600
@      IN SOA ns.b.lab. hostmaster 1 3600 600 86400 300
@      IN NS  ns.b.lab.
www    IN A   127.10.5.1
"#;

const CYCLE_B_ZONE: &str = r#"
$TTL 3600
@      IN SOA ns.a.lab. hostmaster 1 3600 600 86400 300
@      IN NS  ns.a.lab.
www    IN A   127.10.5.2
"#;

/// The spoofer's own `example.lab.`: every name points at it.
const SPOOF_ZONE: &str = r#"
$TTL 3600
@      IN SOA bad hostmaster 1 3600 600 86400 300
@      IN NS  bad
bad    IN A   127.0.9.66
www    IN A   127.66.0.1
one    IN A   127.66.0.2
"#;

async fn imperfect_tree() -> FakeTree {
    imperfect_builder().start().await
}

fn imperfect_builder() -> FakeTreeBuilder {
    FakeTree::builder()
        .zone(".", ROOT_ZONE, &[ROOT])
        .zone("lab.", LAB_ZONE, &[LAB])
        .zone("example.lab.", EXAMPLE_ZONE, &[EX1, EX2])
        .zone("solo.lab.", SOLO_ZONE, &[SOLO])
        .zone("hosts.lab.", HOSTS_ZONE, &[HOSTS])
        .zone("glueless.lab.", GLUELESS_ZONE, &[ALIVE])
        .zone("broken.lab.", BROKEN_ZONE, &[BROKEN])
        .zone("deep.lab.", DEEP_ZONE, &[DEEP])
        // The cycle's zones exist, but no server can be found for them.
        .zone("a.lab.", CYCLE_A_ZONE, &[ip(90)])
        .zone("b.lab.", CYCLE_B_ZONE, &[ip(91)])
}

async fn ask(t: &Taproot, name: &str, rtype: RecordType) -> Message {
    ask_udp(t.addr, &client::recursive(name, rtype)).await
}

/// Clears AA on every reply, as many load balancers and appliances do.
fn without_aa() -> Behaviour {
    Behaviour::Rewrite(Rewrite::new(|_, reply| {
        reply.metadata.authoritative = false;
    }))
}

/// A recursive resolver in the NS set: RA=1, AA=0.
fn recursive_lame(with_data: bool) -> Behaviour {
    Behaviour::Rewrite(Rewrite::new(move |_, reply| {
        reply.metadata.authoritative = false;
        reply.metadata.recursion_available = true;
        if !with_data {
            reply.answers.clear();
            reply.authorities.clear();
            reply.additionals.clear();
        }
    }))
}

/// An empty AA=1 answer whose authority section is the root's NS set.
fn upward_referral_with_aa() -> Behaviour {
    Behaviour::Rewrite(Rewrite::new(|_, reply| {
        reply.metadata.authoritative = true;
        reply.metadata.response_code = ResponseCode::NoError;
        reply.answers.clear();
        reply.additionals.clear();
        reply.authorities = vec![Record::from_rdata(
            Name::root(),
            86400,
            RData::NS(NS(client::name("a.root.lab."))),
        )];
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_nxdomain_without_aa_are_believed() {
    let tree = imperfect_tree().await;
    tree.set_behaviour(EX1, without_aa());
    tree.set_behaviour(EX2, without_aa());
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask(&t, "www.example.lab.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&reply).as_deref(), Some("127.10.0.1"));
    let nx = ask(&t, "nope.example.lab.", RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let nodata = ask(&t, "www.example.lab.", RecordType::MX).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_lame_server_is_tried_last_and_believed_when_it_is_all_there_is() {
    let tree = imperfect_tree().await;
    // The only server of solo.lab. is a recursive resolver.
    tree.set_behaviour(SOLO, recursive_lame(true));
    // One of example.lab.'s two is a recursive resolver with nothing cached.
    tree.set_behaviour(EX1, recursive_lame(false));
    let t = start_taproot(&tree, |_| {}).await;
    let nx = ask(&t, "nope.solo.lab.", RecordType::A).await;
    assert_eq!(
        nx.metadata.response_code,
        ResponseCode::NXDomain,
        "a recursive server's NXDOMAIN, when it is the only server"
    );
    let www = ask(&t, "www.solo.lab.", RecordType::A).await;
    assert_eq!(first_a(&www).as_deref(), Some("127.10.1.1"));
    for (name, want) in [
        ("one.example.lab.", "127.10.0.2"),
        ("two.example.lab.", "127.10.0.3"),
        ("three.example.lab.", "127.10.0.4"),
    ] {
        let reply = ask(&t, name, RecordType::A).await;
        assert_eq!(first_a(&reply).as_deref(), Some(want), "{name}");
    }
    assert!(
        tree.queries_to(EX1) <= 1,
        "tried last once known: {:?}",
        tree.query_log()
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ns_set_below_the_zone_is_a_referral_even_with_aa_set() {
    let tree = imperfect_tree().await;
    tree.set_behaviour(
        LAB,
        Behaviour::Rewrite(Rewrite::new(|_, reply| {
            reply.metadata.authoritative = true;
        })),
    );
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask(&t, "www.example.lab.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&reply).as_deref(), Some("127.10.0.1"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_authoritative_answer_with_the_roots_ns_set_is_lame_not_nodata() {
    let tree = imperfect_tree().await;
    tree.set_behaviour(SOLO, upward_referral_with_aa());
    tree.set_behaviour(EX1, upward_referral_with_aa());
    let t = start_taproot(&tree, |_| {}).await;
    // Its only server is lame: SERVFAIL, not a cached "no such data".
    let solo = ask(&t, "www.solo.lab.", RecordType::A).await;
    assert_eq!(solo.metadata.response_code, ResponseCode::ServFail);
    // A lame server beside a good one: the good one answers.
    for (name, want) in [
        ("www.example.lab.", "127.10.0.1"),
        ("one.example.lab.", "127.10.0.2"),
        ("two.example.lab.", "127.10.0.3"),
    ] {
        let reply = ask(&t, name, RecordType::A).await;
        assert_eq!(first_a(&reply).as_deref(), Some(want), "{name}");
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glueless_names_are_resolved_after_the_servers_with_addresses_failed() {
    let tree = imperfect_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    // ns-dead.hosts.lab. comes first and resolves, to an address with
    // nothing on it; ns-alive.hosts.lab. must be looked up next.
    let reply = ask(&t, "www.glueless.lab.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&reply).as_deref(), Some("127.10.3.1"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parents_glue_is_used_when_the_childs_own_address_for_its_server_is_dead() {
    let tree = imperfect_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    // The child's answer for its NS name outranks the glue in the cache...
    let ns = ask(&t, "ns.broken.lab.", RecordType::A).await;
    assert_eq!(first_a(&ns).as_deref(), Some("127.0.9.98"));
    // ...and leads nowhere; the parent's glue still does.
    let reply = ask(&t, "www.broken.lab.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&reply).as_deref(), Some("127.10.2.1"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minimised_query_that_fails_is_asked_again_with_the_full_name() {
    let tree = imperfect_tree().await;
    // Like servers that SERVFAIL or REFUSE empty non-terminals: only the
    // apex and the full name get an answer.
    tree.set_behaviour(
        DEEP,
        Behaviour::Rewrite(Rewrite::new(|query, reply| {
            let labels = query.queries[0].name().num_labels();
            if labels > 2 && labels < 5 {
                reply.metadata.response_code = ResponseCode::Refused;
                reply.metadata.authoritative = false;
                reply.answers.clear();
                reply.authorities.clear();
                reply.additionals.clear();
            }
        })),
    );
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask(&t, "a.b.c.deep.lab.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&reply).as_deref(), Some("127.10.4.1"));
    let infra = &t.running.handler.resolver.infra;
    assert!(
        !infra.is_down(DEEP),
        "minimisation's failures hold no server down"
    );
    assert_eq!(
        infra.zone_failure(DEEP, &client::name("deep.lab.")),
        None,
        "nor mark it lame"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ns_cycle_is_stopped_within_ten_upstream_queries() {
    let tree = imperfect_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask(&t, "www.a.lab.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(
        tree.total_queries() <= 10,
        "{} queries: {:?}",
        tree.total_queries(),
        tree.query_log()
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_down_server_is_not_asked_while_another_one_answers() {
    let tree = imperfect_tree().await;
    tree.set_behaviour(EX1, Behaviour::Drop);
    let t = start_taproot(&tree, |_| {}).await;
    for (name, want) in [
        ("www.example.lab.", "127.10.0.1"),
        ("one.example.lab.", "127.10.0.2"),
        ("two.example.lab.", "127.10.0.3"),
        ("three.example.lab.", "127.10.0.4"),
    ] {
        let reply = ask(&t, name, RecordType::A).await;
        assert_eq!(first_a(&reply).as_deref(), Some(want), "{name}");
    }
    assert!(
        tree.queries_to(EX1) <= 1,
        "the dead server was asked {} times",
        tree.queries_to(EX1)
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_resolution_is_remembered_for_five_seconds() {
    let tree = imperfect_tree().await;
    tree.set_behaviour(SOLO, Behaviour::ServFail);
    let clock = Clock::manual();
    let t = start_taproot_on(&tree, clock.clone(), |_| {}).await;
    let first = ask(&t, "www.solo.lab.", RecordType::A).await;
    assert_eq!(first.metadata.response_code, ResponseCode::ServFail);
    let walked = tree.total_queries();
    assert!(walked > 0);
    for _ in 0..2 {
        let again = ask(&t, "www.solo.lab.", RecordType::A).await;
        assert_eq!(again.metadata.response_code, ResponseCode::ServFail);
    }
    assert_eq!(
        tree.total_queries(),
        walked,
        "answered from the failure cache"
    );
    let metrics = t.metrics_text();
    assert!(
        metrics.contains("taproot_servfail_cached_total 2"),
        "{metrics}"
    );
    tree.set_behaviour(SOLO, Behaviour::Normal);
    clock.advance(5_000);
    let later = ask(&t, "www.solo.lab.", RecordType::A).await;
    assert_eq!(later.metadata.response_code, ResponseCode::NoError);
    assert!(tree.total_queries() > walked, "walked again after 5 s");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_root_costs_at_most_32_queries_and_the_same_question_again_none() {
    let dead = [ip(21), ip(22), ip(23)];
    let root = r#"
$TTL 86400
@              IN SOA a.root.lab. hostmaster.root.lab. 1 1800 900 604800 86400
@              IN NS  a.root.lab.
@              IN NS  b.root.lab.
@              IN NS  c.root.lab.
a.root.lab.    IN A   127.0.9.21
b.root.lab.    IN A   127.0.9.22
c.root.lab.    IN A   127.0.9.23
"#;
    let tree = FakeTree::builder().zone(".", root, &dead).start().await;
    for addr in dead {
        tree.set_behaviour(addr, Behaviour::Drop);
    }
    let t = start_taproot(&tree, |c| c.resolver.upstream_timeout_ms = 150).await;
    // Each dead server is asked up to five times (its RTO doubling), so the
    // failure takes longer than one client retry; the query budget bounds it.
    let reply = ask_udp_within(
        t.addr,
        &client::recursive("www.example.lab.", RecordType::A),
        Duration::from_secs(12),
    )
    .await
    .expect("SERVFAIL within the query budget");
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    let sent = tree.total_queries();
    assert!(sent <= 32, "{sent} queries: {:?}", tree.query_log());
    let primes = tree
        .query_log()
        .iter()
        .filter(|q| q.rtype == RecordType::NS && q.name.is_root())
        .count();
    assert!(
        primes <= 2 * dead.len(),
        "primed once: {primes} . NS queries"
    );
    let again = ask(&t, "www.example.lab.", RecordType::A).await;
    assert_eq!(again.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(tree.total_queries(), sent, "the second question sent none");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_slowed_down_is_still_used_when_it_is_the_only_one() {
    let tree = imperfect_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    // Measured fast first...
    let fast = ask(&t, "a.solo.lab.", RecordType::A).await;
    assert_eq!(first_a(&fast).as_deref(), Some("127.10.1.2"));
    // ...then it takes 300 ms, longer than its measured RTT allows.
    tree.set_behaviour(SOLO, Behaviour::Delay(Duration::from_millis(300)));
    let slow = ask(&t, "b.solo.lab.", RecordType::A).await;
    assert_eq!(slow.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&slow).as_deref(), Some("127.10.1.3"));
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_servers_are_all_retried_with_a_longer_wait_before_giving_up() {
    let tree = imperfect_tree().await;
    let t = start_taproot(&tree, |_| {}).await;
    // Measure both servers fast: EX1 answers one question, then is dropped
    // for the next so that EX2 answers it.
    let first = ask(&t, "www.example.lab.", RecordType::A).await;
    assert_eq!(first_a(&first).as_deref(), Some("127.10.0.1"));
    tree.set_behaviour(EX1, Behaviour::Drop);
    tree.set_behaviour(EX2, Behaviour::Normal);
    let second = ask(&t, "one.example.lab.", RecordType::A).await;
    assert_eq!(first_a(&second).as_deref(), Some("127.10.0.2"));
    // Now both take 300 ms: each first wait is too short, the retry is not.
    for addr in [EX1, EX2] {
        tree.set_behaviour(addr, Behaviour::Delay(Duration::from_millis(300)));
    }
    let slow = ask(&t, "two.example.lab.", RecordType::A).await;
    assert_eq!(slow.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&slow).as_deref(), Some("127.10.0.3"));
    t.stop().await;
}

/// `example.lab.` is served by `ns.example.net2.`, whose own zone names a
/// dead address for it; the `net2.` referral's glue for that name is the
/// live one. Unbound's last resort tries the parent-side glue of the NS
/// names themselves (`iter_lookup_parent_glue_from_cache`), and so must
/// taproot, not just the parent side of the zone being asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_servers_own_parent_side_glue_is_tried_when_its_zone_gives_a_dead_address() {
    let net = |last: u8| IpAddr::V4(Ipv4Addr::new(127, 0, 13, last));
    let root = r#"
$TTL 86400
@              IN SOA a.root.lab. hostmaster.root.lab. 1 1800 900 604800 86400
@              IN NS  a.root.lab.
a.root.lab.    IN A   127.0.13.1
lab.           IN NS  ns.lab.
ns.lab.        IN A   127.0.13.2
net2.          IN NS  ns.net2.
ns.net2.       IN A   127.0.13.3
"#;
    let lab = r#"
$TTL 3600
@             IN SOA ns.lab. hostmaster.lab. 1 1800 900 604800 600
@             IN NS  ns
ns            IN A   127.0.13.2
example       IN NS  ns.example.net2.
"#;
    let net2 = r#"
$TTL 3600
@                IN SOA ns.net2. hostmaster.net2. 1 1800 900 604800 600
@                IN NS  ns
ns               IN A   127.0.13.3
example          IN NS  ns.example
ns.example       IN A   127.0.13.4
"#;
    // The child zone says its server is at .98, where nothing listens.
    let example_net2 = r#"
$TTL 3600
@     IN SOA ns hostmaster 1 1800 900 604800 600
@     IN NS  ns
ns    IN A   127.0.13.98
"#;
    let example_lab = r#"
$TTL 3600
@     IN SOA ns.example.net2. hostmaster 1 1800 900 604800 600
@     IN NS  ns.example.net2.
www   IN A   127.10.13.1
"#;
    let tree = FakeTree::builder()
        .zone(".", root, &[net(1)])
        .zone("lab.", lab, &[net(2)])
        .zone("net2.", net2, &[net(3)])
        .zone("example.net2.", example_net2, &[net(4)])
        .zone("example.lab.", example_lab, &[net(4)])
        .start()
        .await;
    let t = start_taproot(&tree, |_| {}).await;
    let reply = ask(&t, "www.example.lab.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(first_a(&reply).as_deref(), Some("127.10.13.1"));
    t.stop().await;
}

/// A server of example.lab. that answers `bad.example.lab. A` with the
/// spoofer's address and, in the authority section, claims the whole zone
/// is served by `bad.example.lab.`; AA as `aa`.
fn ns_in_answer_authority(aa: bool) -> Behaviour {
    Behaviour::Rewrite(Rewrite::new(move |query, reply| {
        let qname = query.queries[0].name().clone();
        if qname != client::name("bad.example.lab.") {
            return;
        }
        reply.metadata.response_code = ResponseCode::NoError;
        reply.metadata.authoritative = aa;
        reply.answers = vec![Record::from_rdata(
            qname,
            3600,
            RData::A(A::new(127, 0, 9, 66)),
        )];
        reply.authorities = vec![Record::from_rdata(
            client::name("example.lab."),
            86400,
            RData::NS(NS(client::name("bad.example.lab."))),
        )];
        reply.additionals.clear();
    }))
}

/// RFC 2181 §5.4.1: the NS set in the authority section of an answer is not
/// the delegation. An answer for `bad.example.lab.` that names itself the
/// zone's server must not send later questions for the zone there, with AA
/// or without, validating or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ns_set_in_an_answers_authority_section_does_not_replace_the_delegation() {
    for (aa, validation) in [(true, false), (false, false), (true, true), (false, true)] {
        let tree = imperfect_builder()
            .zone("example.lab.", SPOOF_ZONE, &[SPOOF])
            .start()
            .await;
        for server in [EX1, EX2] {
            tree.set_behaviour(server, ns_in_answer_authority(aa));
        }
        let t = start_taproot(&tree, |c| {
            if validation {
                // The tree is unsigned: validate, but find everything insecure.
                c.dnssec.validation = true;
                c.dnssec.negative_trust_anchors = vec![".".into()];
            }
        })
        .await;
        let case = format!("aa={aa} validation={validation}");
        let bad = ask(&t, "bad.example.lab.", RecordType::A).await;
        assert_eq!(first_a(&bad).as_deref(), Some("127.0.9.66"), "{case}");
        tree.reset_counts();
        for (name, want) in [
            ("www.example.lab.", "127.10.0.1"),
            ("one.example.lab.", "127.10.0.2"),
        ] {
            let reply = ask(&t, name, RecordType::A).await;
            assert_eq!(first_a(&reply).as_deref(), Some(want), "{case}: {name}");
        }
        assert_eq!(
            tree.queries_to(SPOOF),
            0,
            "{case}: the zone's real servers are asked: {:?}",
            tree.query_log()
        );
        let ns = ask(&t, "example.lab.", RecordType::NS).await;
        assert!(
            ns.answers
                .iter()
                .all(|r| r.data != RData::NS(NS(client::name("bad.example.lab.")))),
            "{case}: the spoofed NS set is not served: {ns:?}"
        );
        t.stop().await;
        tree.shutdown().await;
    }
}

/// Every empty answer of a server of `zone` carries, instead of the SOA,
/// the zone's own NS set (`zone NS ns`); AA and RA as given. Answers with
/// data are left alone.
fn zone_ns_without_soa(zone: &'static str, ns: &'static str, aa: bool, ra: bool) -> Behaviour {
    Behaviour::Rewrite(Rewrite::new(move |_, reply| {
        if !reply.answers.is_empty() {
            return;
        }
        reply.metadata.response_code = ResponseCode::NoError;
        reply.metadata.authoritative = aa;
        reply.metadata.recursion_available = ra;
        reply.authorities = vec![Record::from_rdata(
            client::name(zone),
            3600,
            RData::NS(NS(client::name(ns))),
        )];
        reply.additionals.clear();
    }))
}

/// An authoritative empty answer with the zone's own NS set and no SOA is
/// that zone's NODATA (Unbound's `response_type_from_server` reads it so;
/// RFC 2308 §2.2 NODATA with the NS set, missing the SOA), not a lame
/// server: the client gets NOERROR and no data, and the server's answers
/// with data still come through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authoritative_empty_answer_with_the_zones_own_ns_set_is_nodata() {
    let tree = imperfect_tree().await;
    tree.set_behaviour(
        SOLO,
        zone_ns_without_soa("solo.lab.", "ns.solo.lab.", true, false),
    );
    let t = start_taproot(&tree, |_| {}).await;
    let nodata = ask(&t, "www.solo.lab.", RecordType::TXT).await;
    assert_eq!(
        nodata.metadata.response_code,
        ResponseCode::NoError,
        "{nodata:?}"
    );
    assert!(nodata.answers.is_empty(), "{nodata:?}");
    let www = ask(&t, "www.solo.lab.", RecordType::A).await;
    assert_eq!(first_a(&www).as_deref(), Some("127.10.1.1"));
    t.stop().await;
}

/// RA=1, AA=0, no data, no SOA, the zone's own NS set: a recursive
/// resolver with nothing to say (Unbound's REC_LAME), not an answer. When
/// every other server of the zone is lame too, the client gets SERVFAIL,
/// not a NODATA made of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_servers_empty_answer_with_the_zones_ns_set_is_never_the_answer() {
    let tree = imperfect_tree().await;
    tree.set_behaviour(
        EX1,
        zone_ns_without_soa("example.lab.", "ns1.example.lab.", false, true),
    );
    tree.set_behaviour(EX2, Behaviour::Lame);
    tree.set_behaviour(
        SOLO,
        zone_ns_without_soa("solo.lab.", "ns.solo.lab.", false, true),
    );
    let t = start_taproot(&tree, |_| {}).await;
    for name in ["www.example.lab.", "www.solo.lab."] {
        let reply = ask(&t, name, RecordType::TXT).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::ServFail,
            "{name}: {reply:?}"
        );
    }
    t.stop().await;
}

/// Adds to every reply a DNSKEY whose protocol field is 2 (RFC 4034
/// §2.1.2 allows only 3): hickory refuses the whole message.
fn undecodable_dnskey() -> Behaviour {
    Behaviour::Rewrite(Rewrite::new(|query, reply| {
        reply.answers.push(Record::from_rdata(
            query.queries[0].name().clone(),
            3600,
            RData::Unknown {
                code: RecordType::DNSKEY,
                // Flags 256 (zone key), protocol 2, algorithm 8, a key.
                rdata: NULL::with(vec![1, 0, 2, 8, 3, 1, 0, 1]),
            },
        ));
    }))
}

/// Asks with a client that waits longer than the resolver may, and says
/// how long the answer took.
async fn timed_ask(t: &Taproot, name: &str) -> (Message, Duration) {
    let started = Instant::now();
    let reply = client::ask_udp_within(
        t.addr,
        &client::recursive(name, RecordType::A),
        Duration::from_secs(8),
    )
    .await
    .unwrap_or_else(|| panic!("no reply for {name} within 8 s"));
    (reply, started.elapsed())
}

/// An undecodable reply with the right ID and question is the server's
/// FORMERR-like failure, not a forgery to wait past: a zone whose only
/// server sends one gets SERVFAIL at once, well before the 1.5 s timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_reply_from_the_only_server_is_servfail_without_waiting() {
    for (what, broken) in [
        ("garbage", Behaviour::Garbage),
        ("a DNSKEY with protocol 2", undecodable_dnskey()),
    ] {
        let tree = imperfect_tree().await;
        tree.set_behaviour(SOLO, broken);
        let t = start_taproot(&tree, |c| c.resolver.upstream_timeout_ms = 1500).await;
        let (reply, took) = timed_ask(&t, "www.solo.lab.").await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::ServFail,
            "{what}: {reply:?}"
        );
        assert!(tree.queries_to(SOLO) >= 1, "{what}: the server was asked");
        assert!(took < Duration::from_millis(700), "{what}: took {took:?}");
        let metrics = t.metrics_text();
        assert!(
            metrics.contains(r#"result="malformed""#),
            "{what}: counted as malformed: {metrics}"
        );
        t.stop().await;
        tree.shutdown().await;
    }
}

/// Beside a server whose replies do not decode, the other server of the
/// zone answers, without a timeout spent on the broken one first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_reply_sends_the_question_to_the_zones_other_server_at_once() {
    // The first server asked is the delegation's first, or now and then a
    // random one (exploration): start afresh until the broken one was asked.
    let mut broken_was_asked = false;
    for _ in 0..5 {
        let tree = imperfect_tree().await;
        tree.set_behaviour(EX1, Behaviour::Garbage);
        let t = start_taproot(&tree, |c| c.resolver.upstream_timeout_ms = 1500).await;
        for (name, want) in [
            ("www.example.lab.", "127.10.0.1"),
            ("one.example.lab.", "127.10.0.2"),
        ] {
            let (reply, took) = timed_ask(&t, name).await;
            assert_eq!(first_a(&reply).as_deref(), Some(want), "{name}: {reply:?}");
            assert!(took < Duration::from_millis(700), "{name}: took {took:?}");
        }
        broken_was_asked = tree.queries_to(EX1) > 0;
        t.stop().await;
        tree.shutdown().await;
        if broken_was_asked {
            break;
        }
    }
    assert!(broken_was_asked, "the broken server was never asked first");
}
