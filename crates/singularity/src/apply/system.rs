//! Commands and kernel state: the [`Runner`] that runs bring-up commands
//! (never through a shell, with a time limit) and sets the hostname. On a root
//! other than `/` the [`LogRunner`] only logs what it would have done.

use crate::plan::Run;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one command may take (nova waits 60 s for `resetnetwork`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(45);

/// Runs commands and changes kernel state.
pub trait Runner: Send + Sync {
    /// Runs one command; `Err` carries its status and error output.
    fn run(&self, run: &Run) -> Result<(), String>;
    /// Sets the kernel hostname.
    fn set_hostname(&self, name: &str) -> Result<(), String>;
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
    fn run(&self, run: &Run) -> Result<(), String> {
        let line = command_line(run);
        log::info!("running {line}");
        let mut child = Command::new(&run.program)
            .args(&run.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{line}: {e}"))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{line}: no result within {} s", COMMAND_TIMEOUT.as_secs()));
                }
                Err(e) => return Err(format!("{line}: {e}")),
            }
        };
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        Err(format!("{line}: {status}: {}", stderr.trim()))
    }

    fn set_hostname(&self, name: &str) -> Result<(), String> {
        // SAFETY: sethostname reads exactly `len` bytes from the pointer.
        let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("sethostname {name}: {}", std::io::Error::last_os_error()))
        }
    }

    fn hostname(&self) -> Option<String> {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
    }
}

impl Runner for LogRunner {
    fn run(&self, run: &Run) -> Result<(), String> {
        log::info!("not the live root: not running '{}'", command_line(run));
        Ok(())
    }

    fn set_hostname(&self, name: &str) -> Result<(), String> {
        log::info!("not the live root: not setting the hostname to {name}");
        Ok(())
    }

    fn hostname(&self) -> Option<String> {
        None
    }
}
