//! The RPZ zone reader: bytes as an operator's zone file (read at start and
//! on SIGHUP) and as a transferred zone's records (from the network, via
//! `Rules::from_records`). Whatever the bytes: a table or an error naming a
//! line, never a panic; and every name the file itself mentions can be
//! looked up in the table it built without a panic.
//!
//! `cargo fuzz run policy_zone -- -max_total_time=600`
#![no_main]

use hickory_proto::op::Message;
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use taproot::policy::rpz::{Rules, lower_wire};
use taproot::policy::zonefile::{label_starts, name_to_wire};

fn look_up_everything(rules: &Rules, text: &str, origin: &[u8]) {
    let mut starts = [0u8; 128];
    let mut wire = Vec::new();
    for token in text.split_whitespace().take(64) {
        wire.clear();
        if name_to_wire(token, origin, &mut wire).is_err() {
            continue;
        }
        let lower = wire.to_ascii_lowercase();
        if let Some(labels) = label_starts(&lower, &mut starts)
            && let Some(hit) = rules.lookup(&lower, &starts, labels)
        {
            let _ = hit;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let origin_name = Name::from_ascii("block.rpz.").expect("a literal name");
    let origin = lower_wire(&origin_name);
    if let Ok(text) = std::str::from_utf8(data) {
        match Rules::from_text(text, &origin) {
            Ok(rules) => {
                let _ = rules.heap_bytes();
                look_up_everything(&rules, text, &origin);
            }
            Err((line, _)) => assert!(line >= 1, "an error names a line"),
        }
    }
    if let Ok(msg) = Message::from_vec(data)
        && let Ok(rules) = Rules::from_records(&origin_name, &msg.answers)
    {
        let _ = rules.len();
    }
});
