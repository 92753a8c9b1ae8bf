//! Watches: registration with a unique token, per-watch event channels, and
//! UNWATCH on drop. On the device, watches on the same path share one
//! registration (the kernel would otherwise register duplicates against the
//! guest's watch quota); later subscribers get a synthesised initial event.

use super::conn::{lock, Registration, Shared};
use super::reader::watch_payload;
use crate::error::{Error, Result};
use crate::wire::MsgType;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
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
    rx: Receiver<WatchEvent>,
    done: bool,
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
    /// (or, on the device, the connection ended for good).
    pub fn recv(&self) -> Result<WatchEvent> {
        self.rx.recv().map_err(|_| Error::Disconnected)
    }

    /// Waits up to `d` for the next event; `Ok(None)` on timeout.
    pub fn recv_timeout(&self, d: Duration) -> Result<Option<WatchEvent>> {
        match self.rx.recv_timeout(d) {
            Ok(ev) => Ok(Some(ev)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Disconnected),
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&self) -> Result<Option<WatchEvent>> {
        match self.rx.try_recv() {
            Ok(ev) => Ok(Some(ev)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(Error::Disconnected),
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
                let _ = tx.send(super::WatchEvent::Changed(path.to_string()));
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
