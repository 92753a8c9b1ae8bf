//! Bookkeeping of the replies the agent left in `data/guest`.
//!
//! Nobody on the host ever deletes a reply, and C xenstored counts every
//! child name against a domain node's 2048-byte quota, so after about fifty
//! replies a guest could no longer answer at all. The agent therefore removes
//! its own replies once the host cannot be waiting for them any more: routinely
//! after ten minutes (far beyond any host timeout), and, when a write hits a
//! quota, any reply older than a few seconds (the host polls every 0.5 s).
//! Routine removal happens in small batches while idle, never on the path of
//! a request.
//!
//! Also here: cutting a reply to the size the store accepts ([`fit`]).
//! Pure bookkeeping; the communicator does the removing and the writing.

use crate::protocol::Reply;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Replies older than this are removed routinely.
pub const RETENTION: Duration = Duration::from_secs(600);
/// Under quota pressure, replies older than this may go.
pub const PRESSURE_MIN_AGE: Duration = Duration::from_secs(5);
/// Routine removals per idle step.
pub const PRUNE_BATCH: usize = 16;
/// Removals per attempt to make room under quota pressure.
pub const PRESSURE_BATCH: usize = 64;

/// Largest reply written until the store says it takes less: C xenstored's
/// node quota for a guest (2048 bytes, value and bookkeeping).
pub const DEFAULT_REPLY_CAP: usize = 2048;
/// A reply is never cut below this size; a store that refuses even that is full.
pub const REPLY_FLOOR: usize = 256;
/// Appended to a message that was cut.
pub const CUT_MARKER: &str = "... [reply cut to fit XenStore]";

/// The JSON of `reply`, with the message cut (at a character boundary, with
/// [`CUT_MARKER`]) so that the whole is at most `max` bytes when possible.
/// Always a JSON object of two strings.
pub fn fit(reply: &Reply, max: usize) -> Vec<u8> {
    let json = reply.to_json();
    if json.len() <= max {
        return json;
    }
    let base = Reply::new(&reply.returncode, CUT_MARKER).to_json().len();
    let mut budget = max.saturating_sub(base);
    let mut kept = 0;
    for c in reply.message.chars() {
        let cost = escaped_len(c);
        if cost > budget {
            break;
        }
        budget -= cost;
        kept += c.len_utf8();
    }
    Reply::new(&reply.returncode, format!("{}{CUT_MARKER}", &reply.message[..kept])).to_json()
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Reply ids in the order they were written, with when.
#[derive(Debug, Default)]
pub struct Replies {
    written: VecDeque<(String, Instant)>,
}

impl Replies {
    /// Records replies found at start-up. Their age is unknown: they may go
    /// under pressure, but are kept for the routine retention.
    pub fn adopt(&mut self, ids: Vec<String>, now: Instant) {
        let when = now.checked_sub(PRESSURE_MIN_AGE).unwrap_or(now);
        for id in ids {
            self.written.push_back((id, when));
        }
    }

    /// Records a reply just written.
    pub fn record(&mut self, id: &str, now: Instant) {
        self.written.push_back((id.to_string(), now));
    }

    /// Takes the ids of at most `limit` replies older than `age`, oldest first.
    pub fn take_older_than(&mut self, age: Duration, now: Instant, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((_, when)) = self.written.front() {
            if out.len() >= limit {
                break;
            }
            if now.saturating_duration_since(*when) < age {
                break;
            }
            if let Some((id, _)) = self.written.pop_front() {
                out.push(id);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_replies_go_first_and_young_ones_stay() {
        let t0 = Instant::now();
        let mut r = Replies::default();
        r.adopt(vec!["boot-a".into(), "boot-b".into()], t0);
        r.record("new", t0);
        assert!(r.take_older_than(RETENTION, t0, 9).is_empty());
        assert_eq!(r.take_older_than(PRESSURE_MIN_AGE, t0, 1), ["boot-a"]);
        assert_eq!(r.take_older_than(PRESSURE_MIN_AGE, t0, 9), ["boot-b"]);
        assert_eq!(r.written.len(), 1);
        assert!(r
            .take_older_than(PRESSURE_MIN_AGE, t0 + Duration::from_secs(1), 9)
            .is_empty());
        assert_eq!(r.take_older_than(RETENTION, t0 + RETENTION, 9), ["new"]);
        assert!(r.written.is_empty());
    }

    fn fields(json: &[u8]) -> (String, String) {
        let v: serde_json::Value = serde_json::from_slice(json).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 2);
        (
            v["returncode"].as_str().unwrap().to_string(),
            v["message"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn a_reply_is_cut_to_the_cap_and_stays_a_json_object_of_strings() {
        let short = Reply::ok("1.0");
        assert_eq!(fit(&short, DEFAULT_REPLY_CAP), short.to_json());
        for message in [
            "a".repeat(3000),
            "\u{1}\"\\".repeat(1000),
            "é€😀".repeat(700),
            format!("x{}", "\n".repeat(2999)),
        ] {
            let reply = Reply::new("404", message.clone());
            for cap in [DEFAULT_REPLY_CAP, 1000, REPLY_FLOOR] {
                let json = fit(&reply, cap);
                assert!(json.len() <= cap, "{} > {cap}", json.len());
                assert!(json.len() + 6 > cap, "cut more than needed: {}", json.len());
                let (code, text) = fields(&json);
                assert_eq!(code, "404");
                let kept = text.strip_suffix(CUT_MARKER).expect("marked as cut");
                assert!(message.starts_with(kept));
            }
        }
    }
}
