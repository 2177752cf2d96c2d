//! DNS over TLS to a forwarder (RFC 7858): taproot's [`DotPool`] against a
//! real Unbound serving DoT on loopback with a certificate from a test CA.
//!
//! ```text
//!  50 queries ──► DotPool ══ one TLS connection, pipelined ══► Unbound 127.0.2.53 (cert dot.lab)
//! ```
//!
//! What is shown: one handshake carries many concurrent queries; an idle
//! connection is closed and the next query opens another; a certificate
//! for another name, or from another CA, gets no query answered; a CA file
//! that cannot be used is refused naming it; a server that dies fails the
//! queries waiting on it at once, and is reconnected once it is back. A
//! small TLS server in this file answers out of order, to show answers
//! are matched by ID and that the in-flight bound holds.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use taproot::resolve::tls::{DotPool, TlsConfigError, TlsUpstream};
use taproot::resolve::transport::{Exchange, Question, TransportError};

use support::dot::{DOT_NAME, TestPki, UnboundDot};
use support::e2e::{TempDir, off_thread};

/// What a forwarder is asked: `name` A with RD (it recurses for us), EDNS.
fn forwarder_question(name: &Name, use_0x20: bool) -> Question<'_> {
    Question {
        name,
        rtype: RecordType::A,
        edns_payload: Some(1232),
        dnssec_ok: false,
        use_0x20,
        recursion_desired: true,
        checking_disabled: false,
    }
}

/// Asks `qname` A of `server` through `pool`.
async fn ask(
    pool: &DotPool,
    server: SocketAddr,
    upstream: &TlsUpstream,
    qname: &str,
    timeout: Duration,
) -> Result<Exchange, TransportError> {
    let name = Name::from_ascii(qname).expect("a test name");
    pool.exchange(server, upstream, &forwarder_question(&name, false), timeout)
        .await
}

/// The A records' addresses of an answer.
fn addresses(x: &Exchange) -> Vec<String> {
    x.message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// `host{i}.corp.lab. A 192.0.2.{i}` for i in 1..=n.
fn host_records(n: u8) -> Vec<String> {
    (1..=n)
        .map(|i| format!("host{i}.corp.lab. 300 IN A 192.0.2.{i}"))
        .collect()
}

async fn start_unbound(records: Vec<String>) -> UnboundDot {
    off_thread(move || {
        let refs: Vec<&str> = records.iter().map(String::as_str).collect();
        UnboundDot::start(&refs)
    })
    .await
}

/// Polls `check` every 10 ms for up to `within`.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_queries_share_one_connection_and_one_handshake() {
    let dot = start_unbound(host_records(50)).await;
    let upstream =
        Arc::new(TlsUpstream::new(dot.name(), Some(dot.ca_file())).expect("the test CA loads"));
    let pool = Arc::new(DotPool::new(Duration::from_secs(30)));
    let server = dot.addr();
    // Two waves: the first shares the handshake, the second reuses the
    // connection the first opened.
    for wave in 0..2 {
        ask_fifty(&pool, &upstream, server, &dot).await;
        assert_eq!(
            pool.handshakes(),
            1,
            "one handshake for all queries of wave {wave}"
        );
        assert_eq!(pool.connections(), 1);
        assert_eq!(pool.in_flight(), 0, "every query's ID was released");
    }
}

/// Asks host1…host50 of `dot` at once; every answer must be right.
async fn ask_fifty(
    pool: &Arc<DotPool>,
    upstream: &Arc<TlsUpstream>,
    server: SocketAddr,
    dot: &UnboundDot,
) {
    let mut queries = tokio::task::JoinSet::new();
    for i in 1..=50u8 {
        let (pool, upstream) = (pool.clone(), upstream.clone());
        queries.spawn(async move {
            // Every other query with a randomised case: Unbound echoes it,
            // and the answer must carry it exactly (0x20).
            let mut name = Name::from_ascii(format!("host{i}.corp.lab.")).expect("name");
            let use_0x20 = i % 2 == 0;
            if use_0x20 {
                name.randomize_label_case();
            }
            let q = forwarder_question(&name, use_0x20);
            (
                i,
                pool.exchange(server, &upstream, &q, Duration::from_secs(5))
                    .await,
            )
        });
    }
    let mut answered = 0;
    while let Some(joined) = queries.join_next().await {
        let (i, result) = joined.expect("the query task");
        let x = result.unwrap_or_else(|e| panic!("host{i}: {e}; Unbound's log:\n{}", dot.log()));
        assert_eq!(addresses(&x), [format!("192.0.2.{i}")], "host{i}");
        assert!(x.tcp, "DoT is a stream transport");
        assert!(x.size > 12, "the reply's size is filled");
        assert!(
            x.message.metadata.recursion_available,
            "a forwarder's answer has RA"
        );
        answered += 1;
    }
    assert_eq!(answered, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_and_the_next_query_opens_another() {
    let dot = start_unbound(host_records(3)).await;
    let upstream = TlsUpstream::new(dot.name(), Some(dot.ca_file())).expect("the test CA loads");
    let idle = Duration::from_millis(300);
    let pool = DotPool::new(idle);
    let wait = Duration::from_secs(5);
    let first = ask(&pool, dot.addr(), &upstream, "host1.corp.lab.", wait)
        .await
        .expect("first answer");
    assert_eq!(addresses(&first), ["192.0.2.1"]);
    let second = ask(&pool, dot.addr(), &upstream, "host2.corp.lab.", wait)
        .await
        .expect("second answer");
    assert_eq!(addresses(&second), ["192.0.2.2"]);
    let last_used = Instant::now();
    assert_eq!(pool.handshakes(), 1, "a busy connection is reused");
    assert!(
        eventually(Duration::from_secs(5), || pool.connections() == 0).await,
        "the idle connection was not closed"
    );
    assert!(
        last_used.elapsed() >= idle,
        "closed after {:?}, before the idle time",
        last_used.elapsed()
    );
    let third = ask(&pool, dot.addr(), &upstream, "host3.corp.lab.", wait)
        .await
        .expect("third answer");
    assert_eq!(addresses(&third), ["192.0.2.3"]);
    assert_eq!(
        pool.handshakes(),
        2,
        "a new connection after the idle close"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_or_from_another_ca_gets_no_query_answered() {
    let dot = start_unbound(host_records(1)).await;
    let pool = Arc::new(DotPool::new(Duration::from_secs(30)));
    let wrong_name =
        Arc::new(TlsUpstream::new("wrong.lab", Some(dot.ca_file())).expect("the test CA loads"));
    // Ten queries wait for the one handshake, and all fail with it.
    let mut queries = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..10 {
        let (pool, upstream, server) = (pool.clone(), wrong_name.clone(), dot.addr());
        queries.spawn(async move {
            ask(
                &pool,
                server,
                &upstream,
                "host1.corp.lab.",
                Duration::from_secs(5),
            )
            .await
        });
    }
    while let Some(joined) = queries.join_next().await {
        match joined.expect("the query task") {
            Err(TransportError::Tls(e @ rustls::Error::InvalidCertificate(_))) => {
                let text = e.to_string();
                assert!(text.contains("not valid for name"), "{text}");
                assert!(text.contains("wrong.lab"), "names the name: {text}");
            }
            other => panic!("expected a certificate error, got {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failed at once, not after retries or a timeout"
    );
    let other_ca =
        TlsUpstream::new(DOT_NAME, Some(dot.other_ca_file())).expect("the other CA loads");
    match ask(
        &pool,
        dot.addr(),
        &other_ca,
        "host1.corp.lab.",
        Duration::from_secs(5),
    )
    .await
    {
        Err(TransportError::Tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))) => {}
        other => panic!("expected an unknown issuer, got {other:?}"),
    }
    assert_eq!(pool.handshakes(), 0, "no handshake completed");
    assert_eq!(pool.connections(), 0);
    // The server is fine: the right name and roots get the answer (the
    // name written as a DNS name, with its trailing dot).
    let right =
        TlsUpstream::new(&format!("{DOT_NAME}."), Some(dot.ca_file())).expect("the test CA loads");
    assert_eq!(right.name(), DOT_NAME);
    let x = ask(
        &pool,
        dot.addr(),
        &right,
        "host1.corp.lab.",
        Duration::from_secs(5),
    )
    .await
    .expect("answered with the right name");
    assert_eq!(addresses(&x), ["192.0.2.1"]);
}

#[test]
fn a_ca_file_that_is_missing_or_holds_no_certificate_is_refused_naming_the_file() {
    let dir = TempDir::new("dot-ca");
    let missing = dir.path().join("missing.pem");
    match TlsUpstream::new(DOT_NAME, Some(&missing)) {
        Err(e @ TlsConfigError::CaFileUnreadable { .. }) => {
            assert!(
                e.to_string().contains(&missing.display().to_string()),
                "{e}"
            );
        }
        other => panic!("expected CaFileUnreadable, got {other:?}"),
    }
    // A key, text that is not PEM at all, and an empty file: no certificate.
    let pki = TestPki::make(dir.path(), "t", "taproot test CA", DOT_NAME);
    let not_pem = dir.write("notes.txt", "this is not a certificate\n");
    let empty = dir.write("empty.pem", "");
    for path in [&pki.key, &not_pem, &empty] {
        match TlsUpstream::new(DOT_NAME, Some(path)) {
            Err(e @ TlsConfigError::CaFileEmpty { .. }) => {
                assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            }
            other => panic!("{}: expected CaFileEmpty, got {other:?}", path.display()),
        }
    }
    // A certificate section cut short, and one whose body is not a certificate.
    let cut = dir.write(
        "cut.pem",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n",
    );
    match TlsUpstream::new(DOT_NAME, Some(&cut)) {
        Err(e @ TlsConfigError::CaFileNotPem { .. }) => {
            assert!(e.to_string().contains(&cut.display().to_string()), "{e}");
        }
        other => panic!("expected CaFileNotPem, got {other:?}"),
    }
    let junk = dir.write(
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    match TlsUpstream::new(DOT_NAME, Some(&junk)) {
        Err(e @ TlsConfigError::CaFileBadCertificate { .. }) => {
            assert!(e.to_string().contains(&junk.display().to_string()), "{e}");
        }
        other => panic!("expected CaFileBadCertificate, got {other:?}"),
    }
    // The CA itself loads, and a name that is no name is refused.
    assert!(TlsUpstream::new(DOT_NAME, Some(&pki.ca)).is_ok());
    assert!(matches!(
        TlsUpstream::new("not a name!", Some(&pki.ca)),
        Err(TlsConfigError::Name { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_its_pending_queries_at_once_and_is_reconnected_after_a_restart() {
    let dot = start_unbound(host_records(6)).await;
    let upstream =
        Arc::new(TlsUpstream::new(dot.name(), Some(dot.ca_file())).expect("the test CA loads"));
    let pool = Arc::new(DotPool::new(Duration::from_secs(30)));
    let server = dot.addr();
    let before = ask(
        &pool,
        server,
        &upstream,
        "host1.corp.lab.",
        Duration::from_secs(5),
    )
    .await
    .expect("answered before the kill");
    assert_eq!(addresses(&before), ["192.0.2.1"]);
    // Stopped, Unbound keeps the connection open but answers nothing:
    // five queries are sent and wait.
    dot.pause();
    let timeout = Duration::from_secs(10);
    let mut pending = tokio::task::JoinSet::new();
    for i in 2..=6 {
        let (pool, upstream) = (pool.clone(), upstream.clone());
        pending.spawn(async move {
            let qname = format!("host{i}.corp.lab.");
            ask(&pool, server, &upstream, &qname, timeout).await
        });
    }
    assert!(
        eventually(Duration::from_secs(5), || pool.in_flight() == 5).await,
        "five queries in flight, {} seen",
        pool.in_flight()
    );
    let dot = off_thread(move || {
        let mut dot = dot;
        dot.kill();
        dot
    })
    .await;
    let killed = Instant::now();
    while let Some(joined) = pending.join_next().await {
        match joined.expect("the query task") {
            Err(TransportError::Io(_)) => {}
            other => panic!("expected a network error, got {other:?}"),
        }
    }
    let failed_after = killed.elapsed();
    assert!(
        failed_after < Duration::from_secs(2),
        "pending queries failed {failed_after:?} after the kill, timeout {timeout:?}"
    );
    assert_eq!(pool.connections(), 0, "the dead connection is forgotten");
    // Down: the next query fails too (connection refused), without a wait.
    let down = ask(
        &pool,
        server,
        &upstream,
        "host2.corp.lab.",
        Duration::from_secs(5),
    )
    .await;
    assert!(matches!(down, Err(TransportError::Io(_))), "{down:?}");
    let dot = off_thread(move || {
        let mut dot = dot;
        dot.restart();
        dot
    })
    .await;
    let after = ask(
        &pool,
        server,
        &upstream,
        "host2.corp.lab.",
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| panic!("no answer after the restart: {e}; log:\n{}", dot.log()));
    assert_eq!(addresses(&after), ["192.0.2.2"]);
    assert_eq!(pool.handshakes(), 2, "one new connection after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closes_is_forgotten_and_the_next_query_opens_another() {
    // Unbound closes a connection idle for 200 ms (its tcp-idle-timeout);
    // the pool's own idle time is far longer.
    let records = host_records(2);
    let dot = off_thread(move || {
        let refs: Vec<&str> = records.iter().map(String::as_str).collect();
        UnboundDot::start_with(&refs, "tcp-idle-timeout: 200")
    })
    .await;
    let upstream = TlsUpstream::new(dot.name(), Some(dot.ca_file())).expect("the test CA loads");
    let pool = DotPool::new(Duration::from_secs(60));
    let wait = Duration::from_secs(5);
    let first = ask(&pool, dot.addr(), &upstream, "host1.corp.lab.", wait)
        .await
        .expect("first answer");
    assert_eq!(addresses(&first), ["192.0.2.1"]);
    assert!(
        eventually(Duration::from_secs(5), || pool.connections() == 0).await,
        "the connection Unbound closed is still in the pool"
    );
    let second = ask(&pool, dot.addr(), &upstream, "host2.corp.lab.", wait)
        .await
        .expect("answered on a new connection, not failed on the closed one");
    assert_eq!(addresses(&second), ["192.0.2.2"]);
    assert_eq!(pool.handshakes(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_falls_silent_is_closed_when_a_query_times_out_on_it() {
    // A frozen server keeps its TCP connection open and answers nothing,
    // like a peer behind a NAT that lost its state: TCP alone would not
    // notice for minutes.
    let dot = start_unbound(host_records(3)).await;
    let upstream =
        Arc::new(TlsUpstream::new(dot.name(), Some(dot.ca_file())).expect("the test CA loads"));
    let pool = Arc::new(DotPool::new(Duration::from_secs(60)));
    let server = dot.addr();
    ask(
        &pool,
        server,
        &upstream,
        "host1.corp.lab.",
        Duration::from_secs(5),
    )
    .await
    .expect("answered before the freeze");
    dot.pause();
    let patient = {
        let (pool, upstream) = (pool.clone(), upstream.clone());
        tokio::spawn(async move {
            let result = ask(
                &pool,
                server,
                &upstream,
                "host2.corp.lab.",
                Duration::from_secs(10),
            )
            .await;
            (result, Instant::now())
        })
    };
    let short = Duration::from_millis(1_200);
    let timed_out = ask(&pool, server, &upstream, "host3.corp.lab.", short).await;
    let closed_at = Instant::now();
    assert!(
        matches!(timed_out, Err(TransportError::Timeout(_))),
        "{timed_out:?}"
    );
    // Silent for longer than the limit since the query went out: dead.
    let (patient, failed_at) = patient.await.expect("the patient query");
    assert!(matches!(patient, Err(TransportError::Io(_))), "{patient:?}");
    assert!(
        failed_at.saturating_duration_since(closed_at) < Duration::from_secs(1),
        "the query waiting on the dead connection failed with it, not after its 10 s"
    );
    assert!(
        eventually(Duration::from_secs(2), || pool.connections() == 0).await,
        "the silent connection is still in the pool"
    );
    dot.resume();
    let after = ask(
        &pool,
        server,
        &upstream,
        "host3.corp.lab.",
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| panic!("no answer after the resume: {e}; log:\n{}", dot.log()));
    assert_eq!(addresses(&after), ["192.0.2.3"]);
    assert_eq!(
        pool.handshakes(),
        2,
        "a new connection replaced the silent one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_opened_from_a_worker_runtime_keeps_serving_while_that_worker_sleeps() {
    // taproot's UDP workers each run a current-thread runtime that runs
    // only while the worker has resolutions in flight; between batches
    // the thread sleeps in recv. A connection opened from a worker must
    // not live on that runtime, or every other worker's queries on it
    // would wait for that worker to wake.
    let dot = start_unbound(host_records(2)).await;
    let upstream =
        Arc::new(TlsUpstream::new(dot.name(), Some(dot.ca_file())).expect("the test CA loads"));
    // Made on the test's (multi-threaded) runtime, as the server makes it
    // on its main one.
    let pool = Arc::new(DotPool::new(Duration::from_secs(60)));
    let server = dot.addr();
    let (answered_tx, answered_rx) = std::sync::mpsc::channel();
    let (wake_tx, wake_rx) = std::sync::mpsc::channel::<()>();
    let worker = {
        let (pool, upstream) = (pool.clone(), upstream.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a worker runtime");
            let first = runtime.block_on(ask(
                &pool,
                server,
                &upstream,
                "host1.corp.lab.",
                Duration::from_secs(5),
            ));
            let _ = answered_tx.send(first.map(|x| addresses(&x)).map_err(|e| e.to_string()));
            // Asleep, as in recv: this runtime runs nothing until woken.
            let _ = wake_rx.recv_timeout(Duration::from_secs(30));
        })
    };
    let first = off_thread(move || answered_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("the worker reported")
        .expect("the worker's query was answered");
    assert_eq!(first, ["192.0.2.1"]);
    let second = ask(
        &pool,
        server,
        &upstream,
        "host2.corp.lab.",
        Duration::from_secs(2),
    )
    .await;
    let _ = wake_tx.send(());
    let second = second.expect("answered on the worker's connection while the worker sleeps");
    assert_eq!(addresses(&second), ["192.0.2.2"]);
    assert_eq!(pool.handshakes(), 1, "the same connection");
    off_thread(move || worker.join().expect("the worker thread")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_gets_the_harness_answer_over_tls_with_the_test_ca() {
    // The harness checked by another DoT client: the certificate and the
    // data are right independently of taproot's client.
    let dot = start_unbound(host_records(1)).await;
    let (addr, ca) = (dot.addr(), dot.ca_file().display().to_string());
    let reply = off_thread(move || {
        support::e2e::kdig(
            addr,
            &[
                "+tls",
                &format!("+tls-ca={ca}"),
                &format!("+tls-hostname={DOT_NAME}"),
                "host1.corp.lab",
                "A",
            ],
        )
    })
    .await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(reply.answers("A"), ["192.0.2.1"], "{}", reply.text);
}

// ---------------------------------------------------------------------------
// A TLS server that answers out of order

/// Reads framed queries on one TLS connection and answers them in
/// batches, each in reverse order: whatever waits once no query came for
/// 200 ms. A client that pipelines without a bound would have all its
/// queries waiting at once. Returns the most queries it ever saw waiting
/// at once, after answering `total`; checks that each query is padded
/// (RFC 7830) to a multiple of 128 bytes (RFC 8467 §4.1).
async fn serve_in_reverse(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    total: usize,
) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut tls = acceptor.accept(tcp).await.expect("the TLS handshake");
    let mut waiting: Vec<Message> = Vec::new();
    let (mut most, mut answered) = (0, 0);
    while answered < total {
        let read = async {
            let len = tls.read_u16().await? as usize;
            let mut buf = vec![0u8; len];
            tls.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        match tokio::time::timeout(Duration::from_millis(200), read).await {
            Ok(Ok(buf)) => {
                assert_eq!(buf.len() % 128, 0, "a query of {} bytes", buf.len());
                let query = Message::from_vec(&buf).expect("a query");
                let padding = query
                    .edns
                    .as_ref()
                    .and_then(|e| e.option(hickory_proto::rr::rdata::opt::EdnsCode::Padding));
                assert!(padding.is_some(), "no padding option: {query:?}");
                waiting.push(query);
                most = most.max(waiting.len());
                continue;
            }
            Ok(Err(e)) => panic!("the client closed early: {e}"),
            Err(_) if waiting.is_empty() => continue,
            Err(_) => {}
        }
        for query in waiting.drain(..).rev() {
            let reply = answer(&query);
            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            tls.write_all(&framed).await.expect("write an answer");
            answered += 1;
        }
        tls.flush().await.expect("flush");
    }
    most
}

/// `host{i}…` A → 192.0.2.{i}, with the query's ID and question.
fn answer(query: &Message) -> Vec<u8> {
    let q = &query.queries[0];
    let label = q.name().iter().next().expect("a label");
    let i: u8 = std::str::from_utf8(&label[4..])
        .expect("ascii")
        .parse()
        .expect("host number");
    let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(Query::query(q.name().clone(), q.query_type()));
    m.add_answer(Record::from_rdata(
        q.name().clone(),
        300,
        RData::A(A::new(192, 0, 2, i)),
    ));
    m.to_vec().expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_out_of_order_reach_their_queries_and_in_flight_queries_are_bounded() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = TempDir::new("dot-reverse");
    let pki = TestPki::make(dir.path(), "r", "taproot test CA", DOT_NAME);
    let chain = CertificateDer::pem_file_iter(&pki.cert)
        .expect("the chain")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(&pki.key).expect("the key");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("the server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = listener.local_addr().expect("addr");
    let (bound, total) = (4, 12);
    let served = tokio::spawn(serve_in_reverse(listener, acceptor, total));
    let upstream = Arc::new(TlsUpstream::new(DOT_NAME, Some(&pki.ca)).expect("the test CA"));
    let pool = Arc::new(DotPool::with_max_in_flight(Duration::from_secs(30), bound));
    let mut queries = tokio::task::JoinSet::new();
    for i in 1..=total as u8 {
        let (pool, upstream) = (pool.clone(), upstream.clone());
        queries.spawn(async move {
            let qname = format!("host{i}.corp.lab.");
            (
                i,
                ask(&pool, server, &upstream, &qname, Duration::from_secs(5)).await,
            )
        });
    }
    while let Some(joined) = queries.join_next().await {
        let (i, result) = joined.expect("the query task");
        let x = result.unwrap_or_else(|e| panic!("host{i}: {e}"));
        assert_eq!(addresses(&x), [format!("192.0.2.{i}")], "host{i}");
    }
    let most = tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the server finished")
        .expect("the server task");
    assert_eq!(most, bound, "{bound} queries pipelined at once, never more");
    assert_eq!(pool.handshakes(), 1);
}
