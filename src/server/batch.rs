//! Batched datagram I/O: up to [`BATCH`] queries in one `recvmmsg` (nix)
//! and their answers in one `sendmmsg` (rustix, whose binding reports how
//! many were sent without reading anything the kernel did not write), so
//! under load a worker pays two system calls per batch instead of two per
//! query. At low load a batch is one datagram and this costs what
//! `recvfrom`/`sendto` cost.
//!
//! Two crates, because neither does both well: rustix has no `recvmmsg`
//! (it is on its not-implemented-yet list), and nix's `sendmmsg` is the
//! binding the paragraph above avoids.
//!
//! All buffers are allocated once per worker and reused. What a call costs
//! in user space grows with the slots it is given (nix fills a header per
//! slot, rustix one per reply), so a receive offers twice as many slots as
//! the last one filled (at least [`MIN_SLOTS`]), and a lone reply goes out
//! with `sendto`: at a steady 50,000 q/s most batches are one datagram,
//! and the 32-slot setup was about 2% of a hit's CPU (perf).
//!
//! The kernel has a cost of its own: after the first datagram, `recvmmsg`
//! tries the socket again for the next, and when it is empty (as it is
//! while the worker keeps up) that second try is wasted work in every
//! call. So while receives keep finding one datagram, the worker takes
//! them with `recvfrom`, and every [`PROBE_EVERY`]th receive is a
//! `recvmmsg` again to see whether a backlog has built up; one that finds
//! two or more puts the worker back on batches.

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use rustix::net::{
    MMsgHdr, RecvFlags, SendAncillaryBuffer, SendFlags, SocketAddrAny, recvfrom, sendmmsg, sendto,
};
use tracing::debug;

/// Datagrams per system call.
pub const BATCH: usize = 32;

/// The fewest slots a receive offers.
const MIN_SLOTS: usize = 4;

/// While receives find one datagram each, one receive in this many is a
/// `recvmmsg` that looks for a backlog (see the module doc).
const PROBE_EVERY: u32 = 8;

/// The largest query taken: a longer datagram is cut by the kernel and
/// dropped as malformed (a real query is a few hundred bytes at most).
pub const SLOT: usize = 4096;

pub struct Batch {
    bufs: Box<[u8]>,
    recv_headers: MultiHeaders<SockaddrStorage>,
    lens: [usize; BATCH],
    sources: [Option<SocketAddr>; BATCH],
    truncated: [bool; BATCH],
    received: usize,
    replies: Vec<Vec<u8>>,
    /// Where each queued reply goes, converted once when it is queued.
    reply_to: [SocketAddrAny; BATCH],
    queued: usize,
    /// Slots the next receive offers (see the module doc).
    offer: usize,
    /// Receives in a row that found one datagram.
    lone: u32,
}

/// What the caller made of one datagram.
pub enum Outcome {
    /// The reply buffer holds an answer for the sender.
    Reply,
    /// Nothing to send now.
    Nothing,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            bufs: vec![0u8; BATCH * SLOT].into_boxed_slice(),
            recv_headers: MultiHeaders::preallocate(BATCH, None),
            lens: [0; BATCH],
            sources: [None; BATCH],
            truncated: [false; BATCH],
            received: 0,
            replies: (0..BATCH).map(|_| Vec::with_capacity(1024)).collect(),
            reply_to: std::array::from_fn(|_| {
                SocketAddrAny::from(SocketAddr::from(([0, 0, 0, 0], 0)))
            }),
            queued: 0,
            offer: BATCH,
            lone: 0,
        }
    }
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

impl Batch {
    /// Receives up to [`BATCH`] datagrams. With `wait` it blocks for the
    /// first (the socket's receive timeout applies) and takes the rest that
    /// are already queued; without, it never blocks.
    pub fn recv(&mut self, socket: impl AsFd, wait: bool) -> std::io::Result<usize> {
        if self.lone >= 2 && !self.lone.is_multiple_of(PROBE_EVERY) {
            return self.recv_one(socket, wait);
        }
        let fd = socket.as_fd().as_raw_fd();
        let flags = if wait {
            MsgFlags::MSG_WAITFORONE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let mut chunks = self.bufs.chunks_exact_mut(SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let offer = self.offer.clamp(MIN_SLOTS, BATCH);
        let results = recvmmsg(
            fd,
            &mut self.recv_headers,
            iovs.iter_mut().take(offer),
            flags,
            None,
        )
        .map_err(std::io::Error::from)?;
        let mut n = 0;
        for msg in results {
            if n == BATCH {
                break;
            }
            self.lens[n] = msg.bytes.min(SLOT);
            self.sources[n] = msg.address.as_ref().and_then(to_std);
            self.truncated[n] = msg.flags.contains(MsgFlags::MSG_TRUNC);
            n += 1;
        }
        self.received = n;
        self.offer = (2 * n).clamp(MIN_SLOTS, BATCH);
        self.lone = if n == 1 { self.lone + 1 } else { 0 };
        Ok(n)
    }

    /// Receives one datagram with `recvfrom` into the first slot.
    fn recv_one(&mut self, socket: impl AsFd, wait: bool) -> std::io::Result<usize> {
        let flags = if wait {
            RecvFlags::TRUNC
        } else {
            RecvFlags::TRUNC | RecvFlags::DONTWAIT
        };
        let slot = self.bufs.get_mut(..SLOT).unwrap_or_default();
        let (_, len, from) = recvfrom(&socket, slot, flags)?;
        self.lens[0] = len.min(SLOT);
        self.truncated[0] = len > SLOT;
        self.sources[0] = from.and_then(|a| SocketAddr::try_from(a).ok());
        self.received = 1;
        self.lone = self.lone.wrapping_add(1);
        Ok(1)
    }

    /// The datagrams received whole, in order, with their slot numbers:
    /// what [`Batch::process`] will hand on.
    pub fn packets(&self) -> impl Iterator<Item = (usize, &[u8])> {
        (0..self.received)
            .filter(|&i| self.sources[i].is_some() && !self.truncated[i])
            .map(|i| (i, &self.bufs[i * SLOT..i * SLOT + self.lens[i]]))
    }

    /// Hands each received datagram (with its slot number, as
    /// [`Batch::packets`] gave it) to `each` with a reply buffer to fill;
    /// replies are queued for [`Batch::flush`]. `malformed` is told of
    /// datagrams cut short by the slot size.
    pub fn process(
        &mut self,
        mut each: impl FnMut(usize, &[u8], SocketAddr, &mut Vec<u8>) -> Outcome,
        mut malformed: impl FnMut(),
    ) {
        for i in 0..self.received {
            let Some(src) = self.sources[i] else {
                continue;
            };
            if self.truncated[i] {
                malformed();
                continue;
            }
            let packet = &self.bufs[i * SLOT..i * SLOT + self.lens[i]];
            let slot = self.queued;
            let Some(out) = self.replies.get_mut(slot) else {
                continue;
            };
            if let Outcome::Reply = each(i, packet, src, out) {
                self.reply_to[slot] = SocketAddrAny::from(src);
                self.queued += 1;
            }
        }
        self.received = 0;
    }

    /// Sends the queued replies, as many per system call as the kernel takes.
    pub fn flush(&mut self, socket: impl AsFd) {
        if self.queued == 1 {
            self.queued = 0;
            if let (Some(reply), Some(to)) = (self.replies.first(), self.reply_to.first())
                && let Err(e) = sendto(&socket, reply, SendFlags::DONTWAIT, to)
            {
                debug!(error = %e, "UDP send failed");
            }
            return;
        }
        let mut sent = 0;
        // Each round sends at least one reply or gives up on one.
        while sent < self.queued {
            let pending = self.queued - sent;
            // Headers for slots sent.. first; past the end they wrap around
            // to slots already sent, which the call is not given.
            let slot = |i: usize| (sent + i) % BATCH;
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                [IoSlice::new(
                    self.replies.get(slot(i)).map_or(&[][..], |v| v.as_slice()),
                )]
            });
            let mut controls: [SendAncillaryBuffer<'_, '_, '_>; BATCH] =
                std::array::from_fn(|_| SendAncillaryBuffer::default());
            let mut i = 0;
            let mut headers = controls.each_mut().map(|control| {
                let header = MMsgHdr::new_with_addr(&self.reply_to[slot(i)], &iovs[i], control);
                i += 1;
                header
            });
            match sendmmsg(&socket, &mut headers[..pending], SendFlags::DONTWAIT) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) => {
                    // The first of the rest failed (an unreachable client,
                    // a full buffer): skip it and go on with the others.
                    debug!(error = %e, "UDP send failed");
                    sent += 1;
                }
            }
        }
        self.queued = 0;
    }
}
