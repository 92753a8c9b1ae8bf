//! Watches: registration with a unique token, per-watch event channels, and
//! UNWATCH on drop. On the device, watches on the same path share one
//! registration (the kernel would otherwise register duplicates against the
//! guest's watch quota); later subscribers get a synthesised initial event.

use super::conn::{lock, Delivery, Registration, Shared};
use super::reader::watch_payload;
use crate::error::{Error, Result};
use crate::wire::MsgType;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Something a watch reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A node at or below the watched path may have changed. The path is exactly
    /// as the daemon sent it (relative for relative watches). Events can be
    /// spurious or coalesced: treat one as "re-read", never count them.
    Changed(String),
    /// The connection was re-established and the watch re-registered: state may
    /// have changed arbitrarily meanwhile (the daemon may even be empty), rescan.
    Reconnected,
}

/// A registered watch. Dropping it (or calling [`Watch::unwatch`]) removes it.
///
/// Events queue up without bound until received: keep receiving, or drop the
/// watch. `Send`, so it can be moved to the thread that waits on it.
#[derive(Debug)]
pub struct Watch {
    shared: Arc<Shared>,
    token: String,
    path: String,
    sub_id: u64,
    rx: Receiver<Delivery>,
    done: bool,
}

/// Ends a wait on a [`Watch`] from another thread (e.g. one that handles
/// signals): the watch's current or next [`Watch::recv_timeout`] or
/// [`Watch::try_recv`] returns `Ok(None)` early. Holding a waker keeps
/// neither the watch nor the client alive.
#[derive(Clone, Debug)]
pub struct WatchWaker {
    shared: Weak<Shared>,
    token: String,
    sub_id: u64,
}

impl WatchWaker {
    /// Wakes the watch; `false` if it (or its client) is gone.
    pub fn wake(&self) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        let st = lock(&shared.state);
        st.watches
            .get(&self.token)
            .and_then(|reg| reg.subscribers.iter().find(|(id, _)| *id == self.sub_id))
            .is_some_and(|(_, tx)| tx.send(Delivery::Wake).is_ok())
    }
}

impl Watch {
    /// The token this watch was registered with (unique per client, `<prefix>:<n>`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The watched path, as given to [`Client::watch`](super::Client::watch).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Waits for the next event. `Error::Disconnected` once the client is gone
    /// (or, on the device, the connection ended for good). Wakes from a
    /// [`WatchWaker`] do not end this wait.
    pub fn recv(&self) -> Result<WatchEvent> {
        loop {
            match self.rx.recv() {
                Ok(Delivery::Event(ev)) => return Ok(ev),
                Ok(Delivery::Wake) => {}
                Err(_) => return Err(Error::Disconnected),
            }
        }
    }

    /// Waits up to `d` for the next event; `Ok(None)` on timeout or when woken
    /// by a [`WatchWaker`].
    pub fn recv_timeout(&self, d: Duration) -> Result<Option<WatchEvent>> {
        match self.rx.recv_timeout(d) {
            Ok(Delivery::Event(ev)) => Ok(Some(ev)),
            Ok(Delivery::Wake) | Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Disconnected),
        }
    }

    /// The next event if one is queued; `Ok(None)` if none is, or when a wake
    /// from a [`WatchWaker`] was queued first.
    pub fn try_recv(&self) -> Result<Option<WatchEvent>> {
        match self.rx.try_recv() {
            Ok(Delivery::Event(ev)) => Ok(Some(ev)),
            Ok(Delivery::Wake) | Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(Error::Disconnected),
        }
    }

    /// A handle that ends this watch's waits from another thread.
    pub fn waker(&self) -> WatchWaker {
        WatchWaker {
            shared: Arc::downgrade(&self.shared),
            token: self.token.clone(),
            sub_id: self.sub_id,
        }
    }

    /// Removes the watch and waits for the daemon's answer to UNWATCH.
    pub fn unwatch(mut self) -> Result<()> {
        self.done = true;
        match detach(&self.shared, &self.token, self.sub_id) {
            Some(payload) => self.shared.request(MsgType::Unwatch, 0, &payload).map(|_| ()),
            None => Ok(()),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(payload) = detach(&self.shared, &self.token, self.sub_id) {
            self.shared.fire_and_forget(MsgType::Unwatch, &payload);
        }
    }
}

/// Removes one subscriber; returns the UNWATCH payload if it was the last one
/// and the connection is up.
fn detach(shared: &Shared, token: &str, sub_id: u64) -> Option<Vec<u8>> {
    let mut st = lock(&shared.state);
    let reg = st.watches.get_mut(token)?;
    reg.subscribers.retain(|(id, _)| *id != sub_id);
    if !reg.subscribers.is_empty() {
        return None;
    }
    let reg = st.watches.remove(token)?;
    st.conn.as_ref()?;
    Some(watch_payload(&reg.path, token))
}

/// Registers a watch on `path` (already validated).
pub(crate) fn watch(shared: &Arc<Shared>, path: &str) -> Result<Watch> {
    let (tx, rx) = mpsc::channel();
    let (token, sub_id, gen, shared_reg) = {
        let mut st = lock(&shared.state);
        if st.dead || st.conn.is_none() {
            return Err(Error::Disconnected);
        }
        st.next_sub += 1;
        let sub_id = st.next_sub;
        let existing = if shared.is_device {
            st.watches.iter().find(|(_, r)| r.path == path).map(|(t, _)| t.clone())
        } else {
            None
        };
        match existing.and_then(|t| st.watches.get_mut(&t).map(|r| (t, r))) {
            Some((token, reg)) => {
                // The kernel would fire an initial event for a new registration.
                let _ = tx.send(Delivery::Event(super::WatchEvent::Changed(path.to_string())));
                reg.subscribers.push((sub_id, tx));
                (token, sub_id, 0, true)
            }
            None => {
                st.next_token += 1;
                let token = format!("{}:{}", shared.token_prefix, st.next_token);
                let gen = st.gen;
                st.watches.insert(
                    token.clone(),
                    Registration {
                        path: path.to_string(),
                        subscribers: vec![(sub_id, tx)],
                        registered_gen: gen,
                    },
                );
                (token, sub_id, gen, false)
            }
        }
    };
    let watch = Watch {
        shared: Arc::clone(shared),
        token,
        path: path.to_string(),
        sub_id,
        rx,
        done: false,
    };
    if shared_reg {
        return Ok(watch);
    }
    // Registered before sending: the initial event may beat the reply.
    match shared.request(MsgType::Watch, 0, &watch_payload(path, &watch.token)) {
        Ok(_) => Ok(watch),
        Err(e) => {
            let mut w = watch;
            w.done = true;
            let resent = {
                let mut st = lock(&shared.state);
                let reg = st.watches.remove(&w.token);
                // The reader re-sent it on a new connection meanwhile: undo that.
                reg.is_some_and(|r| r.registered_gen != gen)
            };
            if resent {
                shared.fire_and_forget(MsgType::Unwatch, &watch_payload(path, &w.token));
            }
            Err(e)
        }
    }
}
