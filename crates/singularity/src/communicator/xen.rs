//! The Xen communicator: requests are nodes `data/host/<id>` in the guest's
//! XenStore home, replies are written to `data/guest/<id>`.
//!
//! A watch on `data/host` wakes the agent; every wake-up, every reconnect and a
//! slow periodic rescan list the directory, so no request is ever missed. Only
//! direct children of `data/host` are requests. A request is read, handled
//! and answered with one write, and only then removed; an id is never handled
//! twice. A reply is cut to what the store accepts. A reply the store has no
//! room for is held, and no new request is taken until it is written: waiting
//! requests stay in `data/host` rather than being lost.

use super::journal::{recovery, Journal, Recovery, RESTARTED};
use super::replies::{
    fit, Replies, DEFAULT_REPLY_CAP, PRESSURE_BATCH, PRESSURE_MIN_AGE, PRUNE_BATCH, REPLY_FLOOR, RETENTION,
};
use super::{CommError, Communicator, Incoming, Metadata, Waker};
use crate::protocol::Reply;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xenstore::{Client, ErrorKind, Optional, Watch, WatchEvent};

/// Where the host writes requests (relative to the domain's home).
pub const REQUEST_DIR: &str = "data/host";
/// Where the agent writes replies.
pub const REPLY_DIR: &str = "data/guest";
/// How often a held reply is tried again.
const HOLD_RETRY: Duration = Duration::from_millis(250);

/// Requests over XenStore.
pub struct XenCommunicator {
    client: Client,
    watch: Watch,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    /// Ids taken whose request node may still exist: never taken again. An id
    /// leaves once its node is removed or a listing no longer shows it.
    handled: HashSet<String>,
    rescan_every: Duration,
    next_rescan: Instant,
    scan_due: bool,
    replies: Replies,
    /// Replies older than this are removed while idle.
    retention: Duration,
    /// The largest reply the store is known to take.
    reply_cap: usize,
    /// Replies the store had no room for, with their request ids, oldest first.
    held: VecDeque<(String, Reply)>,
    /// Nodes under `data/host` that are not requests, logged once each.
    ignored: HashSet<String>,
    /// Requests this agent removed whose watch event has not come yet (it
    /// needs no read). Cleared by every listing and reconnection.
    removed: HashSet<String>,
    /// Requests taken and not yet answered, on disk.
    journal: Option<Journal>,
    /// Requests of the journal to handle again, before any new one.
    recovered: VecDeque<Incoming>,
    /// Whether a failed journal write was reported (once is enough).
    journal_warned: bool,
    /// Set by wakers: the next wait ends, whatever it consumed meanwhile.
    woken: Arc<AtomicBool>,
    /// Requests answered whose removal failed (a lost connection): removed
    /// again at the next listing.
    unremoved: HashSet<String>,
    /// Requests the first listing found, which may predate this process: one
    /// whose reply exists was answered before a restart and is only removed.
    /// `None` until a listing succeeds (every request is checked meanwhile).
    inherited: Option<HashSet<String>>,
}

/// What a watch event path names below `data/host`.
#[derive(Debug, PartialEq, Eq)]
enum EventPath<'a> {
    /// A direct child `data/host/<id>`: a request.
    Request(&'a str),
    /// Something deeper (`data/host/<a>/<b>`): never a request.
    Nested(&'a str),
    /// The directory itself, or a path elsewhere.
    Other,
}

/// Classifies an event path (`data/host/<id>`, or an absolute path ending the
/// same way).
fn event_path(path: &str) -> EventPath<'_> {
    let Some((_, rest)) = path.split_once("data/host/") else {
        return EventPath::Other;
    };
    match rest.split_once('/') {
        None if !rest.is_empty() => EventPath::Request(rest),
        Some((first, _)) if !first.is_empty() => EventPath::Nested(rest),
        _ => EventPath::Other,
    }
}

/// The errors xenstored gives when a domain's quota is used up or a value is
/// too large (`ENOSPC` from C xenstored, `EQUOTA` from oxenstored, `E2BIG`),
/// and this client's own refusal of a message too large for the transport.
fn is_quota(e: &xenstore::Error) -> bool {
    matches!(e, xenstore::Error::TooBig { .. })
        || matches!(e.kind(), Some(ErrorKind::Nospc | ErrorKind::TooBig | ErrorKind::Quota))
}

/// Errors after which the same write may well work later.
fn is_transient(e: &xenstore::Error) -> bool {
    matches!(
        e,
        xenstore::Error::Disconnected | xenstore::Error::Timeout | xenstore::Error::Io(_)
    ) || matches!(e.kind(), Some(ErrorKind::Again))
}

fn comm(what: &str) -> impl Fn(xenstore::Error) -> CommError + '_ {
    move |e| CommError(format!("{what}: {e}"))
}

/// What became of a reply.
enum Sent {
    Written,
    /// The store has no room: keep it and take no new request.
    Held,
}

impl XenCommunicator {
    /// Connects (to `path`, or to the default XenStore locations) and watches
    /// the request directory. Requests already waiting are picked up at once.
    pub fn connect(path: Option<&str>, rescan_every: Duration) -> Result<XenCommunicator, CommError> {
        let client = match path {
            Some(p) => Client::connect(p),
            None => Client::open(),
        }
        .map_err(comm("cannot connect to xenstore"))?;
        let watch = client.watch(REQUEST_DIR).map_err(comm("cannot watch data/host"))?;
        match client.read_string("domid") {
            Ok(domid) => log::info!("connected to xenstore as domain {domid}"),
            Err(e) => log::debug!("cannot read own domid: {e}"),
        }
        let mut replies = Replies::default();
        match client.directory(REPLY_DIR).optional() {
            Ok(ids) => replies.adopt(ids.unwrap_or_default(), Instant::now()),
            Err(e) => log::debug!("cannot list data/guest: {e}"),
        }
        Ok(XenCommunicator {
            replies,
            client,
            watch,
            queue: VecDeque::new(),
            queued: HashSet::new(),
            handled: HashSet::new(),
            rescan_every,
            next_rescan: Instant::now() + rescan_every,
            scan_due: true,
            retention: RETENTION,
            reply_cap: DEFAULT_REPLY_CAP,
            held: VecDeque::new(),
            ignored: HashSet::new(),
            removed: HashSet::new(),
            journal: None,
            recovered: VecDeque::new(),
            journal_warned: false,
            woken: Arc::new(AtomicBool::new(false)),
            inherited: None,
            unremoved: HashSet::new(),
        })
    }

    /// Keeps the journal in `dir`, and first answers every request it holds
    /// (taken by a daemon that did not live to answer): run again when that
    /// is harmless, else answered `500` [`RESTARTED`]. Without a usable
    /// directory the agent goes on without a journal.
    pub fn with_journal(mut self, dir: &std::path::Path) -> XenCommunicator {
        let journal = match Journal::open(dir) {
            Ok(j) => j,
            Err(e) => {
                log::warn!(
                    "no request journal ({}: {e}): a request in flight at a crash would not be answered",
                    dir.display()
                );
                return self;
            }
        };
        let pending = journal.pending().unwrap_or_else(|e| {
            log::warn!("cannot read the request journal {}: {e}", dir.display());
            Vec::new()
        });
        self.journal = Some(journal);
        for (id, raw) in pending {
            if let Err(e) = self.recover(id, raw) {
                log::warn!("{e}");
            }
        }
        self
    }

    /// Answers one request found in the journal.
    fn recover(&mut self, id: String, raw: Vec<u8>) -> Result<(), CommError> {
        let request = format!("{REQUEST_DIR}/{id}");
        let exists = |c: &Client, p: &str| c.exists(p).map_err(comm("cannot recover a request"));
        if !exists(&self.client, &request)? {
            log::info!("request {id} was taken before a restart; the host no longer waits for it");
            self.forget(&id);
        } else if exists(&self.client, &format!("{REPLY_DIR}/{id}"))? {
            // Answered just before the restart: only the removal is missing.
            self.handled.insert(id.clone());
            self.remove_request(&id);
        } else {
            self.handled.insert(id.clone());
            match recovery(&raw) {
                Recovery::Rerun => {
                    log::warn!("request {id} was taken before a restart; handling it again");
                    self.recovered.push_back(Incoming { id, data: raw });
                }
                Recovery::Refuse => {
                    log::warn!("request {id} was taken before a restart; answering that it was interrupted");
                    self.answer(&id, Reply::error(RESTARTED))?;
                }
            }
        }
        Ok(())
    }

    fn forget(&mut self, id: &str) {
        if let Some(j) = &self.journal {
            if let Err(e) = j.forget(id) {
                if !std::mem::replace(&mut self.journal_warned, true) {
                    log::warn!("cannot update the request journal: {e}");
                }
            }
        }
    }

    /// Removes an answered request, then its journal entry (kept, with the id
    /// in `handled`, if the removal failed).
    fn remove_request(&mut self, id: &str) {
        match self.client.rm(&format!("{REQUEST_DIR}/{id}")).optional() {
            Ok(_) => {
                self.handled.remove(id);
                self.unremoved.remove(id);
                self.removed.insert(id.to_string());
                self.forget(id);
            }
            Err(e) => {
                log::warn!("cannot remove {REQUEST_DIR}/{id}: {e}; trying again at the next listing");
                self.unremoved.insert(id.to_string());
                self.scan_due = true;
            }
        }
    }

    /// Lists `data/host` and queues ids not yet seen.
    fn scan(&mut self) -> Result<(), CommError> {
        self.scan_due = false;
        // Whatever it names is read again at worst; it stays small.
        self.removed.clear();
        self.next_rescan = Instant::now() + self.rescan_every;
        let first = self.inherited.is_none();
        let mut ids = match self.client.directory(REQUEST_DIR).optional() {
            Ok(ids) => ids.unwrap_or_default(),
            Err(e) if is_quota(&e) => {
                // Too many requests to list at once (oxenstored through the
                // device); watch events still name each one.
                log::debug!("cannot list data/host ({e}); relying on watch events");
                return Ok(());
            }
            Err(e) => {
                self.scan_due = true;
                return Err(comm("cannot list data/host")(e));
            }
        };
        ids.sort();
        // A handled id no longer listed is gone for good.
        let listed: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.handled.retain(|id| listed.contains(id.as_str()));
        self.unremoved.retain(|id| listed.contains(id.as_str()));
        for id in self.unremoved.clone() {
            self.remove_request(&id);
        }
        for id in &ids {
            self.enqueue(id);
        }
        if first {
            self.inherited = Some(ids.into_iter().collect());
        }
        Ok(())
    }

    fn enqueue(&mut self, id: &str) {
        if !self.handled.contains(id) && !self.ignored.contains(id) && self.queued.insert(id.to_string()) {
            self.queue.push_back(id.to_string());
        }
    }

    /// Takes the request `id`: read it (a missing node means the host gave up
    /// on it). It is removed once answered.
    fn take(&mut self, id: &str) -> Result<Option<Incoming>, CommError> {
        self.queued.remove(id);
        let path = format!("{REQUEST_DIR}/{id}");
        // Until a listing has told which requests predate this process
        // (oxenstored may refuse to list a crowded data/host), any may.
        let maybe_inherited = match self.inherited.as_mut() {
            Some(ids) => ids.remove(id),
            None => true,
        };
        if maybe_inherited {
            let answered = self
                .client
                .exists(&format!("{REPLY_DIR}/{id}"))
                .map_err(comm("cannot check for a reply"))?;
            if answered {
                log::info!("request {id} was answered before a restart; removing it");
                self.handled.insert(id.to_string());
                self.remove_request(id);
                return Ok(None);
            }
        }
        let data = match self.client.read(&path).optional() {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(None),
            Err(xenstore::Error::ReplyTooBig { len, max }) => {
                // Nothing larger can come through this client: refuse it once.
                log::warn!("request {id} is {len} bytes, more than the {max} bytes a request may have; refusing it");
                self.handled.insert(id.to_string());
                let refusal = Reply::error(format!("Request is too large: {len} bytes, at most {max} are accepted"));
                self.answer(id, refusal)?;
                return Ok(None);
            }
            Err(e) => {
                // Left in place: the next scan picks it up again.
                self.scan_due = true;
                return Err(comm("cannot read request")(e));
            }
        };
        // A node with children was made by a write below it (`<id>/<more>`):
        // not a request, and not ours to remove. Such a parent has an empty
        // value, which no request has, so only an empty one is listed.
        let listing = if data.is_empty() {
            self.client.directory(&path).optional()
        } else {
            Ok(None)
        };
        match listing {
            Ok(Some(children)) if !children.is_empty() => {
                self.ignore(id, "it has child nodes");
                return Ok(None);
            }
            Ok(_) => {}
            Err(e) => {
                self.scan_due = true;
                return Err(comm("cannot list request")(e));
            }
        }
        // Only requests that cannot simply run again need the journal: any
        // other one is still in data/host after a crash (it is removed only
        // once answered) and is handled again, which changes nothing more.
        let journal = self.journal.as_ref().filter(|_| recovery(&data) == Recovery::Refuse);
        if let Some(j) = journal {
            if let Err(e) = j.record(id, &data) {
                // Served all the same: only a crash in the middle would miss it.
                if !std::mem::replace(&mut self.journal_warned, true) {
                    log::warn!("cannot record requests in the journal ({e}); going on without it");
                }
            }
        }
        self.handled.insert(id.to_string());
        Ok(Some(Incoming {
            id: id.to_string(),
            data,
        }))
    }

    /// Leaves `what` (a path below `data/host`) alone from now on, and says
    /// so once.
    fn ignore(&mut self, what: &str, why: &str) {
        if self.ignored.insert(what.to_string()) {
            log::warn!(
                "ignoring {REQUEST_DIR}/{}: {why}; only direct children of {REQUEST_DIR} are requests",
                what.escape_debug()
            );
        }
    }

    fn remove_replies(&mut self, ids: Vec<String>) {
        for id in ids {
            if let Err(e) = self.client.rm(&format!("{REPLY_DIR}/{id}")).optional() {
                log::debug!("cannot remove old reply {id}: {e}");
            }
        }
    }

    /// Removes one small batch of replies past their retention; whether
    /// there was any.
    fn prune_some(&mut self) -> bool {
        let stale = self
            .replies
            .take_older_than(self.retention, Instant::now(), PRUNE_BATCH);
        let any = !stale.is_empty();
        self.remove_replies(stale);
        any
    }

    /// Writes the reply to `id` (or holds it, see [`Sent::Held`]), then
    /// removes the request.
    fn answer(&mut self, id: &str, reply: Reply) -> Result<Sent, CommError> {
        let path = format!("{REPLY_DIR}/{id}");
        let mut cap = self.reply_cap;
        let mut json = fit(&reply, cap);
        let mut made_room = false;
        loop {
            match self.client.write(&path, &json) {
                Ok(()) => break,
                Err(e) if is_quota(&e) && !made_room => {
                    // data/guest may be full: make room with replies the host has read.
                    made_room = true;
                    let room = self
                        .replies
                        .take_older_than(PRESSURE_MIN_AGE, Instant::now(), PRESSURE_BATCH);
                    log::debug!("cannot write reply {id} ({e}); removing {} old replies", room.len());
                    self.remove_replies(room);
                }
                Err(e) if is_quota(&e) && json.len() > REPLY_FLOOR => {
                    // Perhaps too large for this store: try a shorter cut.
                    cap = (json.len() * 7 / 8).max(REPLY_FLOOR);
                    json = fit(&reply, cap);
                }
                Err(e) if is_quota(&e) || is_transient(&e) => {
                    if self.held.is_empty() {
                        log::warn!(
                            "cannot write reply {id} ({e}); holding it and taking no new request until it is written"
                        );
                    }
                    if !self.held.iter().any(|(h, _)| h == id) {
                        self.held.push_back((id.to_string(), reply));
                    }
                    return Ok(Sent::Held);
                }
                Err(e) => {
                    // Given up: the request stays in place for the host to time out.
                    self.held.retain(|(h, _)| h != id);
                    return Err(comm("cannot write reply")(e));
                }
            }
        }
        if cap < self.reply_cap {
            log::info!("replies are cut to {cap} bytes: the store refused more");
            self.reply_cap = cap;
        }
        let before = self.held.len();
        self.held.retain(|(h, _)| h != id);
        if before > 0 && self.held.is_empty() {
            log::info!("held reply {id} written; taking requests again");
        }
        self.replies.record(id, Instant::now());
        self.remove_request(id);
        Ok(Sent::Written)
    }

    /// Tries the held replies again, oldest first; whether none is held any more.
    fn flush_held(&mut self) -> Result<bool, CommError> {
        while let Some((id, reply)) = self.held.front().cloned() {
            if let Sent::Held = self.answer(&id, reply)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits for one watch event; `false` when none came (timeout or woken).
    fn wait_event(&mut self, timeout: Duration) -> Result<bool, CommError> {
        match self.watch.recv_timeout(timeout) {
            // An event names the request node itself: no listing needed (a
            // listing can also be too large for the device on oxenstored).
            Ok(Some(WatchEvent::Changed(path))) => match event_path(&path) {
                // The event of our own removal (or the creation event merged
                // with it) names a request already answered.
                EventPath::Request(id) => {
                    if !self.removed.remove(id) {
                        self.enqueue(id);
                    }
                }
                EventPath::Nested(rest) => self.ignore(rest, "not a direct child"),
                EventPath::Other => self.scan_due = true,
            },
            Ok(Some(WatchEvent::Reconnected)) => {
                log::info!("xenstore connection re-established; rescanning");
                self.removed.clear();
                if let Ok(domid) = self.client.read_string("domid") {
                    log::info!("domain id is {domid}");
                }
                self.scan_due = true;
            }
            Ok(None) => return Ok(false),
            Err(e) => return Err(comm("watch failed")(e)),
        }
        Ok(true)
    }
}

/// nova's network data, one entry per NIC.
const NETWORKING: &str = "vm-data/networking";
/// nova's hostname (a raw string), present on first boot.
const HOSTNAME: &str = "vm-data/hostname";

impl Metadata for XenCommunicator {
    fn networking(&mut self) -> Result<Vec<(String, Vec<u8>)>, CommError> {
        let listed = self.client.directory(NETWORKING).optional();
        let mut keys = listed
            .map_err(comm("cannot list vm-data/networking"))?
            .unwrap_or_default();
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.client.read(&format!("{NETWORKING}/{key}")).optional();
            if let Some(value) = value.map_err(comm("cannot read vm-data/networking"))? {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    fn hostname(&mut self) -> Result<Option<Vec<u8>>, CommError> {
        self.client
            .read(HOSTNAME)
            .optional()
            .map_err(comm("cannot read vm-data/hostname"))
    }
}

impl Communicator for XenCommunicator {
    fn metadata(&mut self) -> Option<&mut dyn Metadata> {
        Some(self)
    }

    fn recv(&mut self, timeout: Duration) -> Result<Option<Incoming>, CommError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.flush_held()? {
                // No room for the last reply: leave new requests waiting.
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                self.wait_event(HOLD_RETRY.min(deadline - now))?;
                if self.woken.swap(false, Ordering::SeqCst) {
                    return Ok(None);
                }
                continue;
            }
            if let Some(incoming) = self.recovered.pop_front() {
                return Ok(Some(incoming));
            }
            while let Some(id) = self.queue.pop_front() {
                if let Some(incoming) = self.take(&id)? {
                    return Ok(Some(incoming));
                }
                if !self.held.is_empty() {
                    break;
                }
            }
            if !self.held.is_empty() {
                continue;
            }
            if Instant::now() >= self.next_rescan {
                self.scan_due = true;
            }
            if self.scan_due {
                self.scan()?;
                if !self.queue.is_empty() {
                    continue;
                }
            }
            // Idle: old replies go a few at a time, and new requests are
            // looked for in between.
            if self.prune_some() {
                self.wait_event(Duration::ZERO)?;
                if self.woken.swap(false, Ordering::SeqCst) {
                    return Ok(None);
                }
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = deadline.min(self.next_rescan).saturating_duration_since(now);
            let event = self.wait_event(wait)?;
            if self.woken.swap(false, Ordering::SeqCst) || (!event && Instant::now() < self.next_rescan) {
                return Ok(None); // woken, or the deadline
            }
        }
    }

    fn waker(&self) -> Waker {
        let watch = self.watch.waker();
        let woken = Arc::clone(&self.woken);
        Waker::new(move || {
            woken.store(true, Ordering::SeqCst);
            watch.wake();
        })
    }

    fn reply(&mut self, id: &str, reply: &Reply) -> Result<(), CommError> {
        self.answer(id, reply.clone()).map(|_| ())
    }
}

#[cfg(test)]
#[path = "xen_tests.rs"]
mod tests;
