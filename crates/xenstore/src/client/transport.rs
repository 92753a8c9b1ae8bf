//! The byte pipe under a client: a Unix stream socket, a `SOCK_SEQPACKET`
//! socket (the simulator's device emulation), or the xenbus character device.
//!
//! Rules enforced here:
//! - every message goes out in one `write()`/`send()` (header and payload in one
//!   buffer); short writes and `EINTR` are retried only on stream sockets, where
//!   continuing a message in a second write is legal;
//! - reads never ask for 0 bytes;
//! - nothing ever waits for `POLLOUT` (the device never signals it).

use crate::sys::{self, EventFd, SockType};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// How bytes move over the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `SOCK_STREAM` socket to xenstored (dom0 rules).
    Stream,
    /// `SOCK_SEQPACKET` socket emulating the device (device rules, but reconnectable).
    SeqPacket,
    /// `/dev/xen/xenbus` or `/proc/xen/xenbus` (device rules, never reconnects).
    Device,
}

/// One open connection. Reading is done by the reader thread only; writes are
/// serialised by the caller (see `conn.rs`).
#[derive(Debug)]
pub(crate) struct Transport {
    fd: OwnedFd,
    kind: Kind,
}

impl Transport {
    /// Opens `path`: a socket is connected (stream, or seqpacket after
    /// `EPROTOTYPE`), anything else is opened as the xenbus device.
    pub(crate) fn open(path: &Path) -> io::Result<Transport> {
        let meta = std::fs::metadata(path)?;
        if meta.file_type().is_socket() {
            return connect_socket(path);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(Transport {
            fd: OwnedFd::from(file),
            kind: Kind::Device,
        })
    }

    /// Which kind of pipe this is.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether device rules apply (4080-byte payloads, kernel watch semantics).
    pub(crate) fn is_device(&self) -> bool {
        self.kind != Kind::Stream
    }

    /// The descriptor, for `poll`.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one whole message. On the device and on seqpacket sockets this is
    /// exactly one system call; an `EINTR` there is retried as a whole (nothing was
    /// consumed) but a short write is an error.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<()> {
        let mut off = 0;
        while off < buf.len() {
            let rest = &buf[off..];
            // SAFETY: `rest` is a valid readable slice for its whole length and the
            // descriptor is owned by `self` for the duration of the call.
            let n = unsafe {
                match self.kind {
                    Kind::Device => libc::write(self.raw_fd(), rest.as_ptr().cast(), rest.len()),
                    _ => libc::send(self.raw_fd(), rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL),
                }
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted && (self.kind == Kind::Stream || off == 0) {
                    continue;
                }
                return Err(err);
            }
            // n >= 0 was checked just above.
            off += n as usize;
            if self.kind != Kind::Stream && off < buf.len() {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "short write of a message"));
            }
        }
        Ok(())
    }

    /// Reads what is available into `buf` (which must not be empty). `Ok(0)` is EOF.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            // Never read(fd, 0): the device spins on it.
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty read buffer"));
        }
        loop {
            // SAFETY: `buf` is a valid writable slice for its whole length.
            let n = unsafe { libc::read(self.raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

fn connect_socket(path: &Path) -> io::Result<Transport> {
    match sys::connect_unix(path, SockType::Stream) {
        Ok(fd) => Ok(Transport { fd, kind: Kind::Stream }),
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => Ok(Transport {
            fd: sys::connect_unix(path, SockType::SeqPacket)?,
            kind: Kind::SeqPacket,
        }),
        Err(e) => Err(e),
    }
}

/// Wakes the reader thread (shutdown): readable for good once signalled
/// (it is never drained).
pub(crate) type Waker = EventFd;

/// What `wait` saw.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// The waker fired: shut down.
    Woken,
    /// The transport is readable (or hung up / in error: a read will tell).
    Readable,
    /// The timeout passed.
    TimedOut,
}

/// Polls the waker and optionally a transport for input. `timeout_ms < 0` waits forever.
pub(crate) fn wait(waker: &Waker, conn: Option<&Transport>, timeout_ms: i32) -> io::Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: waker.raw(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: conn.map_or(-1, Transport::raw_fd),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let nfds = if conn.is_some() { 2 } else { 1 };
    loop {
        // SAFETY: `fds` is a valid array of `nfds` pollfd entries.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if fds[0].revents != 0 {
            return Ok(Ready::Woken);
        }
        if rc > 0 && fds[1].revents != 0 {
            return Ok(Ready::Readable);
        }
        if rc == 0 {
            return Ok(Ready::TimedOut);
        }
    }
}
