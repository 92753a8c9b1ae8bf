//! The Xen communicator: requests are nodes `data/host/<id>` in the guest's
//! XenStore home, replies are written to `data/guest/<id>`.
//!
//! A watch on `data/host` wakes the agent; every wake-up, every reconnect and a
//! slow periodic rescan list the directory, so no request is ever missed. A
//! request node is read, removed, handled and answered with one write; an id is
//! never handled twice.

use super::replies::{Replies, PRESSURE_MIN_AGE, RETENTION};
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
/// How many handled ids are remembered, in case a removal failed.
const REMEMBERED_IDS: usize = 1024;

/// Requests over XenStore.
pub struct XenCommunicator {
    client: Client,
    watch: Watch,
    queue: VecDeque<String>,
    handled: VecDeque<String>,
    handled_set: HashSet<String>,
    rescan_every: Duration,
    next_rescan: Instant,
    scan_due: bool,
    replies: Replies,
    /// Nodes under `data/host` that are not requests, logged once each.
    ignored: HashSet<String>,
    /// Set by wakers: the next wait ends, whatever it consumed meanwhile.
    woken: Arc<AtomicBool>,
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

/// The errors xenstored gives when a domain's quota is used up (or a reply
/// would be too large).
fn is_quota(e: &xenstore::Error) -> bool {
    matches!(e.kind(), Some(ErrorKind::Nospc | ErrorKind::TooBig | ErrorKind::Quota))
}

fn comm(what: &str) -> impl Fn(xenstore::Error) -> CommError + '_ {
    move |e| CommError(format!("{what}: {e}"))
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
            handled: VecDeque::new(),
            handled_set: HashSet::new(),
            rescan_every,
            next_rescan: Instant::now() + rescan_every,
            scan_due: true,
            ignored: HashSet::new(),
            woken: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Lists `data/host` and queues ids not yet seen.
    fn scan(&mut self) -> Result<(), CommError> {
        self.scan_due = false;
        self.next_rescan = Instant::now() + self.rescan_every;
        let mut ids = match self.client.directory(REQUEST_DIR).optional() {
            Ok(ids) => ids.unwrap_or_default(),
            Err(e) if is_quota(&e) => {
                // Too many requests to list at once (oxenstored through the
                // device); watch events still name each one.
                log::debug!("cannot list data/host ({e}); relying on watch events");
                Vec::new()
            }
            Err(e) => {
                self.scan_due = true;
                return Err(comm("cannot list data/host")(e));
            }
        };
        ids.sort();
        for id in &ids {
            self.enqueue(id);
        }
        Ok(())
    }

    fn enqueue(&mut self, id: &str) {
        if !self.handled_set.contains(id) && !self.ignored.contains(id) && !self.queue.iter().any(|q| q == id) {
            self.queue.push_back(id.to_string());
        }
    }

    fn remember(&mut self, id: &str) {
        if self.handled_set.insert(id.to_string()) {
            self.handled.push_back(id.to_string());
        }
        while self.handled.len() > REMEMBERED_IDS {
            if let Some(old) = self.handled.pop_front() {
                self.handled_set.remove(&old);
            }
        }
    }

    /// Takes the request `id`: read it, then remove it (a missing node means the
    /// host gave up on it).
    fn take(&mut self, id: &str) -> Result<Option<Incoming>, CommError> {
        let path = format!("{REQUEST_DIR}/{id}");
        let data = match self.client.read(&path).optional() {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(None),
            Err(e) => {
                // Left in place: the next scan picks it up again.
                self.scan_due = true;
                return Err(comm("cannot read request")(e));
            }
        };
        // A node with children was made by a write below it (`<id>/<more>`):
        // not a request, and not ours to remove.
        match self.client.directory(&path).optional() {
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
        if let Err(e) = self.client.rm(&path).optional() {
            log::warn!("cannot remove {path}: {e}");
        }
        self.remember(id);
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

    /// Waits for one watch event; `false` when none came (timeout or woken).
    fn wait_event(&mut self, timeout: Duration) -> Result<bool, CommError> {
        match self.watch.recv_timeout(timeout) {
            // An event names the request node itself: no listing needed (a
            // listing can also be too large for the device on oxenstored).
            Ok(Some(WatchEvent::Changed(path))) => match event_path(&path) {
                EventPath::Request(id) => self.enqueue(id),
                EventPath::Nested(rest) => self.ignore(rest, "not a direct child"),
                EventPath::Other => self.scan_due = true,
            },
            Ok(Some(WatchEvent::Reconnected)) => {
                log::info!("xenstore connection re-established; rescanning");
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
    fn recv(&mut self, timeout: Duration) -> Result<Option<Incoming>, CommError> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(id) = self.queue.pop_front() {
                if let Some(incoming) = self.take(&id)? {
                    return Ok(Some(incoming));
                }
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
        let now = Instant::now();
        let stale = self.replies.take_older_than(RETENTION, now);
        self.remove_replies(stale);
        let path = format!("{REPLY_DIR}/{id}");
        let json = reply.to_json();
        let written = match self.client.write(&path, &json) {
            Err(e) if is_quota(&e) => {
                // data/guest is full: make room with replies the host has read.
                let room = self.replies.take_older_than(PRESSURE_MIN_AGE, now);
                log::info!("data/guest is full ({e}); removing {} old replies", room.len());
                self.remove_replies(room);
                self.client.write(&path, &json)
            }
            other => other,
        };
        written.map_err(comm("cannot write reply"))?;
        self.replies.record(id, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenstore::sim::{Config, Simulator};

    #[test]
    fn a_waker_ends_the_wait_and_requests_still_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let guest = dir.path().join("xenbus");
        let sim = Simulator::new(Config::default());
        sim.add_guest_device(7, &guest).unwrap();
        let mut comm = XenCommunicator::connect(Some(guest.to_str().unwrap()), Duration::from_secs(3600)).unwrap();
        crate::communicator::assert_waker_ends_wait(&mut comm);
        sim.write("/local/domain/7/data/host/r1", br#"{"name":"version","value":""}"#);
        let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("the request");
        assert_eq!(incoming.id, "r1");
        // Also when every wait ends in a rescan (the wake may be taken by one).
        let mut busy = XenCommunicator::connect(Some(guest.to_str().unwrap()), Duration::ZERO).unwrap();
        crate::communicator::assert_waker_ends_wait(&mut busy);
        sim.shutdown();
    }

    #[test]
    fn events_name_requests() {
        assert_eq!(event_path("data/host/abc-1"), EventPath::Request("abc-1"));
        assert_eq!(
            event_path("/local/domain/7/data/host/abc-1"),
            EventPath::Request("abc-1")
        );
        assert_eq!(event_path("data/host/abc/x"), EventPath::Nested("abc/x"));
        assert_eq!(event_path("data/host"), EventPath::Other);
        assert_eq!(event_path("data/host/"), EventPath::Other);
    }

    /// Adds domain 7 with its xenbus device in `dir`.
    fn domain(sim: &Simulator, dir: &std::path::Path) {
        sim.add_guest_device(7, &dir.join("xenbus")).unwrap();
    }

    fn guest(dir: &std::path::Path) -> XenCommunicator {
        let path = dir.join("xenbus");
        XenCommunicator::connect(Some(path.to_str().unwrap()), Duration::from_secs(3600)).unwrap()
    }

    fn dom0(sim: &Simulator, dir: &std::path::Path) -> xenstore::Client {
        let path = dir.join("dom0");
        sim.listen_dom0(&path).unwrap();
        xenstore::Client::connect(&path).unwrap()
    }

    const HOME: &str = "/local/domain/7";
    const VERSION: &[u8] = br#"{"name":"version","value":""}"#;

    #[test]
    fn a_request_id_with_a_slash_is_not_a_request() {
        let dir = tempfile::tempdir().unwrap();
        let sim = Simulator::new(Config::default());
        domain(&sim, dir.path());
        sim.write(&format!("{HOME}/data/host/foo/bar"), VERSION);
        sim.write(&format!("{HOME}/data/host/r1"), VERSION);
        let mut comm = guest(dir.path());
        // Also announced by an event, as a host's write would be.
        let host = dom0(&sim, dir.path());
        host.write(&format!("{HOME}/data/host/foo/baz"), VERSION).unwrap();
        let first = comm.recv(Duration::from_secs(10)).unwrap().expect("r1");
        assert_eq!(first.id, "r1");
        comm.reply("r1", &Reply::ok("1")).unwrap();
        assert!(comm.recv(Duration::from_millis(300)).unwrap().is_none());
        assert_eq!(sim.read(&format!("{HOME}/data/host/foo/bar")).unwrap(), VERSION);
        assert_eq!(sim.read(&format!("{HOME}/data/host/foo/baz")).unwrap(), VERSION);
        assert_eq!(sim.directory(&format!("{HOME}/data/guest")), ["r1"]);
        assert_eq!(comm.ignored.len(), 2, "{:?}", comm.ignored);
        sim.shutdown();
    }
}
