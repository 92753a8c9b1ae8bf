//! The transports of the qga communicator: the one part that knows whether
//! the host is a virtio-serial port, a serial line or a listening socket.
//!
//! A device is opened once and kept open, as qemu-ga keeps it: while no host
//! client is connected, a virtio-serial port reports hang-up and reads
//! return 0, which means "nobody there yet", not end of file; the loop backs
//! off (100 ms, doubling to 1 s) instead of spinning. A listening socket
//! serves one client at a time. Replies are written whole, under one lock,
//! by whichever thread has one.

use super::{Method, PORT_NAME, SERIAL_PATH, SOCKET_NAME, VIRTIO_PATH};
use crate::communicator::Waker;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The longest a reply may wait for the host to take it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The first and the longest pause while no host is connected to a device.
const AWAY_FIRST: Duration = Duration::from_millis(100);
const AWAY_MAX: Duration = Duration::from_secs(1);

/// What one wait on the port gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// This many bytes were read into the buffer.
    Data(usize),
    /// The waker was called.
    Woken,
    /// Nothing before the timeout.
    Idle,
}

/// Where replies go: the device, or the client connected now.
type Out = Arc<Mutex<Option<Arc<OwnedFd>>>>;

/// Writes whole replies to the host.
#[derive(Clone)]
pub struct Replier {
    out: Out,
}

impl Replier {
    /// Writes `bytes` (one or more whole replies) to the host. With no host
    /// connected, the reply is dropped: nobody asked for it any more.
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(fd) = out.as_ref() else {
            return Ok(());
        };
        write_all(fd.as_fd(), bytes)
    }
}

/// The port and what waits on it.
pub struct Port {
    kind: Kind,
    out: Out,
    /// The read end of the waker's pipe, and its write end.
    wake_read: OwnedFd,
    wake_write: Arc<OwnedFd>,
    /// The pause while no host is connected to a device.
    away: Duration,
}

enum Kind {
    /// A character device, kept open.
    Device(Arc<OwnedFd>),
    /// A listening socket and the client being served, if any.
    Listener {
        listener: OwnedFd,
        client: Option<Arc<OwnedFd>>,
        path: Option<PathBuf>,
    },
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pipe::PipeFlags;
    Ok(rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?)
}

/// Waits for `events` on each descriptor; returns the revents, or `None` on
/// timeout. An interrupted wait counts as a timeout (the caller loops). The
/// timeout is counted in whole milliseconds, as poll(2) takes it.
fn poll(fds: &[(BorrowedFd<'_>, PollFlags)], timeout: Duration) -> io::Result<Option<Vec<PollFlags>>> {
    let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|(fd, events)| PollFd::new(fd, *events)).collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i64;
    let timeout = Timespec {
        tv_sec: ms / 1000,
        tv_nsec: ms % 1000 * 1_000_000,
    };
    match rustix::event::poll(&mut pfds, Some(&timeout)) {
        Ok(0) | Err(Errno::INTR) => Ok(None),
        Ok(_) => Ok(Some(pfds.iter().map(PollFd::revents).collect())),
        Err(e) => Err(e.into()),
    }
}

fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8]) -> rustix::io::Result<usize> {
    rustix::io::read(fd, buf)
}

/// Writes all of `bytes`, waiting (up to [`WRITE_TIMEOUT`] in all) while the
/// descriptor is full or nobody reads it yet.
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    let deadline = Instant::now() + WRITE_TIMEOUT;
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the host does not take the reply",
                    ));
                }
                poll(&[(fd, PollFlags::OUT)], left.min(Duration::from_millis(100)))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The device behind a virtio-serial port path: the path itself when it
/// exists, else (no udev to make the link) the `/dev/vportNpM` whose
/// `/sys/class/virtio-ports/*/name` is the path's last component.
pub fn virtio_device(path: &Path, sys: &Path) -> Option<PathBuf> {
    if path.exists() {
        return Some(path.to_path_buf());
    }
    let name = path.file_name()?.to_str()?;
    let ports = std::fs::read_dir(sys.join("class/virtio-ports")).ok()?;
    for port in ports.flatten() {
        let declared = std::fs::read_to_string(port.path().join("name")).unwrap_or_default();
        if declared.trim_end() == name {
            return Some(Path::new("/dev").join(port.file_name()));
        }
    }
    None
}

/// Puts a serial line into raw mode at 38400 baud, one byte at a time.
fn raw_serial(fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::termios::{self, OptionalActions};
    let mut t = termios::tcgetattr(fd)?;
    t.make_raw();
    t.set_speed(termios::speed::B38400)?;
    Ok(termios::tcsetattr(fd, OptionalActions::Now, &t)?)
}

fn open_device(path: &Path) -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.file_type().is_char_device() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a character device"));
    }
    Ok(OwnedFd::from(file))
}

/// Parses `cid:port` (the cid may be -1, any).
fn vsock_address(text: &str) -> Option<(u32, u32)> {
    let (cid, port) = text.split_once(':')?;
    let cid = if cid == "-1" { u32::MAX } else { cid.parse().ok()? };
    Some((cid, port.parse().ok()?))
}

fn listen_vsock(cid: u32, port: u32) -> io::Result<OwnedFd> {
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let fd = rustix::net::socket_with(AddressFamily::VSOCK, SocketType::STREAM, flags, None)?;
    // rustix has no vsock address type.
    // SAFETY: sockaddr_vm is plain data; every field that matters is set.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = cid;
    addr.svm_port = port;
    // SAFETY: `addr` is a valid sockaddr_vm of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    rustix::net::listen(&fd, 1)?;
    Ok(fd)
}

fn listen_unix(path: &Path) -> io::Result<OwnedFd> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let listener = UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(OwnedFd::from(listener))
}

/// Where the port is, for messages.
pub fn describe(method: Method, path: Option<&str>, run_dir: &Path) -> String {
    match (method, path) {
        (_, Some(p)) => p.to_string(),
        (Method::VirtioSerial, None) => VIRTIO_PATH.to_string(),
        (Method::IsaSerial, None) => SERIAL_PATH.to_string(),
        (Method::UnixListen, None) => run_dir.join(SOCKET_NAME).display().to_string(),
        (Method::VsockListen, None) => "(no address)".to_string(),
    }
}

/// Opens what `method` and `path` name: the device, or the listening socket.
fn open_kind(method: Method, path: Option<&str>, run_dir: &Path) -> io::Result<Kind> {
    Ok(match method {
        Method::VirtioSerial => {
            let wanted = PathBuf::from(path.unwrap_or(VIRTIO_PATH));
            let device = virtio_device(&wanted, Path::new("/sys")).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "no virtio-serial port {} (nor one named {} in /sys/class/virtio-ports)",
                        wanted.display(),
                        wanted.file_name().and_then(|n| n.to_str()).unwrap_or(PORT_NAME)
                    ),
                )
            })?;
            Kind::Device(Arc::new(open_device(&device)?))
        }
        Method::IsaSerial => {
            let fd = open_device(Path::new(path.unwrap_or(SERIAL_PATH)))?;
            raw_serial(fd.as_fd())?;
            Kind::Device(Arc::new(fd))
        }
        Method::UnixListen => {
            let path = path.map_or_else(|| run_dir.join(SOCKET_NAME), PathBuf::from);
            let listener = listen_unix(&path)?;
            Kind::Listener {
                listener,
                client: None,
                path: Some(path),
            }
        }
        Method::VsockListen => {
            let (cid, port) = path.and_then(vsock_address).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "vsock-listen needs [qga] path = <cid>:<port>",
                )
            })?;
            Kind::Listener {
                listener: listen_vsock(cid, port)?,
                client: None,
                path: None,
            }
        }
    })
}

impl Port {
    /// Opens the port `method` and `path` name (`None`: the method's
    /// default; `run_dir` holds the default Unix socket).
    pub fn open(method: Method, path: Option<&str>, run_dir: &Path) -> io::Result<Port> {
        let kind = open_kind(method, path, run_dir)?;
        let out = match &kind {
            Kind::Device(fd) => Some(Arc::clone(fd)),
            Kind::Listener { .. } => None,
        };
        let (wake_read, wake_write) = pipe()?;
        Ok(Port {
            kind,
            out: Arc::new(Mutex::new(out)),
            wake_read,
            wake_write: Arc::new(wake_write),
            away: AWAY_FIRST,
        })
    }

    /// Opens a device port again after it failed (a virtio port unplugged
    /// and plugged back is a new device); replies go to the new one. A
    /// listening port is left as it is.
    pub fn reopen(&mut self, method: Method, path: Option<&str>, run_dir: &Path) -> io::Result<()> {
        if let Kind::Device(_) = self.kind {
            let kind = open_kind(method, path, run_dir)?;
            if let Kind::Device(fd) = &kind {
                self.set_out(Some(Arc::clone(fd)));
            }
            self.kind = kind;
            self.away = AWAY_FIRST;
        }
        Ok(())
    }

    /// What writes replies.
    pub fn replier(&self) -> Replier {
        Replier {
            out: Arc::clone(&self.out),
        }
    }

    /// Ends a wait in [`Port::read`] from another thread.
    pub fn waker(&self) -> Waker {
        let fd = Arc::clone(&self.wake_write);
        Waker::new(move || {
            // A full pipe already wakes the reader.
            let _ = rustix::io::write(&*fd, &[1]);
        })
    }

    /// Whether the waker was called (its bytes are consumed).
    fn take_wake(&self) -> bool {
        let mut buf = [0u8; 64];
        let mut woken = false;
        while matches!(read_fd(self.wake_read.as_fd(), &mut buf), Ok(n) if n > 0) {
            woken = true;
        }
        woken
    }

    fn set_out(&self, fd: Option<Arc<OwnedFd>>) {
        *self.out.lock().unwrap_or_else(PoisonError::into_inner) = fd;
    }

    /// Waits up to `timeout` for bytes from the host.
    pub fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Got> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Got::Idle);
            }
            let wake = self.wake_read.as_fd();
            let fd = match &self.kind {
                Kind::Device(fd) => fd.as_fd(),
                Kind::Listener {
                    client: Some(client), ..
                } => client.as_fd(),
                Kind::Listener { listener, .. } => listener.as_fd(),
            };
            let Some(revents) = poll(&[(wake, PollFlags::IN), (fd, PollFlags::IN)], left)? else {
                continue;
            };
            if !revents[0].is_empty() && self.take_wake() {
                return Ok(Got::Woken);
            }
            let ready = revents[1];
            if ready.is_empty() {
                continue;
            }
            match &mut self.kind {
                Kind::Listener { listener, client, .. } if client.is_none() => {
                    let accepted = rustix::net::accept_with(&*listener, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK);
                    if let Ok(fd) = accepted {
                        let fd = Arc::new(fd);
                        *client = Some(Arc::clone(&fd));
                        self.set_out(Some(fd));
                        log::debug!("qga: host connected");
                    }
                }
                Kind::Listener { client, .. } => {
                    let got = client.as_ref().map_or(Err(Errno::BADF), |c| read_fd(c.as_fd(), buf));
                    match got {
                        Ok(n) if n > 0 => return Ok(Got::Data(n)),
                        Err(Errno::AGAIN | Errno::INTR) => {}
                        // 0 bytes: the client closed; an error: it is gone.
                        _ => {
                            *client = None;
                            self.set_out(None);
                            log::debug!("qga: host disconnected");
                        }
                    }
                }
                Kind::Device(fd) => {
                    let got = if ready.contains(PollFlags::IN) {
                        read_fd(fd.as_fd(), buf)
                    } else {
                        Ok(0)
                    };
                    match got {
                        Ok(n) if n > 0 => {
                            self.away = AWAY_FIRST;
                            return Ok(Got::Data(n));
                        }
                        Err(Errno::AGAIN | Errno::INTR) => {}
                        Err(e) if !ready.contains(PollFlags::HUP) => return Err(e.into()),
                        // Hang-up, or 0 bytes: no host on the other end yet.
                        // Wait without spinning (woken early by a signal).
                        _ => {
                            let pause = self.away.min(deadline.saturating_duration_since(Instant::now()));
                            if poll(&[(self.wake_read.as_fd(), PollFlags::IN)], pause)?.is_some() && self.take_wake() {
                                return Ok(Got::Woken);
                            }
                            self.away = (self.away * 2).min(AWAY_MAX);
                        }
                    }
                }
            }
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Kind::Listener { path: Some(path), .. } = &self.kind {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_virtio_port_is_found_by_name_without_udev() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        for (port, name) in [
            ("vport1p1", "org.qemu.guest_agent.1"),
            ("vport1p2", "org.qemu.guest_agent.0"),
        ] {
            std::fs::create_dir_all(sys.join("class/virtio-ports").join(port)).unwrap();
            std::fs::write(
                sys.join("class/virtio-ports").join(port).join("name"),
                format!("{name}\n"),
            )
            .unwrap();
        }
        let missing = dir.path().join("virtio-ports/org.qemu.guest_agent.0");
        assert_eq!(virtio_device(&missing, &sys), Some(PathBuf::from("/dev/vport1p2")));
        assert_eq!(virtio_device(&dir.path().join("nothing"), &sys), None);
        // An existing path is taken as it is.
        assert_eq!(virtio_device(dir.path(), &sys), Some(dir.path().to_path_buf()));
    }

    #[test]
    fn a_serial_line_is_made_raw_at_38400_baud() {
        use std::os::fd::FromRawFd;
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty fills the two descriptors; the pointers may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
        // SAFETY: openpty succeeded: both descriptors are new and ours.
        let (_master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        raw_serial(slave.as_fd()).unwrap();
        // SAFETY: termios is plain data, filled by tcgetattr; `slave` is open.
        let t = unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
            t
        };
        assert_eq!(t.c_cflag & libc::CBAUD, libc::B38400);
        assert_eq!(t.c_cflag & libc::CSIZE, libc::CS8);
        assert_eq!(t.c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG), 0);
        assert_eq!(t.c_oflag & libc::OPOST, 0);
        assert_eq!((t.c_cc[libc::VMIN], t.c_cc[libc::VTIME]), (1, 0));
    }

    #[test]
    fn vsock_addresses() {
        assert_eq!(vsock_address("-1:1234"), Some((u32::MAX, 1234)));
        assert_eq!(vsock_address("3:5"), Some((3, 5)));
        assert_eq!(vsock_address("3"), None);
        assert_eq!(vsock_address("x:5"), None);
    }

    #[test]
    fn a_unix_port_serves_one_client_after_another_and_drops_replies_to_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ga.sock");
        let mut port = Port::open(Method::UnixListen, Some(path.to_str().unwrap()), dir.path()).unwrap();
        let replier = port.replier();
        // Nobody connected: the reply goes nowhere, without an error.
        replier.send(b"{}\n").unwrap();
        let mut buf = [0u8; 64];
        for round in 0..2 {
            let mut client = UnixStream::connect(&path).unwrap();
            client.write_all(b"ping").unwrap();
            let mut got = Vec::new();
            while got.len() < 4 {
                if let Got::Data(n) = port.read(&mut buf, Duration::from_secs(5)).unwrap() {
                    got.extend_from_slice(&buf[..n]);
                }
            }
            assert_eq!(got, b"ping", "round {round}");
            replier.send(b"pong\n").unwrap();
            let mut reply = [0u8; 5];
            client.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"pong\n");
            drop(client);
            // The hang-up is seen; the port waits for the next client.
            assert_eq!(port.read(&mut buf, Duration::from_millis(200)).unwrap(), Got::Idle);
        }
        let waker = port.waker();
        waker.wake();
        assert_eq!(port.read(&mut buf, Duration::from_secs(5)).unwrap(), Got::Woken);
        drop(port);
        assert!(!path.exists());
    }
}
