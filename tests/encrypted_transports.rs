//! DNS over TLS (RFC 7858) and DNS over HTTPS (RFC 8484) for clients, with
//! real clients (kdig, curl, openssl s_client, dig) against taproot on
//! loopback, certificates made at test time by openssl (a throwaway CA and
//! leaf for `dns.test`).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::client::{recursive, three_level_tree};
use support::e2e::{TempDir, dig, free_port, kdig, off_thread, taproot_binary, tool};
use support::{Taproot, metric, start_taproot};

const NAME: &str = "www.example.co.kr.";
const WAIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Certificates

/// A throwaway CA and a leaf it signed for `dns.test` (and 127.0.0.1).
struct Pki {
    dir: TempDir,
    ca: PathBuf,
    chain: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(tool("openssl"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("pki");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=taproot test CA",
                "-days",
                "2",
            ],
        );
        let pki = Pki {
            ca: d.join("ca.pem"),
            chain: d.join("chain.pem"),
            key: d.join("leaf.key"),
            dir,
        };
        pki.leaf("first", "ec", &pki.chain, &pki.key);
        pki
    }

    /// Signs a leaf for `dns.test` with subject `CN=dns.test <tag>`, an EC
    /// (PKCS #8) or RSA (PKCS #1) key; writes the chain (leaf first) and key.
    fn leaf(&self, tag: &str, kind: &str, chain: &Path, key: &Path) {
        let d = self.dir.path();
        let stem = format!("leaf-{tag}");
        match kind {
            "ec" => openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-out",
                    &format!("{stem}.key"),
                ],
            ),
            _ => openssl(
                d,
                &[
                    "genrsa",
                    "-traditional",
                    "-out",
                    &format!("{stem}.key"),
                    "2048",
                ],
            ),
        }
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:dns.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext.cnf");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                &format!("{stem}.key"),
                "-out",
                &format!("{stem}.csr"),
                "-subj",
                &format!("/CN=dns.test {tag}"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{stem}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{stem}.pem"),
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let leaf = std::fs::read_to_string(d.join(format!("{stem}.pem"))).expect("leaf");
        let ca = std::fs::read_to_string(&self.ca).expect("ca");
        // Written to a temp name and renamed, as certbot swaps its links.
        let tmp = d.join("swap.tmp");
        std::fs::write(&tmp, format!("{leaf}{ca}")).expect("write chain");
        std::fs::rename(&tmp, chain).expect("rename chain");
        std::fs::copy(d.join(format!("{stem}.key")), &tmp).expect("copy key");
        std::fs::rename(&tmp, key).expect("rename key");
    }
}

/// taproot with DoT and DoH on free loopback ports and `pki`'s certificate.
async fn start_encrypted(pki: &Pki, tweak: impl FnOnce(&mut taproot::config::Config)) -> Taproot {
    let tree = three_level_tree().await;
    let chain = pki.chain.display().to_string();
    let key = pki.key.display().to_string();
    let t = start_taproot(&tree, move |c| {
        c.server.listen_tls = vec!["127.0.0.1:0".parse().expect("literal")];
        c.server.listen_https = vec!["127.0.0.1:0".parse().expect("literal")];
        c.server.tls.certificate_file = chain;
        c.server.tls.key_file = key;
        tweak(c);
    })
    .await;
    // The tree serves for as long as the test runs.
    std::mem::forget(tree);
    t
}

fn tls_addr(t: &Taproot) -> SocketAddr {
    t.running.tls_addrs[0]
}

fn https_addr(t: &Taproot) -> SocketAddr {
    t.running.https_addrs[0]
}

/// kdig or another client that may fail: (success, stdout + stderr).
fn run(program: &str, args: &[String]) -> (bool, String) {
    let out: Output = Command::new(tool(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// ---------------------------------------------------------------------------
// A TLS client of our own, for what kdig cannot show (a connection kept
// open across a reload, raw EDNS options).

fn client_config(ca: &Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots
            .add(cert.expect("a CA certificate"))
            .expect("add the CA");
    }
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("ring has TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn dot_connect(addr: SocketAddr, ca: &Path) -> Tls {
    let tcp = TcpStream::connect(addr).await.expect("connect to DoT");
    let connector = tokio_rustls::TlsConnector::from(client_config(ca, b"dot"));
    let name = ServerName::try_from("dns.test").expect("a name");
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds")
}

async fn dot_exchange(tls: &mut Tls, query: &[u8]) -> Vec<u8> {
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    tls.write_all(&framed).await.expect("send the query");
    tls.flush().await.expect("flush");
    let len = tokio::time::timeout(WAIT, tls.read_u16())
        .await
        .expect("an answer in time")
        .expect("a length");
    let mut buf = vec![0; len as usize];
    tls.read_exact(&mut buf).await.expect("the answer");
    buf
}

/// A recursive query with EDNS whose OPT carries `options` (code, data).
fn query_with_options(qname: &str, id: u16, options: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = recursive(qname, RecordType::A);
    m.metadata.id = id;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.edns = Some(edns);
    let mut bytes = m.to_vec().expect("encode");
    let mut extra = Vec::new();
    for (code, data) in options {
        extra.extend_from_slice(&code.to_be_bytes());
        extra.extend_from_slice(&(data.len() as u16).to_be_bytes());
        extra.extend_from_slice(data);
    }
    // The OPT record is last; its RDLENGTH is the final two bytes.
    let n = bytes.len();
    assert_eq!(&bytes[n - 2..], &[0, 0], "an empty OPT ends the query");
    bytes[n - 2..].copy_from_slice(&(extra.len() as u16).to_be_bytes());
    bytes.extend_from_slice(&extra);
    bytes
}

/// The option codes of a response's OPT record, read from its bytes.
fn option_codes(resp: &[u8]) -> Vec<u16> {
    let u16_at = |i: usize| u16::from_be_bytes([resp[i], resp[i + 1]]);
    let skip_name = |mut i: usize| loop {
        match resp[i] {
            0 => return i + 1,
            l if l & 0xc0 == 0xc0 => return i + 2,
            l => i += 1 + l as usize,
        }
    };
    let mut at = 12;
    for _ in 0..u16_at(4) {
        at = skip_name(at) + 4;
    }
    let records = u16_at(6) + u16_at(8) + u16_at(10);
    let mut codes = Vec::new();
    for _ in 0..records {
        let end_name = skip_name(at);
        let rtype = u16_at(end_name);
        let rdlen = u16_at(end_name + 8) as usize;
        let rdata = end_name + 10;
        if rtype == 41 {
            let mut o = rdata;
            while o + 4 <= rdata + rdlen {
                codes.push(u16_at(o));
                o += 4 + u16_at(o + 2) as usize;
            }
        }
        at = rdata + rdlen;
    }
    codes
}

// ---------------------------------------------------------------------------
// DNS over TLS

/// kdig authenticates taproot's certificate against the test CA and the
/// name, and gets the answer the UDP listener cached: the tree is not asked
/// again. A client that expects another name is refused by its own check,
/// which shows the certificate is really checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_over_tls_authenticates_dns_test_and_is_answered_from_the_shared_cache() {
    let pki = Pki::new();
    let t = start_encrypted(&pki, |_| {}).await;
    let (udp, tls) = (t.addr, tls_addr(&t));
    let warm = off_thread(move || dig(udp, &[NAME, "A"])).await;
    assert_eq!(
        warm.answers("A"),
        ["127.1.0.1", "127.1.0.2"],
        "{}",
        warm.text
    );
    let ca = format!("+tls-ca={}", pki.ca.display());
    let reply = off_thread({
        let ca = ca.clone();
        move || kdig(tls, &[&ca, "+tls-hostname=dns.test", NAME, "A"])
    })
    .await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert_eq!(
        reply.answers("A"),
        ["127.1.0.1", "127.1.0.2"],
        "{}",
        reply.text
    );
    assert!(
        reply.text.contains("TLS"),
        "kdig reports its TLS session: {}",
        reply.text
    );
    let text = t.metrics_text();
    assert_eq!(
        metric(
            &text,
            r#"taproot_queries_total{protocol="tls",qtype="A",rcode="NOERROR"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"taproot_query_duration_seconds_count{cache="miss"}"#
        ),
        1.0,
        "only the UDP query missed"
    );
    assert!(metric(&text, r#"taproot_tls_handshakes_total{transport="tls"}"#) >= 1.0);
    let port = tls.port().to_string();
    let (ok, text) = off_thread(move || {
        run(
            "kdig",
            &[
                "-p".into(),
                port,
                "@127.0.0.1".into(),
                ca,
                "+tls-hostname=other.test".into(),
                "+time=3".into(),
                "+retry=0".into(),
                NAME.into(),
                "A".into(),
            ],
        )
    })
    .await;
    assert!(
        !ok || !text.contains("NOERROR"),
        "a wrong name must not authenticate: {text}"
    );
    t.stop().await;
}

/// RFC 7828 and RFC 8467 §4.1: a client that sends edns-tcp-keepalive
/// learns the idle timeout; one that pads gets a response padded to a
/// multiple of 468 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_answers_keepalive_and_pads_to_blocks_of_468_for_a_padding_client() {
    let pki = Pki::new();
    let t = start_encrypted(&pki, |c| c.server.tcp_idle_timeout_ms = 7_000).await;
    let mut tls = dot_connect(tls_addr(&t), &pki.ca).await;
    let plain = dot_exchange(&mut tls, &query_with_options(NAME, 1, &[])).await;
    let padded = dot_exchange(&mut tls, &query_with_options(NAME, 2, &[(12, &[0; 8])])).await;
    let kept = dot_exchange(&mut tls, &query_with_options(NAME, 3, &[(11, &[])])).await;
    assert_ne!(
        plain.len() % 468,
        0,
        "no padding unasked ({} bytes)",
        plain.len()
    );
    assert_eq!(
        padded.len() % 468,
        0,
        "padded to a block ({} bytes)",
        padded.len()
    );
    let msg = Message::from_vec(&padded).expect("a DNS message");
    assert_eq!(msg.metadata.id, 2);
    assert_eq!(msg.answers.len(), 2);
    assert_eq!(option_codes(&padded), [12]);
    assert_eq!(option_codes(&kept), [11]);
    assert_eq!(option_codes(&plain), Vec::<u16>::new());
    // 7,000 ms in units of 100 ms.
    assert!(
        kept.ends_with(&[0, 11, 0, 2, 0, 70]),
        "{:02x?}",
        &kept[kept.len() - 6..]
    );
    t.stop().await;
}

/// Bytes that are not TLS, and a client that sends half a ClientHello
/// and waits, cost only their own connections: a real client is answered
/// meanwhile, each failure is counted by reason, and the half-open one is
/// closed at the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_a_half_open_handshake_do_not_stop_the_tls_listener() {
    let pki = Pki::new();
    let t = start_encrypted(&pki, |c| c.server.tcp_idle_timeout_ms = 1_500).await;
    let addr = tls_addr(&t);
    let mut garbage = TcpStream::connect(addr).await.expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02garbage")
        .await
        .expect("send garbage");
    let mut half = TcpStream::connect(addr).await.expect("connect");
    // A handshake record header announcing 512 bytes, then nothing.
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("send");
    let mut tls = dot_connect(addr, &pki.ca).await;
    let reply = dot_exchange(&mut tls, &query_with_options(NAME, 7, &[])).await;
    let reply = Message::from_vec(&reply).expect("a DNS message");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 2);
    // The garbage connection is closed by taproot (EOF or reset).
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(WAIT, garbage.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "taproot closes a connection that is not TLS"
    );
    // The half-open one is closed at the idle timeout, not before the answer above.
    let closed = tokio::time::timeout(WAIT, half.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "a stalled handshake is closed within the idle timeout"
    );
    let text = t.metrics_text();
    let failures = |reason: &str| {
        metric(
            &text,
            &format!(
                r#"taproot_tls_handshake_failures_total{{reason="{reason}",transport="tls"}}"#
            ),
        )
    };
    assert_eq!(failures("not_tls"), 1.0, "{text}");
    assert_eq!(failures("timeout"), 1.0, "{text}");
    // And still serving after both.
    let ca = format!("+tls-ca={}", pki.ca.display());
    let after = off_thread(move || kdig(addr, &[&ca, "+tls-hostname=dns.test", NAME, "A"])).await;
    assert_eq!(after.status, "NOERROR", "{}", after.text);
    t.stop().await;
}

// ---------------------------------------------------------------------------
// DNS over HTTPS

/// kdig's DoH: POST (its default) and GET (`+https-get`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_over_https_is_answered_by_post_and_by_get() {
    let pki = Pki::new();
    let t = start_encrypted(&pki, |_| {}).await;
    let addr = https_addr(&t);
    let ca = format!("+tls-ca={}", pki.ca.display());
    for (method, session) in [("+https", "HTTP/2-POST"), ("+https-get", "HTTP/2-GET")] {
        let ca = ca.clone();
        let reply =
            off_thread(move || kdig(addr, &[method, &ca, "+tls-hostname=dns.test", NAME, "A"]))
                .await;
        assert_eq!(reply.status, "NOERROR", "{method}: {}", reply.text);
        assert_eq!(
            reply.answers("A"),
            ["127.1.0.1", "127.1.0.2"],
            "{method}: {}",
            reply.text
        );
        assert!(
            reply.text.contains(&format!("HTTP session ({session})")),
            "{method}: kdig used DoH: {}",
            reply.text
        );
    }
    let text = t.metrics_text();
    assert_eq!(
        metric(
            &text,
            r#"taproot_queries_total{protocol="https",qtype="A",rcode="NOERROR"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"taproot_https_responses_total{status="200"}"#),
        2.0
    );
    t.stop().await;
}

/// What curl got: status, HTTP version, headers (lower-cased) and body.
struct Curl {
    status: u16,
    version: String,
    headers: String,
    body: Vec<u8>,
}

impl Curl {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// `curl` to `https://dns.test:PORT<path>` trusting the test CA; `extra`
/// are curl options (`--http2`, `--data-binary @file`, `-X PUT`, …).
fn curl(ca: &Path, dir: &Path, addr: SocketAddr, path: &str, extra: &[&str]) -> Curl {
    let (headers, body) = (dir.join("curl.headers"), dir.join("curl.body"));
    let mut args: Vec<String> = ["-sS", "--max-time", "5", "--cacert"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(ca.display().to_string());
    args.push("--resolve".into());
    args.push(format!("dns.test:{}:127.0.0.1", addr.port()));
    args.extend(["-D".into(), headers.display().to_string()]);
    args.extend(["-o".into(), body.display().to_string()]);
    args.extend(["-w".into(), "%{http_code} %{http_version}".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("https://dns.test:{}{path}", addr.port()));
    let (ok, text) = run("curl", &args);
    assert!(ok, "curl {args:?}: {text}");
    let (status, version) = text.trim().split_once(' ').unwrap_or(("0", ""));
    Curl {
        status: status.parse().unwrap_or(0),
        version: version.to_string(),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// A recursive A query with ID 0, as RFC 8484 §4.1 asks DoH clients to send.
fn doh_query(qname: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = recursive(qname, RecordType::A);
    m.queries[0].set_query_type(rtype);
    m.metadata.id = 0;
    m.to_vec().expect("encode")
}

fn b64url(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

/// curl over HTTP/1.1 and HTTP/2, GET and POST: each gets the answer with
/// ID 0, `Content-Type: application/dns-message`, and `Cache-Control:
/// max-age` no more than the records' TTL (3600) and counting down from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_answers_over_http1_and_http2_by_get_and_post_with_cache_control() {
    let pki = Pki::new();
    let t = start_encrypted(&pki, |_| {}).await;
    let addr = https_addr(&t);
    let query = doh_query(NAME, RecordType::A);
    let qfile = pki.dir.path().join("query.bin");
    std::fs::write(&qfile, &query).expect("write the query");
    let get_path = format!("/dns-query?dns={}", b64url(&query));
    let post_data = format!("@{}", qfile.display());
    let (ca, dir) = (pki.ca.clone(), pki.dir.path().to_path_buf());
    let got = off_thread({
        move || {
            let curl = |path: &str, extra: &[&str]| curl(&ca, &dir, addr, path, extra);
            let mut got = Vec::new();
            for version in ["--http1.1", "--http2"] {
                got.push((version, "GET", curl(&get_path, &[version])));
                got.push((
                    version,
                    "POST",
                    curl(
                        "/dns-query",
                        &[
                            version,
                            "-H",
                            "Content-Type: application/dns-message",
                            "--data-binary",
                            &post_data,
                        ],
                    ),
                ));
            }
            got
        }
    })
    .await;
    for (version, method, r) in &got {
        let what = format!("{version} {method}");
        assert_eq!(r.status, 200, "{what}: {}", r.headers);
        let want_version = if *version == "--http2" { "2" } else { "1.1" };
        assert_eq!(r.version, want_version, "{what}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/dns-message"),
            "{what}"
        );
        let cc = r.header("cache-control").unwrap_or_default();
        let age: u32 = cc
            .strip_prefix("max-age=")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{what}: Cache-Control {cc:?}"));
        assert!((3500..=3600).contains(&age), "{what}: max-age={age}");
        let msg = Message::from_vec(&r.body).expect("a DNS message");
        assert_eq!(msg.metadata.id, 0, "{what}: the ID is 0 as sent");
        assert_eq!(msg.metadata.message_type, MessageType::Response);
        assert_eq!(msg.answers.len(), 2, "{what}");
    }
    t.stop().await;
}

/// Negative answers are cached for the SOA's negative TTL (its MINIMUM,
/// 300, being less than its TTL, 3600), and every refusal has its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_refuses_bad_requests_with_their_status_and_caches_negatives_for_the_soa_minimum() {
    let pki = Pki::new();
    let t = start_encrypted(&pki, |_| {}).await;
    let addr = https_addr(&t);
    let dir = pki.dir.path().to_path_buf();
    let nx = doh_query("nothing-here.example.co.kr.", RecordType::A);
    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, b"\x01\x02\x03").expect("write");
    let query = dir.join("query.bin");
    std::fs::write(&query, doh_query(NAME, RecordType::A)).expect("write");
    let huge = dir.join("huge.bin");
    std::fs::write(&huge, vec![0u8; 70_000]).expect("write");
    let ca = pki.ca.clone();
    let results = off_thread(move || {
        let curl = |path: &str, extra: &[&str]| curl(&ca, &dir, addr, path, extra);
        let dm = "Content-Type: application/dns-message";
        let at = |p: &Path| format!("@{}", p.display());
        let cases: Vec<(&str, u16, Curl)> = vec![
            (
                "negative",
                200,
                curl(&format!("/dns-query?dns={}", b64url(&nx)), &[]),
            ),
            ("no dns parameter", 400, curl("/dns-query?name=x", &[])),
            ("not base64url", 400, curl("/dns-query?dns=a!b*c", &[])),
            (
                "not a DNS query",
                400,
                curl("/dns-query", &["-H", dm, "--data-binary", &at(&garbage)]),
            ),
            ("other path", 404, curl("/resolve?dns=AAAB", &[])),
            (
                "other method",
                405,
                curl("/dns-query", &["-X", "PUT", "--data-binary", &at(&query)]),
            ),
            (
                "too large",
                413,
                curl("/dns-query", &["-H", dm, "--data-binary", &at(&huge)]),
            ),
            (
                "other type",
                415,
                curl(
                    "/dns-query",
                    &[
                        "-H",
                        "Content-Type: text/plain",
                        "--data-binary",
                        &at(&query),
                    ],
                ),
            ),
        ];
        cases
    })
    .await;
    for (what, want, r) in &results {
        assert_eq!(r.status, *want, "{what}: {}", r.headers);
    }
    let negative = &results[0].2;
    let msg = Message::from_vec(&negative.body).expect("a DNS message");
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        negative.header("cache-control").as_deref(),
        Some("max-age=300")
    );
    assert_eq!(
        results[5].2.header("allow").as_deref(),
        Some("GET, POST"),
        "405 says what is allowed"
    );
    let text = t.metrics_text();
    for status in ["400", "404", "405", "413", "415"] {
        assert!(
            metric(
                &text,
                &format!(r#"taproot_https_responses_total{{status="{status}"}}"#)
            ) >= 1.0,
            "{status} counted: {text}"
        );
    }
    t.stop().await;
}

/// SERVFAIL must not be cached by HTTP caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servfail_over_doh_is_marked_no_store() {
    let pki = Pki::new();
    let t = start_encrypted(&pki, |_| {}).await;
    let addr = https_addr(&t);
    // A CNAME loop ends in SERVFAIL.
    let q = doh_query("loop1.example.co.kr.", RecordType::A);
    let (ca, dir) = (pki.ca.clone(), pki.dir.path().to_path_buf());
    let r = off_thread(move || {
        curl(
            &ca,
            &dir,
            addr,
            &format!("/dns-query?dns={}", b64url(&q)),
            &["--http2"],
        )
    })
    .await;
    assert_eq!(r.status, 200);
    let msg = Message::from_vec(&r.body).expect("a DNS message");
    assert_eq!(msg.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    t.stop().await;
}

// ---------------------------------------------------------------------------
// DDR

/// RFC 9462: with `server.tls.name` set, `_dns.resolver.arpa. SVCB` names
/// the DoT and DoH listeners as bound; without it, taproot says nothing of
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_reads_the_designated_encrypted_listeners_from_resolver_arpa() {
    let pki = Pki::new();
    let t = start_encrypted(&pki, |c| c.server.tls.name = "dns.test".into()).await;
    let (udp, tls, https) = (t.addr, tls_addr(&t), https_addr(&t));
    let reply = off_thread(move || dig(udp, &["_dns.resolver.arpa.", "SVCB"])).await;
    assert_eq!(reply.status, "NOERROR", "{}", reply.text);
    assert!(reply.has_flag("aa"), "{}", reply.text);
    let svcb = reply.answers("SVCB");
    assert_eq!(svcb.len(), 2, "{}", reply.text);
    assert!(
        svcb.iter().any(|r| r.starts_with("1 dns.test.")
            && r.contains("alpn=\"dot\"")
            && r.contains(&format!("port={}", tls.port()))),
        "{svcb:?}"
    );
    assert!(
        svcb.iter().any(|r| r.starts_with("2 dns.test.")
            && r.contains("alpn=\"h2,http/1.1\"")
            && r.contains(&format!("port={}", https.port()))
            && r.contains("/dns-query{?dns}")),
        "{svcb:?}"
    );
    t.stop().await;
    let plain = start_encrypted(&pki, |_| {}).await;
    let udp = plain.addr;
    let reply = off_thread(move || dig(udp, &["_dns.resolver.arpa.", "SVCB"])).await;
    assert!(
        reply.answers("SVCB").is_empty(),
        "no name, no designation: {}",
        reply.text
    );
    plain.stop().await;
}

// ---------------------------------------------------------------------------
// The binary: config errors, check-config, certificate reload

fn taproot_cmd(args: &[&str]) -> Output {
    let mut c = Command::new(taproot_binary());
    c.args(args).stdin(Stdio::null());
    support::e2e::scrub_env(&mut c);
    c.output().expect("run taproot")
}

/// A TLS listener whose key cannot be read is a config error: exit 2,
/// naming the key and the file; `check-config` with a good certificate
/// says when it expires.
#[test]
fn a_tls_listener_without_a_readable_key_exits_two_and_check_config_tells_the_expiry() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let missing = dir.join("no-such.key");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "[server]\nlisten_tls = [\"127.0.0.1:0\"]\n[server.tls]\ncertificate_file = \"{}\"\nkey_file = \"{}\"\n",
            pki.chain.display(),
            missing.display()
        ),
    )
    .expect("write");
    let out = taproot_cmd(&["--config", &bad.display().to_string(), "check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("server.tls.key_file") && err.contains("no-such.key"),
        "{err}"
    );
    // A key file that is there but holds no key: also 2, from the loader.
    let not_key = dir.join("not-a-key.pem");
    std::fs::write(&not_key, "hello\n").expect("write");
    let text = std::fs::read_to_string(&bad).expect("read").replace(
        &missing.display().to_string(),
        &not_key.display().to_string(),
    );
    std::fs::write(&bad, text).expect("write");
    let out = taproot_cmd(&["--config", &bad.display().to_string(), "check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("server.tls.key_file") && err.contains("not-a-key.pem"),
        "{err}"
    );
    // The real key: accepted, and the expiry (2 days out) is told.
    let good = std::fs::read_to_string(&bad).expect("read").replace(
        &not_key.display().to_string(),
        &pki.key.display().to_string(),
    );
    std::fs::write(&bad, good).expect("write");
    let out = taproot_cmd(&["--config", &bad.display().to_string(), "check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("expires") && (err.contains("(in 1 days)") || err.contains("(in 2 days)")),
        "{err}"
    );
}

/// The subject of the certificate a fresh `openssl s_client` handshake sees.
fn served_subject(addr: SocketAddr) -> String {
    let (_, text) = run(
        "openssl",
        &[
            "s_client".into(),
            "-connect".into(),
            addr.to_string(),
            "-servername".into(),
            "dns.test".into(),
            "-alpn".into(),
            "dot".into(),
        ],
    );
    text.lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no subject in s_client's output:\n{text}"))
}

/// SIGHUP rereads the certificate: a new handshake sees the new one (an
/// RSA key in PKCS #1 this time), a connection opened before keeps
/// working, and a certificate that does not load keeps the one in force,
/// logged and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_for_new_handshakes_and_keeps_open_connections() {
    use support::daemon::{Daemon, config_text_with_metrics};
    let pki = Pki::new();
    let tree = three_level_tree().await;
    let dir = TempDir::new("reload");
    let hints = dir.write("root.hints", &tree.root_hints());
    let lo = [std::net::IpAddr::from([127, 0, 0, 1])];
    let (dns, dot, admin) = (free_port(&lo), free_port(&lo), free_port(&lo));
    let listen: SocketAddr = ([127, 0, 0, 1], dns).into();
    let dot: SocketAddr = ([127, 0, 0, 1], dot).into();
    let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
    let config = config_text_with_metrics(
        &tree,
        &hints,
        listen,
        &format!("listen = \"{admin}\""),
        "",
    )
    .replace(
        "threads = 1\n",
        &format!(
            "threads = 1\nlisten_tls = [\"{dot}\"]\n[server.tls]\ncertificate_file = \"{}\"\nkey_file = \"{}\"\n",
            pki.chain.display(),
            pki.key.display()
        ),
    );
    let daemon = Daemon::spawn(dir, &config);
    daemon.until_ready().await;
    assert_eq!(
        off_thread(move || served_subject(dot)).await,
        "CN = dns.test first"
    );
    let mut open = dot_connect(dot, &pki.ca).await;
    let before = dot_exchange(&mut open, &query_with_options(NAME, 1, &[])).await;
    assert_eq!(Message::from_vec(&before).expect("dns").answers.len(), 2);

    pki.leaf("second", "rsa", &pki.chain, &pki.key);
    daemon.reload().await;
    assert_eq!(
        off_thread(move || served_subject(dot)).await,
        "CN = dns.test second"
    );
    let after = dot_exchange(&mut open, &query_with_options(NAME, 2, &[])).await;
    assert_eq!(
        Message::from_vec(&after).expect("dns").metadata.id,
        2,
        "the old connection still answers"
    );

    std::fs::write(
        &pki.chain,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .expect("spoil the chain");
    daemon.reload().await;
    daemon.log.wait_for(&["TLS certificate not reloaded"]).await;
    assert_eq!(
        off_thread(move || served_subject(dot)).await,
        "CN = dns.test second"
    );
    let text = off_thread(move || support::e2e::http::get(admin, "/metrics").body).await;
    assert_eq!(
        metric(
            &text,
            r#"taproot_tls_certificate_reloads_total{result="failed"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"taproot_tls_certificate_reloads_total{result="ok"}"#
        ),
        1.0,
        "{text}"
    );
}

/// `--listen-tls` and `--listen-https` set the listeners as the config
/// keys do: without a certificate either is a config error naming the key,
/// and with one check-config prints them in the effective config.
#[test]
fn the_listen_tls_and_listen_https_flags_override_the_config() {
    let pki = Pki::new();
    let bare = pki.dir.path().join("bare.toml");
    std::fs::write(&bare, "[server]\nlisten = [\"127.0.0.1:0\"]\n").expect("write");
    for flag in ["--listen-tls", "--listen-https"] {
        let out = taproot_cmd(&[
            "--config",
            &bare.display().to_string(),
            flag,
            "127.0.0.1:8853",
            "check-config",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains("server.tls.certificate_file"), "{flag}: {err}");
    }
    let with_cert = pki.dir.path().join("cert.toml");
    std::fs::write(
        &with_cert,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[server.tls]\ncertificate_file = \"{}\"\nkey_file = \"{}\"\n",
            pki.chain.display(),
            pki.key.display()
        ),
    )
    .expect("write");
    let out = taproot_cmd(&[
        "--config",
        &with_cert.display().to_string(),
        "--listen-tls",
        "127.0.0.1:8853",
        "--listen-https",
        "127.0.0.1:8443",
        "check-config",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("listen_tls = [\"127.0.0.1:8853\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("listen_https = [\"127.0.0.1:8443\"]"),
        "{stdout}"
    );
}
