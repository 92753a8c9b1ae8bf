//! Bookkeeping of the replies the agent left in `data/guest`.
//!
//! Nobody on the host ever deletes a reply, and C xenstored counts every
//! child name against a domain node's 2048-byte quota, so after about fifty
//! replies a guest could no longer answer at all. The agent therefore removes
//! its own replies once the host cannot be waiting for them any more: routinely
//! after ten minutes (far beyond any host timeout), and, when a write hits a
//! quota, any reply older than a few seconds (the host polls every 0.5 s).
//! Pure bookkeeping; the communicator does the removing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Replies older than this are removed routinely.
pub const RETENTION: Duration = Duration::from_secs(600);
/// Under quota pressure, replies older than this may go.
pub const PRESSURE_MIN_AGE: Duration = Duration::from_secs(5);

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

    /// Takes the ids of replies older than `age`, oldest first.
    pub fn take_older_than(&mut self, age: Duration, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((_, when)) = self.written.front() {
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
        assert!(r.take_older_than(RETENTION, t0).is_empty());
        assert_eq!(r.take_older_than(PRESSURE_MIN_AGE, t0), ["boot-a", "boot-b"]);
        assert_eq!(r.written.len(), 1);
        assert!(r
            .take_older_than(PRESSURE_MIN_AGE, t0 + Duration::from_secs(1))
            .is_empty());
        assert_eq!(r.take_older_than(RETENTION, t0 + RETENTION), ["new"]);
        assert!(r.written.is_empty());
    }
}
