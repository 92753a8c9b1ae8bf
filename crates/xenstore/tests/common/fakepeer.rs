//! A scripted xenstored for client unit tests: a listening Unix socket (stream,
//! or seqpacket to get the client's device rules) and an accepted peer whose
//! every byte the test chooses.
#![allow(dead_code)]

use std::io::{ErrorKind as IoKind, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xenstore::wire::{Decoder, Header, Message, MsgType, HEADER_LEN};
use xenstore::{Client, Watch, WatchEvent};

/// Runs `call` on a client thread while `script` plays the daemon.
pub fn with_peer<T: Send>(peer: &mut Peer, call: impl FnOnce() -> T + Send, script: impl FnOnce(&mut Peer)) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(call);
        script(peer);
        h.join().expect("client thread")
    })
}

/// A client connected to `l`, and the peer it talks to.
pub fn connect(l: &Listener) -> (Client, Peer) {
    let c = Client::connect(l.path()).expect("connect");
    c.set_timeout(Some(Duration::from_secs(5)));
    let p = l.accept();
    (c, p)
}

/// Registers a watch, answering the WATCH and sending the initial event;
/// returns the watch (its initial event received) and its token.
pub fn watch(c: &Client, p: &mut Peer, path: &str) -> (Watch, String) {
    let mut token = String::new();
    let w = with_peer(
        p,
        || c.watch(path).expect("watch"),
        |p| {
            let m = p.recv();
            assert_eq!(m.kind, MsgType::Watch);
            let (wp, tok) = watch_args(&m);
            assert_eq!(wp, path);
            p.reply(&m, b"OK\0");
            p.event(path, &tok, 0, 0);
            token = tok;
        },
    );
    assert_eq!(
        w.recv_timeout(Duration::from_secs(5)).expect("live"),
        Some(WatchEvent::Changed(path.into()))
    );
    (w, token)
}

/// A listening socket in a temporary directory.
pub struct Listener {
    listener: UnixListener,
    path: PathBuf,
    seqpacket: bool,
    _dir: tempfile::TempDir,
}

fn seqpacket_listener(path: &Path) -> UnixListener {
    // SAFETY: plain socket(2); checked below.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_un is plain data; zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + path.as_os_str().len() + 1;
    let fdn = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // SAFETY: valid address of `len` bytes; our own descriptor.
    let rc = unsafe { libc::bind(fdn, (&addr as *const libc::sockaddr_un).cast(), len as u32) };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    // SAFETY: listen on our own bound socket.
    assert_eq!(unsafe { libc::listen(fdn, 16) }, 0);
    UnixListener::from(fd)
}

impl Listener {
    /// A `SOCK_STREAM` listener: the client uses dom0 socket rules.
    pub fn stream() -> Listener {
        Listener::new(false)
    }

    /// A `SOCK_SEQPACKET` listener: the client uses device rules.
    pub fn seqpacket() -> Listener {
        Listener::new(true)
    }

    fn new(seqpacket: bool) -> Listener {
        Listener::reopen(tempfile::tempdir().expect("tempdir"), seqpacket)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops listening and removes the socket file (reconnects now fail).
    pub fn close(self) -> tempfile::TempDir {
        let _ = std::fs::remove_file(&self.path);
        self._dir
    }

    /// Listens again on the same path.
    pub fn reopen(dir: tempfile::TempDir, seqpacket: bool) -> Listener {
        let path = dir.path().join("sock");
        let listener = if seqpacket {
            seqpacket_listener(&path)
        } else {
            UnixListener::bind(&path).expect("bind")
        };
        Listener {
            listener,
            path,
            seqpacket,
            _dir: dir,
        }
    }

    pub fn accept(&self) -> Peer {
        let (s, _) = self.listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        Peer {
            s,
            dec: Decoder::new(1 << 20),
            seqpacket: self.seqpacket,
        }
    }
}

/// Header and payload bytes.
pub fn frame(kind: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        kind,
        req_id,
        tx_id,
        len: payload.len() as u32,
    };
    let mut out = h.encode().to_vec();
    out.extend_from_slice(payload);
    out
}

/// The daemon side of one connection.
pub struct Peer {
    s: UnixStream,
    dec: Decoder,
    seqpacket: bool,
}

impl Peer {
    /// The next request, or `None` after `d`. On seqpacket, every packet must hold
    /// exactly one whole message (the device's one-message-per-write rule).
    pub fn try_recv(&mut self, d: Duration) -> Option<Message> {
        let deadline = Instant::now() + d;
        loop {
            if let Some(m) = self.dec.next_message().expect("sane frame") {
                return Some(m);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut buf = vec![0u8; 70_000];
            match self.s.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => {
                    if self.seqpacket {
                        assert!(n >= HEADER_LEN, "short packet");
                        let h = Header::decode(buf[..HEADER_LEN].try_into().expect("16"));
                        assert_eq!(n, HEADER_LEN + h.len as usize, "one message per write");
                    }
                    self.dec.feed(&buf[..n]);
                }
                Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {}
                Err(e) => panic!("peer read: {e}"),
            }
        }
    }

    pub fn recv(&mut self) -> Message {
        self.try_recv(Duration::from_secs(5))
            .expect("a request from the client")
    }

    /// Whether the client closed the connection within `d`.
    pub fn eof_within(&mut self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("peer write");
    }

    pub fn send(&mut self, kind: MsgType, req_id: u32, tx_id: u32, payload: &[u8]) {
        self.send_raw(&frame(kind, req_id, tx_id, payload));
    }

    /// Answers `req` with its own type, req_id and tx_id.
    pub fn reply(&mut self, req: &Message, payload: &[u8]) {
        self.send(req.kind, req.req_id, req.tx_id, payload);
    }

    /// Answers `req` with an ERROR.
    pub fn error(&mut self, req: &Message, name: &str) {
        let mut p = name.as_bytes().to_vec();
        p.push(0);
        self.send(MsgType::Error, req.req_id, req.tx_id, &p);
    }

    /// Sends a watch event.
    pub fn event(&mut self, path: &str, token: &str, req_id: u32, tx_id: u32) {
        let p = format!("{path}\0{token}\0");
        self.send(MsgType::WatchEvent, req_id, tx_id, p.as_bytes());
    }
}

/// The watch request's `(path, token)`.
pub fn watch_args(m: &Message) -> (String, String) {
    let s = String::from_utf8(m.payload.clone()).expect("utf8");
    let mut parts = s.split('\0');
    let path = parts.next().unwrap_or_default().to_string();
    let token = parts.next().unwrap_or_default().to_string();
    (path, token)
}
