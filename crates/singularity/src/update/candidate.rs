//! The new build on disk before it replaces the target: a temporary file in
//! the target's directory (so the final rename is atomic), run with
//! arguments (never through a shell) to ask its version and to check the
//! running configuration, then renamed over the target. Dropped without
//! being installed, it is removed.

use super::UpdateError;
use rustix::process::{kill_process_group, Pid, Signal};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `--version` and `config` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// Output kept from a check.
const MAX_OUTPUT: u64 = 64 * 1024;

/// A checked-in-progress build beside the target.
pub struct Candidate {
    path: PathBuf,
    installed: bool,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> UpdateError {
    move |e| UpdateError::Io(what, e)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Candidate {
    /// Writes `exe` to `.<target name>.update` beside the target, with the
    /// target's mode and owner, and fsyncs it.
    pub fn write(target: &Path, exe: &[u8], meta: &fs::Metadata) -> Result<Candidate, UpdateError> {
        let dir = target.parent().unwrap_or(Path::new("/"));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = dir.join(format!(".{name}.update"));
        // A leftover of an interrupted update is ours to replace.
        let _ = fs::remove_file(&path);
        let mode = meta.permissions().mode() & 0o7777;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&path)
            .map_err(io(format!("create {}", path.display())))?;
        let candidate = Candidate {
            path: path.clone(),
            installed: false,
        };
        file.write_all(exe).map_err(io(format!("write {}", path.display())))?;
        // Owner first: chown clears set-id bits, the mode comes after.
        std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(io(format!("set the owner of {}", path.display())))?;
        file.set_permissions(fs::Permissions::from_mode(mode | 0o100))
            .map_err(io(format!("set the mode of {}", path.display())))?;
        file.sync_all().map_err(io(format!("sync {}", path.display())))?;
        drop(file);
        Ok(candidate)
    }

    /// The version `--version` prints as `singularity X.Y.Z`.
    pub fn version(&self) -> Result<String, UpdateError> {
        let out = run(&self.path, &[OsString::from("--version")])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next().unwrap_or("").trim();
        match line.strip_prefix("singularity ") {
            Some(v) if valid_version(v) && out.success => Ok(v.to_string()),
            _ => {
                let shown: String = line.chars().take(80).collect();
                Err(UpdateError::Candidate(format!(
                    "the download is not a singularity build: --version printed {shown:?}{}",
                    if out.success { "" } else { " and failed" }
                )))
            }
        }
    }

    /// Runs `config` with the running agent's global options: the new build
    /// must accept the configuration in force.
    pub fn check_config(&self, global: &[OsString]) -> Result<(), UpdateError> {
        let mut args = global.to_vec();
        args.push(OsString::from("config"));
        let out = run(&self.path, &args)?;
        if out.success {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let first: String = err.lines().next().unwrap_or("").chars().take(200).collect();
        Err(UpdateError::Candidate(format!(
            "the new build does not accept the running configuration (config {}): {first}",
            out.status
        )))
    }

    /// Keeps the target as `previous` (a hard link, swapped in atomically),
    /// then renames the candidate over the target.
    pub fn install(mut self, target: &Path, previous: &Path) -> Result<(), UpdateError> {
        let dir = target.parent().unwrap_or(Path::new("/"));
        let link = previous.with_file_name(format!(
            ".{}.link",
            previous
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let _ = fs::remove_file(&link);
        fs::hard_link(target, &link).map_err(io(format!("keep {} as {}", target.display(), link.display())))?;
        if let Err(e) = fs::rename(&link, previous) {
            let _ = fs::remove_file(&link);
            return Err(UpdateError::Io(
                format!("keep {} as {}", target.display(), previous.display()),
                e,
            ));
        }
        fs::rename(&self.path, target).map_err(io(format!("replace {}", target.display())))?;
        self.installed = true;
        // Installed now, whatever follows: a failed sync is only a warning
        // (the reply must not say nothing changed).
        if let Err(e) = sync_dir(dir) {
            log::warn!("agentupdate: cannot sync {}: {e}", dir.display());
        }
        Ok(())
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `X.Y.Z` (dotted numbers, as nova's LooseVersion compares them).
fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

struct Output {
    success: bool,
    status: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `program args` with a clean environment and no input, for at most
/// [`CHECK_TIMEOUT`]; a file just written may be busy for a moment
/// (ETXTBSY), so the start is retried briefly.
fn run(program: &Path, args: &[OsString]) -> Result<Output, UpdateError> {
    let mut tries = 0;
    let mut child = loop {
        let spawned = Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir("/")
            // Its own process group: whatever it starts is killed with it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error()) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => return Err(UpdateError::Candidate(format!("the new build cannot run: {e}"))),
        }
    };
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = reader(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let deadline = Instant::now() + CHECK_TIMEOUT;
    // The candidate's own process group: its pid is the group's id. A group
    // that is gone already makes the kill fail harmlessly.
    let group = i32::try_from(child.id()).ok().and_then(Pid::from_raw);
    let kill_group = || {
        if let Some(group) = group {
            let _ = kill_process_group(group, Signal::KILL);
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                kill_group();
                let _ = child.wait();
                return Err(UpdateError::Candidate(format!(
                    "the new build did not answer within {} s",
                    CHECK_TIMEOUT.as_secs()
                )));
            }
            Err(e) => {
                kill_group();
                return Err(UpdateError::Candidate(format!("cannot wait for the new build: {e}")));
            }
        }
    };
    // Anything it left behind would hold the output open: it goes too.
    kill_group();
    Ok(Output {
        success: status.success(),
        status: status.to_string(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::{run, valid_version};

    #[test]
    fn what_a_candidate_leaves_behind_is_killed_with_it() {
        // The build answers at once but leaves a process holding its
        // output open: the check still ends, and the process is gone.
        let started = std::time::Instant::now();
        let out = run(
            std::path::Path::new("/bin/sh"),
            &["-c".into(), "sleep 60 & echo $! ; echo singularity 9.9.9".into()],
        )
        .unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "it waited for the sleeper"
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let pid: i32 = text.lines().next().unwrap().trim().parse().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let alive = rustix::process::test_kill_process(rustix::process::Pid::from_raw(pid).unwrap()).is_ok()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "));
        assert!(!alive, "the background process {pid} survived");
    }

    #[test]
    fn versions_are_dotted_numbers() {
        assert!(valid_version("0.1.0") && valid_version("1.40.0.1"));
        assert!(!valid_version("1.0a") && !valid_version("") && !valid_version("1..2") && !valid_version("v1"));
    }
}
