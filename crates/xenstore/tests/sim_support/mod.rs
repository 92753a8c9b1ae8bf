//! Test support for the simulator tests: a raw protocol peer that writes
//! headers and payloads itself (stream sockets and the device's packet socket),
//! and a temp directory holding a started simulator.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xenstore::sim::{Config, Simulator};
use xenstore::wire::{Decoder, Header, Message, MsgType, HEADER_LEN, READ_PAYLOAD_CAP};

/// How long a test waits for an expected reply or event.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test waits to be sure something does *not* arrive.
pub const QUIET: Duration = Duration::from_millis(150);

/// A simulator with a dom0 socket, a guest socket and a guest device for
/// domain 5, in its own temp directory.
pub struct Rig {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
}

impl Rig {
    pub fn new(config: Config) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = Simulator::new(config);
        sim.listen_dom0(&dir.path().join("dom0")).expect("dom0 socket");
        sim.add_guest(5, &dir.path().join("guest5")).expect("guest socket");
        sim.add_guest_device(5, &dir.path().join("dev5")).expect("guest device");
        Rig { sim, dir }
    }

    pub fn c() -> Rig {
        Rig::new(Config::default())
    }

    pub fn ox() -> Rig {
        Rig::new(Config::oxenstored_like())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dom0(&self) -> Peer {
        Peer::stream(&self.path("dom0"))
    }

    pub fn guest(&self) -> Peer {
        Peer::stream(&self.path("guest5"))
    }

    pub fn device(&self) -> Peer {
        Peer::device(&self.path("dev5"))
    }
}

enum Sock {
    Stream(UnixStream),
    Packet(OwnedFd),
}

/// A raw client. Events received while waiting for a reply are kept in
/// `events` for later inspection.
pub struct Peer {
    sock: Sock,
    dec: Decoder,
    next_req: u32,
    pub events: Vec<Message>,
}

/// Connects a `SOCK_SEQPACKET` socket.
fn connect_packet(path: &Path) -> OwnedFd {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: plain socket(2) call; checked below.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_un is plain old data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
    let ret = unsafe { libc::connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) };
    assert_eq!(ret, 0, "connect: {}", std::io::Error::last_os_error());
    fd
}

impl Peer {
    pub fn stream(path: &Path) -> Peer {
        let s = UnixStream::connect(path).expect("connect");
        Peer::new(Sock::Stream(s))
    }

    pub fn device(path: &Path) -> Peer {
        Peer::new(Sock::Packet(connect_packet(path)))
    }

    fn new(sock: Sock) -> Peer {
        Peer {
            sock,
            dec: Decoder::new(READ_PAYLOAD_CAP),
            next_req: 100,
            events: Vec::new(),
        }
    }

    /// Sends raw bytes (one packet on the device).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.sock {
            Sock::Stream(s) => s.write_all(bytes).expect("write"),
            Sock::Packet(fd) => {
                // SAFETY: `bytes` is valid for reads of its length.
                let n = unsafe { libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
                assert_eq!(n, bytes.len() as isize, "send: {}", std::io::Error::last_os_error());
            }
        }
    }

    /// Sends raw bytes, reporting failure (a closed connection) instead of
    /// panicking.
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> bool {
        match &mut self.sock {
            Sock::Stream(s) => s.write_all(bytes).is_ok(),
            Sock::Packet(fd) => {
                // SAFETY: `bytes` is valid for reads of its length.
                let n = unsafe { libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
                n >= 0
            }
        }
    }

    /// Sends a request and returns its req_id.
    pub fn send(&mut self, kind: MsgType, tx: u32, payload: &[u8]) -> u32 {
        self.next_req += 1;
        let req = self.next_req;
        self.send_raw(&Message::new(kind, req, tx, payload.to_vec()).encode());
        req
    }

    /// Waits for the next message; `None` on timeout, panics on EOF.
    pub fn recv_timeout(&mut self, wait: Duration) -> Option<Message> {
        match self.recv_or_eof(wait) {
            Ok(m) => m,
            Err(()) => panic!("connection closed by the simulator"),
        }
    }

    /// Next message, `Ok(None)` on timeout, `Err(())` on EOF.
    pub fn recv_or_eof(&mut self, wait: Duration) -> Result<Option<Message>, ()> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(m) = self.dec.next_message().expect("reply within cap") {
                return Ok(Some(m));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut buf = vec![0u8; READ_PAYLOAD_CAP + HEADER_LEN];
            let n = match &mut self.sock {
                Sock::Stream(s) => {
                    s.set_read_timeout(Some(left)).expect("timeout");
                    match s.read(&mut buf) {
                        Ok(n) => n,
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                            continue
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                        Err(e) => panic!("read: {e}"),
                    }
                }
                Sock::Packet(fd) => {
                    let mut p = libc::pollfd {
                        fd: fd.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    let ms = left.as_millis().clamp(1, 60_000) as i32;
                    // SAFETY: one valid pollfd.
                    if unsafe { libc::poll(&mut p, 1, ms) } <= 0 {
                        continue;
                    }
                    // SAFETY: `buf` is valid for writes of its length.
                    let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                    if r < 0 {
                        panic!("recv: {}", std::io::Error::last_os_error());
                    }
                    let n = r as usize;
                    if n > 0 {
                        let h = Header::decode(buf[..HEADER_LEN].try_into().expect("header"));
                        assert_eq!(n, HEADER_LEN + h.len as usize, "one message per packet");
                    }
                    n
                }
            };
            if n == 0 {
                return Err(());
            }
            self.dec.feed(&buf[..n]);
        }
    }

    /// Whether the simulator closed the connection (EOF within `wait`).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self.recv_or_eof(Duration::from_millis(50)) {
                Err(()) => return true,
                Ok(Some(m)) => self.events.push(m),
                Ok(None) => {}
            }
        }
        false
    }

    /// The reply to `req`; events that arrive first are kept in `events`.
    pub fn reply_to(&mut self, req: u32) -> Message {
        loop {
            let m = self.recv_timeout(WAIT).expect("reply in time");
            if m.kind == MsgType::WatchEvent {
                self.events.push(m);
                continue;
            }
            assert_eq!(m.req_id, req, "reply to another request: {m:?}");
            return m;
        }
    }

    /// Sends a request and waits for its reply.
    pub fn request(&mut self, kind: MsgType, tx: u32, payload: &[u8]) -> Message {
        let req = self.send(kind, tx, payload);
        let m = self.reply_to(req);
        assert!(m.kind == kind || m.kind == MsgType::Error, "reply type {m:?}");
        m
    }

    /// The payload on success, the error name otherwise.
    pub fn call(&mut self, kind: MsgType, tx: u32, payload: &[u8]) -> Result<Vec<u8>, String> {
        let m = self.request(kind, tx, payload);
        if m.kind == MsgType::Error {
            let name = m.payload.strip_suffix(b"\0").unwrap_or(&m.payload);
            return Err(String::from_utf8_lossy(name).into_owned());
        }
        Ok(m.payload)
    }

    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.call(MsgType::Read, 0, &nul(path))
    }

    pub fn read_tx(&mut self, tx: u32, path: &str) -> Result<Vec<u8>, String> {
        self.call(MsgType::Read, tx, &nul(path))
    }

    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), String> {
        self.write_tx(0, path, value)
    }

    pub fn write_tx(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), String> {
        let mut p = nul(path);
        p.extend_from_slice(value);
        self.call(MsgType::Write, tx, &p).map(|ok| assert_eq!(ok, b"OK\0"))
    }

    pub fn rm(&mut self, path: &str) -> Result<(), String> {
        self.call(MsgType::Rm, 0, &nul(path)).map(drop)
    }

    pub fn mkdir(&mut self, path: &str) -> Result<(), String> {
        self.call(MsgType::Mkdir, 0, &nul(path)).map(drop)
    }

    pub fn dir(&mut self, path: &str) -> Result<Vec<String>, String> {
        self.call(MsgType::Directory, 0, &nul(path)).map(|p| strings(&p))
    }

    pub fn get_perms(&mut self, path: &str) -> Result<Vec<String>, String> {
        self.call(MsgType::GetPerms, 0, &nul(path)).map(|p| strings(&p))
    }

    pub fn set_perms(&mut self, path: &str, perms: &[&str]) -> Result<(), String> {
        let mut p = nul(path);
        for perm in perms {
            p.extend(nul(perm));
        }
        self.call(MsgType::SetPerms, 0, &p).map(drop)
    }

    /// Registers a watch and consumes its initial event.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), String> {
        self.watch_no_initial(path, token)?;
        let ev = self.event().expect("initial event");
        assert_eq!(ev, (path.to_string(), token.to_string()), "initial event");
        Ok(())
    }

    /// Registers a watch, leaving its initial event in the queue.
    pub fn watch_no_initial(&mut self, path: &str, token: &str) -> Result<(), String> {
        let mut p = nul(path);
        p.extend(nul(token));
        self.call(MsgType::Watch, 0, &p).map(drop)
    }

    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), String> {
        let mut p = nul(path);
        p.extend(nul(token));
        self.call(MsgType::Unwatch, 0, &p).map(drop)
    }

    pub fn start(&mut self) -> u32 {
        let id = self.call(MsgType::TransactionStart, 0, b"\0").expect("start");
        strings(&id)[0].parse().expect("decimal id")
    }

    pub fn end(&mut self, tx: u32, commit: bool) -> Result<(), String> {
        let body: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.call(MsgType::TransactionEnd, tx, body).map(drop)
    }

    /// The next watch event as (path, token), within [`WAIT`].
    pub fn event(&mut self) -> Option<(String, String)> {
        self.event_within(WAIT)
    }

    pub fn event_within(&mut self, wait: Duration) -> Option<(String, String)> {
        let m = self.event_msg_within(wait)?;
        let parts = strings(&m.payload);
        Some((parts[0].clone(), parts[1].clone()))
    }

    /// The next raw watch event message.
    pub fn event_msg_within(&mut self, wait: Duration) -> Option<Message> {
        if !self.events.is_empty() {
            return Some(self.events.remove(0));
        }
        let m = self.recv_timeout(wait)?;
        assert_eq!(m.kind, MsgType::WatchEvent, "expected an event, got {m:?}");
        Some(m)
    }

    /// Asserts that no event arrives for a short while.
    pub fn no_event(&mut self) {
        let got = self.event_within(QUIET);
        assert_eq!(got, None, "unexpected event");
    }
}

/// `s` + NUL.
pub fn nul(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// NUL-terminated strings of a payload, lossily decoded.
pub fn strings(payload: &[u8]) -> Vec<String> {
    xenstore::wire::split_nul(payload)
        .into_iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}
