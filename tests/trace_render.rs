//! The four renderings of a resolution's trace (`src/trace/{text,mermaid,
//! svg,html}.rs`), from reports built by hand: a realistic walk for
//! `www.example.co.kr. A` (cache miss, root hints, root → kr. → co.kr. →
//! example.co.kr., a timeout and its retry, a glueless NS address looked up
//! at depth 1 with a DNSKEY fetch nested inside it, a CNAME restart, a TC
//! reply retried over TCP, a DNSSEC verdict, the answer), a SERVFAIL with
//! an EDE, and a report whose strings hold what breaks Mermaid, XML and
//! HTML.
//!
//! The Mermaid form is checked by [`mermaid_syntax`], a line-by-line
//! checker of the statement forms taproot writes; the SVG by parsing it as
//! XML; the HTML by rendering it in headless Chromium to a PNG that must
//! not be blank.

mod support;

use std::net::IpAddr;

use hickory_proto::rr::{Name, RecordType};
use support::browser;
use taproot::trace::{
    CacheOutcome, Ede, Event, EventKind, Exchange, ExchangeResult, Format, Report, RestartKind,
    StartSource, SubReason, TracedAnswer, TracedQuestion, Transport, Verdict,
};

// ---------------------------------------------------------------------------
// Reports

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn names(list: &[&str]) -> Vec<Name> {
    list.iter().map(|s| name(s)).collect()
}

/// Events in time order, with `Trace::begin`/`Trace::end`'s depth rule: a
/// `SubBegin` and its `SubEnd` sit at the outer depth, what is between them
/// one deeper.
struct Walk {
    events: Vec<Event>,
    at_us: u64,
    depth: u8,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            events: Vec::new(),
            at_us: 0,
            depth: 0,
        }
    }

    fn after(&mut self, us: u64, kind: EventKind) -> &mut Walk {
        self.at_us += us;
        self.events.push(Event {
            at_us: self.at_us,
            depth: self.depth,
            kind,
        });
        self
    }

    fn begin(&mut self, us: u64, reason: SubReason, n: &str, qtype: RecordType) -> &mut Walk {
        self.after(
            us,
            EventKind::SubBegin {
                reason,
                name: name(n),
                qtype,
            },
        );
        self.depth += 1;
        self
    }

    fn end(
        &mut self,
        us: u64,
        reason: SubReason,
        n: &str,
        qtype: RecordType,
        outcome: &str,
    ) -> &mut Walk {
        self.depth -= 1;
        self.after(
            us,
            EventKind::SubEnd {
                reason,
                name: name(n),
                qtype,
                outcome: outcome.to_string(),
            },
        )
    }

    fn exchange(&mut self, us: u64, ex: Exchange) -> &mut Walk {
        self.after(us, EventKind::Exchange(ex))
    }

    fn cache(
        &mut self,
        n: &str,
        qtype: RecordType,
        outcome: CacheOutcome,
        detail: Option<&str>,
    ) -> &mut Walk {
        self.after(
            10,
            EventKind::Cache {
                name: name(n),
                qtype,
                outcome,
                detail: detail.map(name),
            },
        )
    }
}

/// A query to `server` (an NS name of `zone`, when `ns` is given), as
/// sent; [`referred`], [`replied`] and [`timed_out`] say what came back.
fn ask(server: &str, ns: Option<&str>, zone: &str, qname: &str, qtype: RecordType) -> Exchange {
    Exchange {
        server: server
            .parse::<IpAddr>()
            .unwrap_or_else(|e| panic!("{server}: {e}")),
        server_name: ns.map(name),
        zone: name(zone),
        qname: name(qname),
        qtype,
        transport: Transport::Udp,
        minimised: false,
        attempt: 1,
        timeout_ms: 400,
        rcode: Some("NOERROR".into()),
        aa: false,
        tc: false,
        answers: 0,
        size: 0,
        rtt_us: 0,
        result: ExchangeResult::Answer,
        referral_to: None,
    }
}

fn referred(ex: Exchange, to: &str, rtt_us: u64) -> Exchange {
    Exchange {
        result: ExchangeResult::Referral,
        referral_to: Some(name(to)),
        rtt_us,
        size: 700,
        ..ex
    }
}

/// An authoritative reply with `answers` records.
fn replied(ex: Exchange, result: ExchangeResult, answers: usize, rtt_us: u64) -> Exchange {
    Exchange {
        result,
        answers,
        aa: true,
        rtt_us,
        size: 120 + 40 * answers,
        ..ex
    }
}

fn timed_out(ex: Exchange, attempt: u32) -> Exchange {
    Exchange {
        result: ExchangeResult::Timeout,
        rcode: None,
        attempt,
        ..ex
    }
}

fn glue_referral(from: &str, zone: &str, ns: &[&str], glue: &[&str], ds: bool) -> EventKind {
    EventKind::Referral {
        from: name(from),
        zone: name(zone),
        ns: names(ns),
        glue: names(glue),
        ds,
    }
}

const ROOT: &str = "198.41.0.4";
const KR: &str = "203.0.113.11";
const CO_KR: &str = "2001:db8:c0::53";
const GTLD: &str = "192.5.6.30";
const EXAMPLE: &str = "192.0.2.53";

/// `www.example.co.kr. A` from a cold cache: the walk the seed note draws,
/// with what real walks add to it.
fn walk_report() -> Report {
    use RecordType::{A, DNSKEY};
    let mut w = Walk::new();
    w.cache("www.example.co.kr.", A, CacheOutcome::Miss, None)
        .after(
            15,
            EventKind::Start {
                zone: Name::root(),
                source: StartSource::Hints,
                servers: names(&[
                    "a.root-servers.net.",
                    "b.root-servers.net.",
                    "c.root-servers.net.",
                ]),
            },
        )
        .exchange(
            840,
            referred(
                Exchange {
                    minimised: true,
                    ..ask(ROOT, Some("a.root-servers.net."), ".", "kr.", A)
                },
                "kr.",
                812,
            ),
        )
        .after(
            5,
            glue_referral(
                ".",
                "kr.",
                &["b.dns.kr.", "c.dns.kr."],
                &["b.dns.kr.", "c.dns.kr."],
                true,
            ),
        )
        // b.dns.kr. does not answer the first time; asked again, it does.
        .exchange(
            400_100,
            timed_out(ask(KR, Some("b.dns.kr."), "kr.", "co.kr.", A), 1),
        )
        .exchange(
            31_300,
            referred(
                Exchange {
                    attempt: 2,
                    timeout_ms: 800,
                    ..ask(KR, Some("b.dns.kr."), "kr.", "co.kr.", A)
                },
                "co.kr.",
                31_204,
            ),
        )
        .after(
            5,
            glue_referral("kr.", "co.kr.", &["ns.co.kr."], &["ns.co.kr."], true),
        )
        .exchange(
            2_100,
            referred(
                ask(CO_KR, Some("ns.co.kr."), "co.kr.", "example.co.kr.", A),
                "example.co.kr.",
                2_050,
            ),
        )
        .after(
            5,
            glue_referral("co.kr.", "example.co.kr.", &["ns1.example.net."], &[], true),
        )
        // The only NS is out of bailiwick and came without glue.
        .begin(10, SubReason::Glueless, "ns1.example.net.", A)
        .cache("ns1.example.net.", A, CacheOutcome::Miss, None)
        .cache(
            "ns1.example.net.",
            A,
            CacheOutcome::Delegation,
            Some("net."),
        )
        .after(
            5,
            EventKind::Start {
                zone: name("net."),
                source: StartSource::Cache,
                servers: names(&["a.gtld-servers.net."]),
            },
        )
        .exchange(
            9_800,
            referred(
                ask(GTLD, Some("a.gtld-servers.net."), "net.", "example.net.", A),
                "example.net.",
                9_750,
            ),
        )
        .after(
            5,
            glue_referral(
                "net.",
                "example.net.",
                &["ns1.example.net."],
                &["ns1.example.net."],
                true,
            ),
        )
        .exchange(
            1_300,
            replied(
                ask(
                    EXAMPLE,
                    Some("ns1.example.net."),
                    "example.net.",
                    "ns1.example.net.",
                    A,
                ),
                ExchangeResult::Answer,
                1,
                1_234,
            ),
        )
        .begin(5, SubReason::Dnskey, "example.net.", DNSKEY)
        .exchange(
            1_200,
            replied(
                ask(
                    EXAMPLE,
                    Some("ns1.example.net."),
                    "example.net.",
                    "example.net.",
                    DNSKEY,
                ),
                ExchangeResult::Answer,
                2,
                1_150,
            ),
        )
        .end(
            5,
            SubReason::Dnskey,
            "example.net.",
            DNSKEY,
            "2 DNSKEY, secure",
        )
        .after(
            5,
            EventKind::Validation {
                zone: name("example.net."),
                name: name("ns1.example.net."),
                qtype: A,
                verdict: Verdict::Secure,
                reason: None,
            },
        )
        .end(5, SubReason::Glueless, "ns1.example.net.", A, "192.0.2.53")
        .exchange(
            1_400,
            replied(
                ask(
                    EXAMPLE,
                    Some("ns1.example.net."),
                    "example.co.kr.",
                    "www.example.co.kr.",
                    A,
                ),
                ExchangeResult::Cname,
                1,
                1_310,
            ),
        )
        .after(
            5,
            EventKind::Restart {
                kind: RestartKind::Cname,
                from: name("www.example.co.kr."),
                to: name("web.example.co.kr."),
            },
        )
        .cache(
            "web.example.co.kr.",
            A,
            CacheOutcome::Delegation,
            Some("example.co.kr."),
        )
        .exchange(
            1_300,
            replied(
                ask(
                    EXAMPLE,
                    Some("ns1.example.net."),
                    "example.co.kr.",
                    "web.example.co.kr.",
                    A,
                ),
                ExchangeResult::Answer,
                1,
                1_280,
            ),
        )
        .begin(5, SubReason::Dnskey, "example.co.kr.", DNSKEY)
        // The DNSKEY set does not fit in 1232 bytes: TC, then TCP.
        .exchange(
            1_200,
            Exchange {
                tc: true,
                ..replied(
                    ask(
                        EXAMPLE,
                        Some("ns1.example.net."),
                        "example.co.kr.",
                        "example.co.kr.",
                        DNSKEY,
                    ),
                    ExchangeResult::Answer,
                    0,
                    1_190,
                )
            },
        )
        .exchange(
            2_600,
            Exchange {
                transport: Transport::Tcp,
                ..replied(
                    ask(
                        EXAMPLE,
                        Some("ns1.example.net."),
                        "example.co.kr.",
                        "example.co.kr.",
                        DNSKEY,
                    ),
                    ExchangeResult::Answer,
                    3,
                    2_540,
                )
            },
        )
        .end(
            5,
            SubReason::Dnskey,
            "example.co.kr.",
            DNSKEY,
            "3 DNSKEY, secure",
        )
        .after(
            20,
            EventKind::Validation {
                zone: name("example.co.kr."),
                name: name("web.example.co.kr."),
                qtype: A,
                verdict: Verdict::Secure,
                reason: None,
            },
        )
        .after(
            10,
            EventKind::Answer {
                rcode: "NOERROR".into(),
                ede: None,
                security: "secure".into(),
                answers: 2,
            },
        );
    let elapsed_us = w.at_us + 15;
    Report {
        question: TracedQuestion {
            name: name("www.example.co.kr."),
            qtype: A,
            cache: "use",
            unix_time: 1_721_901_600,
        },
        answer: TracedAnswer {
            rcode: "NOERROR".into(),
            ede: None,
            security: "secure".into(),
            records: vec![
                "www.example.co.kr. 300 IN CNAME web.example.co.kr.".into(),
                "web.example.co.kr. 300 IN A 192.0.2.80".into(),
            ],
            elapsed_us,
        },
        events: w.events,
    }
}

const BROKEN_V6: &str = "2001:db8::bad";

/// `broken.example.kr. A`: its only server (IPv6) times out twice and
/// then refuses; the client gets SERVFAIL with EDE 22.
fn servfail_report() -> Report {
    use RecordType::A;
    let mut w = Walk::new();
    w.cache(
        "broken.example.kr.",
        A,
        CacheOutcome::Delegation,
        Some("example.kr."),
    )
    .after(
        5,
        EventKind::Start {
            zone: name("example.kr."),
            source: StartSource::Cache,
            servers: names(&["ns.broken.example.kr."]),
        },
    )
    .exchange(
        400_050,
        timed_out(
            ask(BROKEN_V6, None, "example.kr.", "broken.example.kr.", A),
            1,
        ),
    )
    .exchange(
        800_050,
        timed_out(
            Exchange {
                timeout_ms: 800,
                ..ask(BROKEN_V6, None, "example.kr.", "broken.example.kr.", A)
            },
            2,
        ),
    )
    .exchange(
        3_100,
        Exchange {
            attempt: 3,
            rcode: Some("REFUSED".into()),
            result: ExchangeResult::ServerError,
            rtt_us: 3_050,
            size: 40,
            ..ask(
                BROKEN_V6,
                Some("ns.broken.example.kr."),
                "example.kr.",
                "broken.example.kr.",
                A,
            )
        },
    )
    .after(
        20,
        EventKind::Answer {
            rcode: "SERVFAIL".into(),
            ede: Some(Ede {
                code: 22,
                text: "No Reachable Authority".into(),
            }),
            security: "indeterminate".into(),
            answers: 0,
        },
    );
    Report {
        question: TracedQuestion {
            name: name("broken.example.kr."),
            qtype: A,
            cache: "use",
            unix_time: 0,
        },
        answer: TracedAnswer {
            rcode: "SERVFAIL".into(),
            ede: Some(Ede {
                code: 22,
                text: "No Reachable Authority".into(),
            }),
            security: "indeterminate".into(),
            records: Vec::new(),
            elapsed_us: w.at_us + 10,
        },
        events: w.events,
    }
}

/// What breaks Mermaid (`;`, `#`, `%%`, a newline), XML and HTML (`<`,
/// `&`, quotes, a control character), in every free-text field.
const HOSTILE: &str = "a;b #c %%d <e> & \"f\" 'g'\nh\u{1}i";

fn hostile_report() -> Report {
    use RecordType::A;
    let mut w = Walk::new();
    w.exchange(
        5,
        Exchange {
            rcode: Some(HOSTILE.into()),
            result: ExchangeResult::ServerError,
            rtt_us: 900,
            ..ask(
                "2001:db8::1",
                Some("ns.example."),
                "example.",
                "x.example.",
                A,
            )
        },
    )
    .begin(5, SubReason::Ds, "x.example.", RecordType::DS)
    .end(5, SubReason::Ds, "x.example.", RecordType::DS, HOSTILE)
    .after(
        5,
        EventKind::Validation {
            zone: name("example."),
            name: name("x.example."),
            qtype: A,
            verdict: Verdict::Bogus,
            reason: Some(HOSTILE.into()),
        },
    );
    Report {
        question: TracedQuestion {
            name: name("x.example."),
            qtype: A,
            cache: "bypass",
            unix_time: 0,
        },
        answer: TracedAnswer {
            rcode: "SERVFAIL".into(),
            ede: Some(Ede {
                code: 6,
                text: HOSTILE.into(),
            }),
            security: "bogus".into(),
            records: vec![HOSTILE.into()],
            elapsed_us: 2_000,
        },
        events: w.events,
    }
}

// ---------------------------------------------------------------------------
// The Mermaid checker

/// A Mermaid identifier as taproot writes them: `Client`, `taproot`, `S1`.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Free text (a message, a note, a label, the title) as Mermaid's lexer
/// reads it: entity codes (`#59;`) are swapped out before lexing, and
/// after that a `;` or `#` would end the statement, `%%` would start a
/// comment, and `<`/`>` would be taken as HTML.
fn check_text(line_no: usize, text: &str) -> Result<(), String> {
    let mut rest = text;
    let mut plain = String::new();
    while let Some(i) = rest.find('#') {
        plain.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let code_len = after
            .find(';')
            .filter(|&n| n > 0 && after[..n].chars().all(|c| c.is_ascii_alphanumeric()));
        match code_len {
            Some(n) => rest = &after[n + 1..],
            None => return Err(format!("line {line_no}: an unescaped '#' in {text:?}")),
        }
    }
    plain.push_str(rest);
    if plain.trim().is_empty() {
        return Err(format!("line {line_no}: empty text"));
    }
    for bad in [";", "%%", "<", ">", "\r"] {
        if plain.contains(bad) {
            return Err(format!("line {line_no}: {bad:?} in {text:?}"));
        }
    }
    if plain.chars().any(char::is_control) {
        return Err(format!("line {line_no}: a control character in {text:?}"));
    }
    Ok(())
}

/// Checks that `diagram` is a `sequenceDiagram` made only of the statement
/// forms taproot writes (and the seed note uses): `title`, `autonumber`,
/// `participant X` / `participant X as label`, the arrows `->>`, `-->>`,
/// `-x`, `--x` between declared participants with a message, `Note
/// over`/`left of`/`right of`, `rect rgb(…)`, `alt`/`else`, `end`, with
/// blocks balanced. Returns what is wrong, line by line.
fn mermaid_syntax(diagram: &str) -> Result<(), String> {
    let mut lines = diagram.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, "sequenceDiagram")) => {}
        other => return Err(format!("does not start with sequenceDiagram: {other:?}")),
    }
    let mut participants: Vec<String> = Vec::new();
    let mut blocks: Vec<&str> = Vec::new();
    let declared = |participants: &[String], id: &str, n: usize| {
        if participants.iter().any(|p| p == id) {
            Ok(())
        } else {
            Err(format!("line {n}: {id:?} is not a declared participant"))
        }
    };
    for (n, raw) in lines {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if !raw.starts_with("    ") {
            return Err(format!(
                "line {n}: statements are indented under sequenceDiagram: {raw:?}"
            ));
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "autonumber" if rest.is_empty() => {}
            "title" => check_text(n, rest)?,
            "participant" => {
                let (id, label) = match rest.split_once(" as ") {
                    Some((id, label)) => (id, Some(label)),
                    None => (rest, None),
                };
                if !is_identifier(id) {
                    return Err(format!(
                        "line {n}: participant id {id:?} is not an identifier"
                    ));
                }
                if participants.iter().any(|p| p == id) {
                    return Err(format!("line {n}: participant {id:?} declared twice"));
                }
                if let Some(label) = label {
                    check_text(n, label)?;
                }
                participants.push(id.to_string());
            }
            "Note" => {
                let (place, text) = rest
                    .split_once(": ")
                    .ok_or_else(|| format!("line {n}: a note without ': text'"))?;
                let actors = place
                    .strip_prefix("over ")
                    .or_else(|| place.strip_prefix("right of "))
                    .or_else(|| place.strip_prefix("left of "))
                    .ok_or_else(|| {
                        format!("line {n}: a note neither over, left of nor right of")
                    })?;
                for id in actors.split(", ") {
                    declared(&participants, id, n)?;
                }
                if !place.starts_with("over ") && actors.contains(',') {
                    return Err(format!("line {n}: a side note over two participants"));
                }
                check_text(n, text)?;
            }
            "rect" => {
                let colour = rest
                    .strip_prefix("rgb(")
                    .or_else(|| rest.strip_prefix("rgba("))
                    .and_then(|c| c.strip_suffix(')'))
                    .ok_or_else(|| format!("line {n}: rect without rgb(…): {rest:?}"))?;
                let parts: Vec<&str> = colour.split(',').map(str::trim).collect();
                let ok = match parts.len() {
                    3 => parts.iter().all(|p| p.parse::<u8>().is_ok()),
                    4 => {
                        parts[..3].iter().all(|p| p.parse::<u8>().is_ok())
                            && parts[3].parse::<f32>().is_ok()
                    }
                    _ => false,
                };
                if !ok {
                    return Err(format!("line {n}: a bad colour {colour:?}"));
                }
                blocks.push("rect");
            }
            "alt" => {
                check_text(n, rest)?;
                blocks.push("alt");
            }
            "else" => {
                if blocks.last() != Some(&"alt") {
                    return Err(format!("line {n}: else outside alt"));
                }
                check_text(n, rest)?;
            }
            "end" if rest.is_empty() => {
                if blocks.pop().is_none() {
                    return Err(format!("line {n}: end without a block"));
                }
            }
            _ => {
                let (head, text) = line
                    .split_once(": ")
                    .ok_or_else(|| format!("line {n}: not a statement taproot writes: {line:?}"))?;
                let from_len = head
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .ok_or_else(|| format!("line {n}: no arrow in {head:?}"))?;
                let (from, arrow_to) = head.split_at(from_len);
                let arrow = ["-->>", "->>", "--x", "-x"]
                    .into_iter()
                    .find(|a| arrow_to.starts_with(a))
                    .ok_or_else(|| format!("line {n}: not an arrow taproot writes: {head:?}"))?;
                let to = &arrow_to[arrow.len()..];
                for id in [from, to] {
                    if !is_identifier(id) {
                        return Err(format!("line {n}: {id:?} is not an identifier"));
                    }
                    declared(&participants, id, n)?;
                }
                check_text(n, text)?;
            }
        }
    }
    if !blocks.is_empty() {
        return Err(format!(
            "{} block(s) never closed: {blocks:?}",
            blocks.len()
        ));
    }
    Ok(())
}

fn mermaid(report: &Report) -> String {
    let diagram = report.render(Format::Mermaid);
    if let Err(e) = mermaid_syntax(&diagram) {
        panic!("{e}\n{diagram}");
    }
    diagram
}

/// The `(from, arrow, to, text)` of each arrow, in order.
fn arrows(diagram: &str) -> Vec<(String, String, String, String)> {
    diagram
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let (head, text) = line.split_once(": ")?;
            let from_len = head.find('-')?;
            let (from, rest) = head.split_at(from_len);
            let arrow = ["-->>", "->>", "--x", "-x"]
                .into_iter()
                .find(|a| rest.starts_with(a))?;
            Some((
                from.to_string(),
                arrow.to_string(),
                rest[arrow.len()..].to_string(),
                text.to_string(),
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Text

#[test]
fn text_opens_with_the_question_and_closes_with_the_answer() {
    let text = walk_report().render(Format::Text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "question: www.example.co.kr. A, cache use, asked 2024-07-25 10:00:00 UTC"
    );
    let footer = lines
        .iter()
        .position(|l| l.starts_with("answer: "))
        .unwrap_or_else(|| panic!("no answer line:\n{text}"));
    assert_eq!(
        lines[footer], "answer: NOERROR, 2 records, secure, 453.310 ms",
        "\n{text}"
    );
    assert_eq!(
        &lines[footer + 1..],
        [
            "  www.example.co.kr. 300 IN CNAME web.example.co.kr.",
            "  web.example.co.kr. 300 IN A 192.0.2.80"
        ]
    );
    // One line per event between them.
    assert_eq!(footer - 1, walk_report().events.len(), "\n{text}");
}

#[test]
fn text_has_one_line_per_event_with_its_time_since_the_question() {
    let text = walk_report().render(Format::Text);
    for expected in [
        "   0.010 ms  cache miss www.example.co.kr. A",
        "   0.025 ms  start at . from the root hints (3 servers)",
        "   0.865 ms  → a.root-servers.net 198.41.0.4 (zone .) kr. A udp minimised → NOERROR referral to kr. 0.8 ms",
        "   0.870 ms  referral from . to kr.: 2 NS, 2 with glue, DS",
        " 434.375 ms  → ns.co.kr 2001:db8:c0::53 (zone co.kr.) example.co.kr. A udp → NOERROR referral to example.co.kr. 2.1 ms",
        " 434.380 ms  referral from co.kr. to example.co.kr.: 1 NS, 0 with glue, DS",
        " 434.390 ms  glueless NS address ns1.example.net. A",
        " 448.145 ms  restart: CNAME www.example.co.kr. → web.example.co.kr.",
        " 453.285 ms  DNSSEC example.co.kr. secure (web.example.co.kr. A)",
        " 453.295 ms  answer NOERROR, 2 answers, secure",
    ] {
        assert!(
            text.lines().any(|l| l == expected),
            "missing line\n{expected}\nin\n{text}"
        );
    }
}

#[test]
fn text_shows_a_timeout_and_its_retry_with_their_attempts() {
    let text = walk_report().render(Format::Text);
    assert!(
        text.contains(
            "\n 400.970 ms  → b.dns.kr 203.0.113.11 (zone kr.) co.kr. A udp → timeout after 400 ms (attempt 1)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "\n 432.270 ms  → b.dns.kr 203.0.113.11 (zone kr.) co.kr. A udp → NOERROR referral to co.kr. 31.2 ms (attempt 2)\n"
        ),
        "{text}"
    );
}

#[test]
fn text_indents_a_sub_resolution_by_its_depth() {
    let text = walk_report().render(Format::Text);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
            .to_string()
    };
    // Where the event starts after the time column.
    let column = |l: &str| {
        let (time, event) = l.split_once(" ms  ").unwrap_or((l, ""));
        time.len() + event.len() - event.trim_start().len()
    };
    let top = line("glueless NS address ns1.example.net. A");
    let inner = line("a.gtld-servers.net 192.5.6.30");
    let nested = line("(zone example.net.) example.net. DNSKEY");
    let closed = line("glueless NS address ns1.example.net. A → 192.0.2.53");
    assert_eq!(column(&top) % 2, 0, "{top}");
    assert_eq!(column(&inner), column(&top) + 2, "{inner}\n{top}");
    assert_eq!(column(&nested), column(&top) + 4, "{nested}\n{top}");
    assert_eq!(column(&closed), column(&top), "{closed}");
}

#[test]
fn text_shows_the_header_flags_and_tcp() {
    let text = walk_report().render(Format::Text);
    assert!(
        text.contains("(zone example.co.kr.) example.co.kr. DNSKEY udp → NOERROR answer, 0 records [aa tc] 1.2 ms"),
        "{text}"
    );
    assert!(
        text.contains("(zone example.co.kr.) example.co.kr. DNSKEY tcp → NOERROR answer, 3 records [aa] 2.5 ms"),
        "{text}"
    );
}

#[test]
fn text_footer_of_a_servfail_names_its_ede() {
    let text = servfail_report().render(Format::Text);
    assert!(
        text.lines().any(|l| l
            == "answer: SERVFAIL, EDE 22 (No Reachable Authority), 0 records, indeterminate, 1203.245 ms"),
        "{text}"
    );
    assert!(
        text.contains("→ 2001:db8::bad (zone example.kr.) broken.example.kr. A udp → timeout after 800 ms (attempt 2)"),
        "{text}"
    );
    assert!(
        text.contains("→ ns.broken.example.kr 2001:db8::bad (zone example.kr.) broken.example.kr. A udp → REFUSED 3.1 ms (attempt 3)"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// Mermaid

#[test]
fn mermaid_starts_with_sequence_diagram_and_passes_the_syntax_check() {
    for report in [walk_report(), servfail_report(), hostile_report()] {
        let diagram = mermaid(&report);
        assert!(diagram.starts_with("sequenceDiagram\n"), "{diagram}");
    }
}

#[test]
fn mermaid_lists_servers_in_the_order_first_asked() {
    let diagram = mermaid(&walk_report());
    let participants: Vec<&str> = diagram
        .lines()
        .filter_map(|l| l.trim().strip_prefix("participant "))
        .collect();
    assert_eq!(
        participants,
        [
            "Client",
            "taproot",
            "S1 as a.root-servers.net 198.41.0.4",
            "S2 as b.dns.kr 203.0.113.11",
            "S3 as ns.co.kr 2001:db8:c0::53",
            "S4 as a.gtld-servers.net 192.5.6.30",
            "S5 as ns1.example.net 192.0.2.53",
        ],
        "\n{diagram}"
    );
}

#[test]
fn mermaid_names_a_server_first_asked_by_address_once_its_name_is_known() {
    let diagram = mermaid(&servfail_report());
    assert!(
        diagram.contains("    participant S1 as ns.broken.example.kr 2001:db8::bad\n"),
        "{diagram}"
    );
}

#[test]
fn mermaid_draws_one_arrow_per_query_and_per_reply() {
    let report = walk_report();
    let exchanges = report
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Exchange(_)))
        .count();
    let diagram = mermaid(&report);
    let arrows = arrows(&diagram);
    assert_eq!(arrows.len(), 2 * exchanges + 2, "\n{diagram}");
    assert_eq!(
        arrows[0],
        (
            "Client".into(),
            "->>".into(),
            "taproot".into(),
            "www.example.co.kr. A".into()
        )
    );
    assert_eq!(
        arrows[1],
        ("taproot".into(), "->>".into(), "S1".into(), "kr. A".into())
    );
    assert_eq!(
        arrows[2],
        (
            "S1".into(),
            "-->>".into(),
            "taproot".into(),
            "NOERROR referral to kr. (0.8 ms)".into()
        )
    );
    // Each query is followed by its server's reply.
    for pair in arrows[1..arrows.len() - 1].chunks(2) {
        assert_eq!(pair[0].0, "taproot");
        assert_eq!(pair[0].1, "->>");
        assert_eq!(pair[1].0, pair[0].2);
        assert_eq!(pair[1].2, "taproot");
    }
    assert!(
        arrows.iter().any(|a| a.3 == "example.co.kr. DNSKEY (TCP)"),
        "{diagram}"
    );
    assert!(
        arrows.iter().any(|a| a.3 == "NOERROR CNAME [aa] (1.3 ms)"),
        "{diagram}"
    );
}

#[test]
fn mermaid_draws_a_timeout_as_a_crossed_reply() {
    let diagram = mermaid(&walk_report());
    assert!(
        diagram.contains("    S2--xtaproot: timeout after 400 ms\n"),
        "{diagram}"
    );
    assert!(
        diagram.contains("    taproot->>S2: co.kr. A (attempt 2)\n"),
        "{diagram}"
    );
    let servfail = mermaid(&servfail_report());
    assert_eq!(
        servfail.matches("--xtaproot: timeout after").count(),
        2,
        "{servfail}"
    );
}

#[test]
fn mermaid_notes_cache_restart_and_validation_over_taproot() {
    let diagram = mermaid(&walk_report());
    for note in [
        "    Note over taproot: cache miss www.example.co.kr. A\n",
        "    Note over taproot: start at . from the root hints (3 servers)\n",
        "        Note over taproot: cache: closest delegation net.\n",
        "    Note over taproot: restart: CNAME www.example.co.kr. → web.example.co.kr.\n",
        "    Note over taproot: cache: closest delegation example.co.kr.\n",
        "    Note over taproot: DNSSEC example.co.kr. secure (web.example.co.kr. A)\n",
    ] {
        assert!(diagram.contains(note), "missing {note:?} in\n{diagram}");
    }
}

#[test]
fn mermaid_nests_sub_resolutions_as_rect_blocks() {
    let diagram = mermaid(&walk_report());
    let lines: Vec<&str> = diagram.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| *l == needle)
            .unwrap_or_else(|| panic!("no line {needle:?} in\n{diagram}"))
    };
    let glueless = at("    rect rgb(255, 244, 214)");
    assert_eq!(
        lines[glueless + 1],
        "        Note over taproot: glueless NS address ns1.example.net. A"
    );
    // The DNSKEY fetch for example.net. sits inside the glueless lookup.
    let nested = at("        rect rgb(210, 222, 239)");
    assert_eq!(
        lines[nested + 1],
        "            Note over taproot: DNSKEY fetch example.net. DNSKEY"
    );
    let nested_end = at("        end");
    let closing =
        at("        Note over taproot: glueless NS address ns1.example.net. A → 192.0.2.53");
    assert!(glueless < nested && nested < nested_end && nested_end < closing);
    assert_eq!(lines[closing + 1], "    end");
    assert_eq!(diagram.matches("rect rgb(").count(), 3, "{diagram}");
}

#[test]
fn mermaid_ends_with_what_the_client_was_told() {
    let diagram = mermaid(&walk_report());
    assert!(
        diagram.ends_with("    taproot-->>Client: NOERROR, 2 answers, secure\n"),
        "{diagram}"
    );
    let servfail = mermaid(&servfail_report());
    assert!(
        servfail.ends_with("    taproot-->>Client: SERVFAIL, EDE 22 (No Reachable Authority)\n"),
        "{servfail}"
    );
}

#[test]
fn mermaid_draws_a_cache_hit_without_servers() {
    let mut w = Walk::new();
    w.cache(
        "www.example.co.kr.",
        RecordType::A,
        CacheOutcome::Answer,
        None,
    );
    let report = Report {
        events: w.events,
        ..walk_report()
    };
    let diagram = mermaid(&report);
    assert_eq!(
        diagram,
        "sequenceDiagram\n    title trace of www.example.co.kr. A\n    autonumber\n    \
         participant Client\n    participant taproot\n    \
         Client->>taproot: www.example.co.kr. A\n    \
         Note over taproot: cache hit www.example.co.kr. A\n    \
         taproot-->>Client: NOERROR, 2 answers, secure\n"
    );
}

#[test]
fn the_syntax_check_rejects_what_mermaid_would_not_parse() {
    let ok = "sequenceDiagram\n    participant Client\n    participant taproot\n    Client->>taproot: a. A\n";
    assert_eq!(mermaid_syntax(ok), Ok(()));
    for bad in [
        "graph TD\n",
        "sequenceDiagram\n    participant Client\n    Client->>S9: a. A\n",
        "sequenceDiagram\n    participant Client\n    participant taproot\n    Client->>taproot: a; b\n",
        "sequenceDiagram\n    participant Client\n    participant taproot\n    Client->>taproot: #1\n",
        "sequenceDiagram\n    participant Client\n    participant taproot\n    Client=>taproot: a\n",
        "sequenceDiagram\n    participant taproot\n    rect rgb(1, 2, 3)\n    Note over taproot: x\n",
        "sequenceDiagram\n    participant taproot\n    end\n",
        "sequenceDiagram\n    participant S 1 as x\n",
        "sequenceDiagram\n    participant taproot\n    Note over taproot: <b>x</b>\n",
    ] {
        assert!(mermaid_syntax(bad).is_err(), "accepted:\n{bad}");
    }
}

// ---------------------------------------------------------------------------
// SVG

fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    doc
}

fn number(node: roxmltree::Node<'_, '_>, attr: &str) -> f64 {
    node.attribute(attr)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("<{}> has no numeric {attr}", node.tag_name().name()))
}

#[test]
fn svg_parses_as_xml_with_a_sized_svg_root() {
    for report in [walk_report(), servfail_report(), hostile_report()] {
        let svg = report.render(Format::Svg);
        let doc = parse_svg(&svg);
        let root = doc.root_element();
        let (w, h) = (number(root, "width"), number(root, "height"));
        assert!(w > 200.0 && h > 200.0, "{w}x{h}");
        assert_eq!(
            root.attribute("viewBox"),
            Some(format!("0 0 {w} {h}").as_str())
        );
        // Everything drawn lies inside the viewBox.
        for node in doc.descendants().filter(|n| n.is_element()) {
            for (attr, limit) in [
                ("x", w),
                ("x1", w),
                ("x2", w),
                ("y", h),
                ("y1", h),
                ("y2", h),
            ] {
                if let Some(v) = node.attribute(attr).and_then(|v| v.parse::<f64>().ok()) {
                    assert!((0.0..=limit).contains(&v), "{attr}={v} outside {w}x{h}");
                }
            }
        }
    }
}

#[test]
fn svg_draws_one_line_per_arrow_dashed_for_replies_and_crossed_for_timeouts() {
    let report = walk_report();
    let diagram = mermaid(&report);
    let expected = arrows(&diagram);
    let svg = report.render(Format::Svg);
    let doc = parse_svg(&svg);
    let lines: Vec<_> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name("line") && n.attribute("class").is_some_and(|c| c.starts_with("msg"))
        })
        .collect();
    assert_eq!(lines.len(), expected.len());
    for (line, (_, arrow, _, _)) in lines.iter().zip(&expected) {
        let class = line.attribute("class").unwrap_or_default();
        let want = match arrow.as_str() {
            "->>" => "msg query",
            "-->>" => "msg reply",
            _ => "msg lost",
        };
        assert_eq!(class, want);
        assert_eq!(
            number(*line, "y1"),
            number(*line, "y2"),
            "arrows are horizontal"
        );
        let marker = if want == "msg lost" {
            "url(#tr-cross)"
        } else {
            "url(#tr-head)"
        };
        assert_eq!(line.attribute("marker-end"), Some(marker));
    }
    // In time order, top to bottom.
    let ys: Vec<f64> = lines.iter().map(|l| number(*l, "y1")).collect();
    assert!(ys.windows(2).all(|w| w[0] < w[1]), "{ys:?}");
    // Every message's text is drawn, in order.
    let labels: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text") && n.attribute("class") == Some("label"))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect();
    let texts: Vec<String> = expected.iter().map(|a| a.3.clone()).collect();
    assert_eq!(labels, texts);
}

#[test]
fn svg_draws_participants_notes_and_shaded_blocks() {
    let svg = walk_report().render(Format::Svg);
    let doc = parse_svg(&svg);
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    for label in [
        "Client",
        "taproot",
        "a.root-servers.net 198.41.0.4",
        "ns.co.kr 2001:db8:c0::53",
        "cache miss www.example.co.kr. A",
        "glueless NS address ns1.example.net. A → 192.0.2.53",
    ] {
        assert!(texts.contains(&label), "no text {label:?}");
    }
    let class_count = |class: &str| {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(class))
            .count()
    };
    assert_eq!(class_count("lifeline"), 7);
    assert_eq!(
        class_count("box"),
        14,
        "a box at the top and the bottom of each lifeline"
    );
    assert_eq!(class_count("block"), 3);
    // The nested block lies inside the one around it.
    let blocks: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("block"))
        .map(|n| {
            (
                number(n, "x"),
                number(n, "y"),
                number(n, "width"),
                number(n, "height"),
            )
        })
        .collect();
    let inside = |a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)| {
        a.0 > b.0 && a.1 > b.1 && a.0 + a.2 < b.0 + b.2 && a.1 + a.3 < b.1 + b.3
    };
    assert!(
        blocks.iter().any(|a| blocks.iter().any(|b| inside(*a, *b))),
        "{blocks:?}"
    );
}

/// No script, no fetch: nothing that names another document.
fn assert_self_contained(doc: &str) {
    let lower = doc.to_ascii_lowercase();
    for banned in [
        "<script",
        "javascript:",
        "href=",
        "src=",
        "@import",
        "url(http",
        "@font-face",
        "<link",
        "<iframe",
        "<object",
        "<image",
    ] {
        assert!(!lower.contains(banned), "{banned:?} in\n{doc}");
    }
    let urls = lower.matches("http://").count() + lower.matches("https://").count();
    let namespace = lower
        .matches("xmlns=\"http://www.w3.org/2000/svg\"")
        .count();
    assert_eq!(
        urls, namespace,
        "a URL other than the SVG namespace in\n{doc}"
    );
}

#[test]
fn svg_fetches_nothing_and_runs_no_script() {
    for report in [walk_report(), servfail_report(), hostile_report()] {
        assert_self_contained(&report.render(Format::Svg));
    }
}

// ---------------------------------------------------------------------------
// Escaping

#[test]
fn strings_that_would_break_mermaid_svg_or_html_are_escaped() {
    let report = hostile_report();
    let diagram = mermaid(&report);
    assert!(
        diagram.contains("a#59;b #35;c #37;#37;d #lt;e#gt; #amp; \"f\" 'g' h i"),
        "{diagram}"
    );
    let svg = report.render(Format::Svg);
    let doc = parse_svg(&svg);
    let hostile_one_line = HOSTILE.replace('\n', " ").replace('\u{1}', "\u{FFFD}");
    assert!(
        doc.descendants()
            .filter_map(|n| n.text())
            .any(|t| t.contains(&hostile_one_line)),
        "the text does not come back intact from the XML:\n{svg}"
    );
    let html = report.render(Format::Html);
    assert!(!html.contains("<e>"), "{html}");
    assert!(
        html.contains("a;b #c %%d &lt;e&gt; &amp; &quot;f&quot; &#39;g&#39;"),
        "{html}"
    );
    assert_self_contained(&html);
    let text = report.render(Format::Text);
    assert!(text.contains("bogus (x.example. A): a;b"), "{text}");
}

// ---------------------------------------------------------------------------
// HTML

#[test]
fn html_is_a_standalone_page_with_the_answer_the_diagram_and_an_event_table() {
    let report = walk_report();
    let html = report.render(Format::Html);
    assert!(
        html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
        "{html}"
    );
    assert!(html.trim_end().ends_with("</html>"));
    assert!(html.contains("<title>taproot trace of www.example.co.kr. A</title>"));
    assert!(html.contains("<tr><th>answer</th><td>NOERROR</td></tr>"));
    assert!(html.contains("<tr><th>security</th><td>secure</td></tr>"));
    assert!(html.contains("<tr><th>asked</th><td>2024-07-25 10:00:00 UTC</td></tr>"));
    assert!(html.contains("web.example.co.kr. 300 IN A 192.0.2.80\n"));
    assert_eq!(html.matches("<svg ").count(), 1);
    assert!(
        html.contains(&report.render(Format::Svg)),
        "the SVG is inlined as it is"
    );
    assert_eq!(
        html.matches("<tr class=\"depth-").count(),
        report.events.len(),
        "one table row per event"
    );
    assert!(html.contains(
        "<td class=\"event\">exchange</td><td>b.dns.kr 203.0.113.11</td><td>kr.</td><td>co.kr.</td><td>A</td><td></td><td class=\"num\"></td><td>timeout after 400 ms, udp, attempt 1</td>"
    ), "{html}");
    assert!(
        html.contains("<tr class=\"depth-2\"><td class=\"num\">"),
        "{html}"
    );
    assert_self_contained(&html);

    let servfail = servfail_report().render(Format::Html);
    assert!(servfail.contains("<tr><th>answer</th><td>SERVFAIL</td></tr>"));
    assert!(
        servfail
            .contains("<tr><th>extended error</th><td>EDE 22 (No Reachable Authority)</td></tr>")
    );
    assert!(servfail.contains("No records in the answer section."));
}

#[test]
fn html_renders_in_headless_chromium_to_a_picture_that_is_not_blank() {
    let shot = browser::Screenshot::of_html(&walk_report().render(Format::Html));
    shot.assert_not_blank();
    // The inlined SVG was drawn: its yellow notes are in the picture.
    assert!(
        shot.count_near([0xff, 0xf5, 0xad]) > 500,
        "no note's yellow in {}",
        shot.png.display()
    );
    shot.clean_up();
}
