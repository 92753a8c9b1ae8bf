//! Commands and kernel state: the [`Runner`] that runs bring-up commands
//! (never through a shell, with a time limit) and sets the hostname. On a root
//! other than `/` the [`LogRunner`] only logs what it would have done.

use crate::plan::Run;
use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
use std::io::Read;
use std::process::{ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one command may take (nova waits 60 s for `resetnetwork`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(45);

/// How much of a failed command's error output its error message keeps.
const STDERR_KEPT: usize = 4096;

/// A command's error output, read without blocking while it runs (a full
/// pipe would stop the command): the first [`STDERR_KEPT`] bytes are kept,
/// the rest is discarded. Dropping it closes the pipe, so nothing waits for a
/// process the command left behind holding it.
struct ErrorOutput {
    pipe: Option<ChildStderr>,
    kept: Vec<u8>,
}

impl ErrorOutput {
    fn new(pipe: Option<ChildStderr>) -> ErrorOutput {
        let pipe = pipe.filter(|p| fcntl_getfl(p).is_ok_and(|flags| fcntl_setfl(p, flags | OFlags::NONBLOCK).is_ok()));
        ErrorOutput { pipe, kept: Vec::new() }
    }

    /// Reads what is there now.
    fn read_available(&mut self) {
        let Some(pipe) = self.pipe.as_mut() else { return };
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = STDERR_KEPT - self.kept.len();
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return, // WouldBlock: nothing more for now
            }
        }
    }
}

/// Why a command or a change of kernel state failed. Each names the command
/// line (or the call) first.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The command could not be started, or waited for.
    #[error("{line}: {source}")]
    Start {
        /// The command line.
        line: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The command ran past its time limit and was killed.
    #[error("{line}: no result within {} s", .limit.as_secs())]
    Timeout {
        /// The command line.
        line: String,
        /// The limit.
        limit: Duration,
    },
    /// The command ended with a failure status.
    #[error("{line}: {status}: {}", String::from_utf8_lossy(.stderr).trim())]
    Failed {
        /// The command line.
        line: String,
        /// How it ended.
        status: ExitStatus,
        /// The start of its error output.
        stderr: Vec<u8>,
    },
    /// `sethostname(2)` failed.
    #[error("sethostname {name}: {source}")]
    Hostname {
        /// The name.
        name: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs commands and changes kernel state.
pub trait Runner: Send + Sync {
    /// Runs one command; `Err` carries its status and error output.
    fn run(&self, run: &Run) -> Result<(), RunError>;
    /// Sets the kernel hostname.
    fn set_hostname(&self, name: &str) -> Result<(), RunError>;
    /// The kernel hostname now (for rollback), if known.
    fn hostname(&self) -> Option<String>;
}

/// The real thing, for the live root.
pub struct SystemRunner;

/// Logs instead of acting, for any other root.
pub struct LogRunner;

fn command_line(run: &Run) -> String {
    format!("{} {}", run.program, run.args.join(" ")).trim_end().to_string()
}

impl Runner for SystemRunner {
    fn run(&self, run: &Run) -> Result<(), RunError> {
        let line = command_line(run);
        log::info!("running {line}");
        let mut cmd = Command::new(&run.program);
        cmd.args(&run.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::signals::unblock_in_children(&mut cmd);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(source) => return Err(RunError::Start { line, source }),
        };
        let mut stderr = ErrorOutput::new(child.stderr.take());
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            stderr.read_available();
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RunError::Timeout {
                        line,
                        limit: COMMAND_TIMEOUT,
                    });
                }
                Err(source) => return Err(RunError::Start { line, source }),
            }
        };
        if status.success() {
            return Ok(());
        }
        stderr.read_available();
        Err(RunError::Failed {
            line,
            status,
            stderr: std::mem::take(&mut stderr.kept),
        })
    }

    fn set_hostname(&self, name: &str) -> Result<(), RunError> {
        rustix::system::sethostname(name.as_bytes()).map_err(|e| RunError::Hostname {
            name: name.to_string(),
            source: e.into(),
        })
    }

    fn hostname(&self) -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
    }
}

impl Runner for LogRunner {
    fn run(&self, run: &Run) -> Result<(), RunError> {
        log::info!("not the live root: not running '{}'", command_line(run));
        Ok(())
    }

    fn set_hostname(&self, name: &str) -> Result<(), RunError> {
        log::info!("not the live root: not setting the hostname to {name}");
        Ok(())
    }

    fn hostname(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `SigBlk` mask of a command the runner starts from a thread that
    /// blocks the daemon's signals, as the daemon's threads do.
    fn child_blocked_mask() -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("status");
        let run = Run {
            program: "cp".into(),
            args: vec!["/proc/self/status".into(), copy.to_string_lossy().into_owned()],
        };
        let mask = std::thread::spawn(move || {
            crate::signals::block_in_this_thread().unwrap();
            SystemRunner.run(&run).unwrap();
            std::fs::read_to_string(&copy).unwrap()
        })
        .join()
        .unwrap();
        let line = mask.lines().find_map(|l| l.strip_prefix("SigBlk:")).unwrap();
        u64::from_str_radix(line.trim(), 16).unwrap()
    }

    #[test]
    fn a_failing_command_with_much_error_output_is_reported_not_stuck() {
        // ~300 KiB of "cannot access" lines: far more than a pipe holds.
        let args: Vec<String> = (0..5000)
            .map(|i| format!("/nonexistent/singularity-test/{i:060}"))
            .collect();
        let err = SystemRunner
            .run(&Run {
                program: "ls".into(),
                args,
            })
            .unwrap_err();
        let RunError::Failed { status, stderr, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(status.code(), Some(2));
        assert!(stderr.len() <= 4096, "the error output keeps the start only");
        let err = err.to_string();
        let tail = &err[err.len().saturating_sub(300)..];
        assert!(!err.contains("no result within"), "{tail}");
        let (_, text) = err
            .split_once(": exit status: 2: ")
            .expect("the status, then the error output");
        assert!(text.contains("/nonexistent/singularity-test/"), "{tail}");
        assert!(text.len() <= 4096, "the message keeps the start only");
    }

    #[test]
    fn commands_start_with_the_daemons_signals_unblocked() {
        let blocked = child_blocked_mask();
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            assert_eq!(blocked & (1 << (signal - 1)), 0, "signal {signal} blocked in the child");
        }
    }
}
