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

use crate::configurators::files;
use crate::functions::valid_name;
use crate::plan::{Plan, Step};
use crate::protocol::inject::{check_path, InjectForm};
use crate::protocol::{Injection, Reply};
use serde_json::{Map, Value};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
#[derive(Debug, PartialEq, Eq)]
pub struct ExternalError {
    /// The executable.
    pub path: PathBuf,
    /// What went wrong.
    pub why: String,
}

impl fmt::Display for ExternalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configurator {}: {}", self.path.display(), self.why)
    }
}

impl std::error::Error for ExternalError {}

/// Whether a file or directory is owned by root or `owner` and not writable
/// by group or others: anyone else could make the agent run their code as
/// root.
fn trusted(meta: &std::fs::Metadata, owner: u32) -> Result<(), String> {
    if meta.uid() != 0 && meta.uid() != owner {
        return Err(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:04o})",
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(())
}

/// Whether `dir` and every directory above it (links resolved) can be
/// changed only by root or `owner`: a directory others may write lets them
/// replace what is below it, unless it is sticky and root's (like `/tmp`),
/// where they cannot touch entries they do not own.
fn trusted_path(dir: &Path, owner: u32) -> Result<(), String> {
    let real = std::fs::canonicalize(dir).map_err(|e| format!("cannot resolve it: {e}"))?;
    let mut here = Some(real.as_path());
    while let Some(d) = here {
        let meta = std::fs::metadata(d).map_err(|e| format!("{}: {e}", d.display()))?;
        let sticky = meta.permissions().mode() & 0o1000 != 0 && meta.uid() == 0;
        if d != real && sticky {
            here = d.parent();
            continue;
        }
        trusted(&meta, owner).map_err(|why| format!("{} is {why}", d.display()))?;
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
    let err = |why: String| ExternalError {
        path: path.to_path_buf(),
        why,
    };
    let output = invoke(path, Some("--describe"), b"", Path::new("/"), timeout).map_err(err)?;
    let value: Value =
        serde_json::from_slice(&output).map_err(|e| err(format!("--describe printed no JSON object ({e})")))?;
    let function = value
        .get("function")
        .and_then(Value::as_str)
        .filter(|f| valid_name(f))
        .ok_or_else(|| err("--describe: \"function\" must be a name of letters, digits, '_' or '-'".into()))?;
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
        return Err(err(
            "--describe: \"commands\" must be a non-empty list of names of letters, digits, '_' or '-'".into(),
        ));
    }
    if let Some(c) = commands.iter().find(|c| RESERVED.contains(&c.as_str())) {
        return Err(err(format!(
            "--describe: '{c}' is the agent's own (its reply has a fixed form, or it holds the key exchange)"
        )));
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
        let err = |why: String| ExternalError {
            path: self.path.clone(),
            why,
        };
        // What was checked at discovery may have changed since: check again.
        // SAFETY: geteuid cannot fail.
        let owner = unsafe { libc::geteuid() };
        let meta = std::fs::symlink_metadata(&self.path).map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("is no longer a regular file".into()));
        }
        trusted(&meta, owner).map_err(|why| err(format!("is now {why}")))?;
        let mut input = Map::new();
        input.insert("command".into(), Value::String(command.to_string()));
        input.insert("value".into(), value.clone());
        input.insert("configuration".into(), configuration);
        let input = serde_json::to_vec(&Value::Object(input)).map_err(|e| err(e.to_string()))?;
        let output = invoke(&self.path, None, &input, cwd, timeout).map_err(err)?;
        self.answer(&output, allowed).map_err(err)
    }

    /// Checks a configurator's answer and turns it into a reply and a plan.
    fn answer(&self, output: &[u8], allowed: &[String]) -> Result<(Reply, Plan), String> {
        let value: Value =
            serde_json::from_slice(output).map_err(|e| format!("its output is not one JSON object ({e})"))?;
        let Value::Object(map) = value else {
            return Err("its output is not a JSON object".into());
        };
        let text = |key: &str| match map.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(format!("its answer has no string \"{key}\"")),
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
            Some(_) => return Err("\"files\" is not an object".into()),
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
fn file_write(path: &str, spec: &Value, allowed: &[String]) -> Result<crate::plan::FileWrite, String> {
    let clean = check_path(path.as_bytes()).map_err(|e| format!("files: {e}"))?;
    if clean != path {
        return Err(format!("files: path '{path}' is not in normal form (write '{clean}')"));
    }
    let content = spec
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("files: '{path}' has no string \"content\""))?;
    let mode = match spec.get("mode") {
        None | Some(Value::Null) => DEFAULT_MODE,
        Some(Value::String(m)) => Some(m)
            .filter(|m| !m.is_empty() && m.bytes().all(|b| (b'0'..=b'7').contains(&b)))
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("files: '{path}': mode '{m}' is not an octal mode 0000 to 0777"))?,
        Some(_) => return Err(format!("files: '{path}': mode is not a string")),
    };
    let injection = Injection {
        path: clean,
        contents: content.as_bytes().to_vec().into(),
        form: InjectForm::FileInject,
    };
    // A directory made for a file others may read is searchable by them too.
    let directory = if mode & 0o044 != 0 { 0o755 } else { 0o700 };
    let modes = files::Modes { file: mode, directory };
    let plan = files::plan(&injection, allowed, modes).map_err(|e| format!("files: {e}"))?;
    match plan.steps.into_iter().next() {
        Some(Step::Write(write)) => Ok(write),
        _ => Err(format!("files: '{path}' cannot be written")),
    }
}

/// Runs `path` (with `arg`), feeding it `input`, in `cwd`, with an empty
/// environment apart from `PATH` and `LANG`, in a process group of its own.
/// Returns its standard output; fails on a start error, a non-zero exit,
/// more than [`OUTPUT_LIMIT`] bytes of output or no exit within `timeout`.
/// Whatever happens, nothing of the process group is left running.
fn invoke(path: &Path, arg: Option<&str>, input: &[u8], cwd: &Path, timeout: Duration) -> Result<Vec<u8>, String> {
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
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    let group = child.id() as libc::pid_t;
    let kill_group = || {
        // SAFETY: kill(2) on the process group this child leads.
        unsafe { libc::kill(-group, libc::SIGKILL) };
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
                return Err(format!("printed more than {} KiB", OUTPUT_LIMIT / 1024));
            }
        }
        match exited(group) {
            // Still unreaped: the group id cannot have been reused yet.
            Ok(true) => {
                kill_group();
                break child.wait().map_err(|e| e.to_string())?;
            }
            Ok(false) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(false) => {
                kill_group();
                let _ = child.wait();
                return Err(format!("no answer within {} s", timeout.as_secs_f64()));
            }
            Err(e) => {
                kill_group();
                return Err(e.to_string());
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
    .map_err(|e| format!("cannot read its output: {e}"))?;
    // Checked first: a writer cut off at the limit dies of SIGPIPE.
    if output.len() > OUTPUT_LIMIT {
        return Err(format!("printed more than {} KiB", OUTPUT_LIMIT / 1024));
    }
    if !status.success() {
        let stderr = err_rx.recv_timeout(grace).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        let stderr = stderr.trim();
        return Err(if stderr.is_empty() {
            format!("failed ({status})")
        } else {
            format!("failed ({status}): {stderr}")
        });
    }
    Ok(output)
}

/// Whether the child `pid` has exited, leaving it unreaped (`WNOWAIT`): its
/// process group id stays its own until it is reaped.
fn exited(pid: libc::pid_t) -> std::io::Result<bool> {
    // SAFETY: a zeroed siginfo_t is valid; waitid writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child with a valid siginfo_t pointer.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: si_pid is set when waitid reports a child.
    Ok(unsafe { info.si_pid() } != 0)
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
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() }
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
        // SAFETY: kill with signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z ")));
    }
}
