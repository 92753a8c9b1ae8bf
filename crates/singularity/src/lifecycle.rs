//! Daemon control with LSB semantics: a pid file held under an exclusive
//! `flock` for the daemon's whole life (a second instance is refused, a stale
//! file is taken over), detaching (`fork`, `setsid`, `fork`, stdio to
//! `/dev/null`), dropping privileges, core-dump policy, and the
//! `stop`/`status`/`reload`/`restart` actions that signal a running daemon.
//!
//! Besides its pid file, a daemon holds the instance lock
//! `<root>/run/singularity.lock` ([`INSTANCE_LOCK`] under `--root`, so
//! `/run/singularity.lock` on a real system): whatever pid file it was given, a
//! second daemon for the same system is refused. `stop`, `reload` and
//! `restart` signal a pid only if it holds that lock too and runs the
//! singularity binary.

use rustix::fs::FlockOperation;
use rustix::io::Errno;
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::process::{getrlimit, set_dumpable_behavior, setrlimit, DumpableBehavior, Pid, Resource, Signal};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `stop` and `restart` wait for the old process to exit.
const STOP_WAIT: Duration = Duration::from_secs(15);

/// LSB exit code of `status` when the daemon is not running.
pub const STATUS_NOT_RUNNING: u8 = 3;

/// Which of the daemon's two lock files a [`LockError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// The pid file (`--pidfile`).
    PidFile,
    /// The instance lock ([`INSTANCE_LOCK`]).
    InstanceLock,
}

impl LockKind {
    fn name(self) -> &'static str {
        match self {
            LockKind::PidFile => "pid file",
            LockKind::InstanceLock => "instance lock",
        }
    }
}

/// What was being done to a lock file when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockStep {
    /// Opening (or creating) it.
    Open,
    /// Taking the `flock`.
    Lock,
    /// Writing our pid into it.
    Write,
}

impl LockStep {
    fn verb(self) -> &'static str {
        match self {
            LockStep::Open => "open",
            LockStep::Lock => "lock",
            LockStep::Write => "write",
        }
    }
}

/// Why the pid file or the instance lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("singularity is already running (pid {}, {} {}){}", shown_pid(*.pid), .kind.name(), .path.display(), held_hint(*.kind))]
    Held {
        /// Which lock.
        kind: LockKind,
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, when the file names one.
        pid: Option<i32>,
    },
    /// The file could not be opened, locked or written.
    #[error("cannot {} {} {}: {source}", .step.verb(), .kind.name(), .path.display())]
    Io {
        /// Which lock.
        kind: LockKind,
        /// What was being done.
        step: LockStep,
        /// The lock file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn shown_pid(pid: Option<i32>) -> String {
    pid.map_or_else(|| "unknown".to_string(), |p| p.to_string())
}

fn held_hint(kind: LockKind) -> &'static str {
    match kind {
        LockKind::PidFile => "",
        LockKind::InstanceLock => ": one daemon per system",
    }
}

/// Why `stop` or `reload` did not signal the running daemon.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The pid's executable could not be read.
    #[error("pid {pid} from {} cannot be checked ({source}); not signalling it", .pidfile.display())]
    Unchecked {
        /// The pid read from the pid file.
        pid: i32,
        /// The pid file.
        pidfile: PathBuf,
        /// Why `/proc/<pid>/exe` could not be read.
        #[source]
        source: io::Error,
    },
    /// The pid runs another program.
    #[error("pid {pid} from {} runs {}, not singularity; not signalling it", .pidfile.display(), .exe.display())]
    NotSingularity {
        /// The pid read from the pid file.
        pid: i32,
        /// The pid file.
        pidfile: PathBuf,
        /// The program it runs.
        exe: PathBuf,
    },
    /// The pid does not hold the instance lock.
    #[error("pid {pid} from {} does not hold the instance lock {}; not signalling it", .pidfile.display(), .lock.display())]
    NotLockHolder {
        /// The pid read from the pid file.
        pid: i32,
        /// The pid file.
        pidfile: PathBuf,
        /// The instance lock.
        lock: PathBuf,
    },
    /// `kill(2)` failed.
    #[error("cannot signal pid {pid}: {source}")]
    Signal {
        /// The daemon's pid.
        pid: i32,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The daemon was signalled but is still running.
    #[error("singularity (pid {pid}) did not stop within {} s", .waited.as_secs())]
    StillRunning {
        /// The daemon's pid.
        pid: i32,
        /// How long `stop` waited.
        waited: Duration,
    },
}

/// Why the process could not be set up as a daemon: detached, with its
/// core-dump policy and its user and group.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The start-up report pipe could not be created.
    #[error("cannot create pipe: {0}")]
    Pipe(#[source] io::Error),
    /// `fork(2)` failed.
    #[error("cannot fork: {0}")]
    Fork(#[source] io::Error),
    /// `/dev/null` could not be opened for the standard descriptors.
    #[error("cannot open /dev/null: {0}")]
    DevNull(#[source] io::Error),
    /// `setrlimit` or `prctl(PR_SET_DUMPABLE)` failed.
    #[error("cannot set core-dump policy: {0}")]
    CoreDumps(#[source] io::Error),
    /// `/etc/passwd` or `/etc/group` could not be read.
    #[error("cannot read {file}: {source}")]
    AccountFile {
        /// The file.
        file: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// No such user or group.
    #[error("no such {} '{name}' in {file}", account_kind(.file))]
    NoAccount {
        /// The file searched.
        file: &'static str,
        /// The name looked for.
        name: String,
    },
    /// The account's line lacks a numeric id.
    #[error("malformed {file} entry")]
    MalformedAccount {
        /// The file.
        file: &'static str,
    },
    /// `setgroups` or `setgid` failed.
    #[error("cannot switch to group {gid}: {source}")]
    Group {
        /// The group id.
        gid: u32,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `setuid` failed.
    #[error("cannot switch to user {uid}: {source}")]
    User {
        /// The user id.
        uid: u32,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn account_kind(file: &str) -> &'static str {
    if file.ends_with("group") {
        "group"
    } else {
        "user"
    }
}

/// The pid file, locked by the running daemon. Removed when dropped, or
/// emptied when it cannot be (after a switch to a user who may not write its
/// directory).
pub struct PidFile {
    file: File,
    path: PathBuf,
}

fn open_pidfile(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
}

fn try_lock(file: &File) -> io::Result<bool> {
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn read_pid(file: &mut File) -> Option<i32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|p| *p > 0)
}

/// Opens and locks the `kind` lock file at `path`, or says which daemon
/// holds it.
fn lock_file(kind: LockKind, path: &Path) -> Result<File, LockError> {
    let io_error = |step, source| LockError::Io {
        kind,
        step,
        path: path.to_path_buf(),
        source,
    };
    let mut file = open_pidfile(path).map_err(|e| io_error(LockStep::Open, e))?;
    match try_lock(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(LockError::Held {
            kind,
            path: path.to_path_buf(),
            pid: read_pid(&mut file),
        }),
        Err(e) => Err(io_error(LockStep::Lock, e)),
    }
}

/// Replaces the content of the locked `file` with our pid.
fn write_own_pid(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())
}

impl PidFile {
    /// Locks the pid file and writes our pid into it. Fails with a clear
    /// message when another instance holds it.
    pub fn acquire(path: &Path) -> Result<PidFile, LockError> {
        let mut file = lock_file(LockKind::PidFile, path)?;
        // Locked: any old content is stale and is replaced.
        write_own_pid(&mut file)
            .and_then(|()| file.sync_all())
            .map_err(|source| LockError::Io {
                kind: LockKind::PidFile,
                step: LockStep::Write,
                path: path.to_path_buf(),
                source,
            })?;
        Ok(PidFile {
            file,
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // The lock goes with the file descriptor when `file` is dropped.
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                // Opened for writing before any switch of user: still writable.
                let _ = self.file.set_len(0);
            }
        }
    }
}

/// The instance lock, relative to the managed system's root.
pub const INSTANCE_LOCK: &str = "run/singularity.lock";

/// Where the instance lock of the system under `root` is.
pub fn instance_lock_path(root: &Path) -> PathBuf {
    root.join(INSTANCE_LOCK)
}

/// The instance lock, held for the daemon's whole life. The file stays (a
/// lock file removed while others wait on it would let two daemons run); it is
/// emptied when the daemon ends.
pub struct InstanceLock {
    file: File,
}

impl InstanceLock {
    /// Takes the lock at `path` and writes our pid into it, or says which
    /// daemon holds it.
    pub fn acquire(path: &Path) -> Result<InstanceLock, LockError> {
        let mut file = lock_file(LockKind::InstanceLock, path)?;
        write_own_pid(&mut file).map_err(|source| LockError::Io {
            kind: LockKind::InstanceLock,
            step: LockStep::Write,
            path: path.to_path_buf(),
            source,
        })?;
        Ok(InstanceLock { file })
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// What a path names once " (deleted)" (a replaced binary) is taken off.
fn live_name(link: PathBuf) -> PathBuf {
    match link.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(stripped) => PathBuf::from(stripped),
        None => link,
    }
}

/// Checks that `pid` is a singularity daemon before it is signalled: it runs
/// this program's binary (or one named singularity) and holds the instance
/// lock. A pid file locked by some other process names an unrelated pid.
fn check_daemon(pid: i32, pidfile: &Path, lock: &Path) -> Result<(), ControlError> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(live_name)
        .map_err(|source| ControlError::Unchecked {
            pid,
            pidfile: pidfile.to_path_buf(),
            source,
        })?;
    let own = std::fs::read_link("/proc/self/exe").map(live_name).ok();
    let named = exe
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("singularity"));
    if own.as_ref() != Some(&exe) && !named {
        return Err(ControlError::NotSingularity {
            pid,
            pidfile: pidfile.to_path_buf(),
            exe,
        });
    }
    if running_pid(lock) != Some(pid) {
        return Err(ControlError::NotLockHolder {
            pid,
            pidfile: pidfile.to_path_buf(),
            lock: lock.to_path_buf(),
        });
    }
    Ok(())
}

/// The pid of the daemon holding `path`, if one does.
pub fn running_pid(path: &Path) -> Option<i32> {
    let mut file = File::open(path).ok()?;
    match try_lock(&file) {
        // We got the lock: nobody holds it, the file is stale.
        Ok(true) => None,
        Ok(false) => read_pid(&mut file),
        Err(_) => None,
    }
}

/// Sends `sig` to `pid`, a pid read from a locked pid file (never 0).
fn signal(pid: i32, sig: Signal) -> io::Result<()> {
    let pid = Pid::from_raw(pid).ok_or(Errno::SRCH)?;
    Ok(rustix::process::kill_process(pid, sig)?)
}

/// Whether `pid` has exited (no such process, or a zombie not yet reaped).
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(") ").next().and_then(|rest| rest.chars().next()) == Some('Z'),
        Err(_) => true,
    }
}

/// `stop`: SIGTERM to the running daemon (checked against the instance lock
/// `lock`), then wait for it to release the pid file. Not running is success,
/// as LSB asks.
pub fn stop(pidfile: &Path, lock: &Path) -> Result<(), ControlError> {
    let Some(pid) = running_pid(pidfile) else {
        println!("singularity is not running");
        return Ok(());
    };
    check_daemon(pid, pidfile, lock)?;
    signal(pid, Signal::TERM).map_err(|source| ControlError::Signal { pid, source })?;
    let deadline = Instant::now() + STOP_WAIT;
    // Its pid file released, and the process itself gone (it drops its
    // locks a moment before it exits).
    while running_pid(pidfile).is_some() || !exited(pid) {
        if Instant::now() >= deadline {
            return Err(ControlError::StillRunning { pid, waited: STOP_WAIT });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("singularity stopped (pid {pid})");
    Ok(())
}

/// `status`: prints the pid and returns 0, or returns 3 when not running.
pub fn status(pidfile: &Path) -> u8 {
    match running_pid(pidfile) {
        Some(pid) => {
            println!("singularity is running (pid {pid})");
            0
        }
        None => {
            println!("singularity is not running");
            STATUS_NOT_RUNNING
        }
    }
}

/// `reload`: SIGHUP to the running daemon (checked as for `stop`). Returns `false` when none runs
/// (the caller then starts one).
pub fn reload(pidfile: &Path, lock: &Path) -> Result<bool, ControlError> {
    let Some(pid) = running_pid(pidfile) else {
        return Ok(false);
    };
    check_daemon(pid, pidfile, lock)?;
    signal(pid, Signal::HUP).map_err(|source| ControlError::Signal { pid, source })?;
    println!("singularity reloading (pid {pid})");
    Ok(true)
}

/// A pipe over which the detached daemon tells the waiting parent whether
/// start-up worked.
pub struct StartReport {
    write: Option<File>,
}

impl StartReport {
    /// Reports success (empty) or an error message, once.
    pub fn send(&mut self, result: Result<(), &str>) {
        if let Some(mut w) = self.write.take() {
            let msg = match result {
                Ok(()) => String::new(),
                Err(e) => e.to_string(),
            };
            let _ = w.write_all(msg.as_bytes());
        }
    }
}

/// Detaches from the terminal. The original process waits for the daemon's
/// report and exits with 0 or 1; only the daemon returns from here.
/// Must run before any thread is started.
pub fn daemonize() -> Result<StartReport, SetupError> {
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| SetupError::Pipe(e.into()))?;
    let (mut read, write) = (File::from(read), File::from(write));
    // SAFETY: single-threaded at this point (documented precondition).
    match unsafe { libc::fork() } {
        -1 => return Err(SetupError::Fork(io::Error::last_os_error())),
        0 => {}
        _ => {
            drop(write);
            let mut msg = String::new();
            let _ = read.read_to_string(&mut msg);
            if msg.is_empty() {
                std::process::exit(0);
            }
            eprintln!("singularity: {msg}");
            std::process::exit(1);
        }
    }
    drop(read);
    // In the child, which leads no group: setsid cannot fail.
    let _ = rustix::process::setsid();
    // SAFETY: still single-threaded, as at the first fork; the second fork
    // drops session leadership.
    match unsafe { libc::fork() } {
        -1 => return Err(SetupError::Fork(io::Error::last_os_error())),
        0 => {}
        _ => {
            // The intermediate process must not report: exit without running destructors.
            // SAFETY: _exit is always safe to call.
            unsafe { libc::_exit(0) }
        }
    }
    redirect_stdio()?;
    let _ = rustix::process::chdir("/");
    Ok(StartReport { write: Some(write) })
}

fn redirect_stdio() -> Result<(), SetupError> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(SetupError::DevNull)?;
    let _ = rustix::stdio::dup2_stdin(&null);
    let _ = rustix::stdio::dup2_stdout(&null);
    let _ = rustix::stdio::dup2_stderr(&null);
    Ok(())
}

/// Applies the core-dump policy: off means not dumpable and `RLIMIT_CORE` 0
/// (a dump could hold a password); on means dumpable and the hard limit.
pub fn set_coredumps(enabled: bool) -> Result<(), SetupError> {
    let mut limit = getrlimit(Resource::Core);
    limit.current = if enabled { limit.maximum } else { Some(0) };
    let dumpable = if enabled {
        DumpableBehavior::Dumpable
    } else {
        DumpableBehavior::NotDumpable
    };
    setrlimit(Resource::Core, limit)
        .and_then(|()| set_dumpable_behavior(dumpable))
        .map_err(|e| SetupError::CoreDumps(e.into()))
}

/// The fields of the line of `file` (`/etc/passwd` or `/etc/group`) whose
/// first field is `name`. Files only, read directly: a static binary must not
/// load glibc's NSS modules, which need the exact glibc it was linked with.
fn account_line(file: &'static str, name: &str) -> Result<Vec<String>, SetupError> {
    let text = std::fs::read_to_string(file).map_err(|source| SetupError::AccountFile { file, source })?;
    text.lines()
        .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
        .find(|fields| fields.first().map(String::as_str) == Some(name))
        .ok_or_else(|| SetupError::NoAccount {
            file,
            name: name.to_string(),
        })
}

fn numeric(field: Option<&String>, file: &'static str) -> Result<u32, SetupError> {
    field
        .and_then(|f| f.parse().ok())
        .ok_or(SetupError::MalformedAccount { file })
}

fn lookup_uid(user: &str) -> Result<(u32, u32), SetupError> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok((uid, uid));
    }
    let fields = account_line("/etc/passwd", user)?;
    Ok((
        numeric(fields.get(2), "/etc/passwd")?,
        numeric(fields.get(3), "/etc/passwd")?,
    ))
}

fn lookup_gid(group: &str) -> Result<u32, SetupError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    numeric(account_line("/etc/group", group)?.get(2), "/etc/group")
}

/// Switches to `user`/`group` (names or numbers). The group defaults to the
/// user's primary group.
pub fn drop_privileges(user: Option<&str>, group: Option<&str>) -> Result<(), SetupError> {
    if user.is_none() && group.is_none() {
        return Ok(());
    }
    let (uid, user_gid) = match user {
        Some(u) => {
            let (uid, gid) = lookup_uid(u)?;
            (Some(uid), Some(gid))
        }
        None => (None, None),
    };
    let gid = match group {
        Some(g) => Some(lookup_gid(g)?),
        None => user_gid,
    };
    if let Some(gid) = gid {
        // SAFETY: plain credential syscalls.
        let ok = unsafe { libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(gid) == 0 };
        if !ok {
            return Err(SetupError::Group {
                gid,
                source: io::Error::last_os_error(),
            });
        }
    }
    if let Some(uid) = uid {
        // SAFETY: plain credential syscall.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(SetupError::User {
                uid,
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_come_from_the_files() {
        assert_eq!(lookup_uid("root").unwrap(), (0, 0));
        assert_eq!(lookup_uid("4242").unwrap(), (4242, 4242));
        assert_eq!(lookup_gid("root").unwrap(), 0);
        assert_eq!(
            lookup_uid("no-such-user-here").unwrap_err().to_string(),
            "no such user 'no-such-user-here' in /etc/passwd"
        );
        assert_eq!(
            lookup_gid("no-such-group").unwrap_err().to_string(),
            "no such group 'no-such-group' in /etc/group"
        );
    }

    #[test]
    fn pidfile_is_exclusive_and_stale_files_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/s.pid");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "999999\n").unwrap();
        assert_eq!(running_pid(&path), None, "unlocked file is stale");
        let held = PidFile::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        // flock locks belong to the open file description: a second open conflicts.
        let err = PidFile::acquire(&path).err().unwrap();
        assert!(
            matches!(&err, LockError::Held { kind: LockKind::PidFile, pid: Some(p), .. } if *p == std::process::id() as i32),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "singularity is already running (pid {}, pid file {})",
                std::process::id(),
                path.display()
            )
        );
        assert_eq!(running_pid(&path), Some(std::process::id() as i32));
        drop(held);
        assert!(!path.exists());
    }
}
