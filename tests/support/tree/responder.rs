//! From the bytes of one query to the bytes of its reply: decode, log,
//! apply the address's [`Behaviour`], pick the zone, answer, add EDNS, and fit
//! the reply to the transport. Shared by the UDP and TCP loops and by every
//! address of the tree.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use rand::Rng;
use tokio::sync::watch;
use tracing::debug;

use super::authority::{self, Answer};
use super::behaviour::{Behaviour, Malformation};
use super::zone::Zone;

/// The UDP payload size this server advertises in its own OPT record
/// (the DNS Flag Day 2020 value).
pub(super) const ADVERTISED_PAYLOAD: u16 = 1232;

/// The largest UDP reply to a query without EDNS (RFC 1035 §4.2.1).
const CLASSIC_UDP_LIMIT: usize = 512;

/// Which transport a query came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Udp,
    Tcp,
}

/// One query as a fake server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedQuery {
    /// The address the query was sent to.
    pub server: IpAddr,
    /// The query name with the case the client sent (so 0x20 shows).
    pub name: Name,
    /// The query type.
    pub rtype: RecordType,
    /// Whether it came over TCP.
    pub tcp: bool,
}

/// The reply to send, and how long to hold it first.
pub(super) struct Reply {
    pub(super) delay: Duration,
    pub(super) bytes: Vec<u8>,
    /// Send it from a socket other than the one the query reached (UDP).
    pub(super) from_other_port: bool,
}

/// The zones and behaviour of one server address.
struct Server {
    /// Zones this address is authoritative for.
    zones: Vec<Arc<Zone>>,
    behaviour: Mutex<Behaviour>,
    queries: AtomicUsize,
    /// UDP queries since the behaviour was set (for the lossy behaviours).
    udp_since_set: AtomicUsize,
}

/// State shared by every listener of a tree.
pub(super) struct Responder {
    servers: HashMap<IpAddr, Server>,
    /// The `.` zone, source of the upward referral a lame server gives.
    root: Option<Arc<Zone>>,
    log: Mutex<Vec<LoggedQuery>>,
    /// The number of queries logged, for waiters.
    total: watch::Sender<usize>,
}

impl Responder {
    /// A responder for these zones, each served by its addresses.
    pub(super) fn new(zones: &[(Arc<Zone>, Vec<IpAddr>)]) -> Self {
        let mut servers: HashMap<IpAddr, Server> = HashMap::new();
        for (zone, addrs) in zones {
            for addr in addrs {
                servers
                    .entry(*addr)
                    .or_insert_with(|| Server {
                        zones: Vec::new(),
                        behaviour: Mutex::new(Behaviour::Normal),
                        queries: AtomicUsize::new(0),
                        udp_since_set: AtomicUsize::new(0),
                    })
                    .zones
                    .push(zone.clone());
            }
        }
        let root = zones
            .iter()
            .map(|(zone, _)| zone)
            .find(|zone| zone.origin().is_root())
            .cloned();
        Self {
            servers,
            root,
            log: Mutex::new(Vec::new()),
            total: watch::channel(0).0,
        }
    }

    /// The `.` zone, if the tree has one.
    pub(super) fn root(&self) -> Option<&Zone> {
        self.root.as_deref()
    }

    pub(super) fn set_behaviour(&self, ip: IpAddr, behaviour: Behaviour) -> bool {
        match self.servers.get(&ip) {
            Some(server) => {
                let mut current = lock(&server.behaviour);
                *current = behaviour;
                server.udp_since_set.store(0, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub(super) fn queries_to(&self, ip: IpAddr) -> usize {
        self.servers
            .get(&ip)
            .map_or(0, |s| s.queries.load(Ordering::Relaxed))
    }

    pub(super) fn total_queries(&self) -> usize {
        *self.total.borrow()
    }

    pub(super) fn query_log(&self) -> Vec<LoggedQuery> {
        lock(&self.log).clone()
    }

    pub(super) fn reset_counts(&self) {
        let mut log = lock(&self.log);
        log.clear();
        for server in self.servers.values() {
            server.queries.store(0, Ordering::Relaxed);
        }
        self.total.send_replace(0);
    }

    /// A receiver of the running total, for waiting on queries without sleeping.
    pub(super) fn watch_total(&self) -> watch::Receiver<usize> {
        self.total.subscribe()
    }

    /// The reply `server` gives to `packet`, or `None` to stay silent
    /// (undecodable input, a response, or the `Drop` behaviour).
    pub(super) fn respond(
        &self,
        server: IpAddr,
        packet: &[u8],
        transport: Transport,
    ) -> Option<Reply> {
        let state = self.servers.get(&server)?;
        let query = match Message::from_vec(packet) {
            Ok(query) => query,
            Err(error) => {
                debug!(%server, %error, "fake server ignores an undecodable query");
                return None;
            }
        };
        if query.metadata.message_type != MessageType::Query || query.queries.len() != 1 {
            debug!(%server, "fake server ignores a message that is not a one-question query");
            return None;
        }
        let question = &query.queries[0];
        debug!(
            %server,
            qname = %question.name(),
            qtype = %question.query_type(),
            tcp = transport == Transport::Tcp,
            "fake server received a query"
        );
        self.record(
            server,
            question.name(),
            question.query_type(),
            transport,
            state,
        );

        let behaviour = lock(&state.behaviour).clone();
        let nth_udp = match transport {
            Transport::Udp => state.udp_since_set.fetch_add(1, Ordering::Relaxed) + 1,
            Transport::Tcp => 0,
        };
        let every = |n: usize| n > 0 && nth_udp > 0 && nth_udp % n == 0;
        let (delay, message) = match behaviour {
            Behaviour::Drop => return None,
            Behaviour::Lossy { drop_every, .. } if every(drop_every) => return None,
            Behaviour::Lossy { truncate_every, .. } if every(truncate_every) => {
                let mut message = reply_to(&query);
                message.metadata.truncation = true;
                (Duration::ZERO, message)
            }
            Behaviour::DropFirst(n) if nth_udp > 0 && nth_udp <= n => return None,
            Behaviour::Lossy { .. } | Behaviour::DropFirst(_) => {
                (Duration::ZERO, self.answer(&state.zones, &query))
            }
            Behaviour::Garbage => {
                return Some(Reply {
                    delay: Duration::ZERO,
                    bytes: garbage(query.metadata.id),
                    from_other_port: false,
                });
            }
            Behaviour::Malformed(how) => {
                return Some(self.malformed(how, &state.zones, &query, transport));
            }
            Behaviour::Normal => (Duration::ZERO, self.answer(&state.zones, &query)),
            Behaviour::Delay(delay) => (delay, self.answer(&state.zones, &query)),
            Behaviour::Truncate if transport == Transport::Udp => {
                let mut message = reply_to(&query);
                message.metadata.truncation = true;
                (Duration::ZERO, message)
            }
            Behaviour::Truncate => (Duration::ZERO, self.answer(&state.zones, &query)),
            Behaviour::Refused => (Duration::ZERO, error_reply(&query, ResponseCode::Refused)),
            Behaviour::ServFail => (Duration::ZERO, error_reply(&query, ResponseCode::ServFail)),
            Behaviour::Lame => (Duration::ZERO, self.lame_referral(&query)),
            Behaviour::Poison(records) => {
                let mut message = self.answer(&state.zones, &query);
                message.additionals.extend(records);
                (Duration::ZERO, message)
            }
            Behaviour::Rewrite(hook) => {
                let mut message = self.answer(&state.zones, &query);
                hook.apply(&query, &mut message);
                (Duration::ZERO, message)
            }
        };
        Some(Reply {
            delay,
            bytes: encode(&message, &query, transport),
            from_other_port: false,
        })
    }

    /// The broken or forged reply `how` describes, to `query`.
    fn malformed(
        &self,
        how: Malformation,
        zones: &[Arc<Zone>],
        query: &Message,
        transport: Transport,
    ) -> Reply {
        let id = query.metadata.id;
        let mut from_other_port = false;
        let bytes = match how {
            Malformation::TruncatedHeader => {
                let mut b = id.to_be_bytes().to_vec();
                b.extend_from_slice(&[0x84, 0x00, 0x00, 0x01]);
                b
            }
            Malformation::PointerLoop => {
                let mut b = id.to_be_bytes().to_vec();
                // QR AA, one question, no records; the name at offset 12 is
                // a pointer to offset 12.
                b.extend_from_slice(&[0x84, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
                b.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
                b
            }
            Malformation::WrongQuestion => {
                let mut other = query.clone();
                if let Some(q) = other.queries.first_mut()
                    && let Ok(name) = q.name().prepend_label("forged")
                {
                    q.set_name(name);
                }
                let message = self.answer(zones, &other);
                encode(&message, &other, transport)
            }
            Malformation::WrongId => {
                let mut message = self.answer(zones, query);
                message.metadata.id = id.wrapping_add(1);
                encode(&message, query, transport)
            }
            Malformation::FromOtherPort => {
                from_other_port = true;
                encode(&self.answer(zones, query), query, transport)
            }
        };
        Reply {
            delay: Duration::ZERO,
            bytes,
            from_other_port,
        }
    }

    fn record(
        &self,
        server: IpAddr,
        name: &Name,
        rtype: RecordType,
        transport: Transport,
        state: &Server,
    ) {
        lock(&self.log).push(LoggedQuery {
            server,
            name: name.clone(),
            rtype,
            tcp: transport == Transport::Tcp,
        });
        state.queries.fetch_add(1, Ordering::Relaxed);
        self.total.send_modify(|n| *n += 1);
    }

    /// The normal reply of a server authoritative for `zones`.
    fn answer(&self, zones: &[Arc<Zone>], query: &Message) -> Message {
        let question = &query.queries[0];
        if query.metadata.op_code != OpCode::Query {
            return error_reply(query, ResponseCode::NotImp);
        }
        if query.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
            // Deliberately the pre-RFC 6891 reaction (FORMERR, no OPT) rather
            // than BADVERS: it is what old servers still in the field do.
            let mut message = reply_to(query);
            message.edns = None;
            message.metadata.response_code = ResponseCode::FormErr;
            return message;
        }
        if question.query_class() != DNSClass::IN {
            return error_reply(query, ResponseCode::Refused);
        }
        let Some(zone) = closest_zone(zones, question.name(), question.query_type()) else {
            return error_reply(query, ResponseCode::Refused);
        };
        let mut message = reply_to(query);
        fill(
            &mut message,
            authority::answer(zone, question.name(), question.query_type()),
        );
        message
    }

    /// NOERROR, AA=0, and the root servers as the referral.
    fn lame_referral(&self, query: &Message) -> Message {
        let mut message = reply_to(query);
        if let Some(root) = self.root() {
            let ns = root.rrset(root.origin(), RecordType::NS);
            message.additionals = root.addresses_of(&ns);
            message.authorities = ns;
        }
        message
    }
}

/// The zone among `zones` that most closely encloses `qname`. A DS query at
/// a child's apex goes to the parent when this server also serves it
/// (RFC 4035 §3.1.4.1).
fn closest_zone<'z>(zones: &'z [Arc<Zone>], qname: &Name, qtype: RecordType) -> Option<&'z Zone> {
    let mut enclosing: Vec<&Zone> = zones
        .iter()
        .map(Arc::as_ref)
        .filter(|zone| zone.contains(qname))
        .collect();
    enclosing.sort_by_key(|zone| std::cmp::Reverse(zone.origin().num_labels()));
    match enclosing.as_slice() {
        [child, parent, ..] if qtype == RecordType::DS && child.origin() == qname => Some(parent),
        [closest, ..] => Some(closest),
        [] => None,
    }
}

/// A reply header and question for `query`: ID, opcode, RD and CD copied
/// (RFC 6895 §2), the question as sent, and an OPT record if the query had one.
fn reply_to(query: &Message) -> Message {
    let mut message = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    message.metadata = Metadata::response_from_request(&query.metadata);
    message.queries = query.queries.clone();
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(ADVERTISED_PAYLOAD);
        message.edns = Some(edns);
    }
    message
}

fn error_reply(query: &Message, rcode: ResponseCode) -> Message {
    let mut message = reply_to(query);
    message.metadata.response_code = rcode;
    message
}

fn fill(message: &mut Message, answer: Answer) {
    message.metadata.response_code = answer.rcode;
    message.metadata.authoritative = answer.authoritative;
    message.answers = answer.answers;
    message.authorities = answer.authorities;
    message.additionals = answer.additionals;
}

/// The wire form of `message`, truncated for UDP when it exceeds what the
/// client said it can take (RFC 6891 §6.2.5; 512 octets without EDNS).
fn encode(message: &Message, query: &Message, transport: Transport) -> Vec<u8> {
    let bytes = match message.to_vec() {
        Ok(bytes) => bytes,
        Err(error) => {
            debug!(%error, "fake server could not encode its reply; sending SERVFAIL");
            return error_reply(query, ResponseCode::ServFail)
                .to_vec()
                .unwrap_or_default();
        }
    };
    let limit = match (&query.edns, transport) {
        (_, Transport::Tcp) => usize::from(u16::MAX),
        (Some(_), Transport::Udp) => usize::from(query.max_payload()),
        (None, Transport::Udp) => CLASSIC_UDP_LIMIT,
    };
    if bytes.len() <= limit {
        return bytes;
    }
    let mut truncated = message.clone();
    truncated.metadata.truncation = true;
    truncated.answers.clear();
    truncated.authorities.clear();
    truncated.additionals.clear();
    truncated.to_vec().unwrap_or_default()
}

/// Bytes that start like a reply to `id` but cannot be decoded: the header
/// claims 65535 questions and the packet ends long before them.
fn garbage(id: u16) -> Vec<u8> {
    let mut rng = rand::rng();
    let mut bytes = vec![0u8; rng.random_range(12..48)];
    rng.fill(&mut bytes[..]);
    bytes[..2].copy_from_slice(&id.to_be_bytes());
    bytes[2] |= 0x80;
    bytes[4] = 0xff;
    bytes[5] = 0xff;
    bytes
}

/// Locks a mutex, ignoring poisoning: a test that panicked while holding it
/// must not hide its own failure behind a second panic here.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
