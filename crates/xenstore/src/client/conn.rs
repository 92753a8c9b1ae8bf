//! State shared by every clone of a client, its watches and its reader thread,
//! and the request path: slot, `req_id`, single-write send, wait for the reply.

use super::transport::{Kind, Transport, Waker};
use super::WatchEvent;
use crate::error::{Error, Result};
use crate::wire::{Header, MsgType, HEADER_LEN};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// At most this many user requests are outstanding on one connection (C
/// xenstored's quota is 20 per unprivileged domain, shared with the kernel).
pub(crate) const MAX_IN_FLIGHT: usize = 8;
/// How long a caller busy-waits for its reply before blocking, on machines
/// with more than one CPU (on one CPU spinning would only delay the reader).
const SPIN: Duration = Duration::from_micros(50);

fn spin_budget() -> Duration {
    static MULTI_CPU: OnceLock<bool> = OnceLock::new();
    let multi = *MULTI_CPU.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1));
    if multi {
        SPIN
    } else {
        Duration::ZERO
    }
}
/// Default per-request timeout.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the reader hands to a waiting caller: the reply payload, or the error.
pub(crate) type Reply = Result<Vec<u8>>;

/// Who gets a reply.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// A caller blocked in `request`.
    Caller(SyncSender<Reply>),
    /// Nobody: fire-and-forget (UNWATCH on drop, WATCH re-registration).
    Discard,
}

/// One outstanding request.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Request type; the reply must have it (or be `ERROR`).
    pub(crate) kind: MsgType,
    /// Send order, to find the oldest WATCH/UNWATCH for `req_id == 0` replies.
    pub(crate) seq: u64,
    pub(crate) waiter: Waiter,
    /// Whether it holds one of the `MAX_IN_FLIGHT` slots.
    pub(crate) counted: bool,
}

/// What a watch's channel carries.
#[derive(Debug)]
pub(crate) enum Delivery {
    Event(WatchEvent),
    /// From a [`WatchWaker`](super::WatchWaker): end a wait early.
    Wake,
}

/// One watch registered with the daemon (one token). On the device several
/// `Watch` handles on the same path share one registration.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) path: String,
    pub(crate) subscribers: Vec<(u64, Sender<Delivery>)>,
    /// Connection generation on which the WATCH was last sent.
    pub(crate) registered_gen: u64,
}

/// Everything behind the state lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The live connection, `None` while disconnected.
    pub(crate) conn: Option<Arc<Transport>>,
    /// Bumped on every (re)connection.
    pub(crate) gen: u64,
    /// Never coming back (device EOF, or the client was dropped).
    pub(crate) dead: bool,
    next_req: u32,
    seq: u64,
    pub(crate) pending: HashMap<u32, Pending>,
    in_flight: usize,
    /// Registrations by token.
    pub(crate) watches: HashMap<String, Registration>,
    pub(crate) next_token: u64,
    pub(crate) next_sub: u64,
}

impl State {
    /// A fresh, non-zero `req_id` not in use (0 is reserved: old kernels send
    /// WATCH replies with `req_id == 0`).
    pub(crate) fn alloc_req_id(&mut self) -> u32 {
        loop {
            self.next_req = self.next_req.wrapping_add(1);
            if self.next_req != 0 && !self.pending.contains_key(&self.next_req) {
                return self.next_req;
            }
        }
    }

    /// Records a pending request and returns its `req_id`.
    pub(crate) fn insert(&mut self, kind: MsgType, waiter: Waiter, counted: bool) -> u32 {
        let id = self.alloc_req_id();
        self.seq += 1;
        if counted {
            self.in_flight += 1;
        }
        let seq = self.seq;
        self.pending.insert(
            id,
            Pending {
                kind,
                seq,
                waiter,
                counted,
            },
        );
        id
    }

    /// Removes a pending request, releasing its slot.
    pub(crate) fn remove(&mut self, id: u32) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        if p.counted {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        Some(p)
    }

    /// The oldest pending WATCH or UNWATCH, for replies with an unknown `req_id`.
    pub(crate) fn oldest_watch_request(&self) -> Option<u32> {
        self.pending
            .iter()
            .filter(|(_, p)| matches!(p.kind, MsgType::Watch | MsgType::Unwatch))
            .min_by_key(|(_, p)| p.seq)
            .map(|(id, _)| *id)
    }

    /// Removes every pending request (the connection is gone).
    pub(crate) fn drain(&mut self) -> Vec<Pending> {
        self.in_flight = 0;
        self.pending.drain().map(|(_, p)| p).collect()
    }
}

/// Shared by the client handles, the watches and the reader thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    pub(crate) is_device: bool,
    pub(crate) max_payload: usize,
    pub(crate) state: Mutex<State>,
    pub(crate) slot_free: Condvar,
    write_lock: Mutex<()>,
    pub(crate) waker: Waker,
    pub(crate) shutdown: AtomicBool,
    timeout: Mutex<Option<Duration>>,
    pub(crate) reconnects: AtomicU64,
    pub(crate) token_prefix: String,
}

/// Locks a mutex, ignoring poisoning (nothing in this crate panics while holding one).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Header and payload in one buffer, for a single write.
pub(crate) fn encode(kind: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        kind,
        req_id,
        tx_id,
        // Payloads are checked against the transport limit (<= 4096) before this.
        len: payload.len() as u32,
    };
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&header.encode());
    buf.extend_from_slice(payload);
    buf
}

impl Shared {
    pub(crate) fn new(path: PathBuf, conn: Transport, token_prefix: String) -> io::Result<Shared> {
        let is_device = conn.is_device();
        let max_payload = if is_device {
            crate::wire::DEVICE_PAYLOAD_MAX
        } else {
            crate::wire::PAYLOAD_MAX
        };
        let state = State {
            conn: Some(Arc::new(conn)),
            gen: 1,
            ..State::default()
        };
        Ok(Shared {
            path,
            is_device,
            max_payload,
            state: Mutex::new(state),
            slot_free: Condvar::new(),
            write_lock: Mutex::new(()),
            waker: Waker::new()?,
            shutdown: AtomicBool::new(false),
            timeout: Mutex::new(Some(DEFAULT_TIMEOUT)),
            reconnects: AtomicU64::new(0),
            token_prefix,
        })
    }

    pub(crate) fn set_timeout(&self, t: Option<Duration>) {
        *lock(&self.timeout) = t;
    }

    /// Checks what every request must satisfy before anything is queued.
    pub(crate) fn check_payload(&self, payload: &[u8]) -> Result<()> {
        if payload.is_empty() {
            // oxenstored < 4.20.4 stalls on len == 0 requests.
            return Err(Error::Protocol("refusing to send a zero-length payload".into()));
        }
        if payload.len() > self.max_payload {
            return Err(Error::TooBig {
                len: payload.len(),
                max: self.max_payload,
            });
        }
        Ok(())
    }

    /// Sends a request and waits for its reply (payload, or the mapped error).
    pub(crate) fn request(&self, kind: MsgType, tx_id: u32, payload: &[u8]) -> Reply {
        self.check_payload(payload)?;
        let deadline = lock(&self.timeout).map(|t| Instant::now() + t);
        let (tx, rx) = mpsc::sync_channel(1);
        let (req_id, conn, alone) = {
            let mut st = lock(&self.state);
            loop {
                if st.dead || self.shutdown.load(Ordering::Relaxed) {
                    return Err(Error::Disconnected);
                }
                if st.conn.is_none() {
                    return Err(Error::Disconnected);
                }
                if st.in_flight < MAX_IN_FLIGHT {
                    break;
                }
                st = match deadline {
                    None => self.slot_free.wait(st).unwrap_or_else(|e| e.into_inner()),
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Err(Error::Timeout);
                        }
                        self.slot_free
                            .wait_timeout(st, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                };
            }
            let Some(conn) = st.conn.clone() else {
                return Err(Error::Disconnected);
            };
            let req_id = st.insert(kind, Waiter::Caller(tx), true);
            (req_id, conn, st.in_flight == 1)
        };
        let buf = encode(kind, req_id, tx_id, payload);
        if let Err(e) = self.send(&conn, &buf) {
            self.forget(req_id);
            return Err(e);
        }
        // Replies usually come back within tens of microseconds: spin briefly
        // before sleeping, which saves a futex wake-up round trip per request.
        // Only a lone caller spins: several spinning callers would starve the
        // reader thread of CPU.
        let spin_until = Instant::now() + if alone { spin_budget() } else { Duration::ZERO };
        loop {
            match rx.try_recv() {
                Ok(reply) => return reply,
                Err(mpsc::TryRecvError::Disconnected) => return Err(Error::Disconnected),
                Err(mpsc::TryRecvError::Empty) if Instant::now() < spin_until => std::hint::spin_loop(),
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        let got = match deadline {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        match got {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Disconnected) => Err(Error::Disconnected),
            Err(RecvTimeoutError::Timeout) => {
                if self.forget(req_id) {
                    Err(Error::Timeout)
                } else {
                    // The reader took the entry just now: the reply is (about to be) here.
                    rx.recv().unwrap_or(Err(Error::Disconnected))
                }
            }
        }
    }

    /// Sends a request nobody waits for (its reply is dropped). Errors are ignored.
    pub(crate) fn fire_and_forget(&self, kind: MsgType, payload: &[u8]) {
        if self.check_payload(payload).is_err() {
            return;
        }
        let (req_id, conn) = {
            let mut st = lock(&self.state);
            let Some(conn) = st.conn.clone() else {
                return;
            };
            (st.insert(kind, Waiter::Discard, false), conn)
        };
        if self.send(&conn, &encode(kind, req_id, 0, payload)).is_err() {
            self.forget(req_id);
        }
    }

    /// Drops a pending entry; `false` if the reader already took it.
    pub(crate) fn forget(&self, req_id: u32) -> bool {
        let removed = lock(&self.state).remove(req_id).is_some();
        if removed {
            self.slot_free.notify_one();
        }
        removed
    }

    /// One message, one write. Device errnos are request failures; a broken
    /// socket is `Disconnected` (the reader notices and reconnects).
    pub(crate) fn send(&self, conn: &Transport, buf: &[u8]) -> Result<()> {
        let res = {
            let _guard = lock(&self.write_lock);
            conn.send(buf)
        };
        res.map_err(|e| match (conn.kind(), e.raw_os_error()) {
            (Kind::Device, _) => Error::Io(e),
            (_, Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN | libc::ESHUTDOWN)) => Error::Disconnected,
            _ => Error::Io(e),
        })
    }
}
