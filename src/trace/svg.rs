//! The SVG rendering of a trace: taproot draws the Mermaid form's sequence
//! diagram itself ([`super::mermaid::Sequence`]), so an operator gets a
//! picture from `GET /trace/…?format=svg` with no Mermaid, no JavaScript
//! and nothing fetched from the network.
//!
//! ```text
//!  [Client]      [taproot]      [a.root-servers.net 198.41.0.4]   boxes at the top and bottom
//!     |              |                      |                     a lifeline each
//!     (1)----------->|                      |                     solid: a query (numbered,
//!     |              (2)------------------->|                       as Mermaid's autonumber)
//!     |              |<- - - - - - - - - - (3)                    dashed: a reply
//!     |              x- - - - - - - - - - (4)                     crossed: a timeout
//!     |         [ note over taproot ]       |                     yellow: cache, restarts, DNSSEC
//!     |     ░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░                 shaded: a sub-resolution
//! ```
//!
//! Lifelines are laid out left to right in the order the servers were first
//! asked, each gap wide enough for the longest label of an arrow across
//! it; rows go down in time order. Text is set in the reader's monospace
//! font, so a label's width is its length in characters times a fixed
//! advance. Every string is XML-escaped.

use std::fmt::Write;

use super::Report;
use super::mermaid::{Arrow, Sequence, Step, TAPROOT, block_colour};

/// Space around the drawing.
const MARGIN: i64 = 20;
/// The height of a participant's box.
const BOX_H: i64 = 34;
/// Where the participants' boxes start (below the title).
const BOX_Y: i64 = 40;
/// The horizontal gap between two boxes.
const BOX_GAP: i64 = 24;
/// A message row's height.
const MESSAGE_H: i64 = 34;
/// A note's height, and the space above it.
const NOTE_H: i64 = 22;
const NOTE_GAP: i64 = 8;
/// How far a sub-resolution's block reaches beyond what it holds.
const BLOCK_PAD: i64 = 10;
/// Room beside an arrow's label (the number's circle, the arrowhead).
const ARROW_ROOM: i64 = 48;

/// The width of `text` at 12 px in a monospace font (an advance of about
/// 0.6 em, 7.3 px), rounded up.
fn text_width(text: &str) -> i64 {
    let chars = i64::try_from(text.chars().count()).unwrap_or(i64::MAX / 100);
    (chars * 73 + 9) / 10
}

fn box_width(label: &str) -> i64 {
    (text_width(label) + 24).max(80)
}

fn note_width(text: &str) -> i64 {
    text_width(text) + 20
}

/// The trace as a standalone SVG document.
pub fn render(report: &Report) -> String {
    draw(&Sequence::of(report))
}

/// Where each lifeline goes: every box clear of its neighbours, every
/// arrow's label fitting between its ends, every note over taproot (and
/// the blocks around it) clear of the left edge.
fn columns(seq: &Sequence) -> Vec<i64> {
    let n = seq.participants.len();
    let widths: Vec<i64> = seq
        .participants
        .iter()
        .map(|p| box_width(&p.label))
        .collect();
    // What taproot's column needs on its left for notes inside blocks.
    let mut taproot_min = 0;
    let mut depth = 0i64;
    let note_needs = |text: &str, depth: i64| MARGIN + note_width(text) / 2 + depth * BLOCK_PAD;
    for step in &seq.steps {
        match step {
            Step::Note(text) => taproot_min = taproot_min.max(note_needs(text, depth)),
            Step::Begin { note, .. } => {
                depth += 1;
                taproot_min = taproot_min.max(note_needs(note, depth));
            }
            Step::End { note } => {
                if let Some(note) = note {
                    taproot_min = taproot_min.max(note_needs(note, depth));
                }
                depth = (depth - 1).max(0);
            }
            Step::Message { .. } => {}
        }
    }
    let mut x = vec![0i64; n];
    for j in 0..n {
        let mut xj = if j == 0 {
            MARGIN + widths[0] / 2
        } else {
            x[j - 1] + (widths[j - 1] + widths[j]) / 2 + BOX_GAP
        };
        if j == TAPROOT {
            xj = xj.max(taproot_min);
        }
        for step in &seq.steps {
            if let Step::Message { from, to, text, .. } = step {
                let (lo, hi) = if from < to {
                    (*from, *to)
                } else {
                    (*to, *from)
                };
                if hi == j && lo < j {
                    xj = xj.max(x[lo] + text_width(text) + ARROW_ROOM);
                }
            }
        }
        x[j] = xj;
    }
    x
}

/// A block being laid out: where it starts and how far its content reaches.
struct OpenBlock {
    top: i64,
    left: i64,
    right: i64,
    colour: (u8, u8, u8),
    depth: usize,
}

/// Lays out and draws the diagram.
fn draw(seq: &Sequence) -> String {
    let x = columns(seq);
    let at = |i: usize| x.get(i).copied().unwrap_or(MARGIN);
    let taproot = at(TAPROOT);

    let mut blocks: Vec<(usize, String)> = Vec::new();
    let mut front = String::new();
    let mut open: Vec<OpenBlock> = Vec::new();
    let mut right_edge = x
        .iter()
        .zip(&seq.participants)
        .map(|(x, p)| x + box_width(&p.label) / 2)
        .max()
        .unwrap_or(MARGIN);
    let mut y = BOX_Y + BOX_H + 10;
    let mut number = 0u32;

    let widen = |open: &mut Vec<OpenBlock>, left: i64, right: i64| {
        if let Some(block) = open.last_mut() {
            block.left = block.left.min(left);
            block.right = block.right.max(right);
        }
    };
    let note = |front: &mut String, y: &mut i64, text: &str| -> (i64, i64) {
        let w = note_width(text);
        let left = taproot - w / 2;
        *y += NOTE_GAP;
        let _ = writeln!(
            front,
            r#"<rect class="note" x="{left}" y="{y}" width="{w}" height="{NOTE_H}" rx="3"/>"#,
            y = *y
        );
        let _ = writeln!(
            front,
            r#"<text x="{taproot}" y="{}" text-anchor="middle">{}</text>"#,
            *y + 15,
            escape(text)
        );
        *y += NOTE_H;
        (left, left + w)
    };

    for step in &seq.steps {
        match step {
            Step::Message {
                from,
                to,
                arrow,
                text,
            } => {
                number += 1;
                y += MESSAGE_H;
                let (x1, x2) = (at(*from), at(*to));
                let class = match arrow {
                    Arrow::Query => "msg query",
                    Arrow::Reply => "msg reply",
                    Arrow::Lost => "msg lost",
                };
                let marker = match arrow {
                    Arrow::Lost => "tr-cross",
                    _ => "tr-head",
                };
                let _ = writeln!(
                    front,
                    r#"<line class="{class}" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" marker-end="url(#{marker})"/>"#
                );
                let _ = writeln!(
                    front,
                    r#"<circle class="num" cx="{x1}" cy="{y}" r="8"/><text class="num" x="{x1}" y="{}" text-anchor="middle">{number}</text>"#,
                    y + 3
                );
                let _ = writeln!(
                    front,
                    r#"<text class="label" x="{}" y="{}" text-anchor="middle">{}</text>"#,
                    (x1 + x2) / 2,
                    y - 7,
                    escape(text)
                );
                widen(&mut open, x1.min(x2) - 10, x1.max(x2) + 10);
            }
            Step::Note(text) => {
                let (l, r) = note(&mut front, &mut y, text);
                widen(&mut open, l, r);
            }
            Step::Begin {
                reason,
                depth,
                note: text,
            } => {
                y += NOTE_GAP;
                open.push(OpenBlock {
                    top: y,
                    left: taproot,
                    right: taproot,
                    colour: block_colour(*reason, *depth),
                    depth: *depth,
                });
                let (l, r) = note(&mut front, &mut y, text);
                widen(&mut open, l, r);
            }
            Step::End { note: text } => {
                if let Some(text) = text {
                    let (l, r) = note(&mut front, &mut y, text);
                    widen(&mut open, l, r);
                }
                y += NOTE_GAP;
                if let Some(block) = open.pop() {
                    let (left, right) = (block.left - BLOCK_PAD, block.right + BLOCK_PAD);
                    let (r, g, b) = block.colour;
                    blocks.push((
                        block.depth,
                        format!(
                            r#"<rect class="block" x="{left}" y="{}" width="{}" height="{}" fill="rgb({r},{g},{b})"/>"#,
                            block.top,
                            right - left,
                            y - block.top
                        ),
                    ));
                    right_edge = right_edge.max(right);
                    widen(&mut open, left, right);
                }
            }
        }
    }
    // Whatever a note or label reached on the right.
    for step in &seq.steps {
        let reach = match step {
            Step::Note(t) | Step::Begin { note: t, .. } | Step::End { note: Some(t) } => {
                taproot + note_width(t) / 2
            }
            Step::Message { from, to, text, .. } => {
                (at(*from) + at(*to)) / 2 + text_width(text) / 2
            }
            Step::End { note: None } => 0,
        };
        right_edge = right_edge.max(reach);
    }
    y += 20;
    let bottom_box = y;
    let width = right_edge + MARGIN;
    let height = bottom_box + BOX_H + MARGIN;

    let mut out = String::with_capacity(front.len() + 4096);
    let title = escape(&seq.title);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="taproot-trace" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{title}">"#
    );
    let _ = writeln!(out, "<title>{title}</title>");
    out.push_str(STYLE);
    let _ = writeln!(
        out,
        r##"<rect class="page" x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text class="title" x="{MARGIN}" y="24">{title}</text>"#
    );
    // Outer blocks first, so the inner ones are drawn over them.
    blocks.sort_by_key(|(depth, _)| *depth);
    for (_, block) in &blocks {
        out.push_str(block);
        out.push('\n');
    }
    for (i, p) in seq.participants.iter().enumerate() {
        let cx = at(i);
        let _ = writeln!(
            out,
            r#"<line class="lifeline" x1="{cx}" y1="{}" x2="{cx}" y2="{bottom_box}"/>"#,
            BOX_Y + BOX_H
        );
        let w = box_width(&p.label);
        for top in [BOX_Y, bottom_box] {
            let _ = writeln!(
                out,
                r#"<rect class="box" x="{}" y="{top}" width="{w}" height="{BOX_H}" rx="3"/><text x="{cx}" y="{}" text-anchor="middle">{}</text>"#,
                cx - w / 2,
                top + 21,
                escape(&p.label)
            );
        }
    }
    out.push_str(&front);
    out.push_str("</svg>\n");
    out
}

/// The drawing's look: the reader's monospace font (none is fetched),
/// solid queries, dashed replies, red crosses for timeouts, yellow notes.
const STYLE: &str = r##"<defs>
<marker id="tr-head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#333333"/></marker>
<marker id="tr-cross" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="12" markerHeight="12" markerUnits="userSpaceOnUse" orient="auto"><path d="M1,1 L9,9 M9,1 L1,9" stroke="#c0392b" stroke-width="2" fill="none"/></marker>
</defs>
<style>
.taproot-trace text { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace; font-size: 12px; fill: #222222; }
.taproot-trace text.title { font-size: 14px; font-weight: bold; }
.taproot-trace .lifeline { stroke: #aaaaaa; stroke-width: 1; }
.taproot-trace .box { fill: #eeeeee; stroke: #666666; stroke-width: 1; }
.taproot-trace .msg { stroke: #333333; stroke-width: 1.5; fill: none; }
.taproot-trace .reply { stroke-dasharray: 6 4; }
.taproot-trace .lost { stroke: #c0392b; stroke-dasharray: 6 4; }
.taproot-trace circle.num { fill: #333333; }
.taproot-trace text.num { fill: #ffffff; font-size: 9px; }
.taproot-trace .note { fill: #fff5ad; stroke: #aaaa33; stroke-width: 1; }
.taproot-trace .block { stroke: none; }
</style>
"##;

/// `text` as XML character data or an attribute value: the five markup
/// characters as entities, and the characters XML 1.0 does not allow
/// (controls, U+FFFE, U+FFFF) replaced, so the document always parses.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_characters_xml_forbids_are_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{1}b\u{FFFF}"), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn a_label_is_as_wide_as_its_characters() {
        assert_eq!(text_width(""), 0);
        assert_eq!(text_width("kr. A"), 37);
        assert_eq!(box_width("S"), 80);
    }
}
