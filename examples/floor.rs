//! A trivial UDP responder: the floor under any DNS server's per-query cost.
//!
//! Per thread, one blocking socket, `recv_from` → copy the query → flip QR
//! and RA → append one fixed A record → `send_to`. No parsing beyond the
//! header, no cache, no metrics. Whatever a resolver spends per cache hit
//! above this is its own doing; what this spends is the kernel's.
//!
//! `cargo run --release --example floor -- 127.0.0.1:5399 [seconds] [threads]`
//! (stops by itself after `seconds`, default 600). With `threads` above 1
//! each thread has an SO_REUSEPORT socket of its own on the address, as
//! taproot's and Unbound's UDP workers do, so `bench/compare.sh WORKERS=N`
//! compares like with like.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Answer: pointer to the question name, A IN, TTL 300, 127.0.0.1.
const ANSWER: [u8; 16] = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 127, 0, 0, 1];

/// OPT: root owner, payload 1232, no flags, no options.
const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:5399".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let lifetime = Duration::from_secs(args.next().and_then(|s| s.parse().ok()).unwrap_or(600));
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
    let sockets = (0..threads)
        .map(|_| bind(addr))
        .collect::<std::io::Result<Vec<_>>>()?;
    let workers: Vec<_> = sockets
        .into_iter()
        .map(|socket| std::thread::spawn(move || serve(socket, lifetime)))
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| std::io::Error::other("a worker panicked"))??;
    }
    Ok(())
}

/// One SO_REUSEPORT socket: the kernel spreads clients over the threads.
fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    // As taproot's and (in bench/compare.sh) Unbound's: bursts queue, not drop.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(socket)
}

fn serve(socket: UdpSocket, lifetime: Duration) -> std::io::Result<()> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    while started.elapsed() < lifetime {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        if n < 12 {
            continue;
        }
        // Header + question + the answer, and an OPT when the client sent
        // additional records (as a resolver would echo EDNS).
        let question_end = question_end(&buf[..n]).unwrap_or(n);
        let edns = buf[11] > 0;
        out.clear();
        out.extend_from_slice(&buf[..question_end]);
        out[2] |= 0x80; // QR
        out[3] = 0x80; // RA, RCODE 0
        out[6..12].copy_from_slice(&[0, 1, 0, 0, 0, edns as u8]);
        out.extend_from_slice(&ANSWER);
        if edns {
            out.extend_from_slice(&OPT);
        }
        let _ = socket.send_to(&out, src);
    }
    Ok(())
}

/// Offset just past the first question (uncompressed name + type + class).
fn question_end(p: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let len = *p.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        at += len;
    }
    (at + 4 <= p.len()).then_some(at + 4)
}
