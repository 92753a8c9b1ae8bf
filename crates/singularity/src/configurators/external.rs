//! External configurators: executables an administrator drops into a
//! directory (`-d DIR`, `[daemon] configurators`) to serve commands of their
//! own or to add to a built-in one, in any language. Protocol v1, documented
//! in `singularity-configurators(7)`:
//!
//! - `EXE --describe` prints `{"function": NAME, "commands": [COMMAND, ...]}`;
//! - for a request, `EXE` reads `{"command", "value", "configuration"}` on
//!   standard input and prints `{"returncode", "message", "files"}`;
//! - the agent, not the executable, writes `files`: with the path policy, the
//!   atomic writes, the cache and the rollback of a built-in command.
//!
//! This module finds and describes them ([`discover`]) and runs one
//! ([`External::run`]), turning its answer into a [`Reply`] and a [`Plan`].
//! It never writes to the managed system.

use crate::configurators::files::{self, NotAllowed};
use crate::functions::valid_name;
use crate::plan::{Plan, Step};
use crate::protocol::inject::{check_path, InjectForm, InjectionError};
use crate::protocol::{Injection, Reply};
use rustix::process::{kill_process_group, Pid, Signal, WaitId, WaitIdOptions};
use serde_json::{Map, Value};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The protocol version this agent speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The longest output read from a configurator.
pub const OUTPUT_LIMIT: usize = 1 << 20;
/// How much of a failing configurator's error output a message keeps.
const STDERR_KEPT: usize = 2048;
/// The only environment a configurator gets, besides `LANG`.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const LANG: &str = "C.UTF-8";
/// Commands no external configurator may serve: nova parses their replies
/// (`version`, `features`) or they carry the key exchange.
const RESERVED: [&str; 4] = ["version", "features", "keyinit", "password"];
/// Mode of a new file when the configurator names none.
const DEFAULT_MODE: u32 = 0o644;

/// One external configurator, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    /// The executable.
    pub path: PathBuf,
    /// The function it belongs to (built-in or its own).
    pub function: String,
    /// The protocol commands it serves.
    pub commands: Vec<String>,
}

/// What [`discover`] found, and what it skipped and why.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Usable configurators, by directory order then file name.
    pub found: Vec<External>,
    /// One line per file or directory skipped.
    pub warnings: Vec<String>,
}

/// Why running a configurator gave no usable answer.
#[derive(Debug, thiserror::Error)]
#[error("configurator {}: {why}", .path.display())]
pub struct ExternalError {
    /// The executable.
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub why: Why,
}

/// What went wrong with a configurator, for [`ExternalError`].
#[derive(Debug, thiserror::Error)]
pub enum Why {
    /// It could not be run, or did not end well.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// Its answer to a request is unusable.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// `--describe` printed no JSON.
    #[error("--describe printed no JSON object ({0})")]
    DescribeJson(#[source] serde_json::Error),
    /// `--describe` named no usable function.
    #[error("--describe: \"function\" must be a name of letters, digits, '_' or '-'")]
    DescribeFunction,
    /// `--describe` listed no usable commands.
    #[error("--describe: \"commands\" must be a non-empty list of names of letters, digits, '_' or '-'")]
    DescribeCommands,
    /// `--describe` claimed a command only the agent serves.
    #[error("--describe: '{0}' is the agent's own (its reply has a fixed form, or it holds the key exchange)")]
    Reserved(String),
    /// The executable could not be inspected before a request.
    #[error("{0}")]
    Inspect(#[source] io::Error),
    /// The executable was replaced by something else since discovery.
    #[error("is no longer a regular file")]
    NotAFile,
    /// The executable may now be changed by others than root.
    #[error("is now {0}")]
    NowUntrusted(Untrusted),
    /// The request could not be encoded.
    #[error("{0}")]
    Input(#[source] serde_json::Error),
}

/// Why a configurator, or a directory above one, may be changed by others
/// than root (or the daemon's user).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// Another user owns it.
    #[error("owned by uid {0}, not root")]
    Owner(u32),
    /// Its group or others may write it (its permission bits).
    #[error("writable by group or others (mode {0:04o})")]
    Writable(u32),
}

/// Why a directory of configurators is skipped.
#[derive(Debug, thiserror::Error)]
pub enum UntrustedPath {
    /// Its real path could not be found.
    #[error("cannot resolve it: {0}")]
    Resolve(#[source] io::Error),
    /// It, or a directory above it, could not be inspected.
    #[error("{}: {source}", .dir.display())]
    Inspect {
        /// The directory.
        dir: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// It, or a directory above it, may be changed by others.
    #[error("{} is {why}", .dir.display())]
    Untrusted {
        /// The directory.
        dir: PathBuf,
        /// How.
        why: Untrusted,
    },
}

/// Why running a configurator gave no output to use.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// It could not be started.
    #[error("cannot run: {0}")]
    Start(#[source] io::Error),
    /// It printed more than [`OUTPUT_LIMIT`].
    #[error("printed more than {} KiB", OUTPUT_LIMIT / 1024)]
    TooMuchOutput,
    /// It was still running when its time was up.
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// Waiting for it failed.
    #[error("{0}")]
    Wait(#[source] io::Error),
    /// Its output could not be read.
    #[error("cannot read its output: {0}")]
    Output(#[source] io::Error),
    /// It ended with a failure status.
    #[error("failed ({status}){}", colon_before(.stderr))]
    Failed {
        /// How it ended.
        status: ExitStatus,
        /// The start of its error output, trimmed.
        stderr: String,
    },
}

/// `": text"`, or nothing for an empty text.
fn colon_before(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// What is wrong with a configurator's answer to a request.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Its output is not JSON.
    #[error("its output is not one JSON object ({0})")]
    Json(#[source] serde_json::Error),
    /// Its output is JSON, but not an object.
    #[error("its output is not a JSON object")]
    NotAnObject,
    /// A field that must be a string is missing or is not one.
    #[error("its answer has no string \"{0}\"")]
    NoString(&'static str),
    /// `files` is not an object.
    #[error("\"files\" is not an object")]
    FilesNotObject,
    /// A file's path is not a usable absolute path.
    #[error("files: {0}")]
    Path(InjectionError),
    /// A file's path is usable, but not written in its normal form.
    #[error("files: path '{path}' is not in normal form (write '{clean}')")]
    NotNormal {
        /// The path given.
        path: String,
        /// Its normal form.
        clean: String,
    },
    /// A file has no text contents.
    #[error("files: '{0}' has no string \"content\"")]
    NoContent(String),
    /// A file's mode is not an octal string of permission bits.
    #[error("files: '{path}': mode '{mode}' is not an octal mode 0000 to 0777")]
    BadMode {
        /// The file.
        path: String,
        /// The mode given.
        mode: String,
    },
    /// A file's mode is not a string.
    #[error("files: '{0}': mode is not a string")]
    ModeNotString(String),
    /// A file lies outside the allowed injection paths.
    #[error("files: {0}")]
    NotAllowed(#[source] NotAllowed),
    /// A file's path gave no write step.
    #[error("files: '{0}' cannot be written")]
    NotWritable(String),
}

/// Whether a file or directory is owned by root or `owner` and not writable
/// by group or others: anyone else could make the agent run their code as
/// root.
fn trusted(meta: &std::fs::Metadata, owner: u32) -> Result<(), Untrusted> {
    if meta.uid() != 0 && meta.uid() != owner {
        return Err(Untrusted::Owner(meta.uid()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(Untrusted::Writable(meta.permissions().mode() & 0o7777));
    }
    Ok(())
}

/// Whether `dir` and every directory above it (links resolved) can be
/// changed only by root or `owner`: a directory others may write lets them
/// replace what is below it, unless it is sticky and root's (like `/tmp`),
/// where they cannot touch entries they do not own.
fn trusted_path(dir: &Path, owner: u32) -> Result<(), UntrustedPath> {
    let real = std::fs::canonicalize(dir).map_err(UntrustedPath::Resolve)?;
    let mut here = Some(real.as_path());
    while let Some(d) = here {
        let meta = std::fs::metadata(d).map_err(|source| UntrustedPath::Inspect {
            dir: d.to_path_buf(),
            source,
        })?;
        let sticky = meta.permissions().mode() & 0o1000 != 0 && meta.uid() == 0;
        if d != real && sticky {
            here = d.parent();
            continue;
        }
        trusted(&meta, owner).map_err(|why| UntrustedPath::Untrusted {
            dir: d.to_path_buf(),
            why,
        })?;
        here = d.parent();
    }
    Ok(())
}

/// Finds every configurator in `dirs`: every regular executable file, except
/// hidden files and editor backups (`.name`, `name~`). A directory that does
/// not exist is skipped quietly; a file or directory that anyone but root (or
/// `owner`, the daemon's user) could change is skipped with a warning, and so
/// is an executable whose `--describe` fails.
pub fn discover(dirs: &[PathBuf], owner: u32, timeout: Duration) -> Discovery {
    let mut out = Discovery::default();
    for dir in dirs {
        let meta = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.warnings
                    .push(format!("configurators: cannot read {}: {e}", dir.display()));
                continue;
            }
        };
        if !meta.is_dir() {
            out.warnings
                .push(format!("configurators: {} is not a directory", dir.display()));
            continue;
        }
        if let Err(why) = trusted_path(dir, owner) {
            out.warnings
                .push(format!("configurators: directory {} skipped: {why}", dir.display()));
            continue;
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(e) => {
                out.warnings
                    .push(format!("configurators: cannot list {}: {e}", dir.display()));
                continue;
            }
        };
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') || name.ends_with('~') {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                out.warnings.push(format!(
                    "configurator {} skipped: a symbolic link (put the program itself there)",
                    path.display()
                ));
                continue;
            }
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                continue;
            }
            if let Err(why) = trusted(&meta, owner) {
                out.warnings
                    .push(format!("configurator {} skipped: {why}", path.display()));
                continue;
            }
            match describe(&path, timeout) {
                Ok(ext) => out.found.push(ext),
                Err(e) => out.warnings.push(format!("{e}; skipped")),
            }
        }
    }
    out
}

/// Runs `EXE --describe` and checks its answer.
fn describe(path: &Path, timeout: Duration) -> Result<External, ExternalError> {
    let err = |why: Why| ExternalError {
        path: path.to_path_buf(),
        why,
    };
    let output = invoke(path, Some("--describe"), b"", Path::new("/"), timeout).map_err(|e| err(e.into()))?;
    let value: Value = serde_json::from_slice(&output).map_err(|e| err(Why::DescribeJson(e)))?;
    let function = value
        .get("function")
        .and_then(Value::as_str)
        .filter(|f| valid_name(f))
        .ok_or_else(|| err(Why::DescribeFunction))?;
    let commands: Vec<String> = value
        .get("commands")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter(|c| valid_name(c))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let listed = value.get("commands").and_then(Value::as_array).map_or(0, Vec::len);
    if commands.is_empty() || commands.len() != listed {
        return Err(err(Why::DescribeCommands));
    }
    if let Some(c) = commands.iter().find(|c| RESERVED.contains(&c.as_str())) {
        return Err(err(Why::Reserved(c.clone())));
    }
    Ok(External {
        path: path.to_path_buf(),
        function: function.to_string(),
        commands,
    })
}

impl External {
    /// Whether it serves the protocol command `command`.
    pub fn serves(&self, command: &str) -> bool {
        self.commands.iter().any(|c| c == command)
    }

    /// Runs the configurator for one request: `value` as the host sent it,
    /// `configuration` the parsed vm-data (or `{}`), `cwd` the managed root.
    /// Its files become one plan of its function, checked against `allowed`
    /// (the file injection policy); nothing is written here.
    pub fn run(
        &self,
        command: &str,
        value: &Value,
        configuration: Value,
        cwd: &Path,
        timeout: Duration,
        allowed: &[String],
    ) -> Result<(Reply, Plan), ExternalError> {
        let err = |why: Why| ExternalError {
            path: self.path.clone(),
            why,
        };
        // What was checked at discovery may have changed since: check again.
        let owner = rustix::process::geteuid().as_raw();
        let meta = std::fs::symlink_metadata(&self.path).map_err(|e| err(Why::Inspect(e)))?;
        if !meta.is_file() {
            return Err(err(Why::NotAFile));
        }
        trusted(&meta, owner).map_err(|why| err(Why::NowUntrusted(why)))?;
        let mut input = Map::new();
        input.insert("command".into(), Value::String(command.to_string()));
        input.insert("value".into(), value.clone());
        input.insert("configuration".into(), configuration);
        let input = serde_json::to_vec(&Value::Object(input)).map_err(|e| err(Why::Input(e)))?;
        let output = invoke(&self.path, None, &input, cwd, timeout).map_err(|e| err(e.into()))?;
        self.answer(&output, allowed).map_err(|e| err(e.into()))
    }

    /// Checks a configurator's answer and turns it into a reply and a plan.
    fn answer(&self, output: &[u8], allowed: &[String]) -> Result<(Reply, Plan), AnswerError> {
        let value: Value = serde_json::from_slice(output).map_err(AnswerError::Json)?;
        let Value::Object(map) = value else {
            return Err(AnswerError::NotAnObject);
        };
        let text = |key: &'static str| match map.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(AnswerError::NoString(key)),
        };
        let reply = Reply::new(&text("returncode")?, text("message")?);
        let mut steps = Vec::new();
        match map.get("files") {
            None | Some(Value::Null) => {}
            Some(Value::Object(files)) => {
                for (path, spec) in files {
                    steps.push(Step::Write(file_write(path, spec, allowed)?));
                }
            }
            Some(_) => return Err(AnswerError::FilesNotObject),
        }
        Ok((
            reply,
            Plan {
                function: self.function.clone().into(),
                steps,
            },
        ))
    }
}

/// One entry of `files`: the path checked as an injected file's is, the
/// contents UTF-8 text, the mode an octal string of permission bits.
fn file_write(path: &str, spec: &Value, allowed: &[String]) -> Result<crate::plan::FileWrite, AnswerError> {
    let clean = check_path(path.as_bytes()).map_err(AnswerError::Path)?;
    if clean != path {
        return Err(AnswerError::NotNormal {
            path: path.to_string(),
            clean,
        });
    }
    let content = spec
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| AnswerError::NoContent(path.to_string()))?;
    let mode = match spec.get("mode") {
        None | Some(Value::Null) => DEFAULT_MODE,
        Some(Value::String(m)) => Some(m)
            .filter(|m| !m.is_empty() && m.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| AnswerError::BadMode {
                path: path.to_string(),
                mode: m.clone(),
            })?,
        Some(_) => return Err(AnswerError::ModeNotString(path.to_string())),
    };
    let injection = Injection {
        path: clean,
        contents: content.as_bytes().to_vec().into(),
        form: InjectForm::FileInject,
    };
    // A directory made for a file others may read is searchable by them too.
    let directory = if mode & 0o044 != 0 { 0o755 } else { 0o700 };
    let modes = files::Modes { file: mode, directory };
    let plan = files::plan(&injection, allowed, modes).map_err(AnswerError::NotAllowed)?;
    match plan.steps.into_iter().next() {
        Some(Step::Write(write)) => Ok(write),
        _ => Err(AnswerError::NotWritable(path.to_string())),
    }
}

/// Runs `path` (with `arg`), feeding it `input`, in `cwd`, with an empty
/// environment apart from `PATH` and `LANG`, in a process group of its own.
/// Returns its standard output; fails on a start error, a non-zero exit,
/// more than [`OUTPUT_LIMIT`] bytes of output or no exit within `timeout`.
/// Whatever happens, nothing of the process group is left running.
fn invoke(path: &Path, arg: Option<&str>, input: &[u8], cwd: &Path, timeout: Duration) -> Result<Vec<u8>, InvokeError> {
    let mut cmd = Command::new(path);
    cmd.args(arg)
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", LANG)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    crate::signals::unblock_in_children(&mut cmd);
    let mut child = cmd.spawn().map_err(InvokeError::Start)?;
    let group = Pid::from_child(&child);
    let kill_group = || {
        let _ = kill_process_group(group, Signal::KILL);
    };

    let stdin = child.stdin.take();
    let input = input.to_vec();
    std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            // A configurator that does not read its input is not an error.
            let _ = stdin.write_all(&input);
        }
    });
    let (out_tx, out_rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let read = stdout.take(OUTPUT_LIMIT as u64 + 1).read_to_end(&mut buf);
            let _ = out_tx.send(read.map(|_| buf));
        });
    }
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            let _ = err_tx.send(kept);
        });
    }

    let deadline = Instant::now() + timeout;
    let mut output: Option<std::io::Result<Vec<u8>>> = None;
    let status = loop {
        if output.is_none() {
            if let Ok(o) = out_rx.try_recv() {
                output = Some(o);
            }
        }
        if let Some(Ok(o)) = &output {
            if o.len() > OUTPUT_LIMIT {
                kill_group();
                let _ = child.wait();
                return Err(InvokeError::TooMuchOutput);
            }
        }
        match exited(group) {
            // Still unreaped: the group id cannot have been reused yet.
            Ok(true) => {
                kill_group();
                break child.wait().map_err(InvokeError::Wait)?;
            }
            Ok(false) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(false) => {
                kill_group();
                let _ = child.wait();
                return Err(InvokeError::Timeout(timeout));
            }
            Err(e) => {
                kill_group();
                return Err(InvokeError::Wait(e));
            }
        }
    };
    // Anything it left behind in its group went too (it would hold the pipes).
    let grace = Duration::from_secs(1);
    let output = match output {
        Some(o) => o,
        None => out_rx
            .recv_timeout(grace)
            .unwrap_or_else(|_| Err(std::io::Error::other("its output was never closed"))),
    }
    .map_err(InvokeError::Output)?;
    // Checked first: a writer cut off at the limit dies of SIGPIPE.
    if output.len() > OUTPUT_LIMIT {
        return Err(InvokeError::TooMuchOutput);
    }
    if !status.success() {
        let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
        return Err(InvokeError::Failed {
            status,
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        });
    }
    Ok(output)
}

/// Whether the child `pid` has exited, leaving it unreaped (`WNOWAIT`): its
/// process group id stays its own until it is reaped.
fn exited(pid: Pid) -> std::io::Result<bool> {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(rustix::process::waitid(WaitId::Pid(pid), options)?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn owner() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    const SECOND: Duration = Duration::from_secs(5);

    #[test]
    fn describes_usable_executables_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let describe = r#"[ "$1" = --describe ] && echo '{"function": "kms", "commands": ["kmsactivate"]}'"#;
        script(dir.path(), "b-kms", describe, 0o755);
        script(dir.path(), "a-open", describe, 0o775);
        script(dir.path(), "c-garbage", "echo not json", 0o755);
        script(
            dir.path(),
            "d-bad-name",
            r#"echo '{"function": "a/b", "commands": ["x"]}'"#,
            0o755,
        );
        script(
            dir.path(),
            "e-no-commands",
            r#"echo '{"function": "x", "commands": []}'"#,
            0o755,
        );
        script(dir.path(), "f-fails", "exit 3", 0o755);
        script(dir.path(), "g-data", describe, 0o644);
        script(dir.path(), ".hidden", describe, 0o755);
        script(
            dir.path(),
            "h-reserved",
            r#"echo '{"function": "x", "commands": ["version"]}'"#,
            0o755,
        );
        std::os::unix::fs::symlink(dir.path().join("b-kms"), dir.path().join("i-link")).unwrap();
        let d = discover(&[dir.path().to_path_buf(), dir.path().join("missing")], owner(), SECOND);
        assert_eq!(d.found.len(), 1, "{d:?}");
        assert_eq!(d.found[0].function, "kms");
        assert_eq!(d.found[0].commands, ["kmsactivate"]);
        let warned = |name: &str, what: &str| d.warnings.iter().any(|w| w.contains(name) && w.contains(what));
        assert!(warned("a-open", "writable by group or others"), "{:?}", d.warnings);
        assert!(warned("c-garbage", "no JSON object"), "{:?}", d.warnings);
        assert!(warned("d-bad-name", "\"function\""), "{:?}", d.warnings);
        assert!(warned("e-no-commands", "\"commands\""), "{:?}", d.warnings);
        assert!(warned("f-fails", "exit status: 3"), "{:?}", d.warnings);
        assert!(warned("h-reserved", "'version' is the agent's own"), "{:?}", d.warnings);
        assert!(warned("i-link", "a symbolic link"), "{:?}", d.warnings);
        assert_eq!(d.warnings.len(), 7, "{:?}", d.warnings);
    }

    #[test]
    fn a_directory_under_one_others_can_write_is_skipped() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir = parent.path().join("configurators");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        script(
            &dir,
            "kms",
            r#"echo '{"function": "kms", "commands": ["kmsactivate"]}'"#,
            0o755,
        );
        let d = discover(std::slice::from_ref(&dir), owner(), SECOND);
        assert!(d.found.is_empty(), "{d:?}");
        let want = format!("{} is writable by group or others", parent.path().display());
        assert!(d.warnings[0].contains(&want), "{:?}", d.warnings);
        // The same directory under a private parent is fine.
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(discover(&[dir], owner(), SECOND).found.len(), 1);
    }

    #[test]
    fn a_directory_others_can_write_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        script(
            dir.path(),
            "kms",
            r#"echo '{"function": "kms", "commands": ["kmsactivate"]}'"#,
            0o755,
        );
        let d = discover(&[dir.path().to_path_buf()], owner(), SECOND);
        assert!(d.found.is_empty());
        assert!(
            d.warnings[0].contains("writable by group or others"),
            "{:?}",
            d.warnings
        );
    }

    fn ext(dir: &Path, body: &str) -> External {
        External {
            path: script(dir, "x", body, 0o755),
            function: "kms".into(),
            commands: vec!["kmsactivate".into()],
        }
    }

    fn run(e: &External) -> Result<(Reply, Plan), ExternalError> {
        e.run(
            "kmsactivate",
            &serde_json::json!({"k": 1}),
            serde_json::json!({}),
            Path::new("/"),
            Duration::from_secs(2),
            &["/".to_string()],
        )
    }

    #[test]
    fn the_request_arrives_on_standard_input_with_a_clean_environment() {
        let dir = tempfile::tempdir().unwrap();
        let seen = dir.path().join("seen");
        let e = ext(
            dir.path(),
            &format!(
                r#"cat > {0}.in; env > {0}.env; pwd > {0}.pwd
printf '%s\n' '{{"returncode": "0", "message": "done", "files": {{"/etc/kms.conf": {{"content": "k=1\n", "mode": "0600"}}}}}}'"#,
                seen.display()
            ),
        );
        let (reply, plan) = run(&e).unwrap();
        assert_eq!(reply, Reply::ok("done"));
        assert_eq!(plan.function, "kms");
        let Step::Write(w) = &plan.steps[0] else { panic!() };
        assert_eq!(
            (w.path.as_str(), w.contents.as_slice(), w.mode),
            ("/etc/kms.conf", &b"k=1\n"[..], 0o600)
        );
        let input: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{}.in", seen.display())).unwrap()).unwrap();
        assert_eq!(
            input,
            serde_json::json!({"command": "kmsactivate", "value": {"k": 1}, "configuration": {}})
        );
        let env = std::fs::read_to_string(format!("{}.env", seen.display())).unwrap();
        let mut names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
        names.sort();
        // sh adds PWD (and may add SHLVL); nothing of the agent's environment passes.
        names.retain(|n| !matches!(*n, "PWD" | "SHLVL" | "_" | "OLDPWD"));
        assert_eq!(names, ["LANG", "PATH"]);
        assert_eq!(
            std::fs::read_to_string(format!("{}.pwd", seen.display())).unwrap(),
            "/\n"
        );
    }

    #[test]
    fn bad_answers_are_errors_naming_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        for (body, want) in [
            ("echo nonsense", "not one JSON object"),
            ("echo '[1]'", "not a JSON object"),
            (r#"echo '{"returncode": 0, "message": ""}'"#, "no string \"returncode\""),
            (r#"echo '{"returncode": "0"}'"#, "no string \"message\""),
            (
                r#"echo '{"returncode": "0", "message": "", "files": []}'"#,
                "\"files\" is not an object",
            ),
            (
                r#"echo '{"returncode": "0", "message": "", "files": {"etc/x": {"content": ""}}}'"#,
                "not absolute",
            ),
            (
                r#"echo '{"returncode": "0", "message": "", "files": {"/etc/../x": {"content": ""}}}'"#,
                "'..'",
            ),
            (
                r#"echo '{"returncode": "0", "message": "", "files": {"/etc/x": {"content": "", "mode": "4755"}}}'"#,
                "not an octal mode",
            ),
            (
                r#"echo '{"returncode": "0", "message": "", "files": {"/etc/x": {"content": 1}}}'"#,
                "no string \"content\"",
            ),
            ("echo oops >&2; exit 2", "failed (exit status: 2): oops"),
            ("sleep 10", "no answer within 2 s"),
            ("head -c 2000000 /dev/zero", "printed more than 1024 KiB"),
        ] {
            let e = ext(dir.path(), body);
            let err = run(&e).unwrap_err();
            assert!(err.to_string().contains(want), "{body}: {err}");
            assert!(err.to_string().starts_with("configurator "), "{err}");
        }
    }

    #[test]
    fn files_outside_the_allowed_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = ext(
            dir.path(),
            r#"echo '{"returncode": "0", "message": "", "files": {"/etc/shadow": {"content": "x"}}}'"#,
        );
        let err = e
            .run(
                "kmsactivate",
                &Value::Null,
                serde_json::json!({}),
                Path::new("/"),
                SECOND,
                &["/etc/sysconfig".to_string()],
            )
            .unwrap_err();
        assert!(err.to_string().contains("outside the allowed"), "{err}");
    }

    #[test]
    fn a_timeout_kills_what_the_configurator_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let e = ext(dir.path(), &format!("sleep 30 & echo $! > {}; wait", pidfile.display()));
        assert!(run(&e).unwrap_err().to_string().contains("no answer"));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let alive = rustix::process::test_kill_process(Pid::from_raw(pid).unwrap()).is_ok();
        assert!(!alive || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")));
    }
}
