//! Everything the simulator guards with its one lock: the tree, the known
//! domains, and per connection its watches, transactions and queued output.
//! Connection threads take the lock to handle one request at a time and to
//! collect their output; nothing here blocks or does I/O.

use super::store::{Actor, Store};
use super::txn::Transaction;
use super::watch::Watch;
use crate::path::domain_home;
use crate::sys::EventFd;
use crate::wire::{Access, Message, MsgType, Perm};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// Most watch events queued for one connection; beyond it the oldest is dropped.
pub(crate) const EVENT_QUEUE_MAX: usize = 1024;
/// Replies queued for one connection before the simulator stops reading from it.
pub(crate) const REPLY_QUEUE_MAX: usize = 64;

/// Identifies a connection for its whole life.
pub(crate) type ConnId = u64;

/// The three kinds of client endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnKind {
    /// The xenstored Unix socket: privileged dom0.
    Dom0Socket,
    /// A stream socket standing for a domain's xenstore ring.
    GuestSocket,
    /// A packet socket emulating the domain's `/dev/xen/xenbus`.
    GuestDevice,
}

/// One queued outgoing message.
#[derive(Clone, Debug)]
pub(crate) struct Out {
    pub(crate) msg: Message,
    pub(crate) is_event: bool,
    /// The registration an event belongs to (coalescing key with the payload).
    pub(crate) watch: Option<u64>,
}

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct ConnState {
    pub(crate) kind: ConnKind,
    pub(crate) actor: Actor,
    pub(crate) home: String,
    pub(crate) watches: Vec<Watch>,
    pub(crate) txs: BTreeMap<u32, Transaction>,
    pub(crate) next_tx: u32,
    /// Bumped by `simulate_resume` (device connections).
    pub(crate) generation: u64,
    pub(crate) out: VecDeque<Out>,
    /// Replies queued or being written, not yet fully sent.
    pub(crate) outstanding: usize,
    pub(crate) wake: Arc<EventFd>,
    pub(crate) killed: bool,
    pub(crate) dropped_events: u64,
}

impl ConnState {
    pub(crate) fn new(kind: ConnKind, domid: u32, wake: Arc<EventFd>) -> ConnState {
        ConnState {
            kind,
            actor: Actor {
                domid,
                privileged: kind == ConnKind::Dom0Socket,
            },
            home: domain_home(domid),
            watches: Vec::new(),
            txs: BTreeMap::new(),
            next_tx: 1,
            generation: 0,
            out: VecDeque::new(),
            outstanding: 0,
            wake,
            killed: false,
            dropped_events: 0,
        }
    }

    /// Queues a reply.
    pub(crate) fn push_reply(&mut self, msg: Message) {
        self.outstanding += 1;
        self.out.push_back(Out {
            msg,
            is_event: false,
            watch: None,
        });
    }

    /// Queues a watch event. With `coalesce` set to the registration's id (C
    /// xenstored), an identical event of the same registration still queued
    /// makes this one redundant. Returns whether it was queued.
    pub(crate) fn push_event(&mut self, msg: Message, coalesce: Option<u64>) -> bool {
        let same = |o: &Out| o.watch == coalesce && o.msg.payload == msg.payload;
        if coalesce.is_some() && self.out.iter().any(same) {
            return false;
        }
        if self.out.iter().filter(|o| o.is_event).count() >= EVENT_QUEUE_MAX {
            if let Some(i) = self.out.iter().position(|o| o.is_event) {
                self.out.remove(i);
                self.dropped_events += 1;
                if self.dropped_events == 1 || self.dropped_events.is_power_of_two() {
                    eprintln!(
                        "xenstore sim: connection of domain {} is not reading; dropped {} watch events",
                        self.actor.domid, self.dropped_events
                    );
                }
            }
        }
        self.out.push_back(Out {
            msg,
            is_event: true,
            watch: coalesce,
        });
        true
    }

    /// Replies waiting in the queue.
    pub(crate) fn queued_replies(&self) -> usize {
        self.out.iter().filter(|o| !o.is_event).count()
    }

    /// Drops watches and transactions (RESET_WATCHES, or a closed connection).
    pub(crate) fn reset(&mut self) {
        self.watches.clear();
        self.txs.clear();
    }
}

/// Counters behind [`Stats`](super::Stats).
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: HashMap<MsgType, u64>,
    pub(crate) accepted: u64,
    pub(crate) events_queued: u64,
    pub(crate) handler_panics: u64,
}

/// The guarded state.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) conns: BTreeMap<ConnId, ConnState>,
    pub(crate) next_conn: ConnId,
    /// Domains that exist (dom0, created or introduced ones).
    pub(crate) domains: BTreeSet<u32>,
    /// Permissions of `@introduceDomain` / `@releaseDomain`.
    pub(crate) special_perms: HashMap<String, Vec<Perm>>,
    pub(crate) fail_commits: u32,
    pub(crate) counters: Counters,
    /// Source of [`Watch::id`](super::watch::Watch).
    pub(crate) next_watch: u64,
}

/// The special watch paths.
pub(crate) const SPECIAL_PATHS: [&str; 2] = ["@introduceDomain", "@releaseDomain"];

impl State {
    pub(crate) fn new() -> State {
        let special_perms = SPECIAL_PATHS
            .iter()
            .map(|p| (p.to_string(), vec![Perm::new(0, Access::None)]))
            .collect();
        State {
            store: Store::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            domains: BTreeSet::from([0]),
            special_perms,
            fail_commits: 0,
            counters: Counters::default(),
            next_watch: 1,
        }
    }

    /// Registers a connection and returns its id.
    pub(crate) fn add_conn(&mut self, conn: ConnState) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.counters.accepted += 1;
        self.conns.insert(id, conn);
        id
    }

    /// Replies not yet sent to all connections of a domain.
    pub(crate) fn domain_outstanding(&self, domid: u32) -> usize {
        self.conns
            .values()
            .filter(|c| c.actor.domid == domid && !c.actor.privileged)
            .map(|c| c.outstanding)
            .sum()
    }

    /// Open transactions of all connections of a domain.
    pub(crate) fn domain_transactions(&self, domid: u32) -> usize {
        self.conns
            .values()
            .filter(|c| c.actor.domid == domid)
            .map(|c| c.txs.len())
            .sum()
    }

    /// Watches of all connections of a domain.
    pub(crate) fn domain_watches(&self, domid: u32) -> usize {
        self.conns
            .values()
            .filter(|c| c.actor.domid == domid)
            .map(|c| c.watches.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnState {
        let wake = Arc::new(EventFd::new().expect("eventfd"));
        ConnState::new(ConnKind::Dom0Socket, 0, wake)
    }

    fn ev(path: &str) -> Message {
        Message::new(MsgType::WatchEvent, 0, 0, format!("{path}\0t\0").into_bytes())
    }

    #[test]
    fn identical_queued_events_of_one_registration_coalesce() {
        let mut c = conn();
        assert!(c.push_event(ev("/a"), Some(1)));
        assert!(!c.push_event(ev("/a"), Some(1)), "C drops the duplicate");
        assert!(c.push_event(ev("/a"), Some(2)), "another registration");
        assert!(c.push_event(ev("/b"), Some(1)));
        assert!(c.push_event(ev("/a"), None), "no coalescing (ox)");
        assert_eq!(c.out.len(), 4);
    }

    #[test]
    fn event_queue_is_capped_dropping_the_oldest() {
        let mut c = conn();
        c.push_reply(Message::new(MsgType::Read, 1, 0, Vec::new()));
        for i in 0..EVENT_QUEUE_MAX + 10 {
            c.push_event(ev(&format!("/e{i}")), None);
        }
        assert_eq!(c.out.len(), EVENT_QUEUE_MAX + 1);
        assert_eq!(c.queued_replies(), 1, "replies are never dropped");
        assert_eq!(c.dropped_events, 10);
        assert_eq!(c.out[1].msg.payload, b"/e10\0t\0");
    }
}
