//! A resolution's trace: what taproot did for one question, in order, as
//! the seed note's sequence diagram draws it (client → taproot → cache →
//! root → TLD → second level → zone → cache → client).
//!
//! The miss path ([`crate::resolve::driver`]) records [`Event`]s into the
//! question's [`Trace`] when it has one: the three cache cases (answer,
//! negative, closest delegation), every upstream exchange, referrals,
//! nested sub-resolutions (glueless NS addresses, DS and DNSKEY fetches),
//! CNAME/DNAME restarts, DNSSEC verdicts and the final answer. A
//! [`Report`] is the finished trace with its question and answer; the
//! renderers turn it into text, JSON, a Mermaid `sequenceDiagram`, an SVG
//! drawing of the same diagram, or an HTML page.
//!
//! Recording is cheap (names are copied inline, nothing is formatted until
//! a trace is rendered) and happens only for questions that ask for a
//! trace or whose failure the ring buffer ([`recent`]) keeps; a cache hit
//! never touches this module.

pub mod html;
pub mod mermaid;
pub mod recent;
pub mod svg;
pub mod text;

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::rr::{Name, RecordType};
use serde::{Serialize, Serializer};

/// Where a trace's timestamps come from.
#[derive(Debug)]
pub enum TraceClock {
    /// Real time since the question arrived.
    Real(Instant),
    /// A manual clock for golden tests: every reading advances it by one
    /// millisecond, so a walk's timestamps and RTTs depend only on the
    /// order of its steps.
    Ticks(u64),
}

impl TraceClock {
    /// Microseconds since the question arrived.
    fn now_us(&mut self) -> u64 {
        match self {
            TraceClock::Real(start) => start.elapsed().as_micros() as u64,
            TraceClock::Ticks(n) => {
                *n += 1;
                *n * 1000
            }
        }
    }
}

/// How much a trace records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every step: a trace someone asked for (`GET /trace`).
    Full,
    /// What a SERVFAIL needs and nothing a success would waste time on:
    /// every upstream exchange that failed (timeouts, errors, lame and
    /// broken replies), referrals, the parent side, sub-resolutions,
    /// restarts, bogus verdicts, giving up on minimisation. Every miss is
    /// recorded in case it fails ([`recent`]); the commonest miss, a name
    /// whose cut is cached answered at the first try, records nothing.
    Failures,
}

/// The events of one question, being recorded.
#[derive(Debug)]
pub struct Trace {
    clock: TraceClock,
    detail: Detail,
    events: Vec<Event>,
    /// How deep the current sub-resolution is nested (0: the question).
    depth: u8,
}

impl Trace {
    /// A trace of every step.
    pub fn new(clock: TraceClock) -> Trace {
        Trace::with_detail(clock, Detail::Full)
    }

    pub fn with_detail(clock: TraceClock, detail: Detail) -> Trace {
        Trace {
            clock,
            detail,
            // Nothing is allocated until the first event.
            events: Vec::new(),
            depth: 0,
        }
    }

    pub fn detail(&self) -> Detail {
        self.detail
    }

    /// The trace clock's reading now, for an RTT measured across an exchange.
    pub fn now_us(&mut self) -> u64 {
        self.clock.now_us()
    }

    /// Appends an event at the current nesting depth.
    pub fn push(&mut self, kind: EventKind) {
        let at_us = self.clock.now_us();
        self.push_at(at_us, kind);
    }

    /// Appends an event with a timestamp read earlier ([`Trace::now_us`]).
    pub fn push_at(&mut self, at_us: u64, kind: EventKind) {
        self.events.push(Event {
            at_us,
            depth: self.depth,
            kind,
        });
    }

    /// Opens a sub-resolution: the events until [`Trace::end`] nest under it.
    pub fn begin(&mut self, reason: SubReason, name: &Name, qtype: RecordType) {
        self.push(EventKind::SubBegin {
            reason,
            name: name.clone(),
            qtype,
        });
        self.depth = self.depth.saturating_add(1);
    }

    /// Closes the innermost sub-resolution with what it came to.
    pub fn end(&mut self, reason: SubReason, name: &Name, qtype: RecordType, outcome: String) {
        self.depth = self.depth.saturating_sub(1);
        self.push(EventKind::SubEnd {
            reason,
            name: name.clone(),
            qtype,
            outcome,
        });
    }

    /// Seconds since the Unix epoch now; 0 on a manual clock, whose
    /// traces must not depend on when they were taken.
    pub fn unix_time(&self) -> u64 {
        match self.clock {
            TraceClock::Real(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            TraceClock::Ticks(_) => 0,
        }
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The finished trace.
    pub fn finish(self, question: TracedQuestion, answer: TracedAnswer) -> Report {
        Report {
            question,
            answer,
            events: self.events,
        }
    }
}

/// One thing that happened, `at_us` microseconds after the question arrived.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "at_ms", serialize_with = "micros_as_ms")]
    pub at_us: u64,
    /// 0 for the question itself, 1 inside a sub-resolution, and so on.
    pub depth: u8,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. The JSON form names the variant in `event`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A cache lookup for (name, type) and what it found: the note's
    /// "alt" branch (answer or negative: no walk; delegation: the walk
    /// starts there; miss).
    Cache {
        #[serde(serialize_with = "display")]
        name: Name,
        #[serde(serialize_with = "display")]
        qtype: RecordType,
        outcome: CacheOutcome,
        /// The delegation's zone, or the CNAME's target.
        #[serde(serialize_with = "display_opt")]
        detail: Option<Name>,
    },
    /// Where the walk starts: a cached cut, the root hints, or the root
    /// NS set just primed (RFC 8109).
    Start {
        #[serde(serialize_with = "display")]
        zone: Name,
        source: StartSource,
        #[serde(serialize_with = "display_vec")]
        servers: Vec<Name>,
    },
    /// One query to one server and what came back (or did not).
    Exchange(Exchange),
    /// A referral followed one cut down.
    Referral {
        #[serde(serialize_with = "display")]
        from: Name,
        #[serde(serialize_with = "display")]
        zone: Name,
        #[serde(serialize_with = "display_vec")]
        ns: Vec<Name>,
        /// The NS names that came with glue.
        #[serde(serialize_with = "display_vec")]
        glue: Vec<Name>,
        /// Whether the referral carried the child's DS set or its denial.
        ds: bool,
    },
    /// The child's own servers failed; the parent side's NS set or glue is tried.
    ParentSide {
        #[serde(serialize_with = "display")]
        zone: Name,
        what: ParentSideKind,
    },
    /// RFC 9156: a minimised query's answer made the walk show one more
    /// label, or give up minimising and ask the full name.
    Minimisation {
        #[serde(serialize_with = "display")]
        zone: Name,
        action: MinimiseAction,
    },
    /// A sub-resolution starts; the events after it nest one level deeper.
    SubBegin {
        reason: SubReason,
        #[serde(serialize_with = "display")]
        name: Name,
        #[serde(serialize_with = "display")]
        qtype: RecordType,
    },
    /// A sub-resolution ended.
    SubEnd {
        reason: SubReason,
        #[serde(serialize_with = "display")]
        name: Name,
        #[serde(serialize_with = "display")]
        qtype: RecordType,
        outcome: String,
    },
    /// The question continues at another name (RFC 1034 §5.3.3 step 4c).
    Restart {
        kind: RestartKind,
        #[serde(serialize_with = "display")]
        from: Name,
        #[serde(serialize_with = "display")]
        to: Name,
    },
    /// The validator's verdict on what a zone's servers said.
    Validation {
        #[serde(serialize_with = "display")]
        zone: Name,
        #[serde(serialize_with = "display")]
        name: Name,
        #[serde(serialize_with = "display")]
        qtype: RecordType,
        verdict: Verdict,
        /// Why, for a bogus verdict.
        reason: Option<String>,
    },
    /// The answer given to the client.
    Answer {
        rcode: String,
        /// RFC 8914 INFO-CODE and its text, for a failure.
        ede: Option<Ede>,
        security: String,
        answers: usize,
    },
}

/// One upstream exchange (or attempt): the query as sent and the reply.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// The server's address.
    pub server: IpAddr,
    /// An NS name of the zone with that address, when known.
    #[serde(serialize_with = "display_opt")]
    pub server_name: Option<Name>,
    /// The zone cut whose servers were asked.
    #[serde(serialize_with = "display")]
    pub zone: Name,
    /// The name as sent: after minimisation and with 0x20's case.
    #[serde(serialize_with = "display")]
    pub qname: Name,
    #[serde(serialize_with = "display")]
    pub qtype: RecordType,
    pub transport: Transport,
    /// The query showed fewer labels than the question (RFC 9156).
    pub minimised: bool,
    /// 1 for the first query to this server for this question, then 2, …
    pub attempt: u32,
    /// How long taproot would wait for this reply.
    pub timeout_ms: u64,
    /// The response code's mnemonic, or `None` when no reply came.
    pub rcode: Option<Cow<'static, str>>,
    pub aa: bool,
    /// The UDP reply was truncated, and the exchange went on over TCP.
    pub tc: bool,
    /// Records in the answer section.
    pub answers: usize,
    /// The reply's size in bytes.
    pub size: usize,
    #[serde(serialize_with = "micros_as_ms")]
    #[serde(rename = "rtt_ms")]
    pub rtt_us: u64,
    /// What the reply meant for the walk.
    pub result: ExchangeResult,
    /// For a referral: the zone it points to.
    #[serde(serialize_with = "display_opt")]
    pub referral_to: Option<Name>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheOutcome {
    Answer,
    Cname,
    Nxdomain,
    Nodata,
    /// NXDOMAIN proven from a cached NSEC range (RFC 8198).
    AggressiveNxdomain,
    Delegation,
    Miss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartSource {
    Cache,
    Hints,
    Primed,
    /// `cache=bypass`: the walk starts from the root hints whatever is cached.
    Bypass,
    /// A `[[forward]]` zone's servers.
    Forward,
    /// A `[[stub]]` zone's servers.
    Stub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
    /// DNS over TLS (to a `[[forward]]` server).
    Tls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeResult {
    Answer,
    Cname,
    Referral,
    Nxdomain,
    Nodata,
    /// Kept only if no other server of the zone answers better.
    LastResort,
    Lame,
    /// SERVFAIL, REFUSED, NOTIMP, …
    ServerError,
    /// FORMERR without EDNS: asked again without EDNS.
    NoEdns,
    /// The case of the question was not echoed: asked again without 0x20.
    NoCaseEcho,
    Malformed,
    Timeout,
    NetworkError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentSideKind {
    /// The NS set the parent's referral gave.
    ParentNs,
    /// The glue the NS names' own parents gave.
    ParentGlue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MinimiseAction {
    AddLabel,
    FullName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubReason {
    /// The address of an NS name that came without glue.
    Glueless,
    /// The validator's DS fetch.
    Ds,
    /// The validator's DNSKEY fetch.
    Dnskey,
    /// The question continued at a CNAME's target.
    Cname,
    /// The question continued at the name a DNAME rewrote it to.
    Dname,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartKind {
    Cname,
    Dname,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Secure,
    Insecure,
    Bogus,
    Indeterminate,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ede {
    pub code: u16,
    pub text: String,
}

/// The question a trace answers.
#[derive(Debug, Clone, Serialize)]
pub struct TracedQuestion {
    #[serde(serialize_with = "display")]
    pub name: Name,
    #[serde(serialize_with = "display")]
    pub qtype: RecordType,
    /// `bypass` or `use`.
    pub cache: &'static str,
    /// For a kept failure: seconds since the Unix epoch when it was asked.
    pub unix_time: u64,
}

/// What the client was told.
#[derive(Debug, Clone, Serialize)]
pub struct TracedAnswer {
    pub rcode: String,
    pub ede: Option<Ede>,
    pub security: String,
    /// The answer section in presentation format.
    pub records: Vec<String>,
    #[serde(serialize_with = "micros_as_ms", rename = "elapsed_ms")]
    pub elapsed_us: u64,
}

/// A finished trace: what the renderers draw.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub question: TracedQuestion,
    pub answer: TracedAnswer,
    pub events: Vec<Event>,
}

/// The output formats of `GET /trace/…` and `taproot trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Mermaid,
    Svg,
    Html,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Text,
        Format::Json,
        Format::Mermaid,
        Format::Svg,
        Format::Html,
    ];

    /// The `format=` parameter's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Mermaid => "mermaid",
            Format::Svg => "svg",
            Format::Html => "html",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// The HTTP Content-Type of the rendering.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text | Format::Mermaid => "text/plain; charset=utf-8",
            Format::Json => "application/json",
            Format::Svg => "image/svg+xml",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

impl Report {
    /// The report in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => text::render(self),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default(),
            Format::Mermaid => mermaid::render(self),
            Format::Svg => svg::render(self),
            Format::Html => html::render(self),
        }
    }
}

fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_opt<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

// serde's `serialize_with` hands over the field as it is declared.
#[allow(clippy::ptr_arg)]
fn display_vec<T: fmt::Display, S: Serializer>(v: &Vec<T>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.to_string()))
}

fn micros_as_ms<S: Serializer>(us: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*us as f64 / 1000.0)
}
