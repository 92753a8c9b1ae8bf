//! Thin, safe wrappers over the few syscalls the client and the simulator need
//! and `std` does not offer: `SOCK_SEQPACKET` sockets, `poll(2)`, `eventfd(2)`
//! and `send`/`recv` with `MSG_NOSIGNAL`/`MSG_TRUNC`. Nothing here knows
//! XenStore.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Socket flavour of a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SockType {
    /// Byte stream (xenstored socket).
    Stream,
    /// One message per packet (`/dev/xen/xenbus` emulation).
    SeqPacket,
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[cfg(feature = "sim")]
fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

fn sockaddr(path: &Path) -> io::Result<libc::sockaddr_un> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long or contains NUL",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(addr)
}

fn socket(kind: SockType, flags: libc::c_int) -> io::Result<OwnedFd> {
    let ty = match kind {
        SockType::Stream => libc::SOCK_STREAM,
        SockType::SeqPacket => libc::SOCK_SEQPACKET,
    };
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = cvt(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC | flags, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

const SOCKADDR_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;

/// A socket of `kind` connected to `path` (an interrupted connect is retried).
pub(crate) fn connect_unix(path: &Path, kind: SockType) -> io::Result<OwnedFd> {
    let fd = socket(kind, 0)?;
    let addr = sockaddr(path)?;
    loop {
        // SAFETY: `addr` is a properly initialised sockaddr_un of SOCKADDR_LEN bytes.
        let rc = unsafe { libc::connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), SOCKADDR_LEN) };
        if rc == 0 {
            return Ok(fd);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(feature = "sim")]
/// Whether a socket file is left over from a dead server: connecting is
/// refused. A live server (or a socket of the other type) is not stale.
fn is_stale_socket(path: &Path, kind: SockType) -> io::Result<bool> {
    let addr = sockaddr(path)?;
    let fd = socket(kind, 0)?;
    // SAFETY: `addr` is a valid sockaddr_un of SOCKADDR_LEN bytes.
    let ret = unsafe { libc::connect(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), SOCKADDR_LEN) };
    Ok(ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECONNREFUSED))
}

#[cfg(feature = "sim")]
/// Creates a listening, non-blocking, close-on-exec Unix socket at `path` with
/// mode 0600. A stale socket file at `path` (nobody listening) is replaced; a
/// live one, or any other kind of file, makes it fail (`EADDRINUSE`).
pub(crate) fn listen_unix(path: &Path, kind: SockType) -> io::Result<OwnedFd> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() && is_stale_socket(path, kind)? {
            std::fs::remove_file(path)?;
        }
    }
    let addr = sockaddr(path)?;
    let fd = socket(kind, libc::SOCK_NONBLOCK)?;
    // SAFETY: `addr` is a valid sockaddr_un of SOCKADDR_LEN bytes that outlives the call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), SOCKADDR_LEN) })?;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `cpath` is a valid NUL-terminated string.
    cvt(unsafe { libc::chmod(cpath.as_ptr(), 0o600) })?;
    // SAFETY: listen(2) on a descriptor we own.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 128) })?;
    Ok(fd)
}

#[cfg(feature = "sim")]
/// Accepts one pending connection (non-blocking, close-on-exec). `Ok(None)` when
/// none is pending.
pub(crate) fn accept(listener: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    // SAFETY: null address pointers are allowed by accept4(2).
    let ret = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        )
    };
    if ret < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ if err.raw_os_error() == Some(libc::ECONNABORTED) => Ok(None),
            _ => Err(err),
        };
    }
    // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(ret) }))
}

#[cfg(feature = "sim")]
/// Result of a non-blocking receive.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recv {
    /// `n` bytes were stored; `full` is the real packet length (`>= n` when
    /// truncated; equal to `n` on streams).
    Data { n: usize, full: usize },
    /// Nothing to read right now.
    WouldBlock,
    /// Orderly shutdown by the peer (or an empty packet, see the caller).
    Eof,
}

#[cfg(feature = "sim")]
/// `recv(2)`; on packet sockets `MSG_TRUNC` reports the real packet length.
pub(crate) fn recv(fd: &OwnedFd, buf: &mut [u8], kind: SockType) -> io::Result<Recv> {
    let flags = match kind {
        SockType::Stream => 0,
        SockType::SeqPacket => libc::MSG_TRUNC,
    };
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let ret = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    match cvt_size(ret) {
        Ok(0) => Ok(Recv::Eof),
        Ok(full) => Ok(Recv::Data {
            n: full.min(buf.len()),
            full,
        }),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(Recv::WouldBlock),
        Err(e) => Err(e),
    }
}

#[cfg(feature = "sim")]
/// `send(2)` with `MSG_NOSIGNAL` (a vanished peer is an error, not SIGPIPE).
/// `Ok(None)` when the socket buffer is full.
pub(crate) fn send(fd: &OwnedFd, buf: &[u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    let ret = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    match cvt_size(ret) {
        Ok(n) => Ok(Some(n)),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(feature = "sim")]
/// Shuts both directions of a socket down, so the peer sees EOF even if another
/// copy of the descriptor were still open.
pub(crate) fn shutdown_both(fd: &OwnedFd) {
    // SAFETY: shutdown(2) on a descriptor we own; errors are irrelevant here.
    unsafe {
        libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR);
    }
}

/// A wake-up channel for a thread blocked in [`poll`].
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    /// A non-blocking, close-on-exec eventfd.
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: plain eventfd(2) call; the result is checked before use.
        let raw = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    /// Makes the descriptor readable.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64. A full counter (EAGAIN) still
        // leaves the descriptor readable, which is all we need.
        unsafe {
            libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    #[cfg(feature = "sim")]
    /// Clears the readable state.
    pub(crate) fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a valid u64.
        unsafe {
            libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
        }
    }

    /// The raw descriptor, for [`poll`].
    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(feature = "sim")]
/// A `pollfd` entry.
pub(crate) fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd { fd, events, revents: 0 }
}

#[cfg(feature = "sim")]
/// `poll(2)`; an interrupted call counts as a timeout. `timeout_ms < 0` waits
/// forever.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    Ok(ret as usize)
}
