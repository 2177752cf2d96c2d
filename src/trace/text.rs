//! The text rendering of a trace, the default of `GET /trace/{name}/{type}`:
//! one line per event, timestamps relative to the question, sub-resolutions
//! indented by their depth, as an operator reads `dig +trace` or Unbound's
//! verbosity-4 log.
//!
//! ```text
//! question: www.example.co.kr. A, cache use
//!    0.010 ms  cache miss www.example.co.kr. A
//!    0.020 ms  start at . from the root hints (13 servers)
//!    0.850 ms  → a.root-servers.net 198.41.0.4 (zone .) kr. A udp minimised → NOERROR referral to kr. 0.8 ms
//!    0.860 ms  referral from . to kr.: 6 NS, 6 with glue, DS
//!    …
//!   12.345 ms    → ns1.example.net 192.0.2.53 (zone example.net.) ns1.example.net. A udp → NOERROR answer, 1 record [aa] 1.2 ms
//!    …
//! answer: NOERROR, 1 record, secure, 45.678 ms
//!   www.example.co.kr. 300 IN A 192.0.2.80
//! ```
//!
//! The phrases for one exchange, one cache lookup, one verdict live here
//! too, as helpers on the event model, so that the Mermaid, SVG and HTML
//! forms say the same things in the same words.

use std::fmt::Write;
use std::net::IpAddr;

use hickory_proto::rr::Name;

use super::{
    CacheOutcome, EventKind, Exchange, ExchangeResult, MinimiseAction, ParentSideKind, Report,
    RestartKind, StartSource, SubReason, TracedAnswer, Transport, Verdict,
};

/// The trace as a line-per-event log.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(128 * (report.events.len() + 4));
    let q = &report.question;
    let _ = write!(out, "question: {} {}, cache {}", q.name, q.qtype, q.cache);
    if q.unix_time > 0 {
        let _ = write!(out, ", asked {}", utc(q.unix_time));
    }
    out.push('\n');
    // Times right-aligned to the longest (`  12.345 ms`, `1203.255 ms`).
    let width = report
        .events
        .iter()
        .map(|e| ms3(e.at_us).len())
        .max()
        .unwrap_or(0)
        .max(11);
    for event in &report.events {
        let indent = "  ".repeat(usize::from(event.depth));
        let line = match &event.kind {
            EventKind::Exchange(ex) => ex.line(),
            kind => describe(kind),
        };
        let _ = writeln!(out, "{:>width$}  {indent}{line}", ms3(event.at_us));
    }
    let a = &report.answer;
    let _ = writeln!(out, "answer: {}", answer_footer(a));
    for record in &a.records {
        let _ = writeln!(out, "  {record}");
    }
    out
}

/// `NOERROR, 1 record, secure, 45.678 ms` (with the EDE after the rcode).
fn answer_footer(a: &TracedAnswer) -> String {
    let mut s = a.rcode.clone();
    if let Some(ede) = &a.ede {
        let _ = write!(s, ", {}", ede_phrase(ede.code, &ede.text));
    }
    let _ = write!(
        s,
        ", {}, {}, {}",
        count(a.records.len(), "record"),
        if a.security.is_empty() {
            "security unknown"
        } else {
            &a.security
        },
        ms3(a.elapsed_us)
    );
    s
}

impl Exchange {
    /// The server as the diagrams label it: `a.root-servers.net 198.41.0.4`,
    /// or the address alone when no NS name is known.
    pub fn server_label(&self) -> String {
        server_label(self.server_name.as_ref(), self.server)
    }

    /// Whether no reply came at all (a timeout or a network error).
    pub fn no_reply(&self) -> bool {
        matches!(
            self.result,
            ExchangeResult::Timeout | ExchangeResult::NetworkError
        )
    }

    /// The query as sent: `kr. A`, and `(TCP)` and the attempt when they
    /// are not the usual UDP and first try.
    pub fn query_phrase(&self) -> String {
        let mut s = format!("{} {}", self.qname, self.qtype);
        match self.transport {
            Transport::Udp => {}
            Transport::Tcp => s.push_str(" (TCP)"),
            Transport::Tls => s.push_str(" (TLS)"),
        }
        if self.attempt > 1 {
            let _ = write!(s, " (attempt {})", self.attempt);
        }
        s
    }

    /// The reply in a few words: `NOERROR referral to kr.`, `NXDOMAIN`,
    /// `NODATA`, `SERVFAIL`, `timeout after 400 ms`.
    pub fn reply_phrase(&self) -> String {
        let rcode = self.rcode.as_deref().unwrap_or("no rcode");
        match self.result {
            ExchangeResult::Answer => format!("{rcode} answer, {}", count(self.answers, "record")),
            ExchangeResult::Cname => format!("{rcode} CNAME"),
            ExchangeResult::Referral => match &self.referral_to {
                Some(zone) => format!("{rcode} referral to {zone}"),
                None => format!("{rcode} referral"),
            },
            ExchangeResult::Nxdomain => rcode.to_string(),
            ExchangeResult::Nodata => "NODATA".to_string(),
            ExchangeResult::LastResort => format!("{rcode}, kept as a last resort"),
            ExchangeResult::Lame => format!("{rcode}, lame"),
            ExchangeResult::ServerError => rcode.to_string(),
            ExchangeResult::NoEdns => format!("{rcode}, asking again without EDNS"),
            ExchangeResult::NoCaseEcho => {
                format!("{rcode}, case not echoed, asking again without 0x20")
            }
            ExchangeResult::Malformed => "malformed reply".to_string(),
            ExchangeResult::Timeout => format!("timeout after {} ms", self.timeout_ms),
            ExchangeResult::NetworkError => "network error".to_string(),
        }
    }

    /// The reply's header flags in dig's words, `[aa]`, `[aa tc]`, or nothing.
    pub fn flags_phrase(&self) -> String {
        match (self.aa, self.tc) {
            (false, false) => String::new(),
            (true, false) => " [aa]".to_string(),
            (false, true) => " [tc]".to_string(),
            (true, true) => " [aa tc]".to_string(),
        }
    }

    /// The reply as a diagram's dashed arrow says it:
    /// `NOERROR referral to kr. (0.8 ms)`, `timeout after 400 ms`.
    pub fn reply_label(&self) -> String {
        if self.no_reply() {
            self.reply_phrase()
        } else {
            format!(
                "{}{} ({})",
                self.reply_phrase(),
                self.flags_phrase(),
                ms1(self.rtt_us)
            )
        }
    }

    /// The exchange as one log line: `→ a.root-servers.net 198.41.0.4
    /// (zone .) www.example.co.kr. A udp → NOERROR referral to kr. 0.8 ms`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "→ {} (zone {}) {} {} {}",
            self.server_label(),
            self.zone,
            self.qname,
            self.qtype,
            transport(self.transport)
        );
        if self.minimised {
            s.push_str(" minimised");
        }
        let _ = write!(s, " → {}", self.reply_phrase());
        if self.no_reply() {
            let _ = write!(s, " (attempt {})", self.attempt);
        } else {
            let _ = write!(s, "{} {}", self.flags_phrase(), ms1(self.rtt_us));
            if self.attempt > 1 {
                let _ = write!(s, " (attempt {})", self.attempt);
            }
        }
        s
    }
}

/// `a.root-servers.net 198.41.0.4`, or the address alone.
pub(super) fn server_label(name: Option<&Name>, addr: IpAddr) -> String {
    match name {
        Some(name) => {
            let name = name.to_string();
            let host = name.strip_suffix('.').filter(|h| !h.is_empty());
            format!("{} {addr}", host.unwrap_or(&name))
        }
        None => addr.to_string(),
    }
}

/// `udp`, `tcp` or `tls`, as the JSON form spells it.
pub(super) fn transport(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

/// What a sub-resolution was for: `glueless NS address`, `DS fetch`, `DNSKEY fetch`.
pub(super) fn sub_reason(reason: SubReason) -> &'static str {
    match reason {
        SubReason::Glueless => "glueless NS address",
        SubReason::Ds => "DS fetch",
        SubReason::Dnskey => "DNSKEY fetch",
        SubReason::Cname => "CNAME target",
        SubReason::Dname => "DNAME target",
    }
}

/// `secure`, `insecure`, `bogus`, `indeterminate` (RFC 4035 §4.3).
pub(super) fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Secure => "secure",
        Verdict::Insecure => "insecure",
        Verdict::Bogus => "bogus",
        Verdict::Indeterminate => "indeterminate",
    }
}

/// `EDE 22 (No Reachable Authority)` (RFC 8914 §4), or the code alone.
pub(super) fn ede_phrase(code: u16, text: &str) -> String {
    if text.is_empty() {
        format!("EDE {code}")
    } else {
        format!("EDE {code} ({text})")
    }
}

/// What the client was told, as the diagrams' last arrow says it:
/// `NOERROR, 1 answer`, `SERVFAIL, EDE 22 (No Reachable Authority)`, with
/// the security when it is worth a look (`secure` or `bogus`).
pub(super) fn answer_phrase(a: &TracedAnswer) -> String {
    let mut s = a.rcode.clone();
    if a.rcode == "NOERROR" || !a.records.is_empty() {
        let _ = write!(s, ", {}", count(a.records.len(), "answer"));
    }
    if let Some(ede) = &a.ede {
        let _ = write!(s, ", {}", ede_phrase(ede.code, &ede.text));
    }
    if a.security == "secure" || a.security == "bogus" {
        let _ = write!(s, ", {}", a.security);
    }
    s
}

/// One event other than an exchange, in the words the log, the diagram's
/// notes and the HTML table share.
pub(super) fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::Cache {
            name,
            qtype,
            outcome,
            detail,
        } => match outcome {
            CacheOutcome::Answer => format!("cache hit {name} {qtype}"),
            CacheOutcome::Cname => match detail {
                Some(target) => format!("cache hit {name} {qtype}, CNAME to {target}"),
                None => format!("cache hit {name} {qtype}, CNAME"),
            },
            CacheOutcome::Nxdomain => format!("cache hit {name} {qtype}, NXDOMAIN"),
            CacheOutcome::Nodata => format!("cache hit {name} {qtype}, NODATA"),
            CacheOutcome::AggressiveNxdomain => {
                format!("cache hit {name} {qtype}, NXDOMAIN from a cached NSEC range (RFC 8198)")
            }
            CacheOutcome::Delegation => match detail {
                Some(zone) => format!("cache: closest delegation {zone}"),
                None => "cache: closest delegation".to_string(),
            },
            CacheOutcome::Miss => format!("cache miss {name} {qtype}"),
        },
        EventKind::Start {
            zone,
            source,
            servers,
        } => {
            let from = match source {
                StartSource::Cache => "from the cached delegation",
                StartSource::Hints => "from the root hints",
                StartSource::Primed => "with the primed root NS set",
                StartSource::Bypass => "from the root hints (cache bypassed)",
                StartSource::Forward => "at the configured forwarders",
                StartSource::Stub => "at the configured stub servers",
            };
            format!(
                "start at {zone} {from} ({})",
                count(servers.len(), "server")
            )
        }
        EventKind::Exchange(ex) => ex.line(),
        EventKind::Referral {
            from,
            zone,
            ns,
            glue,
            ds,
        } => format!(
            "referral from {from} to {zone}: {} NS, {} with glue, {}",
            ns.len(),
            glue.len(),
            if *ds { "DS" } else { "no DS" }
        ),
        EventKind::ParentSide { zone, what } => match what {
            ParentSideKind::ParentNs => {
                format!("the servers of {zone} failed: trying the parent's NS set")
            }
            ParentSideKind::ParentGlue => {
                format!("the servers of {zone} failed: trying the parent-side glue")
            }
        },
        EventKind::Minimisation { zone, action } => match action {
            MinimiseAction::AddLabel => {
                format!("QNAME minimisation under {zone}: one more label")
            }
            MinimiseAction::FullName => {
                format!("QNAME minimisation under {zone}: asking the full name")
            }
        },
        EventKind::SubBegin {
            reason,
            name,
            qtype,
        } => format!("{} {name} {qtype}", sub_reason(*reason)),
        EventKind::SubEnd {
            reason,
            name,
            qtype,
            outcome,
        } => format!("{} {name} {qtype} → {outcome}", sub_reason(*reason)),
        EventKind::Restart { kind, from, to } => {
            let kind = match kind {
                RestartKind::Cname => "CNAME",
                RestartKind::Dname => "DNAME",
            };
            format!("restart: {kind} {from} → {to}")
        }
        EventKind::Validation {
            zone,
            name,
            qtype,
            verdict: v,
            reason,
        } => {
            let mut s = format!("DNSSEC {zone} {} ({name} {qtype})", verdict(*v));
            if let Some(reason) = reason {
                let _ = write!(s, ": {reason}");
            }
            s
        }
        EventKind::Answer {
            rcode,
            ede,
            security,
            answers,
        } => {
            let mut s = format!("answer {rcode}, {}", count(*answers, "answer"));
            if let Some(ede) = ede {
                let _ = write!(s, ", {}", ede_phrase(ede.code, &ede.text));
            }
            let _ = write!(s, ", {security}");
            s
        }
    }
}

/// `1 record`, `2 records`.
pub(super) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Microseconds as milliseconds to the microsecond: `12.345 ms`.
pub(super) fn ms3(us: u64) -> String {
    format!("{}.{:03} ms", us / 1000, us % 1000)
}

/// Microseconds as milliseconds to a tenth, rounded: `0.8 ms`.
pub(super) fn ms1(us: u64) -> String {
    let tenths = us.saturating_add(50) / 100;
    format!("{}.{} ms", tenths / 10, tenths % 10)
}

/// Seconds since the Unix epoch as `2024-07-25 10:00:00 UTC`.
pub(super) fn utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_the_microseconds_or_round_to_a_tenth() {
        assert_eq!(ms3(12_345), "12.345 ms");
        assert_eq!(ms3(7), "0.007 ms");
        assert_eq!(ms1(800), "0.8 ms");
        assert_eq!(ms1(849), "0.8 ms");
        assert_eq!(ms1(850), "0.9 ms");
        assert_eq!(ms1(123_456), "123.5 ms");
    }

    #[test]
    fn unix_time_reads_as_a_utc_date() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_721_901_600), "2024-07-25 10:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn a_server_is_named_without_the_root_dot() {
        let name = Name::from_ascii("a.root-servers.net.").unwrap();
        let addr = "198.41.0.4".parse().unwrap();
        assert_eq!(
            server_label(Some(&name), addr),
            "a.root-servers.net 198.41.0.4"
        );
        assert_eq!(server_label(None, addr), "198.41.0.4");
    }
}
