//! After an update on the live root: re-execute the new build in place (same
//! pid, so the pid file and systemd's main pid stay), watched by the
//! previous build. The daemon leaves a marker file before the exec; the new
//! process removes it when it reaches its request loop. If the marker is
//! still there when the process is gone, or after [`COME_BACK`], the
//! watcher puts the previous build back and starts it again.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming the marker for the re-executed process.
pub const MARKER_ENV: &str = "SINGULARITY_UPDATE_MARKER";
/// How long the new build has to reach its request loop.
pub const COME_BACK: Duration = Duration::from_secs(30);
/// The hidden subcommand the watcher runs as.
pub const WATCH_COMMAND: &str = "update-watch";

/// `<target>.pending`: present from the exec until the new build serves.
pub fn marker_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".pending");
    PathBuf::from(name)
}

/// The marker's text: this process's pid and the id of the boot it was
/// written in (`<pid> <boot id>`), by which the next start knows whether the
/// machine restarted since.
pub(crate) fn marker_text() -> String {
    match boot_id() {
        Some(id) => format!("{} {id}\n", std::process::id()),
        None => format!("{}\n", std::process::id()),
    }
}

/// The kernel's id of this boot.
pub(crate) fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Whether this process was started by an update (the marker it must clear
/// once it serves).
pub fn resumed_marker() -> Option<PathBuf> {
    std::env::var_os(MARKER_ENV).map(PathBuf::from)
}

/// The marker of an update this process is watched for since it started
/// ([`super::resume`]), when no update re-executed it.
static WATCHED_AGAIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Marks this process as watched again for the update `marker` stands for:
/// [`came_back`] clears it.
pub(crate) fn watched_again(marker: PathBuf) {
    let _ = WATCHED_AGAIN.set(marker);
}

/// Called when the request loop is reached: clears the marker, so the
/// watcher knows the new build came back.
pub fn came_back() {
    if let Some(marker) = resumed_marker().or_else(|| WATCHED_AGAIN.get().cloned()) {
        match std::fs::remove_file(&marker) {
            Ok(()) => log::info!("update complete: version {} serves", crate::handler::VERSION),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::error!("cannot remove the update marker {}: {e}", marker.display()),
        }
    }
}

/// Leaves the marker, starts the watcher (the previous build, from its kept
/// copy) and replaces this process with `target`, given this process's own
/// arguments. Returns only on failure, with the old build still running.
pub fn reexec(target: &Path, previous: &Path) -> String {
    let marker = marker_path(target);
    if let Err(e) = std::fs::write(&marker, marker_text()) {
        return format!("cannot write the update marker {}: {e}", marker.display());
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if let Err(e) = start_watcher(&marker, target, previous, &args) {
        let _ = std::fs::remove_file(&marker);
        return e;
    }
    log::info!("re-executing {}", target.display());
    let e = Command::new(target).args(&args).env(MARKER_ENV, &marker).exec();
    // Still the old build: nothing to watch.
    let _ = std::fs::remove_file(&marker);
    format!("cannot execute {}: {e}", target.display())
}

/// Starts the watcher of this process: `previous update-watch`, which
/// restores `previous` as `target` and starts it with `args` unless this
/// process clears `marker` within [`COME_BACK`].
pub(crate) fn start_watcher(marker: &Path, target: &Path, previous: &Path, args: &[OsString]) -> Result<(), String> {
    let watcher = Command::new(previous)
        .arg(WATCH_COMMAND)
        .arg(std::process::id().to_string())
        .arg(marker)
        .arg(target)
        .arg(previous)
        .args(args)
        .env_remove(MARKER_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    // The first watcher process exits as soon as it has detached the one
    // that watches.
    match watcher.and_then(|mut w| w.wait()) {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("the update watcher {} failed: {status}", previous.display())),
        Err(e) => Err(format!("cannot start the update watcher {}: {e}", previous.display())),
    }
}

/// Whether `pid` still runs: it exists and is not a zombie (a daemon
/// that exited and that its parent has not reaped yet).
fn alive(pid: libc::pid_t) -> bool {
    let Some(process) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    let exists = match rustix::process::test_kill_process(process) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    };
    if !exists {
        return false;
    }
    // The state follows the command name, which ends at the last ')'.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The process a watcher watches. Held by a pidfd where the kernel has them
/// (Linux 5.3 and later): once the process exited, its pid may be given to
/// another process, which the pidfd never stands for. Older kernels fall
/// back to the pid.
struct Watched {
    pid: libc::pid_t,
    fd: Option<std::os::fd::OwnedFd>,
}

impl Watched {
    /// Takes hold of `pid`, which must be alive now (the daemon waits for
    /// the watcher's first process, so it is).
    fn new(pid: libc::pid_t) -> Watched {
        let fd = rustix::process::Pid::from_raw(pid)
            .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
        Watched { pid, fd }
    }

    /// Whether it still runs (a zombie does not).
    fn alive(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let Some(fd) = &self.fd else {
            return alive(self.pid);
        };
        // The pidfd is readable once the process exited.
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let now = Timespec { tv_sec: 0, tv_nsec: 0 };
        match poll(&mut fds, Some(&now)) {
            Ok(ready) => ready == 0,
            Err(_) => alive(self.pid),
        }
    }

    /// Kills it with SIGKILL.
    fn kill(&self) {
        use rustix::process::{kill_process, pidfd_send_signal, Pid, Signal};
        let _ = match &self.fd {
            Some(fd) => pidfd_send_signal(fd, Signal::KILL),
            None => Pid::from_raw(self.pid).map_or(Ok(()), |p| kill_process(p, Signal::KILL)),
        };
    }
}

/// Why the update watcher could not watch or restore.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Its arguments are not those an update gives it.
    #[error("usage: {} <pid> <marker> <target> <previous> <args>...", WATCH_COMMAND)]
    Usage,
    /// The pid argument is not a number.
    #[error("bad pid")]
    Pid,
    /// It could not detach from the daemon.
    #[error("cannot fork: {0}")]
    Fork(#[source] std::io::Error),
    /// The previous build could not be moved back.
    #[error("cannot restore {}: {source}", .previous.display())]
    Restore {
        /// The previous build.
        previous: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The restored build could not be executed.
    #[error("cannot start the restored {}: {source}", .target.display())]
    Exec {
        /// The restored build.
        target: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Detaches the watcher from the daemon it watches: the daemon waits for
/// this first process, which exits at once, so the watcher that goes on is
/// nobody's child to reap (no zombie left in the new build's process).
fn detach() -> Result<bool, WatchError> {
    // SAFETY: the watcher is single-threaded here (it has started no
    // thread), so the child may go on running Rust code after the fork.
    match unsafe { libc::fork() } {
        -1 => Err(WatchError::Fork(std::io::Error::last_os_error())),
        0 => {
            // SAFETY: setsid has no preconditions; failing only leaves the
            // watcher in the daemon's session.
            unsafe { libc::setsid() };
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The watcher (`singularity update-watch <pid> <marker> <target> <previous> <args>…`),
/// detached from the process it watches:
/// waits for the marker to go; if `pid` exits first or [`COME_BACK`]
/// passes, restores `previous` as `target` and starts it with `args`
/// (unless systemd runs the service: it restarts it).
pub fn watch(args: &[OsString]) -> Result<(), WatchError> {
    let [pid, marker, target, previous, rest @ ..] = args else {
        return Err(WatchError::Usage);
    };
    let pid: libc::pid_t = pid.to_str().and_then(|p| p.parse().ok()).ok_or(WatchError::Pid)?;
    let (marker, target, previous) = (Path::new(marker), Path::new(target), Path::new(previous));
    let watched = Watched::new(pid);
    if !detach()? {
        return Ok(());
    }
    // A stop of the service during the window must not kill the watcher
    // before it can restore.
    // SAFETY: ignoring SIGTERM and SIGHUP has no preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let deadline = Instant::now() + COME_BACK;
    loop {
        if !marker.exists() {
            return Ok(());
        }
        if !watched.alive() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Claim the marker: if the new build removed it just now, it came back.
    let claimed = marker.with_extension("pending-claimed");
    if std::fs::rename(marker, &claimed).is_err() {
        return Ok(());
    }
    let _ = std::fs::remove_file(&claimed);
    // The new build goes first, whatever happens to the restore.
    if watched.alive() {
        // The process did not come back in time: it is killed.
        watched.kill();
        while watched.alive() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::fs::rename(previous, target).map_err(|source| WatchError::Restore {
        previous: previous.to_path_buf(),
        source,
    })?;
    if std::env::var_os("INVOCATION_ID").is_some() {
        // systemd (Restart=always) starts the restored build.
        return Ok(());
    }
    // The restored agent starts with the signals it would have at boot.
    // SAFETY: restoring the default dispositions has no preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGHUP, libc::SIG_DFL);
    }
    let source = Command::new(target).args(rest).exec();
    Err(WatchError::Exec {
        target: target.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits up to 10 s for `watched` to be seen gone.
    fn gone(watched: &Watched) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while watched.alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    #[test]
    fn a_watched_process_is_alive_until_it_exits_and_is_killed_by_its_pidfd() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let watched = Watched::new(child.id() as libc::pid_t);
        assert!(watched.fd.is_some(), "this kernel has pidfd_open");
        assert!(watched.alive());
        watched.kill();
        // Exited but not reaped yet: a zombie is not alive.
        assert!(gone(&watched));
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
    }

    #[test]
    fn without_a_pidfd_the_pid_is_watched() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let watched = Watched {
            pid: child.id() as libc::pid_t,
            fd: None,
        };
        assert!(watched.alive());
        watched.kill();
        assert!(gone(&watched));
        child.wait().unwrap();
    }
}
