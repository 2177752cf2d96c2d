//! The client-request path: raw bytes as a client would send them, through
//! the same `Handler::fast` every UDP and TCP query goes through first.
//! Whatever the bytes, the handler answers or drops — never panics — and an
//! answer is a DNS message with the client's ID and QR set.
//!
//! `cargo fuzz run client_request -- -max_total_time=600`
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use taproot::config::Config;
use taproot::server::Transport;
use taproot::server::handler::Fast;
use taproot::server::{Running, Server};

/// One in-process taproot for the whole run. Its root is a loopback address
/// nothing listens on, and misses are never resolved here (`Fast::Miss` is
/// where the async path would take over), so no query leaves the process.
fn taproot() -> &'static Running {
    static RUNNING: OnceLock<(tokio::runtime::Runtime, Running)> = OnceLock::new();
    let (_, running) = RUNNING.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut config = Config::default();
        config.server.listen = vec!["127.0.0.1:0".parse().expect("literal")];
        config.server.threads = 1;
        config.resolver.root_hints = vec!["127.0.0.254".parse().expect("literal")];
        config.resolver.allow_loopback_upstreams = true;
        config.metrics.listen = String::new();
        config.ratelimit.qps = 0;
        let running = runtime
            .block_on(Server::start(config))
            .expect("taproot starts");
        (runtime, running)
    });
    running
}

fuzz_target!(|data: &[u8]| {
    let running = taproot();
    let client: SocketAddr = "127.0.0.1:40000".parse().expect("literal");
    let mut out = Vec::with_capacity(1232);
    for proto in Transport::ALL {
        out.clear();
        let prepared = running.handler.prepare(data);
        if let Fast::Reply = running
            .handler
            .fast(data, &prepared, client, proto, &mut out)
        {
            assert!(out.len() >= 12, "a reply has a whole header");
            if data.len() >= 2 {
                assert_eq!(out[..2], data[..2], "the reply carries the query's ID");
            }
            assert_ne!(out[2] & 0x80, 0, "QR is set on a reply");
        }
    }
});
