//! The ways a fake server can misbehave, switched per address at run time so
//! that a test can break one server in the middle of a resolution.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::Record;

/// What a server address does with the queries it receives. Every received
/// query is counted and logged whatever the behaviour, even `Drop`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Behaviour {
    /// Answer by the authoritative rules.
    #[default]
    Normal,
    /// Never answer, over UDP or TCP: a dead server. TCP connections are
    /// still accepted and then left silent.
    Drop,
    /// Answer normally, but only after this long.
    Delay(Duration),
    /// Over UDP, always answer TC=1 with only the question (and OPT if the
    /// query had one); over TCP, answer normally. Forces the resolver to
    /// retry over TCP (RFC 7766 §5).
    Truncate,
    /// A lossy path or a rate limiter with slip (NSD's RRL, `rrl-slip`):
    /// of the UDP queries since the behaviour was set, counted from 1,
    /// every `drop_every`-th gets no answer, and every `truncate_every`-th
    /// not dropped an empty TC=1 reply; the rest, and all of TCP,
    /// are answered normally. 0 turns a part off. Deterministic, so a test
    /// knows the share it asked for.
    Lossy {
        drop_every: usize,
        truncate_every: usize,
    },
    /// The first this many UDP queries since the behaviour was set get no
    /// answer; then the server answers normally (one lost burst).
    DropFirst(usize),
    /// Answer REFUSED with no records.
    Refused,
    /// Answer SERVFAIL with no records.
    ServFail,
    /// A lame server: NOERROR, AA=0, and an upward referral to the root
    /// servers (the `.` zone's apex NS and their addresses) instead of an answer.
    Lame,
    /// Answer with bytes that do not decode as a DNS message. They do carry
    /// the query's ID and the QR bit, so a client cannot discard them as a
    /// stray packet and must handle the decode failure.
    Garbage,
    /// Answer with one of the ways a reply can be broken or forged
    /// (see [`Malformation`]).
    Malformed(Malformation),
    /// Answer normally, plus these records in the additional section of every
    /// reply: for example an out-of-bailiwick A record that a resolver's
    /// scrubber must not cache.
    Poison(Vec<Record>),
    /// Answer normally, then let the hook change the reply before it is
    /// sent: flip AA or RA, add or strip sections, turn some names into
    /// REFUSED or SERVFAIL. The imperfect servers of the real Internet.
    Rewrite(Rewrite),
}

/// What a [`Rewrite`] runs: the query, and the reply to change in place.
type RewriteHook = dyn Fn(&Message, &mut Message) + Send + Sync;

/// A reply-rewrite hook: gets the query and the reply the server would
/// send, and changes the reply in place.
#[derive(Clone)]
pub struct Rewrite(Arc<RewriteHook>);

impl Rewrite {
    pub fn new(hook: impl Fn(&Message, &mut Message) + Send + Sync + 'static) -> Rewrite {
        Rewrite(Arc::new(hook))
    }

    pub(super) fn apply(&self, query: &Message, reply: &mut Message) {
        (self.0)(query, reply)
    }
}

impl fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rewrite(..)")
    }
}

/// Two hooks are the same only if they are one closure.
impl PartialEq for Rewrite {
    fn eq(&self, other: &Rewrite) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Broken or forged replies a resolver must ignore (and then ask another
/// server), each something a buggy server or an off-path attacker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformation {
    /// Six bytes: the query's ID and flags, then nothing.
    TruncatedHeader,
    /// A header for one question whose name is a compression pointer to
    /// itself (RFC 1035 §4.1.4 pointers must point backwards).
    PointerLoop,
    /// A well-formed authoritative answer, but to another question.
    WrongQuestion,
    /// A well-formed answer with the ID off by one.
    WrongId,
    /// A well-formed answer sent from another port of the same address.
    FromOtherPort,
}
