//! UDP listeners: one SO_REUSEPORT socket per worker thread per address.
//!
//! Each worker is an OS thread with an event loop of its own (a
//! single-threaded async runtime), like one of Unbound's threads:
//!
//! - While none of its resolutions is in flight it sits in a blocking
//!   receive, and a cache hit is answered on the spot with no task, no
//!   channel and no allocation (the buffers are reused). Datagrams come
//!   and go in batches ([`super::batch`]): two system calls a batch.
//! - A miss starts a resolution on the thread's own runtime, and the worker
//!   switches the socket to non-blocking and serves it from the event loop,
//!   hits included, until its last resolution is done. A miss never waits
//!   on another thread: handing each miss to a shared runtime cost two
//!   context switches a query, about a tenth of a cold query's CPU (perf,
//!   dnsperf with 100 outstanding on one core).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tokio::io::Interest;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::batch::{BATCH, Batch, Outcome};
use super::handler::{Fast, Handler, Prepared};
use super::transport::Transport;
use crate::wire::DropReason;

/// Batches the event loop reads before it lets its resolutions run.
const BATCHES_PER_TURN: usize = 8;

/// How often a blocked receive wakes to look at the shutdown flag.
const POLL: Duration = Duration::from_millis(200);

/// Binds one UDP socket with SO_REUSEPORT so several workers share the port.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(SockProtocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// When a worker stops: `stop` ends receiving; `abandon` (the shutdown
/// grace has passed) ends the wait for its resolutions in flight.
#[derive(Clone)]
pub struct Stop {
    pub stop: Arc<AtomicBool>,
    pub abandon: Arc<AtomicBool>,
}

/// One worker's state.
struct Worker {
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    tracker: TaskTracker,
    /// This thread's runtime, where its resolutions run.
    runtime: Handle,
    /// Wakes the event loop when a resolution finishes.
    finished: Arc<Notify>,
    batch: Batch,
    /// The batch's queries as [`Handler::prepare`] read them, by slot.
    prepared: Box<[Prepared]>,
}

/// Runs one worker until `stop.stop` is set, then lets its resolutions finish.
pub fn serve(socket: Arc<UdpSocket>, handler: Arc<Handler>, tracker: TaskTracker, stop: Stop) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!(error = %e, "cannot start a UDP worker's event loop");
            return;
        }
    };
    // A second descriptor of the same socket, registered with the event
    // loop. They share the blocking flag (one open file description), which
    // `serve` switches: blocking now, non-blocking while the loop runs.
    let ready = match socket.try_clone().and_then(|dup| {
        dup.set_nonblocking(true)?;
        let registered = {
            let _entered = runtime.enter();
            tokio::net::UdpSocket::from_std(dup)?
        };
        socket.set_nonblocking(false)?;
        Ok(registered)
    }) {
        Ok(fd) => fd,
        Err(e) => {
            warn!(error = %e, "cannot watch a UDP socket");
            return;
        }
    };
    let mut w = Worker {
        socket,
        handler,
        tracker,
        runtime: runtime.handle().clone(),
        finished: Arc::new(Notify::new()),
        batch: Batch::default(),
        prepared: (0..BATCH).map(|_| Prepared::default()).collect(),
    };
    while !stop.stop.load(Ordering::Relaxed) {
        if let Err(e) = w.batch.recv(&*w.socket, true) {
            transient(&e);
            continue;
        }
        if w.handle_batch() {
            if let Err(e) = w.socket.set_nonblocking(true) {
                warn!(error = %e, "cannot switch a UDP socket to non-blocking");
            }
            runtime.block_on(w.event_loop(&ready, &runtime, &stop));
            if let Err(e) = w.socket.set_nonblocking(false) {
                warn!(error = %e, "cannot switch a UDP socket back to blocking");
            }
        }
    }
    // Stopping: no more queries, but the ones in flight get their answers.
    runtime.block_on(async {
        while alive(&runtime) > 0 && !stop.abandon.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// Tasks on this worker's runtime: its resolutions and what they spawned.
fn alive(runtime: &Runtime) -> usize {
    runtime.metrics().num_alive_tasks()
}

/// Logs a receive error unless it is the poll timeout or an interruption.
fn transient(e: &std::io::Error) {
    match e.kind() {
        std::io::ErrorKind::WouldBlock
        | std::io::ErrorKind::TimedOut
        | std::io::ErrorKind::Interrupted => {}
        _ => {
            warn!(error = %e, "UDP receive failed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Worker {
    /// Answers the datagrams just received and sends the replies; true
    /// when one of them started a resolution.
    fn handle_batch(&mut self) -> bool {
        let mut started = false;
        let handler = &self.handler;
        // One epoch pin for the batch: the hits below then take none of their own.
        let pinned = crate::cache::pin();
        let prepared = &mut self.prepared;
        for (i, packet) in self.batch.packets() {
            if let Some(slot) = prepared.get_mut(i) {
                handler.prepare_into(packet, slot);
            }
        }
        handler.warm(
            self.batch.packets().filter_map(|(i, _)| prepared.get(i)),
            &pinned,
        );
        let moment = handler.moment();
        self.batch.process(
            |i, packet, src, out| {
                let Some(prepared) = prepared.get(i) else {
                    return Outcome::Nothing;
                };
                match handler.fast_at(&moment, packet, prepared, src, Transport::Udp, out) {
                    Fast::Reply => Outcome::Reply,
                    Fast::Drop => Outcome::Nothing,
                    Fast::Miss => {
                        started = true;
                        let raw = packet.to_vec();
                        let prepared = prepared.clone();
                        let handler = handler.clone();
                        let socket = self.socket.clone();
                        let finished = self.finished.clone();
                        // On this thread's runtime: `serve` drives it from here on.
                        drop(self.runtime.spawn(self.tracker.track_future(async move {
                            if let Some(resp) =
                                handler.slow(raw, prepared, src, Transport::Udp).await
                                && let Err(e) = socket.send_to(&resp, src)
                            {
                                debug!(client = %src, error = %e, "UDP send failed");
                            }
                            finished.notify_one();
                        })));
                        Outcome::Nothing
                    }
                }
            },
            || handler.metrics.dropped(DropReason::TooShort.as_str()),
        );
        self.batch.flush(&*self.socket);
        started
    }

    /// Serves the socket from the event loop until no resolution is left
    /// (or the worker is told to stop).
    async fn event_loop(&mut self, ready: &tokio::net::UdpSocket, runtime: &Runtime, stop: &Stop) {
        loop {
            if alive(runtime) == 0 || stop.stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::select! {
                r = ready.readable() => {
                    if r.is_err() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    // Drain what is queued (readiness is cleared on WouldBlock),
                    // but let the resolutions run between rounds: under a
                    // flood the socket never drains, and their upstream
                    // answers must not wait behind it.
                    for _ in 0..BATCHES_PER_TURN {
                        match ready.try_io(Interest::READABLE, || self.batch.recv(&*self.socket, false)) {
                            Ok(_) => {
                                self.handle_batch();
                            }
                            Err(e) => {
                                transient(&e);
                                break;
                            }
                        }
                    }
                    tokio::task::yield_now().await;
                }
                _ = self.finished.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
