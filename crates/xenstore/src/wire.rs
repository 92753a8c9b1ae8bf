//! The XenStore wire format: the 16-byte header, message types, error names and
//! payload helpers. Pure data in, data out: no I/O here.
//!
//! A message is a header of four little-endian `u32` (`type`, `req_id`, `tx_id`,
//! `len`) followed by `len` bytes of payload. Payloads are mostly NUL-terminated
//! strings; values are raw bytes.

use std::fmt;

/// Size of the message header in bytes.
pub const HEADER_LEN: usize = 16;
/// Largest payload a client may send, and a daemon must accept, on a socket.
pub const PAYLOAD_MAX: usize = 4096;
/// Largest payload accepted by the Linux `/dev/xen/xenbus` device (4096 including the header).
pub const DEVICE_PAYLOAD_MAX: usize = PAYLOAD_MAX - HEADER_LEN;
/// Largest payload this crate accepts when *reading*: oxenstored sends oversize
/// `DIRECTORY` replies, so replies are read leniently up to this cap.
pub const READ_PAYLOAD_CAP: usize = 64 * 1024;
/// Longest absolute path.
pub const ABS_PATH_MAX: usize = 3072;
/// Longest relative path (and the part of an absolute path below a domain's home).
pub const REL_PATH_MAX: usize = 2048;

/// Message types (`xs_wire.h`). Unknown numbers are kept, not rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// 0: daemon control (privileged).
    Control,
    /// 1: list the children of a node.
    Directory,
    /// 2: read a value.
    Read,
    /// 3: read the permissions of a node.
    GetPerms,
    /// 4: register a watch.
    Watch,
    /// 5: remove a watch.
    Unwatch,
    /// 6: start a transaction.
    TransactionStart,
    /// 7: commit (`T`) or abort (`F`) a transaction.
    TransactionEnd,
    /// 8: introduce a domain (privileged).
    Introduce,
    /// 9: release a domain (privileged).
    Release,
    /// 10: the home path of a domain.
    GetDomainPath,
    /// 11: write a value, creating missing parents.
    Write,
    /// 12: create a node if missing.
    Mkdir,
    /// 13: remove a node and its children.
    Rm,
    /// 14: set the permissions of a node.
    SetPerms,
    /// 15: a watch fired (daemon to client only).
    WatchEvent,
    /// 16: an error reply (daemon to client only).
    Error,
    /// 17: is a domain introduced (privileged).
    IsDomainIntroduced,
    /// 18: resume a domain (privileged).
    Resume,
    /// 19: set a target domain (privileged).
    SetTarget,
    /// 21: drop all watches and transactions of the connection.
    ResetWatches,
    /// 22: one chunk of a large directory listing.
    DirectoryPart,
    /// Any other number.
    Unknown(u32),
}

impl MsgType {
    /// The number carried in the header.
    pub fn code(self) -> u32 {
        match self {
            MsgType::Control => 0,
            MsgType::Directory => 1,
            MsgType::Read => 2,
            MsgType::GetPerms => 3,
            MsgType::Watch => 4,
            MsgType::Unwatch => 5,
            MsgType::TransactionStart => 6,
            MsgType::TransactionEnd => 7,
            MsgType::Introduce => 8,
            MsgType::Release => 9,
            MsgType::GetDomainPath => 10,
            MsgType::Write => 11,
            MsgType::Mkdir => 12,
            MsgType::Rm => 13,
            MsgType::SetPerms => 14,
            MsgType::WatchEvent => 15,
            MsgType::Error => 16,
            MsgType::IsDomainIntroduced => 17,
            MsgType::Resume => 18,
            MsgType::SetTarget => 19,
            MsgType::ResetWatches => 21,
            MsgType::DirectoryPart => 22,
            MsgType::Unknown(n) => n,
        }
    }

    /// The type for a header number.
    pub fn from_code(code: u32) -> MsgType {
        match code {
            0 => MsgType::Control,
            1 => MsgType::Directory,
            2 => MsgType::Read,
            3 => MsgType::GetPerms,
            4 => MsgType::Watch,
            5 => MsgType::Unwatch,
            6 => MsgType::TransactionStart,
            7 => MsgType::TransactionEnd,
            8 => MsgType::Introduce,
            9 => MsgType::Release,
            10 => MsgType::GetDomainPath,
            11 => MsgType::Write,
            12 => MsgType::Mkdir,
            13 => MsgType::Rm,
            14 => MsgType::SetPerms,
            15 => MsgType::WatchEvent,
            16 => MsgType::Error,
            17 => MsgType::IsDomainIntroduced,
            18 => MsgType::Resume,
            19 => MsgType::SetTarget,
            21 => MsgType::ResetWatches,
            22 => MsgType::DirectoryPart,
            n => MsgType::Unknown(n),
        }
    }
}

/// The fixed message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub kind: MsgType,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside a transaction.
    pub tx_id: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// Encodes the header as 16 little-endian bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.kind.code().to_le_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_le_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_le_bytes());
        out[12..16].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Decodes a header from exactly 16 bytes.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Header {
            kind: MsgType::from_code(word(0)),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        }
    }
}

/// A whole message: header fields plus payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Message type.
    pub kind: MsgType,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Message {
    /// Builds a message.
    pub fn new(kind: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message {
            kind,
            req_id,
            tx_id,
            payload,
        }
    }

    /// The header for this message. Payloads longer than `u32::MAX` cannot be built
    /// by this crate (they are capped far lower), so the length always fits.
    pub fn header(&self) -> Header {
        Header {
            kind: self.kind,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
        }
    }

    /// Header and payload as one buffer, ready for a single `write()`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&self.header().encode());
        out.extend_from_slice(&self.payload);
        out
    }
}

/// Incremental frame decoder: feed it bytes as they arrive (in any chunking) and
/// take out complete messages. A message longer than the cap is reported once
/// and its payload skipped as it arrives, so the stream stays in sync.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    cap: usize,
    /// Bytes of an oversize payload still to be dropped as they arrive.
    skip: usize,
}

/// A header announced a payload larger than the decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oversize {
    /// The announced length.
    pub len: u32,
    /// The decoder's limit.
    pub cap: usize,
    /// The message's type.
    pub kind: MsgType,
    /// The message's request id (what the reply answers).
    pub req_id: u32,
    /// Whether the payload is skipped and decoding goes on after it; a length
    /// beyond [`SKIP_MAX`] is taken for garbage: the stream is out of sync.
    pub skipped: bool,
}

/// Longest oversize payload a decoder skips rather than giving up.
pub const SKIP_MAX: usize = 16 * 1024 * 1024;

impl fmt::Display for Oversize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "message payload of {} bytes exceeds the limit of {}",
            self.len, self.cap
        )
    }
}

impl std::error::Error for Oversize {}

impl Decoder {
    /// A decoder that refuses payloads longer than `cap`.
    pub fn new(cap: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            cap,
            skip: 0,
        }
    }

    /// Appends received bytes (dropping what is left of an oversize payload).
    pub fn feed(&mut self, bytes: &[u8]) {
        let dropped = self.skip.min(bytes.len());
        self.skip -= dropped;
        self.buf.extend_from_slice(&bytes[dropped..]);
    }

    /// Forgets a partly skipped message: on a packet transport, the rest of an
    /// oversize message was truncated by the read and will never arrive.
    pub fn end_of_packet(&mut self) {
        if self.skip > 0 {
            self.skip = 0;
            self.buf.clear();
        }
    }

    /// Bytes buffered but not yet returned as messages.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The header of the message at the front, if 16 bytes have arrived.
    pub fn peek_header(&self) -> Option<Header> {
        let head: &[u8; HEADER_LEN] = self.buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header::decode(head))
    }

    /// Takes the next complete message, if any. An oversize message is an
    /// error, returned once: its payload is skipped and decoding goes on after
    /// it, unless the length is beyond [`SKIP_MAX`] (then nothing is consumed).
    pub fn next_message(&mut self) -> Result<Option<Message>, Oversize> {
        let Some(header) = self.peek_header() else {
            return Ok(None);
        };
        let len = header.len as usize;
        if len > self.cap {
            let oversize = Oversize {
                len: header.len,
                cap: self.cap,
                kind: header.kind,
                req_id: header.req_id,
                skipped: len <= SKIP_MAX,
            };
            if !oversize.skipped {
                return Err(oversize);
            }
            let whole = HEADER_LEN.saturating_add(len);
            let here = whole.min(self.buf.len());
            self.buf.drain(..here);
            self.skip = whole - here;
            return Err(oversize);
        }
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = self.buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        self.buf.drain(..HEADER_LEN + len);
        if self.buf.is_empty() {
            // A long reply does not keep its room once it is handled.
            self.buf.shrink_to(HEADER_LEN + PAYLOAD_MAX);
        }
        Ok(Some(Message::new(header.kind, header.req_id, header.tx_id, payload)))
    }
}

/// Error names a daemon sends in an `ERROR` reply. Unknown names are kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Invalid argument.
    Inval,
    /// Permission denied.
    Acces,
    /// Already exists (duplicate watch).
    Exist,
    /// Is a directory.
    Isdir,
    /// No such node (or parent, or transaction).
    Noent,
    /// Out of memory.
    Nomem,
    /// Quota exceeded (C xenstored) or node too large for a domain.
    Nospc,
    /// Internal error (oxenstored also uses it for stale transactions).
    Io,
    /// Not empty.
    Notempty,
    /// Unknown or unsupported message type.
    Nosys,
    /// Read-only.
    Rofs,
    /// Busy (nested transaction).
    Busy,
    /// Transaction conflict: re-run it.
    Again,
    /// Already connected.
    Isconn,
    /// Too big (value over oxenstored's limit, directory reply too large).
    TooBig,
    /// Operation not permitted.
    Perm,
    /// oxenstored quota error.
    Quota,
    /// A name this crate does not know.
    Other(String),
}

impl ErrorKind {
    /// The wire name, e.g. `ENOENT`.
    pub fn name(&self) -> &str {
        match self {
            ErrorKind::Inval => "EINVAL",
            ErrorKind::Acces => "EACCES",
            ErrorKind::Exist => "EEXIST",
            ErrorKind::Isdir => "EISDIR",
            ErrorKind::Noent => "ENOENT",
            ErrorKind::Nomem => "ENOMEM",
            ErrorKind::Nospc => "ENOSPC",
            ErrorKind::Io => "EIO",
            ErrorKind::Notempty => "ENOTEMPTY",
            ErrorKind::Nosys => "ENOSYS",
            ErrorKind::Rofs => "EROFS",
            ErrorKind::Busy => "EBUSY",
            ErrorKind::Again => "EAGAIN",
            ErrorKind::Isconn => "EISCONN",
            ErrorKind::TooBig => "E2BIG",
            ErrorKind::Perm => "EPERM",
            ErrorKind::Quota => "EQUOTA",
            ErrorKind::Other(name) => name,
        }
    }

    /// Parses a wire name (without the trailing NUL).
    pub fn from_name(name: &str) -> ErrorKind {
        match name {
            "EINVAL" => ErrorKind::Inval,
            "EACCES" => ErrorKind::Acces,
            "EEXIST" => ErrorKind::Exist,
            "EISDIR" => ErrorKind::Isdir,
            "ENOENT" => ErrorKind::Noent,
            "ENOMEM" => ErrorKind::Nomem,
            "ENOSPC" => ErrorKind::Nospc,
            "EIO" => ErrorKind::Io,
            "ENOTEMPTY" => ErrorKind::Notempty,
            "ENOSYS" => ErrorKind::Nosys,
            "EROFS" => ErrorKind::Rofs,
            "EBUSY" => ErrorKind::Busy,
            "EAGAIN" => ErrorKind::Again,
            "EISCONN" => ErrorKind::Isconn,
            "E2BIG" => ErrorKind::TooBig,
            "EPERM" => ErrorKind::Perm,
            "EQUOTA" => ErrorKind::Quota,
            other => ErrorKind::Other(other.to_string()),
        }
    }

    /// Parses the payload of an `ERROR` reply (`"ENOENT\0"`).
    pub fn from_payload(payload: &[u8]) -> ErrorKind {
        let name = payload.split(|&b| b == 0).next().unwrap_or_default();
        ErrorKind::from_name(&String::from_utf8_lossy(name))
    }

    /// The payload of an `ERROR` reply for this error.
    pub fn to_payload(&self) -> Vec<u8> {
        nul_terminated(self.name())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `s` followed by one NUL byte.
pub fn nul_terminated(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 1);
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    out
}

/// Joins strings as `a\0b\0...` (each one NUL-terminated).
pub fn join_nul<S: AsRef<str>>(parts: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part.as_ref().as_bytes());
        out.push(0);
    }
    out
}

/// Splits a payload of NUL-terminated strings. A final unterminated piece is kept;
/// an empty payload gives no strings.
pub fn split_nul(payload: &[u8]) -> Vec<&[u8]> {
    if payload.is_empty() {
        return Vec::new();
    }
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    body.split(|&b| b == 0).collect()
}

/// One permission entry: `<r|w|b|n><domid>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// The domain the entry is about (the first entry's domain owns the node).
    pub domid: u32,
    /// What that domain may do.
    pub access: Access,
}

/// Access letters in a permission entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The letter used on the wire.
    pub fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    /// Whether this grants reading.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this grants writing.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

impl Perm {
    /// Builds an entry.
    pub fn new(domid: u32, access: Access) -> Perm {
        Perm { domid, access }
    }

    /// Parses `r5`, `n0`, ... Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Perm> {
        let mut chars = s.chars();
        let access = match chars.next()? {
            'n' => Access::None,
            'r' => Access::Read,
            'w' => Access::Write,
            'b' => Access::Both,
            _ => return None,
        };
        let digits = chars.as_str();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Perm {
            domid: digits.parse().ok()?,
            access,
        })
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter(), self.domid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_little_endian() {
        let h = Header {
            kind: MsgType::Write,
            req_id: 0x0102_0304,
            tx_id: 7,
            len: 5,
        };
        let bytes = h.encode();
        assert_eq!(&bytes[0..4], &[11, 0, 0, 0]);
        assert_eq!(&bytes[4..8], &[4, 3, 2, 1]);
        assert_eq!(Header::decode(&bytes), h);
    }

    #[test]
    fn unknown_types_are_kept() {
        assert_eq!(MsgType::from_code(99), MsgType::Unknown(99));
        assert_eq!(MsgType::from_code(20), MsgType::Unknown(20));
        for code in 0..30 {
            assert_eq!(MsgType::from_code(code).code(), code);
        }
    }

    #[test]
    fn decoder_handles_every_chunking() {
        let a = Message::new(MsgType::Read, 1, 0, b"value".to_vec());
        let b = Message::new(MsgType::WatchEvent, 0, 0, b"a/b\0tok\0".to_vec());
        let c = Message::new(MsgType::Read, 2, 0, Vec::new());
        let mut stream = a.encode();
        stream.extend(b.encode());
        stream.extend(c.encode());
        for chunk in [1, 3, 7, 16, stream.len()] {
            let mut dec = Decoder::new(PAYLOAD_MAX);
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                dec.feed(piece);
                while let Some(m) = dec.next_message().expect("within cap") {
                    out.push(m);
                }
            }
            assert_eq!(out, vec![a.clone(), b.clone(), c.clone()], "chunk size {chunk}");
            assert_eq!(dec.pending(), 0);
        }
    }

    #[test]
    fn decoder_reports_an_oversize_message_once_and_skips_it() {
        let big = Message::new(MsgType::Read, 1, 0, vec![b'x'; 4097]);
        let next = Message::new(MsgType::Read, 2, 0, b"v".to_vec());
        let mut stream = big.encode();
        stream.extend(next.encode());
        for chunk in [1, 7, 16, 1000, stream.len()] {
            let mut dec = Decoder::new(PAYLOAD_MAX);
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                dec.feed(piece);
                loop {
                    match dec.next_message() {
                        Ok(Some(m)) => out.push(Ok(m)),
                        Ok(None) => break,
                        Err(e) => out.push(Err(e)),
                    }
                }
            }
            let oversize = Oversize {
                len: 4097,
                cap: PAYLOAD_MAX,
                kind: MsgType::Read,
                req_id: 1,
                skipped: true,
            };
            assert_eq!(out, vec![Err(oversize), Ok(next.clone())], "chunk size {chunk}");
            assert_eq!(dec.pending(), 0);
        }
        // A packet transport truncated the rest: it is forgotten.
        let mut dec = Decoder::new(PAYLOAD_MAX);
        dec.feed(&stream[..100]);
        assert!(dec.next_message().is_err());
        dec.end_of_packet();
        dec.feed(&next.encode());
        assert_eq!(dec.next_message(), Ok(Some(next)));
        // A length no daemon sends: garbage, nothing consumed.
        let mut dec = Decoder::new(PAYLOAD_MAX);
        let h = Header {
            kind: MsgType::Write,
            req_id: 1,
            tx_id: 0,
            len: u32::MAX,
        };
        dec.feed(&h.encode());
        assert!(matches!(dec.next_message(), Err(o) if !o.skipped));
        assert_eq!(dec.pending(), HEADER_LEN);
    }

    #[test]
    fn error_names_round_trip() {
        for name in ["ENOENT", "EACCES", "EAGAIN", "E2BIG", "EQUOTA", "EWHATEVER"] {
            let kind = ErrorKind::from_payload(&nul_terminated(name));
            assert_eq!(kind.name(), name);
        }
        assert_eq!(ErrorKind::from_name("EQUOTA"), ErrorKind::Quota);
        assert_eq!(ErrorKind::from_name("EX"), ErrorKind::Other("EX".into()));
    }

    #[test]
    fn split_nul_keeps_empty_and_binary_pieces() {
        assert!(split_nul(b"").is_empty());
        assert_eq!(split_nul(b"a\0b\0"), vec![&b"a"[..], &b"b"[..]]);
        assert_eq!(split_nul(b"a\0\0"), vec![&b"a"[..], &b""[..]]);
        assert_eq!(split_nul(b"x"), vec![&b"x"[..]]);
    }

    #[test]
    fn perms_parse_and_print() {
        let p = Perm::parse("r5").expect("valid");
        assert_eq!(p, Perm::new(5, Access::Read));
        assert_eq!(p.to_string(), "r5");
        assert_eq!(Perm::parse("b0").map(|p| p.access), Some(Access::Both));
        for bad in ["", "x1", "r", "r-1", "r1a"] {
            assert_eq!(Perm::parse(bad), None, "{bad}");
        }
    }
}
