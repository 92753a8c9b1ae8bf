//! The simulator's public settings ([`Config`], [`Flavor`]) and counters
//! ([`Stats`]).

use crate::wire::MsgType;
use std::collections::HashMap;

/// Which daemon's observable behaviour to reproduce where they differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// C xenstored 4.17: own-write events before the reply, identical queued
    /// events coalesced, stale transaction `ENOENT`, oversize `DIRECTORY` is
    /// `E2BIG` (use `DIRECTORY_PART`), a payload over 4096 bytes closes the
    /// connection, an unterminated path is `ENOENT`, quotas are `ENOSPC`
    /// (watches `E2BIG`).
    C,
    /// oxenstored 4.17: reply before own-write events, no coalescing, stale
    /// transaction `EIO`, oversize `DIRECTORY` replies, `DIRECTORY_PART` is
    /// `ENOSYS`, a payload over 4096 bytes is `E2BIG` (connection kept), a
    /// zero-length request on the dom0 socket waits for more bytes, quotas are
    /// `EQUOTA`, `DIRECTORY /` also lists `@introduceDomain`/`@releaseDomain`.
    /// `RM /` stays `EINVAL` (oxenstored would wipe the tree).
    Ox,
}

/// Simulator settings. [`Config::default`] is C-xenstored-like.
#[derive(Clone, Debug)]
pub struct Config {
    /// Observable behaviour differences to reproduce.
    pub flavor: Flavor,
    /// C accounting of a node written by an unprivileged domain (24-byte
    /// header + 8 per permission + value + child names with NULs); at or above
    /// it the write fails with `ENOSPC`. `usize::MAX` disables it.
    pub node_size_max: usize,
    /// Largest value anyone (dom0 included) may write, else `E2BIG`:
    /// oxenstored's `quota-maxsize`. `None` for C xenstored.
    pub value_max: Option<usize>,
    /// Nodes an unprivileged domain may own.
    pub nodes_per_domain: usize,
    /// Watches an unprivileged domain may register (over all its connections).
    pub watches_per_domain: usize,
    /// Open transactions an unprivileged domain may have.
    pub transactions_per_domain: usize,
    /// Replies an unprivileged domain may have undelivered before the
    /// simulator stops reading its requests (C `ACC_OUTST`: back-pressure, not
    /// an error).
    pub outstanding_per_domain: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            flavor: Flavor::C,
            node_size_max: 2048,
            value_max: None,
            nodes_per_domain: 1000,
            watches_per_domain: 128,
            transactions_per_domain: 10,
            outstanding_per_domain: 20,
        }
    }
}

impl Config {
    /// oxenstored 4.17 defaults: values over 2048 bytes are `E2BIG` for every
    /// domain, no C node-size accounting, 100 watches, 1024 outstanding.
    pub fn oxenstored_like() -> Config {
        Config {
            flavor: Flavor::Ox,
            node_size_max: usize::MAX,
            value_max: Some(2048),
            nodes_per_domain: 1000,
            watches_per_domain: 100,
            transactions_per_domain: 10,
            outstanding_per_domain: 1024,
        }
    }
}

/// A snapshot of the simulator's counters.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Requests handled, per message type (all connections since start).
    pub requests: HashMap<MsgType, u64>,
    /// Client connections open now.
    pub connections: usize,
    /// Client connections accepted since start.
    pub connections_accepted: u64,
    /// Watch events queued for clients since start.
    pub watch_events: u64,
    /// Requests that hit an internal error (a bug); their connection was closed.
    pub handler_panics: u64,
}

impl Stats {
    /// Requests handled of one type.
    pub fn requests_of(&self, kind: MsgType) -> u64 {
        self.requests.get(&kind).copied().unwrap_or(0)
    }

    /// Requests handled of all types.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}
