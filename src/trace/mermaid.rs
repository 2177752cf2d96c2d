//! The Mermaid rendering of a trace: a `sequenceDiagram` in the seed note's
//! shape (client → taproot → root → TLD → second level → zone → client),
//! valid unchanged in GitHub Markdown and on mermaid.live.
//!
//! ```text
//! sequenceDiagram
//!     title trace of www.example.co.kr. A
//!     autonumber
//!     participant Client
//!     participant taproot
//!     participant S1 as a.root-servers.net 198.41.0.4
//!     Client->>taproot: www.example.co.kr. A
//!     Note over taproot: cache miss www.example.co.kr. A
//!     taproot->>S1: kr. A
//!     S1-->>taproot: NOERROR referral to kr. (0.8 ms)
//!     rect rgb(255, 244, 214)
//!         Note over taproot: glueless NS address ns1.example.net. A
//!         …
//!     end
//!     taproot-->>Client: NOERROR, 1 answer
//! ```
//!
//! The diagram is read from the events once, into a [`Sequence`]; the SVG
//! form ([`super::svg`]) draws the same `Sequence`, so the two cannot
//! disagree about who was asked what, in which order.
//!
//! Mermaid's lexer ends a message at `;` or `#` and reads `%%` as a
//! comment, so those (and `<`, `>`, `&`) are written as the entity codes
//! Mermaid decodes (`#59;`, `#35;`, …). A `:` needs nothing: a message's
//! text runs from the first `:` after the arrow to the end of the line, and
//! an alias from `as` to the end of the line, so an IPv6 address stays
//! readable (`2001:db8::53`).

use std::fmt::Write;
use std::net::IpAddr;

use super::text::{answer_phrase, describe, server_label};
use super::{EventKind, Report, SubReason};

/// The index of the client among a [`Sequence`]'s participants.
pub(super) const CLIENT: usize = 0;
/// The index of taproot among a [`Sequence`]'s participants.
pub(super) const TAPROOT: usize = 1;

/// One lifeline: the client, taproot, or a server that was asked.
#[derive(Debug, Clone)]
pub(super) struct Participant {
    /// A Mermaid identifier: `Client`, `taproot`, `S1`, `S2`, …
    pub id: String,
    /// What the box says: `a.root-servers.net 198.41.0.4`.
    pub label: String,
}

/// How an arrow is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arrow {
    /// A query: solid, `->>`.
    Query,
    /// A reply: dashed, `-->>`.
    Reply,
    /// The reply that never came: dashed with a cross, `--x`.
    Lost,
}

/// One row of the diagram, top to bottom.
#[derive(Debug, Clone)]
pub(super) enum Step {
    Message {
        from: usize,
        to: usize,
        arrow: Arrow,
        text: String,
    },
    /// A note over taproot.
    Note(String),
    /// A sub-resolution opens: a shaded block, `depth` 1 for the outermost,
    /// that starts with a note saying what is looked up.
    Begin {
        reason: SubReason,
        depth: usize,
        note: String,
    },
    /// The innermost open block closes, after a note with what it came to
    /// (none when the trace ended inside it).
    End { note: Option<String> },
}

/// The sequence diagram of one trace, before it is drawn.
#[derive(Debug, Clone)]
pub(super) struct Sequence {
    pub title: String,
    pub participants: Vec<Participant>,
    pub steps: Vec<Step>,
}

impl Sequence {
    /// Reads the diagram from a report: servers become participants in the
    /// order first asked, each exchange a query and a reply arrow, cache
    /// lookups, restarts and verdicts notes, sub-resolutions nested blocks.
    pub fn of(report: &Report) -> Sequence {
        let mut participants = vec![
            Participant {
                id: "Client".to_string(),
                label: "Client".to_string(),
            },
            Participant {
                id: "taproot".to_string(),
                label: "taproot".to_string(),
            },
        ];
        // Servers by address; a name learnt later fills in a bare address.
        let mut servers: Vec<(IpAddr, bool)> = Vec::new();
        for event in &report.events {
            let EventKind::Exchange(ex) = &event.kind else {
                continue;
            };
            match servers.iter().position(|(addr, _)| *addr == ex.server) {
                Some(i) => {
                    if !servers[i].1 && ex.server_name.is_some() {
                        servers[i].1 = true;
                        participants[i + 2].label = ex.server_label();
                    }
                }
                None => {
                    servers.push((ex.server, ex.server_name.is_some()));
                    participants.push(Participant {
                        id: format!("S{}", servers.len()),
                        label: server_label(ex.server_name.as_ref(), ex.server),
                    });
                }
            }
        }
        let participant = |addr: IpAddr| {
            servers
                .iter()
                .position(|(a, _)| *a == addr)
                .map_or(TAPROOT, |i| i + 2)
        };

        let q = &report.question;
        let mut steps = vec![Step::Message {
            from: CLIENT,
            to: TAPROOT,
            arrow: Arrow::Query,
            text: format!("{} {}", q.name, q.qtype),
        }];
        let mut open = 0usize;
        for event in &report.events {
            match &event.kind {
                EventKind::Exchange(ex) => {
                    let server = participant(ex.server);
                    steps.push(Step::Message {
                        from: TAPROOT,
                        to: server,
                        arrow: Arrow::Query,
                        text: ex.query_phrase(),
                    });
                    steps.push(Step::Message {
                        from: server,
                        to: TAPROOT,
                        arrow: if ex.no_reply() {
                            Arrow::Lost
                        } else {
                            Arrow::Reply
                        },
                        text: ex.reply_label(),
                    });
                }
                EventKind::SubBegin { reason, .. } => {
                    open += 1;
                    steps.push(Step::Begin {
                        reason: *reason,
                        depth: open,
                        note: describe(&event.kind),
                    });
                }
                EventKind::SubEnd { .. } if open > 0 => {
                    open -= 1;
                    steps.push(Step::End {
                        note: Some(describe(&event.kind)),
                    });
                }
                // The exchange's reply already says "referral to kr.", and
                // the closing arrow says what the client was told.
                EventKind::Referral { .. } | EventKind::Answer { .. } => {}
                kind => steps.push(Step::Note(describe(kind))),
            }
        }
        for _ in 0..open {
            steps.push(Step::End { note: None });
        }
        steps.push(Step::Message {
            from: TAPROOT,
            to: CLIENT,
            arrow: Arrow::Reply,
            text: answer_phrase(&report.answer),
        });
        Sequence {
            title: format!("trace of {} {}", q.name, q.qtype),
            participants,
            steps,
        }
    }
}

/// The shade of a sub-resolution's block: amber for a glueless NS address,
/// blue for the validator's fetches, green for a CNAME or DNAME target,
/// a step darker for each level inside.
pub(super) fn block_colour(reason: SubReason, depth: usize) -> (u8, u8, u8) {
    let (r, g, b) = match reason {
        SubReason::Glueless => (255u8, 244u8, 214u8),
        SubReason::Ds | SubReason::Dnskey => (226, 238, 255),
        SubReason::Cname | SubReason::Dname => (228, 246, 228),
    };
    let darker = u8::try_from(depth.saturating_sub(1).saturating_mul(16)).unwrap_or(u8::MAX);
    (
        r.saturating_sub(darker),
        g.saturating_sub(darker),
        b.saturating_sub(darker),
    )
}

/// The trace as a Mermaid `sequenceDiagram`.
pub fn render(report: &Report) -> String {
    let seq = Sequence::of(report);
    let mut out = String::with_capacity(64 * (seq.steps.len() + seq.participants.len() + 4));
    out.push_str("sequenceDiagram\n");
    let _ = writeln!(out, "    title {}", escape(&seq.title));
    out.push_str("    autonumber\n");
    for p in &seq.participants {
        if p.id == p.label {
            let _ = writeln!(out, "    participant {}", p.id);
        } else {
            let _ = writeln!(out, "    participant {} as {}", p.id, escape(&p.label));
        }
    }
    let id = |i: usize| seq.participants.get(i).map_or("taproot", |p| p.id.as_str());
    let mut indent = 1usize;
    for step in &seq.steps {
        let pad = "    ".repeat(indent);
        match step {
            Step::Message {
                from,
                to,
                arrow,
                text,
            } => {
                let arrow = match arrow {
                    Arrow::Query => "->>",
                    Arrow::Reply => "-->>",
                    Arrow::Lost => "--x",
                };
                let _ = writeln!(
                    out,
                    "{pad}{}{arrow}{}: {}",
                    id(*from),
                    id(*to),
                    escape(text)
                );
            }
            Step::Note(text) => {
                let _ = writeln!(out, "{pad}Note over taproot: {}", escape(text));
            }
            Step::Begin {
                reason,
                depth,
                note,
            } => {
                let (r, g, b) = block_colour(*reason, *depth);
                let _ = writeln!(out, "{pad}rect rgb({r}, {g}, {b})");
                let _ = writeln!(out, "{pad}    Note over taproot: {}", escape(note));
                indent += 1;
            }
            Step::End { note } => {
                if let Some(note) = note {
                    let _ = writeln!(out, "{pad}Note over taproot: {}", escape(note));
                }
                indent = indent.saturating_sub(1).max(1);
                let _ = writeln!(out, "{}end", "    ".repeat(indent));
            }
        }
    }
    out
}

/// Text made safe for a Mermaid message, note, title or alias: one line,
/// with what Mermaid's lexer would cut at written as entity codes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '%' => out.push_str("#37;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_mermaid_would_cut_at_is_written_as_entity_codes() {
        assert_eq!(escape("a;b#c"), "a#59;b#35;c");
        assert_eq!(escape("50%% <x> & y"), "50#37;#37; #lt;x#gt; #amp; y");
        assert_eq!(escape("one\ntwo"), "one two");
        assert_eq!(escape("2001:db8::53"), "2001:db8::53");
    }

    #[test]
    fn nested_blocks_are_a_shade_darker() {
        assert_eq!(block_colour(SubReason::Glueless, 1), (255, 244, 214));
        assert_eq!(block_colour(SubReason::Glueless, 2), (239, 228, 198));
        assert_eq!(block_colour(SubReason::Ds, 40), (0, 0, 0));
    }
}
