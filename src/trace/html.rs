//! The HTML rendering of a trace: one standalone page with the question and
//! the answer at the top, the sequence diagram ([`super::svg`]) inlined,
//! and a table of every event with its main fields. No script, no
//! stylesheet or font from elsewhere: the page can be saved, mailed and
//! opened offline. Every string is escaped.

use std::fmt::Write;

use super::svg::escape;
use super::text::{describe, ede_phrase, ms1, ms3, transport, utc};
use super::{Event, EventKind, Report, svg};

/// The trace as a standalone HTML page.
pub fn render(report: &Report) -> String {
    let q = &report.question;
    let a = &report.answer;
    let question = escape(&format!("{} {}", q.name, q.qtype));
    let mut out = String::with_capacity(8192 + 256 * report.events.len());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>taproot trace of {question}</title>\n{STYLE}</head>\n<body>\n\
         <h1>taproot trace of {question}</h1>\n<table class=\"summary\">\n"
    );
    let mut row = |key: &str, value: &str| {
        let _ = writeln!(out, "<tr><th>{key}</th><td>{}</td></tr>", escape(value));
    };
    row("answer", &a.rcode);
    if let Some(ede) = &a.ede {
        row("extended error", &ede_phrase(ede.code, &ede.text));
    }
    row("security", &a.security);
    row("elapsed", &ms3(a.elapsed_us));
    row("cache", q.cache);
    if q.unix_time > 0 {
        row("asked", &utc(q.unix_time));
    }
    out.push_str("</table>\n");
    if a.records.is_empty() {
        out.push_str("<p class=\"records\">No records in the answer section.</p>\n");
    } else {
        out.push_str("<pre class=\"records\">");
        for record in &a.records {
            let _ = writeln!(out, "{}", escape(record));
        }
        out.push_str("</pre>\n");
    }
    out.push_str("<h2>Sequence</h2>\n<figure class=\"diagram\">\n");
    out.push_str(&svg::render(report));
    out.push_str("</figure>\n<h2>Events</h2>\n");
    out.push_str(
        "<table class=\"events\">\n<thead><tr><th>time</th><th>depth</th><th>event</th>\
         <th>server</th><th>zone</th><th>qname</th><th>qtype</th><th>rcode</th><th>rtt</th>\
         <th>what happened</th></tr></thead>\n<tbody>\n",
    );
    for event in &report.events {
        event_row(&mut out, event);
    }
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

/// The main fields of one event, as table cells (unescaped).
#[derive(Default)]
struct Cells {
    server: String,
    zone: String,
    qname: String,
    qtype: String,
    rcode: String,
    rtt: String,
    detail: String,
}

fn event_row(out: &mut String, event: &Event) {
    let mut c = Cells {
        detail: describe(&event.kind),
        ..Cells::default()
    };
    let mut class = format!("depth-{}", event.depth.min(4));
    match &event.kind {
        EventKind::Cache { name, qtype, .. } => {
            c.qname = name.to_string();
            c.qtype = qtype.to_string();
        }
        EventKind::Start { zone, servers, .. } => {
            c.zone = zone.to_string();
            if !servers.is_empty() {
                let names: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
                let _ = write!(c.detail, ": {}", names.join(", "));
            }
        }
        EventKind::Exchange(ex) => {
            c.server = ex.server_label();
            c.zone = ex.zone.to_string();
            c.qname = ex.qname.to_string();
            c.qtype = ex.qtype.to_string();
            c.rcode = ex.rcode.as_deref().unwrap_or_default().to_string();
            c.detail = format!("{}{}", ex.reply_phrase(), ex.flags_phrase());
            let _ = write!(c.detail, ", {}", transport(ex.transport));
            if ex.minimised {
                c.detail.push_str(", minimised");
            }
            if ex.no_reply() {
                class.push_str(" lost");
            } else {
                c.rtt = ms1(ex.rtt_us);
                let _ = write!(c.detail, ", {} bytes", ex.size);
            }
            let _ = write!(c.detail, ", attempt {}", ex.attempt);
        }
        EventKind::Referral { zone, ns, glue, .. } => {
            c.zone = zone.to_string();
            let list = |names: &[hickory_proto::rr::Name]| {
                names
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = write!(c.detail, " (NS {}", list(ns));
            if !glue.is_empty() {
                let _ = write!(c.detail, "; glue for {}", list(glue));
            }
            c.detail.push(')');
        }
        EventKind::ParentSide { zone, .. } | EventKind::Minimisation { zone, .. } => {
            c.zone = zone.to_string();
        }
        EventKind::SubBegin { name, qtype, .. } | EventKind::SubEnd { name, qtype, .. } => {
            c.qname = name.to_string();
            c.qtype = qtype.to_string();
        }
        EventKind::Restart { from, .. } => c.qname = from.to_string(),
        EventKind::Validation {
            zone,
            name,
            qtype,
            verdict,
            ..
        } => {
            c.zone = zone.to_string();
            c.qname = name.to_string();
            c.qtype = qtype.to_string();
            if *verdict == super::Verdict::Bogus {
                class.push_str(" bogus");
            }
        }
        EventKind::Answer { rcode, .. } => c.rcode = rcode.clone(),
    }
    let _ = writeln!(
        out,
        "<tr class=\"{class}\"><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td class=\"event\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
        escape(&ms3(event.at_us)),
        event.depth,
        event_name(&event.kind),
        escape(&c.server),
        escape(&c.zone),
        escape(&c.qname),
        escape(&c.qtype),
        escape(&c.rcode),
        escape(&c.rtt),
        escape(&c.detail),
    );
}

/// The variant's name as the JSON form's `event` field spells it.
fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Cache { .. } => "cache",
        EventKind::Start { .. } => "start",
        EventKind::Exchange(_) => "exchange",
        EventKind::Referral { .. } => "referral",
        EventKind::ParentSide { .. } => "parent_side",
        EventKind::Minimisation { .. } => "minimisation",
        EventKind::SubBegin { .. } => "sub_begin",
        EventKind::SubEnd { .. } => "sub_end",
        EventKind::Restart { .. } => "restart",
        EventKind::Validation { .. } => "validation",
        EventKind::Answer { .. } => "answer",
    }
}

/// The page's look, inline: system fonts only, nothing fetched.
const STYLE: &str = "<style>
body { font-family: system-ui, -apple-system, \"Segoe UI\", Roboto, \"DejaVu Sans\", sans-serif; margin: 1.5em; color: #222222; background: #ffffff; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; }
.summary th { text-align: left; padding: 0.15em 1em 0.15em 0; font-weight: 600; }
.summary td, pre, .events { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, \"DejaVu Sans Mono\", monospace; }
pre.records { background: #f4f4f4; padding: 0.6em; overflow-x: auto; }
figure.diagram { margin: 0; overflow-x: auto; }
.events { font-size: 12px; }
.events th, .events td { border: 1px solid #dddddd; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
.events th { background: #eeeeee; }
.events td.num { text-align: right; white-space: nowrap; }
.events tr.depth-1 td.event { padding-left: 1.5em; }
.events tr.depth-2 td.event { padding-left: 3em; }
.events tr.depth-3 td.event, .events tr.depth-4 td.event { padding-left: 4.5em; }
.events tr.depth-1, .events tr.depth-2, .events tr.depth-3, .events tr.depth-4 { background: #fff9e6; }
.events tr.lost td, .events tr.bogus td { color: #b03020; }
</style>
";
