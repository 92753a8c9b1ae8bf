//! The shadow-suite lock: `lckpwdf(3)` takes a write lock on `/etc/.pwd.lock`
//! and gives up after 15 seconds. Holding the same lock keeps `passwd`,
//! `useradd` and friends from racing our rewrite of `/etc/shadow`.

use super::write::open_at;
use rustix::fs::{fcntl_lock, FlockOperation, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
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
    let file = open_at(dir, name, OFlags::WRONLY | OFlags::CREATE, 0o600)?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    loop {
        match fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(PwdLock { _file: file }),
            Err(Errno::ACCESS | Errno::AGAIN) if Instant::now() < deadline => {}
            Err(Errno::ACCESS | Errno::AGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "password file lock held by another process",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
