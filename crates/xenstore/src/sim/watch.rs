//! Watches: which registrations a change triggers, the event path each one
//! sees (relative watches get relative paths), who may see an event (C's
//! `watch_permitted`: read access to the node, its parent or its old
//! permissions; special `@` paths only for privileged or permitted domains),
//! and delivery into the connections' queues.

use super::state::{ConnId, State};
use super::store::{rights, Actor, Change};
use crate::path::is_at_or_below;
use crate::wire::{Message, MsgType, Perm, PAYLOAD_MAX};
use std::collections::{BTreeSet, HashMap};

/// One registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Watch {
    /// Unique per registration (the device registers duplicates separately).
    pub(crate) id: u64,
    /// The path exactly as the client sent it (the device's UNWATCH compares it).
    pub(crate) given: Vec<u8>,
    /// Absolute path, or a special `@...` name.
    pub(crate) path: String,
    /// The client's token, echoed in events.
    pub(crate) token: Vec<u8>,
    /// Registered with a relative path: events are relative to `home` too.
    pub(crate) relative: bool,
}

impl Watch {
    /// Whether `change` fires this watch.
    pub(crate) fn matches(&self, change: &Change) -> bool {
        if change.exact || change.path.starts_with('@') || self.path.starts_with('@') {
            self.path == change.path
        } else {
            is_at_or_below(&change.path, &self.path)
        }
    }

    /// The `WATCH_EVENT` payload for a change at `path`.
    pub(crate) fn event(&self, path: &str, home: &str) -> Message {
        let shown = if self.relative {
            path.strip_prefix(home)
                .map(|rest| rest.strip_prefix('/').unwrap_or(rest))
                .unwrap_or(path)
        } else {
            path
        };
        let mut payload = Vec::with_capacity(shown.len() + self.token.len() + 2);
        payload.extend_from_slice(shown.as_bytes());
        payload.push(0);
        payload.extend_from_slice(&self.token);
        payload.push(0);
        Message::new(MsgType::WatchEvent, 0, 0, payload)
    }

    /// The initial event, sent right after registration.
    pub(crate) fn initial_event(&self, home: &str) -> Message {
        self.event(&self.path, home)
    }
}

/// Whether a connection acting as `actor` may see `change`.
pub(crate) fn permitted(actor: Actor, change: &Change, special: &HashMap<String, Vec<Perm>>) -> bool {
    if actor.privileged {
        return true;
    }
    if change.path.starts_with('@') {
        return special.get(&change.path).is_some_and(|p| rights(actor, p).read);
    }
    change.perms.iter().any(|p| rights(actor, p).read)
}

/// How to deliver events.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Delivery {
    /// The connection whose request caused the changes, if any.
    pub(crate) origin: Option<ConnId>,
    /// Hold the origin's own events back until after its reply (oxenstored).
    pub(crate) defer_own: bool,
    /// Drop an event identical to one still queued (C xenstored).
    pub(crate) coalesce: bool,
    /// Fire a connection's watches newest first (oxenstored's observed order).
    pub(crate) newest_first: bool,
}

/// What delivery produced for the caller.
#[derive(Debug, Default)]
pub(crate) struct Fired {
    /// Events for the origin, to queue after its reply.
    pub(crate) deferred: Vec<Message>,
    /// Connections that got something queued and must be woken.
    pub(crate) woken: BTreeSet<ConnId>,
}

/// Queues the events for `changes` on every connection with a matching watch.
pub(crate) fn fire(st: &mut State, changes: &[Change], how: Delivery, fired: &mut Fired) {
    for change in changes {
        for (&id, conn) in st.conns.iter_mut() {
            if conn.killed || !permitted(conn.actor, change, &st.special_perms) {
                continue;
            }
            let order: Box<dyn Iterator<Item = &Watch>> = if how.newest_first {
                Box::new(conn.watches.iter().rev())
            } else {
                Box::new(conn.watches.iter())
            };
            let events: Vec<(u64, Message)> = order
                .filter(|w| w.matches(change))
                .map(|w| (w.id, w.event(&change.path, &conn.home)))
                .filter(|(_, m)| m.payload.len() <= PAYLOAD_MAX)
                .collect();
            for (watch_id, ev) in events {
                if how.defer_own && how.origin == Some(id) {
                    fired.deferred.push(ev);
                } else if conn.push_event(ev, how.coalesce.then_some(watch_id)) {
                    st.counters.events_queued += 1;
                    fired.woken.insert(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Access;

    fn watch(path: &str, relative: bool) -> Watch {
        Watch {
            id: 1,
            given: path.as_bytes().to_vec(),
            path: path.to_string(),
            token: b"tok".to_vec(),
            relative,
        }
    }

    fn change(path: &str, exact: bool) -> Change {
        Change {
            path: path.to_string(),
            exact,
            perms: vec![vec![Perm::new(0, Access::None)]],
        }
    }

    #[test]
    fn subtree_and_exact_matching() {
        let w = watch("/a/b", false);
        assert!(w.matches(&change("/a/b", false)));
        assert!(w.matches(&change("/a/b/c", false)));
        assert!(!w.matches(&change("/a", false)));
        assert!(!w.matches(&change("/a/bc", false)));
        assert!(w.matches(&change("/a/b", true)));
        assert!(!w.matches(&change("/a/b/c", true)));
        let root = watch("/", false);
        assert!(root.matches(&change("/x", false)));
        assert!(!root.matches(&change("@releaseDomain", false)));
        assert!(watch("@releaseDomain", false).matches(&change("@releaseDomain", false)));
    }

    #[test]
    fn relative_watches_get_relative_paths() {
        let w = Watch {
            path: "/local/domain/3/data".into(),
            ..watch("data", true)
        };
        let ev = w.event("/local/domain/3/data/x", "/local/domain/3");
        assert_eq!(ev.payload, b"data/x\0tok\0");
        let abs = watch("/local/domain/3/data", false);
        let ev = abs.event("/local/domain/3/data/x", "/local/domain/3");
        assert_eq!(ev.payload, b"/local/domain/3/data/x\0tok\0");
    }

    #[test]
    fn events_are_filtered_by_read_access() {
        let guest = Actor {
            domid: 5,
            privileged: false,
        };
        let special = HashMap::new();
        let hidden = change("/x", false);
        assert!(!permitted(guest, &hidden, &special));
        assert!(permitted(Actor::DOM0, &hidden, &special));
        let mut readable = change("/x", false);
        readable.perms.push(vec![Perm::new(0, Access::Read)]);
        assert!(permitted(guest, &readable, &special));
        assert!(!permitted(guest, &change("@releaseDomain", false), &special));
    }
}
