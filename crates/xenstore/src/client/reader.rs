//! The reader thread: one per connection. It reads frames, routes `WATCH_EVENT`
//! by type then token, replies by `req_id`, and on a lost socket fails every
//! pending request, reconnects with backoff and re-registers the watches.

use super::conn::{encode, lock, Delivery, Pending, Shared, Waiter};
use super::transport::{self, Kind, Ready, Transport};
use super::WatchEvent;
use crate::error::Error;
use crate::wire::{
    split_nul, Decoder, ErrorKind, Message, MsgType, Oversize, HEADER_LEN, PAYLOAD_MAX, READ_PAYLOAD_CAP,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// What one read takes on a connection of `kind`. A seqpacket read truncates
/// a datagram that does not fit, so there it is large enough for any reply
/// we accept. A stream or the device hands a message over in as many reads
/// as it takes and the decoder joins them, so one regular message (header
/// and [`PAYLOAD_MAX`] bytes) at a time is enough: an idle connection holds
/// 4 KiB, not 64.
fn read_buf_len(kind: Kind) -> usize {
    match kind {
        Kind::SeqPacket => READ_PAYLOAD_CAP + 64,
        Kind::Stream | Kind::Device => HEADER_LEN + PAYLOAD_MAX,
    }
}

/// Why a connection ended.
enum End {
    Shutdown,
    Lost,
}

/// The thread body. Returns when the client is dropped or the device is gone.
pub(crate) fn run(shared: Arc<Shared>) {
    let mut buf = Vec::new();
    let mut backoff = BACKOFF_START;
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            break;
        }
        let conn = lock(&shared.state).conn.clone();
        match conn {
            Some(conn) => {
                let len = read_buf_len(conn.kind());
                if buf.len() != len {
                    buf = vec![0u8; len];
                }
                let end = serve(&shared, &conn, &mut buf);
                disconnect(&shared);
                if matches!(end, End::Shutdown) || conn.kind() == Kind::Device {
                    break;
                }
                backoff = BACKOFF_START;
            }
            None => {
                let ms = i32::try_from(backoff.as_millis()).unwrap_or(i32::MAX);
                match transport::wait(&shared.waker, None, ms) {
                    Ok(Ready::Woken) => break,
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(backoff),
                }
                if shared.shutdown.load(Ordering::Acquire) {
                    break;
                }
                if !reconnect(&shared) {
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
    // Final cleanup: nothing can be answered any more; watches see Disconnected.
    let (pending, watches) = {
        let mut st = lock(&shared.state);
        st.dead = true;
        st.conn = None;
        (st.drain(), std::mem::take(&mut st.watches))
    };
    shared.slot_free.notify_all();
    fail(pending);
    drop(watches);
}

/// Reads and dispatches until the connection ends.
fn serve(shared: &Shared, conn: &Transport, buf: &mut [u8]) -> End {
    let mut decoder = Decoder::new(READ_PAYLOAD_CAP);
    loop {
        match transport::wait(&shared.waker, Some(conn), -1) {
            Ok(Ready::Woken) => return End::Shutdown,
            Ok(_) => {}
            Err(_) => return End::Lost,
        }
        let n = match conn.recv(buf) {
            Ok(0) => return End::Lost,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return End::Lost,
        };
        decoder.feed(&buf[..n]);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => dispatch(shared, msg),
                Ok(None) => break,
                // Skipped by the decoder: fail the request it answers, keep
                // the connection.
                Err(o) if o.skipped => fail_oversize(shared, o),
                // A header we cannot skip: the stream is out of sync for good.
                Err(_) => return End::Lost,
            }
        }
        if conn.kind() == Kind::SeqPacket {
            decoder.end_of_packet();
        }
    }
}

/// Fails the request an oversize reply answered (an oversize watch event is
/// dropped: its path could not be routed anyway).
fn fail_oversize(shared: &Shared, o: Oversize) {
    if o.kind == MsgType::WatchEvent {
        return;
    }
    let pending = lock(&shared.state).remove(o.req_id);
    let Some(pending) = pending else {
        return;
    };
    shared.slot_free.notify_one();
    if let Waiter::Caller(tx) = pending.waiter {
        let _ = tx.try_send(Err(Error::ReplyTooBig {
            len: o.len as usize,
            max: o.cap,
        }));
    }
}

/// Routes one message from the daemon.
pub(crate) fn dispatch(shared: &Shared, msg: Message) {
    if msg.kind == MsgType::WatchEvent {
        // By type first: the device leaves req_id/tx_id of events uninitialised.
        route_event(shared, &msg.payload);
        return;
    }
    let pending = {
        let mut st = lock(&shared.state);
        let key = if st.pending.contains_key(&msg.req_id) {
            Some(msg.req_id)
        } else if matches!(msg.kind, MsgType::Watch | MsgType::Unwatch) {
            // Pre-4.11 kernels answer WATCH/UNWATCH with req_id 0.
            st.oldest_watch_request()
        } else {
            None
        };
        key.and_then(|k| st.remove(k))
    };
    let Some(pending) = pending else {
        // Unknown req_id (e.g. the late reply of a timed-out request): drop it.
        return;
    };
    shared.slot_free.notify_one();
    let reply = if msg.kind == MsgType::Error {
        Err(Error::Xs(ErrorKind::from_payload(&msg.payload)))
    } else if msg.kind == pending.kind {
        Ok(msg.payload)
    } else {
        Err(Error::Protocol(format!(
            "reply of type {:?} to a {:?} request",
            msg.kind, pending.kind
        )))
    };
    if let Waiter::Caller(tx) = pending.waiter {
        // Capacity 1 and one reply per entry: never full. A gone receiver is fine.
        let _ = tx.try_send(reply);
    }
}

/// Delivers `<path>\0<token>\0[extra...]` to the watch with that token.
fn route_event(shared: &Shared, payload: &[u8]) {
    let parts = split_nul(payload);
    let (Some(path), Some(token)) = (parts.first(), parts.get(1)) else {
        return;
    };
    let Ok(token) = std::str::from_utf8(token) else {
        return;
    };
    let path = String::from_utf8_lossy(path).into_owned();
    let st = lock(&shared.state);
    if let Some(reg) = st.watches.get(token) {
        for (_, tx) in &reg.subscribers {
            let _ = tx.send(Delivery::Event(WatchEvent::Changed(path.clone())));
        }
    }
}

/// Marks the connection gone and fails every pending request.
fn disconnect(shared: &Shared) {
    let pending = {
        let mut st = lock(&shared.state);
        st.conn = None;
        st.drain()
    };
    shared.slot_free.notify_all();
    fail(pending);
}

fn fail(pending: Vec<Pending>) {
    for p in pending {
        if let Waiter::Caller(tx) = p.waiter {
            let _ = tx.try_send(Err(Error::Disconnected));
        }
    }
}

/// One reconnection attempt: connect, re-send every WATCH, tell every watch.
fn reconnect(shared: &Shared) -> bool {
    let Ok(conn) = Transport::open(&shared.path) else {
        return false;
    };
    let conn = Arc::new(conn);
    let mut messages = Vec::new();
    let mut notify = Vec::new();
    {
        let mut st = lock(&shared.state);
        st.gen += 1;
        let gen = st.gen;
        st.conn = Some(Arc::clone(&conn));
        let regs: Vec<(String, String)> = st
            .watches
            .iter_mut()
            .map(|(token, reg)| {
                reg.registered_gen = gen;
                notify.extend(reg.subscribers.iter().map(|(_, tx)| tx.clone()));
                (token.clone(), reg.path.clone())
            })
            .collect();
        for (token, path) in regs {
            let id = st.insert(MsgType::Watch, Waiter::Discard, false);
            messages.push(encode(MsgType::Watch, id, 0, &watch_payload(&path, &token)));
        }
    }
    shared.reconnects.fetch_add(1, Ordering::Relaxed);
    for m in &messages {
        // A failure here means the new connection died too; the read loop sees it.
        let _ = shared.send(&conn, m);
    }
    for tx in notify {
        let _ = tx.send(Delivery::Event(WatchEvent::Reconnected));
    }
    true
}

/// `<path>\0<token>\0`.
pub(crate) fn watch_payload(path: &str, token: &str) -> Vec<u8> {
    crate::wire::join_nul(&[path, token])
}
