//! Batched datagram I/O: up to [`BATCH`] queries in one `recvmmsg` and
//! their answers in one `sendmmsg` (through nix), so under load a worker
//! pays two system calls per batch instead of two per query. At low load a
//! batch is one datagram and this costs what `recvfrom`/`sendto` cost.
//!
//! All buffers are allocated once per worker and reused.

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg,
};
use tracing::debug;

/// Datagrams per system call.
pub const BATCH: usize = 32;

/// The largest query taken: a longer datagram is cut by the kernel and
/// dropped as malformed (a real query is a few hundred bytes at most).
pub const SLOT: usize = 4096;

pub struct Batch {
    bufs: Box<[u8]>,
    recv_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
    lens: [usize; BATCH],
    sources: [Option<SocketAddr>; BATCH],
    truncated: [bool; BATCH],
    received: usize,
    replies: Vec<Vec<u8>>,
    reply_to: [Option<SockaddrStorage>; BATCH],
    queued: usize,
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
            send_headers: MultiHeaders::preallocate(BATCH, None),
            lens: [0; BATCH],
            sources: [None; BATCH],
            truncated: [false; BATCH],
            received: 0,
            replies: (0..BATCH).map(|_| Vec::with_capacity(1024)).collect(),
            reply_to: [None; BATCH],
            queued: 0,
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
    pub fn recv(&mut self, fd: RawFd, wait: bool) -> std::io::Result<usize> {
        let flags = if wait {
            MsgFlags::MSG_WAITFORONE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let mut chunks = self.bufs.chunks_exact_mut(SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let results = recvmmsg(fd, &mut self.recv_headers, iovs.iter_mut(), flags, None)
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
        Ok(n)
    }

    /// Hands each received datagram to `each` with a reply buffer to fill;
    /// replies are queued for [`Batch::flush`]. `malformed` is told of
    /// datagrams cut short by the slot size.
    pub fn process(
        &mut self,
        mut each: impl FnMut(&[u8], SocketAddr, &mut Vec<u8>) -> Outcome,
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
            if let Outcome::Reply = each(packet, src, out) {
                self.reply_to[slot] = Some(SockaddrStorage::from(src));
                self.queued += 1;
            }
        }
        self.received = 0;
    }

    /// Sends the queued replies, as many per system call as the kernel takes.
    pub fn flush(&mut self, fd: RawFd) {
        let mut sent = 0;
        // Each round sends at least one reply or gives up on the rest.
        while sent < self.queued {
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                [IoSlice::new(
                    self.replies.get(sent + i).map_or(&[][..], |v| v.as_slice()),
                )]
            });
            let pending = self.queued - sent;
            let no_cmsgs: [ControlMessage<'_>; 0] = [];
            match sendmmsg(
                fd,
                &mut self.send_headers,
                iovs[..pending].iter(),
                &self.reply_to[sent..self.queued],
                no_cmsgs,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => {
                    let n = results.count();
                    if n == 0 {
                        break;
                    }
                    sent += n;
                }
                Err(e) => {
                    // The first of the rest failed (a client's ICMP error, a
                    // full buffer): skip it and go on with the others.
                    let to = self.reply_to[sent].as_ref().and_then(to_std);
                    debug!(client = ?to, error = %e, "UDP send failed");
                    sent += 1;
                }
            }
        }
        self.queued = 0;
    }
}
