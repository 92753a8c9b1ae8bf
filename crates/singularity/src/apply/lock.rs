//! The shadow-suite lock: `lckpwdf(3)` takes a write lock on `/etc/.pwd.lock`
//! and gives up after 15 seconds. Holding the same lock keeps `passwd`,
//! `useradd` and friends from racing our rewrite of `/etc/shadow`.

use super::write::open_at;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// How long `lckpwdf` waits.
const LOCK_TIMEOUT: Duration = Duration::from_secs(15);

/// A held lock; released when dropped (closing the file drops the record lock).
pub(crate) struct PwdLock {
    _file: File,
}

/// Takes the lock on `name` in `dir` (created 0600 if missing), waiting up
/// to 15 seconds.
pub(crate) fn lock_pwd(dir: BorrowedFd<'_>, name: &str) -> io::Result<PwdLock> {
    let file = open_at(dir, name, libc::O_WRONLY | libc::O_CREAT, 0o600)?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        // SAFETY: flock is a plain C struct for which all-zero is a valid value.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: the descriptor is open for the duration of the call and `fl`
        // is a valid, initialised flock structure.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
        if rc == 0 {
            return Ok(PwdLock { _file: file });
        }
        let err = io::Error::last_os_error();
        let busy = matches!(err.raw_os_error(), Some(libc::EACCES) | Some(libc::EAGAIN));
        if !busy || Instant::now() >= deadline {
            return Err(if busy {
                io::Error::new(io::ErrorKind::TimedOut, "password file lock held by another process")
            } else {
                err
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
