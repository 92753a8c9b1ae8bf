//! Turning received bytes into requests, with each endpoint's rules for
//! oversize and odd input:
//!
//! * dom0 socket, C flavour: a header announcing more than 4096 bytes closes the
//!   connection (xenstored's `bad_client`);
//! * dom0 socket, ox flavour: `E2BIG` and the announced payload is skipped; a
//!   zero-length request waits for the next bytes (oxenstored < 4.20.4 bug);
//! * guest stream socket: like a ring behind the device, `E2BIG` above 4080
//!   and the payload is skipped; a length above 4096 closes the connection;
//! * guest device (packets): the Linux `xenbus_file_write` state machine. Each
//!   packet is one `write()`: a partial message accumulates, bytes after the
//!   first complete message are dropped, more than 4096 buffered bytes is
//!   `EINVAL` and a declared payload above 4080 is `E2BIG` (both reset the
//!   buffer). The kernel reports those two as the `write()` errno; here they
//!   come back as `ERROR` replies carrying the header's ids (0 when fewer than
//!   16 bytes were buffered).

use crate::wire::{ErrorKind, Header, Message, MsgType, DEVICE_PAYLOAD_MAX, HEADER_LEN, PAYLOAD_MAX};

/// What the framer produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// A complete request.
    Request(Message),
    /// Answer this error without processing anything.
    Reject(Message),
    /// Drop the connection.
    Close,
}

/// Payload-length rules of a stream endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamRules {
    /// Longer payloads are answered `E2BIG` and skipped.
    pub(crate) reject_above: usize,
    /// Longer payloads close the connection (checked first).
    pub(crate) close_above: usize,
    /// Hold a zero-length request until more bytes arrive (oxenstored bug).
    pub(crate) hold_empty: bool,
}

/// C xenstored's socket: over 4096 bytes, the connection is closed.
pub(crate) const C_DOM0: StreamRules = StreamRules {
    reject_above: PAYLOAD_MAX,
    close_above: PAYLOAD_MAX,
    hold_empty: false,
};
/// oxenstored's socket: over 4096 bytes is `E2BIG`, zero-length requests wait.
pub(crate) const OX_DOM0: StreamRules = StreamRules {
    reject_above: PAYLOAD_MAX,
    close_above: usize::MAX,
    hold_empty: true,
};
/// A guest's ring: `E2BIG` over 4080 (the device's limit); a length beyond the
/// protocol's 4096 is a broken client and closes the connection.
pub(crate) const GUEST_RING: StreamRules = StreamRules {
    reject_above: DEVICE_PAYLOAD_MAX,
    close_above: PAYLOAD_MAX,
    hold_empty: false,
};

/// Stream reassembly.
#[derive(Debug)]
pub(crate) struct StreamFramer {
    buf: Vec<u8>,
    start: usize,
    skip: u64,
    rules: StreamRules,
}

fn reject(h: &Header, e: ErrorKind) -> Input {
    Input::Reject(Message::new(MsgType::Error, h.req_id, h.tx_id, e.to_payload()))
}

fn header_at(bytes: &[u8]) -> Option<Header> {
    let head: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    Some(Header::decode(head))
}

impl StreamFramer {
    pub(crate) fn new(rules: StreamRules) -> StreamFramer {
        StreamFramer {
            buf: Vec::new(),
            start: 0,
            skip: 0,
            rules,
        }
    }

    /// Appends received bytes.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes waiting to form a message.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next input, if complete.
    pub(crate) fn next_input(&mut self) -> Option<Input> {
        if self.skip > 0 {
            let n = (self.buffered() as u64).min(self.skip);
            self.start += n as usize;
            self.skip -= n;
            if self.skip > 0 {
                return None;
            }
        }
        let avail = &self.buf[self.start..];
        let h = header_at(avail)?;
        let len = h.len as usize;
        if len > self.rules.close_above {
            return Some(Input::Close);
        }
        if len > self.rules.reject_above {
            self.start += HEADER_LEN;
            self.skip = u64::from(h.len);
            return Some(reject(&h, ErrorKind::TooBig));
        }
        let hold = len == 0 && self.rules.hold_empty && avail.len() == HEADER_LEN;
        if avail.len() < HEADER_LEN + len || hold {
            return None;
        }
        let payload = avail[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.start += HEADER_LEN + len;
        Some(Input::Request(Message::new(h.kind, h.req_id, h.tx_id, payload)))
    }
}

/// The kernel's per-file write buffer (`xenbus_file_write`).
#[derive(Debug, Default)]
pub(crate) struct DeviceFramer {
    buf: Vec<u8>,
}

impl DeviceFramer {
    /// One `write()` of `data`, whose real length was `full` (`data` may be a
    /// truncated view of a longer packet).
    pub(crate) fn write(&mut self, data: &[u8], full: usize) -> Option<Input> {
        if full > PAYLOAD_MAX - self.buf.len() {
            let mut head = self.buf.clone();
            head.extend_from_slice(&data[..data.len().min(HEADER_LEN)]);
            self.buf.clear();
            let h = header_at(&head).unwrap_or(Header {
                kind: MsgType::Error,
                req_id: 0,
                tx_id: 0,
                len: 0,
            });
            return Some(reject(&h, ErrorKind::Inval));
        }
        self.buf.extend_from_slice(data);
        let h = header_at(&self.buf)?;
        if h.len as usize > DEVICE_PAYLOAD_MAX {
            self.buf.clear();
            return Some(reject(&h, ErrorKind::TooBig));
        }
        let total = HEADER_LEN + h.len as usize;
        if self.buf.len() < total {
            return None;
        }
        let payload = self.buf[HEADER_LEN..total].to_vec();
        // Anything after the first complete message in this write is dropped.
        self.buf.clear();
        Some(Input::Request(Message::new(h.kind, h.req_id, h.tx_id, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: MsgType, req: u32, payload: &[u8]) -> Vec<u8> {
        Message::new(kind, req, 0, payload.to_vec()).encode()
    }

    fn drain(f: &mut StreamFramer) -> Vec<Input> {
        std::iter::from_fn(|| f.next_input()).collect()
    }

    #[test]
    fn stream_reassembles_any_chunking() {
        let mut bytes = msg(MsgType::Read, 1, b"/a\0");
        bytes.extend(msg(MsgType::Read, 2, b"/b\0"));
        for chunk in [1, 3, 16, bytes.len()] {
            let mut f = StreamFramer::new(C_DOM0);
            let mut got = Vec::new();
            for piece in bytes.chunks(chunk) {
                f.feed(piece);
                got.extend(drain(&mut f));
            }
            assert_eq!(got.len(), 2, "chunk {chunk}");
        }
    }

    #[test]
    fn stream_oversize_closes_or_skips() {
        let mut big = msg(MsgType::Write, 7, &vec![b'a'; 4097]);
        big.extend(msg(MsgType::Read, 8, b"/a\0"));
        let mut c = StreamFramer::new(C_DOM0);
        c.feed(&big);
        assert_eq!(c.next_input(), Some(Input::Close));
        let mut ox = StreamFramer::new(StreamRules {
            hold_empty: false,
            ..OX_DOM0
        });
        ox.feed(&big[..100]);
        let got = drain(&mut ox);
        assert!(matches!(&got[..], [Input::Reject(m)] if m.req_id == 7 && m.payload == b"E2BIG\0"));
        ox.feed(&big[100..]);
        let got = drain(&mut ox);
        assert!(matches!(&got[..], [Input::Request(m)] if m.req_id == 8));
    }

    #[test]
    fn stream_holds_empty_requests_until_more_bytes() {
        let mut f = StreamFramer::new(OX_DOM0);
        f.feed(&msg(MsgType::TransactionStart, 1, b""));
        assert_eq!(f.next_input(), None);
        f.feed(&msg(MsgType::Read, 2, b"/a\0")[..1]);
        assert!(matches!(f.next_input(), Some(Input::Request(m)) if m.req_id == 1));
    }

    #[test]
    fn device_keeps_first_message_of_a_write_only() {
        let mut d = DeviceFramer::default();
        let mut two = msg(MsgType::Read, 1, b"/a\0");
        two.extend(msg(MsgType::Read, 2, b"/b\0"));
        assert!(matches!(d.write(&two, two.len()), Some(Input::Request(m)) if m.req_id == 1));
        // Partial writes accumulate.
        let one = msg(MsgType::Read, 3, b"/c\0");
        assert_eq!(d.write(&one[..5], 5), None);
        assert_eq!(d.write(&one[5..17], 12), None);
        assert!(matches!(d.write(&one[17..], one.len() - 17), Some(Input::Request(m)) if m.req_id == 3));
    }

    #[test]
    fn device_limits() {
        let mut d = DeviceFramer::default();
        let big = msg(MsgType::Write, 4, &vec![b'a'; 4081]);
        assert!(matches!(d.write(&big[..16], 16), Some(Input::Reject(m)) if m.payload == b"E2BIG\0" && m.req_id == 4));
        assert!(
            matches!(d.write(&big, big.len()), Some(Input::Reject(m)) if m.payload == b"EINVAL\0" && m.req_id == 4)
        );
        let ok = msg(MsgType::Write, 5, &vec![b'a'; 4080]);
        assert!(matches!(d.write(&ok, ok.len()), Some(Input::Request(m)) if m.req_id == 5));
    }
}
