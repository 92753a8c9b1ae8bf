//! The running simulator: the shared state behind its lock, listener threads
//! (accept loops woken by an eventfd), connection-thread bookkeeping, and the
//! orderly stop (`kill_connections`, `shutdown`).

use super::conn::{self, encode, is_stalled, Garbage, Outgoing};
use super::framing::Input;
use super::ops;
use super::state::{ConnId, ConnKind, ConnState, State};
use super::watch::{self, Delivery, Fired};
use super::Config;
use crate::sys::{self, EventFd, SockType};
use crate::wire::Message;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// A listening socket and its accept thread.
struct Listener {
    path: PathBuf,
    wake: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

/// State shared by the API handle and every thread.
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    state: Mutex<State>,
    stopping: AtomicBool,
    listeners: Mutex<Vec<Listener>>,
    conn_threads: Mutex<HashMap<ConnId, JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock is caught per request; the state stays
    // usable, so a poisoned lock is simply taken over.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(cfg: Config) -> Shared {
        Shared {
            cfg,
            state: Mutex::new(State::new()),
            stopping: AtomicBool::new(false),
            listeners: Mutex::new(Vec::new()),
            conn_threads: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Delivery of changes made through the API (no requesting connection).
    pub(crate) fn api_delivery(&self) -> Delivery {
        let ox = self.cfg.flavor == super::Flavor::Ox;
        Delivery {
            origin: None,
            defer_own: false,
            coalesce: !ox,
            newest_first: ox,
        }
    }

    /// Fires changes made through the API and wakes the watchers.
    pub(crate) fn fire_api(&self, st: &mut State, changes: &[super::store::Change]) {
        let mut fired = Fired::default();
        watch::fire(st, changes, self.api_delivery(), &mut fired);
        wake(st, &fired, None);
    }

    /// Starts listening on `path` for connections of `kind` from `domid`.
    pub(crate) fn listen(self: &Arc<Self>, path: &Path, kind: ConnKind, domid: u32) -> io::Result<()> {
        if self.stopping() {
            return Err(io::Error::other("simulator is shut down"));
        }
        let sock = if kind == ConnKind::GuestDevice {
            SockType::SeqPacket
        } else {
            SockType::Stream
        };
        let fd = sys::listen_unix(path, sock)?;
        let wake = Arc::new(EventFd::new()?);
        let (me, w) = (Arc::clone(self), Arc::clone(&wake));
        let thread = std::thread::Builder::new()
            .name("xs-sim-listen".into())
            .spawn(move || me.accept_loop(fd, &w, kind, domid))?;
        lock(&self.listeners).push(Listener {
            path: path.to_path_buf(),
            wake,
            thread: Some(thread),
        });
        Ok(())
    }

    fn accept_loop(self: Arc<Self>, fd: OwnedFd, wake: &EventFd, kind: ConnKind, domid: u32) {
        while !self.stopping() {
            let mut fds = [
                sys::pollfd(fd.as_raw_fd(), libc::POLLIN),
                sys::pollfd(wake.raw(), libc::POLLIN),
            ];
            if sys::poll(&mut fds, -1).is_err() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            if fds[1].revents != 0 {
                wake.drain();
            }
            loop {
                if self.stopping() {
                    return;
                }
                match sys::accept(&fd) {
                    Ok(Some(conn_fd)) => {
                        if let Err(e) = self.spawn_conn(conn_fd, kind, domid) {
                            eprintln!("xenstore sim: cannot serve a new connection: {e}");
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        // Out of descriptors or similar: back off instead of spinning.
                        eprintln!("xenstore sim: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
    }

    fn spawn_conn(self: &Arc<Self>, fd: OwnedFd, kind: ConnKind, domid: u32) -> io::Result<()> {
        let wake = Arc::new(EventFd::new()?);
        let id = self.state().add_conn(ConnState::new(kind, domid, Arc::clone(&wake)));
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("xs-sim-conn-{id}"))
            .spawn(move || conn::run(me, id, fd, wake, kind));
        match spawned {
            Ok(handle) => {
                let mut threads = lock(&self.conn_threads);
                threads.retain(|_, h| !h.is_finished());
                threads.insert(id, handle);
                Ok(())
            }
            Err(e) => {
                self.state().conns.remove(&id);
                Err(e)
            }
        }
    }

    /// Moves queued output of connection `id` into `out` (when `out` is empty),
    /// accounts replies written since the last call, and tells whether the
    /// connection must stop reading. `None` when the connection is gone or
    /// has been killed.
    pub(crate) fn sync_output(
        &self,
        id: ConnId,
        out: &mut Outgoing,
        garbage: &mut Garbage,
        batch: usize,
    ) -> Option<bool> {
        let mut st = self.state();
        let quota = self.cfg.outstanding_per_domain;
        let c = st.conns.get_mut(&id)?;
        if c.killed {
            return None;
        }
        c.outstanding = c.outstanding.saturating_sub(out.done_replies);
        out.done_replies = 0;
        if out.is_empty() {
            let kind = c.kind;
            for o in c.out.drain(..c.out.len().min(batch)) {
                out.push(encode(&o.msg, o.is_event, kind, garbage), !o.is_event);
            }
        }
        let (queued, actor) = (c.queued_replies(), c.actor);
        let domain = (!actor.privileged).then(|| st.domain_outstanding(actor.domid));
        Some(is_stalled(queued, domain, quota))
    }

    /// Handles one framed input of connection `id`. `false` means: close it.
    pub(crate) fn process(&self, id: ConnId, input: Input) -> bool {
        let mut st = self.state();
        let msg = match input {
            Input::Close => return false,
            Input::Reject(reply) => {
                if let Some(c) = st.conns.get_mut(&id) {
                    c.push_reply(reply);
                }
                return true;
            }
            Input::Request(msg) => msg,
        };
        let handled = catch_unwind(AssertUnwindSafe(|| ops::handle(&self.cfg, &mut st, id, &msg)));
        let Ok(h) = handled else {
            st.counters.handler_panics += 1;
            eprintln!(
                "xenstore sim: internal error on {:?}; closing that connection",
                msg.kind
            );
            return false;
        };
        if let Some(c) = st.conns.get_mut(&id) {
            c.push_reply(h.reply);
            let mut queued = 0;
            for ev in h.after {
                if c.push_event(ev, None) {
                    queued += 1;
                }
            }
            st.counters.events_queued += queued;
        }
        wake(&st, &h.fired, Some(id));
        true
    }

    /// Forgets a connection whose thread is ending.
    pub(crate) fn remove_conn(&self, id: ConnId) {
        self.state().conns.remove(&id);
    }

    /// Closes every client connection and waits for their threads.
    pub(crate) fn kill_connections(&self) {
        let ids: Vec<ConnId> = {
            let mut st = self.state();
            for c in st.conns.values_mut() {
                c.killed = true;
                c.wake.signal();
            }
            st.conns.keys().copied().collect()
        };
        let handles: Vec<JoinHandle<()>> = {
            let mut threads = lock(&self.conn_threads);
            ids.iter().filter_map(|id| threads.remove(id)).collect()
        };
        for h in handles {
            let _ = h.join();
        }
    }

    /// Stops listeners and connections, unlinks the sockets. Idempotent.
    pub(crate) fn shutdown(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        let listeners: Vec<Listener> = std::mem::take(&mut *lock(&self.listeners));
        for l in &listeners {
            l.wake.signal();
        }
        for mut l in listeners {
            if let Some(t) = l.thread.take() {
                let _ = t.join();
            }
            let _ = std::fs::remove_file(&l.path);
        }
        for c in self.state().conns.values() {
            c.wake.signal();
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.conn_threads).drain().map(|(_, h)| h).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Wakes every connection that got output, except `except` (the caller, which
/// flushes by itself).
fn wake(st: &State, fired: &Fired, except: Option<ConnId>) {
    for id in &fired.woken {
        if Some(*id) != except {
            if let Some(c) = st.conns.get(id) {
                c.wake.signal();
            }
        }
    }
}

/// Queues `msgs` as events on connection `id` and wakes it (initial events
/// re-fired by `simulate_resume`).
pub(crate) fn push_events(st: &mut State, id: ConnId, msgs: Vec<Message>) {
    if let Some(c) = st.conns.get_mut(&id) {
        for m in msgs {
            c.push_event(m, None);
        }
        c.wake.signal();
    }
}
