//! One thread per client connection: non-blocking reads into the framer, one
//! request at a time under the state lock, and writes of whatever the
//! connection has queued (replies and watch events). It sleeps in `poll(2)` on
//! the socket and its wake-up eventfd, so an idle connection costs nothing, and
//! it stops reading (back-pressure, like C xenstored's `domain_can_read`) while
//! the connection or its domain has too many replies not yet delivered.

use super::framing::{DeviceFramer, Input, StreamFramer, C_DOM0, GUEST_RING, OX_DOM0};
use super::state::{ConnId, ConnKind, REPLY_QUEUE_MAX};
use super::{Flavor, Shared};
use crate::sys::{self, EventFd, Recv, SockType};
use crate::wire::{Message, HEADER_LEN, READ_PAYLOAD_CAP};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// How long a connection stalled by its domain's quota sleeps between checks.
const STALL_POLL_MS: i32 = 20;
/// Messages moved from the shared queue to the socket buffer at a time.
const OUT_BATCH: usize = 256;

/// Encoded messages on their way out, with the reply flag for accounting.
#[derive(Default)]
pub(crate) struct Outgoing {
    msgs: VecDeque<(Vec<u8>, bool)>,
    off: usize,
    /// Replies fully written since the last report to the shared state.
    pub(crate) done_replies: usize,
}

impl Outgoing {
    pub(crate) fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub(crate) fn push(&mut self, bytes: Vec<u8>, is_reply: bool) {
        self.msgs.push_back((bytes, is_reply));
    }

    /// Writes as much as the socket takes. Packet sockets get one message per
    /// packet; a packet the socket can never take (`EMSGSIZE`) is dropped.
    fn flush(&mut self, fd: &OwnedFd, sock: SockType) -> io::Result<()> {
        while let Some((front, is_reply)) = self.msgs.front() {
            let sent = match sys::send(fd, &front[self.off..]) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(()),
                Err(e) if sock == SockType::SeqPacket && e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    front.len() - self.off
                }
                Err(e) => return Err(e),
            };
            self.off += sent;
            if sock == SockType::SeqPacket || self.off >= front.len() {
                if *is_reply {
                    self.done_replies += 1;
                }
                self.msgs.pop_front();
                self.off = 0;
            }
        }
        Ok(())
    }
}

/// A tiny xorshift generator for the uninitialised `req_id`/`tx_id` of events
/// coming out of a guest's xenbus.
pub(crate) struct Garbage(u64);

impl Garbage {
    fn new(seed: u64) -> Garbage {
        Garbage(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as u32
    }
}

/// Encodes a queued message for the wire of `kind`.
pub(crate) fn encode(msg: &Message, is_event: bool, kind: ConnKind, garbage: &mut Garbage) -> Vec<u8> {
    if is_event && kind != ConnKind::Dom0Socket {
        let mut m = msg.clone();
        m.req_id = garbage.next();
        m.tx_id = garbage.next();
        return m.encode();
    }
    msg.encode()
}

enum Reader {
    Stream(StreamFramer),
    Device(DeviceFramer),
}

impl Reader {
    fn new(kind: ConnKind, flavor: Flavor) -> Reader {
        match (kind, flavor) {
            (ConnKind::Dom0Socket, Flavor::C) => Reader::Stream(StreamFramer::new(C_DOM0)),
            (ConnKind::Dom0Socket, Flavor::Ox) => Reader::Stream(StreamFramer::new(OX_DOM0)),
            (ConnKind::GuestSocket, _) => Reader::Stream(StreamFramer::new(GUEST_RING)),
            (ConnKind::GuestDevice, _) => Reader::Device(DeviceFramer::default()),
        }
    }

    fn buffered_input(&mut self) -> Option<Input> {
        match self {
            Reader::Stream(f) => f.next_input(),
            Reader::Device(_) => None,
        }
    }
}

/// What one read produced.
enum ReadOutcome {
    Progress,
    Idle,
    Gone,
}

fn read_once(fd: &OwnedFd, buf: &mut [u8], reader: &mut Reader, hup: bool, shared: &Shared, id: ConnId) -> ReadOutcome {
    let sock = match reader {
        Reader::Stream(_) => SockType::Stream,
        Reader::Device(_) => SockType::SeqPacket,
    };
    match sys::recv(fd, buf, sock) {
        Ok(Recv::Data { n, full }) => match reader {
            Reader::Stream(f) => {
                f.feed(&buf[..n]);
                ReadOutcome::Progress
            }
            Reader::Device(d) => match d.write(&buf[..n], full) {
                Some(input) => {
                    if shared.process(id, input) {
                        ReadOutcome::Progress
                    } else {
                        ReadOutcome::Gone
                    }
                }
                None => ReadOutcome::Progress,
            },
        },
        // On a packet socket a zero-length packet also reads as 0 bytes: only
        // a hang-up makes it the end.
        Ok(Recv::Eof) if sock == SockType::SeqPacket && !hup => ReadOutcome::Progress,
        Ok(Recv::Eof) | Err(_) => ReadOutcome::Gone,
        Ok(Recv::WouldBlock) => ReadOutcome::Idle,
    }
}

/// The connection thread.
pub(crate) fn run(shared: Arc<Shared>, id: ConnId, fd: OwnedFd, wake: Arc<EventFd>, kind: ConnKind) {
    let sock = if kind == ConnKind::GuestDevice {
        SockType::SeqPacket
    } else {
        SockType::Stream
    };
    let mut reader = Reader::new(kind, shared.cfg.flavor);
    let mut out = Outgoing::default();
    let mut garbage = Garbage::new(id);
    let mut buf = vec![0u8; READ_PAYLOAD_CAP + HEADER_LEN];
    loop {
        if shared.stopping() {
            break;
        }
        let Some(stalled) = shared.sync_output(id, &mut out, &mut garbage, OUT_BATCH) else {
            break;
        };
        if !stalled {
            if let Some(input) = reader.buffered_input() {
                if !shared.process(id, input) {
                    break;
                }
                continue;
            }
        }
        if !out.is_empty() {
            if out.flush(&fd, sock).is_err() {
                break;
            }
            if out.is_empty() {
                // All written: more may be queued meanwhile (or held back by the
                // batch size), and nobody signals us for our own replies.
                continue;
            }
        }
        let mut events = 0;
        if !stalled {
            events |= libc::POLLIN | libc::POLLRDHUP;
        }
        if !out.is_empty() {
            events |= libc::POLLOUT;
        }
        let mut fds = [
            sys::pollfd(fd.as_raw_fd(), events),
            sys::pollfd(wake.raw(), libc::POLLIN),
        ];
        let timeout = if stalled { STALL_POLL_MS } else { -1 };
        if sys::poll(&mut fds, timeout).is_err() {
            break;
        }
        if fds[1].revents != 0 {
            wake.drain();
        }
        let rev = fds[0].revents;
        let hup = rev & libc::POLLHUP != 0;
        if rev & libc::POLLNVAL != 0 {
            break;
        }
        if hup {
            // The peer is gone: handle what it sent before leaving, then stop.
            while let ReadOutcome::Progress = read_once(&fd, &mut buf, &mut reader, true, &shared, id) {}
            while let Some(input) = reader.buffered_input() {
                if !shared.process(id, input) {
                    break;
                }
            }
            break;
        }
        if rev & libc::POLLERR != 0 || (!stalled && rev & (libc::POLLIN | libc::POLLRDHUP) != 0) {
            if let ReadOutcome::Gone = read_once(&fd, &mut buf, &mut reader, false, &shared, id) {
                break;
            }
        }
    }
    sys::shutdown_both(&fd);
    shared.remove_conn(id);
}

/// Whether queued replies exceed what the connection (or, for an
/// unprivileged domain, the whole domain) may have outstanding.
pub(crate) fn is_stalled(queued_replies: usize, domain_outstanding: Option<usize>, quota: usize) -> bool {
    queued_replies >= REPLY_QUEUE_MAX || domain_outstanding.is_some_and(|n| n >= quota)
}
