//! `guest-fsfreeze-*` and `guest-fstrim`: quiescing the filesystems for a
//! snapshot, and trimming them, as qemu-ga does.
//!
//! The mounts are those of `/proc/self/mountinfo`, without the ones no
//! block device backs (device major 0), btrfs excepted. Freezing goes in
//! reverse mount order (a filesystem before the one it is mounted on); a
//! filesystem that cannot freeze (`EOPNOTSUPP`) or is already frozen
//! through another mount (`EBUSY`) is skipped, and any other failure thaws
//! everything and fails. The freeze hook (`[qga] fsfreeze_hook`, a program
//! or a directory of programs) runs with `freeze` before, and with `thaw`
//! after.
//!
//! The frozen state is a marker file in the run-time directory, written
//! before the first filesystem freezes and removed after the last thaws, so
//! that an agent restarted meanwhile knows (the run-time directory is on a
//! memory filesystem that a freeze never touches, and that a reboot, which
//! thaws everything, empties). While frozen the agent logs nothing: a log
//! write to a frozen filesystem would block it.
//!
//! These commands change kernel state, so they act only on the live system
//! (`--root /`); under another root they answer an error and do nothing.

use super::disks::{mounts, Mount};
use super::vcpus::strerror;
use crate::qga::{arg_int, arg_strs, Args, Ctx, QgaError};
use serde_json::{json, Value};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The marker of the frozen state, in the run-time directory.
const MARKER: &str = "qga-frozen";

/// `_IOWR('X', 119, int)`, `_IOWR('X', 120, int)`, `_IOWR('X', 121, struct fstrim_range)`.
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;
const FITRIM: libc::c_ulong = 0xC018_5879;

/// The log level to go back to at a thaw.
static SAVED_LEVEL: Mutex<Option<log::LevelFilter>> = Mutex::new(None);

/// Stops logging (frozen) or brings it back (thawed).
fn quiet(frozen: bool) {
    let Ok(mut saved) = SAVED_LEVEL.lock() else { return };
    if frozen {
        if saved.is_none() {
            *saved = Some(log::max_level());
        }
        log::set_max_level(log::LevelFilter::Off);
    } else if let Some(level) = saved.take() {
        log::set_max_level(level);
    }
}

/// Whether the filesystems were left frozen by an earlier run of the agent
/// (its marker in the run-time directory): the request loop starts frozen
/// then, and quiet at once (a log write could block on a frozen
/// filesystem, so not even this is logged).
pub fn restore(run_dir: &Path) -> bool {
    let frozen = run_dir.join(MARKER).exists();
    if frozen {
        quiet(true);
    }
    frozen
}

/// Refuses to touch the kernel under a root that is not the live system.
fn live(ctx: &Ctx<'_>, what: &str) -> Result<(), QgaError> {
    if ctx.root.is_live() {
        Ok(())
    } else {
        Err(QgaError::generic(format!(
            "{what} acts on the running system only, and the agent manages {}",
            ctx.root.base().display()
        )))
    }
}

/// The mounts that may be frozen or trimmed, in mount order.
fn block_mounts() -> Result<Vec<Mount>, QgaError> {
    let all = mounts(Path::new("/proc/self/mountinfo"))
        .map_err(|e| QgaError::generic(format!("failed to open /proc/self/mountinfo: {}", strerror(&e))))?;
    Ok(all
        .into_iter()
        .filter(|m| m.major != 0 || m.fstype == "btrfs")
        .collect())
}

fn ioctl(file: &File, request: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: `file` is open; each request's argument is the type the
    // kernel expects (an ignored int pointer, or a struct fstrim_range).
    if unsafe { libc::ioctl(file.as_raw_fd(), request, arg) } == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The programs of the hook: the file itself, or a directory's regular
/// executable files in name order (hidden files and `name~` backups
/// skipped). Each must be owned by root and not writable by group or
/// others, like the hook directory.
fn hook_programs(hook: &Path) -> Result<Vec<PathBuf>, QgaError> {
    let fail = |e: io::Error| {
        QgaError::generic(format!(
            "can't access fsfreeze hook '{}': {}",
            hook.display(),
            strerror(&e)
        ))
    };
    let meta = std::fs::metadata(hook).map_err(fail)?;
    let unsafe_file = |path: &Path, meta: &std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        (meta.uid() != 0 || meta.mode() & 0o022 != 0).then(|| {
            QgaError::generic(format!(
                "fsfreeze hook '{}' may be changed by others than root (owner {}, mode {:04o})",
                path.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ))
        })
    };
    if let Some(e) = unsafe_file(hook, &meta) {
        return Err(e);
    }
    if !meta.is_dir() {
        return Ok(vec![hook.to_path_buf()]);
    }
    let mut programs = Vec::new();
    for entry in std::fs::read_dir(hook).map_err(fail)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        if let Some(e) = unsafe_file(&path, &meta) {
            return Err(e);
        }
        programs.push(path);
    }
    programs.sort();
    Ok(programs)
}

/// Runs one hook program with `arg` (`freeze` or `thaw`): no shell, no
/// input, an environment of `PATH` and `LANG` only.
fn run_hook(program: &Path, arg: &str) -> Result<(), QgaError> {
    let status = Command::new(program)
        .arg(arg)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| {
            QgaError::generic(format!(
                "can't execute fsfreeze hook '{}': {}",
                program.display(),
                strerror(&e)
            ))
        })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(QgaError::generic(format!(
            "fsfreeze hook has failed with status {code}"
        ))),
        None => Err(QgaError::generic("fsfreeze hook was terminated by a signal")),
    }
}

/// Runs the hook for `freeze`: every program, in order; when one fails, the
/// ones that succeeded are told `thaw`, and the freeze does not happen.
fn hook_freeze(ctx: &Ctx<'_>) -> Result<(), QgaError> {
    let Some(hook) = &ctx.settings.fsfreeze_hook else {
        return Ok(());
    };
    let programs = hook_programs(hook)?;
    for (i, program) in programs.iter().enumerate() {
        if let Err(e) = run_hook(program, "freeze") {
            for done in programs[..i].iter().rev() {
                let _ = run_hook(done, "thaw");
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Runs the hook for `thaw`: every program, in reverse order; a failure is
/// reported after all ran.
fn hook_thaw(ctx: &Ctx<'_>) -> Result<(), QgaError> {
    let Some(hook) = &ctx.settings.fsfreeze_hook else {
        return Ok(());
    };
    let mut first = Ok(());
    for program in hook_programs(hook)?.iter().rev() {
        if let Err(e) = run_hook(program, "thaw") {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

/// `guest-fsfreeze-status`.
pub fn status(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Ok(json!(if *ctx.frozen { "frozen" } else { "thawed" }))
}

/// `guest-fsfreeze-freeze`.
pub fn freeze(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    freeze_some(ctx, None)
}

/// `guest-fsfreeze-freeze-list`.
pub fn freeze_list(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    freeze_some(ctx, arg_strs(args, "mountpoints"))
}

/// Freezes every block filesystem, or those mounted at `only`.
fn freeze_some(ctx: &mut Ctx<'_>, only: Option<Vec<&str>>) -> Result<Value, QgaError> {
    live(ctx, "guest-fsfreeze-freeze")?;
    let mounts = block_mounts()?;
    hook_freeze(ctx)?;
    log::info!("qga: freezing the filesystems; the agent logs nothing until they are thawed");
    if let Err(e) = std::fs::write(ctx.run_dir.join(MARKER), b"") {
        let _ = hook_thaw(ctx);
        return Err(QgaError::generic(format!(
            "failed to record the frozen state: {}",
            strerror(&e)
        )));
    }
    *ctx.frozen = true;
    quiet(true);
    let mut count = 0;
    for mount in mounts.iter().rev() {
        if only
            .as_ref()
            .is_some_and(|only| !only.contains(&mount.mountpoint.as_str()))
        {
            continue;
        }
        match freeze_one(&mount.mountpoint) {
            Ok(true) => count += 1,
            Ok(false) => {}
            Err(why) => {
                let _ = thaw_all(ctx);
                return Err(QgaError::generic(why.to_string()));
            }
        }
    }
    if count == 0 {
        // Nothing froze: not frozen, and 0 (as qemu-ga); the hook is told
        // so, and a failure of it changes neither.
        let _ = std::fs::remove_file(ctx.run_dir.join(MARKER));
        *ctx.frozen = false;
        quiet(false);
        if let Err(e) = hook_thaw(ctx) {
            log::warn!("qga: nothing was frozen, and the hook's thaw failed: {}", e.desc);
        }
    }
    Ok(json!(count))
}

/// Why one filesystem could not be frozen, in qemu-ga's words (the error
/// without its "(os error N)").
#[derive(Debug, thiserror::Error)]
enum FreezeError {
    /// Its mount point could not be opened.
    #[error("failed to open {mountpoint}: {}", strerror(.source))]
    Open {
        mountpoint: String,
        #[source]
        source: io::Error,
    },
    /// `FIFREEZE` failed.
    #[error("failed to freeze {mountpoint}: {}", strerror(.source))]
    Freeze {
        mountpoint: String,
        #[source]
        source: io::Error,
    },
}

/// Freezes the filesystem mounted at `mountpoint`: `false` when it cannot
/// freeze or is frozen already (through another mount).
fn freeze_one(mountpoint: &str) -> Result<bool, FreezeError> {
    let dir = File::open(mountpoint).map_err(|source| FreezeError::Open {
        mountpoint: mountpoint.to_string(),
        source,
    })?;
    match ioctl(&dir, FIFREEZE, std::ptr::null_mut()) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EBUSY)) => Ok(false),
        Err(source) => Err(FreezeError::Freeze {
            mountpoint: mountpoint.to_string(),
            source,
        }),
    }
}

/// `guest-fsfreeze-thaw`.
pub fn thaw(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    live(ctx, "guest-fsfreeze-thaw")?;
    thaw_all(ctx).map(|n| json!(n))
}

/// Thaws every block filesystem (each as often as it was frozen), leaves
/// the frozen state, runs the hook; returns how many were thawed.
fn thaw_all(ctx: &mut Ctx<'_>) -> Result<i64, QgaError> {
    let mounts = block_mounts()?;
    let mut count = 0;
    for mount in &mounts {
        let Ok(dir) = File::open(&mount.mountpoint) else {
            continue;
        };
        let mut thawed = false;
        while ioctl(&dir, FITHAW, std::ptr::null_mut()).is_ok() {
            thawed = true;
        }
        count += i64::from(thawed);
    }
    let _ = std::fs::remove_file(ctx.run_dir.join(MARKER));
    *ctx.frozen = false;
    quiet(false);
    log::info!("qga: {count} filesystems thawed");
    hook_thaw(ctx)?;
    Ok(count)
}

/// The kernel's `struct fstrim_range`.
#[repr(C)]
struct TrimRange {
    start: u64,
    len: u64,
    minlen: u64,
}

/// `guest-fstrim`: every block filesystem, in reverse mount order, each
/// with its own result.
pub fn fstrim(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    live(ctx, "guest-fstrim")?;
    let minimum = arg_int(args, "minimum").unwrap_or(0).max(0) as u64;
    let mut paths = Vec::new();
    for mount in block_mounts()?.iter().rev() {
        let mut result = json!({ "path": mount.mountpoint });
        match File::open(&mount.mountpoint) {
            Err(e) => result["error"] = json!(format!("failed to open: {}", strerror(&e))),
            Ok(dir) => {
                let mut range = TrimRange {
                    start: 0,
                    len: u64::MAX,
                    minlen: minimum,
                };
                match ioctl(&dir, FITRIM, (&mut range as *mut TrimRange).cast()) {
                    Ok(()) => {
                        result["minimum"] = json!(range.minlen);
                        result["trimmed"] = json!(range.len);
                    }
                    Err(e) => {
                        result["error"] = json!(match e.raw_os_error() {
                            Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP) => "trim not supported".to_string(),
                            _ => format!("failed to trim: {}", strerror(&e)),
                        })
                    }
                }
            }
        }
        paths.push(result);
    }
    Ok(json!({ "paths": paths }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn a_hook_directory_runs_its_programs_in_name_order_and_skips_the_rest() {
        if !is_root() {
            eprintln!("SKIPPED: hooks must be root's");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("hooks");
        std::fs::create_dir(&hooks).unwrap();
        std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
        script(&hooks, "20-b", "");
        script(&hooks, "10-a", "");
        script(&hooks, ".hidden", "");
        script(&hooks, "10-a~", "");
        std::fs::write(hooks.join("README"), "not a program").unwrap();
        let names: Vec<String> = hook_programs(&hooks)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-a", "20-b"]);

        script(&hooks, "30-open", "");
        std::fs::set_permissions(hooks.join("30-open"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = hook_programs(&hooks).unwrap_err().desc;
        assert!(err.contains("30-open") && err.contains("0777"), "{err}");
    }

    #[test]
    fn a_failing_hook_says_its_status_and_the_earlier_ones_are_told_thaw() {
        if !is_root() {
            eprintln!("SKIPPED: hooks must be root's");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("hooks");
        std::fs::create_dir(&hooks).unwrap();
        std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
        let log = dir.path().join("log");
        let log_s = log.display();
        script(&hooks, "10-a", &format!("echo a-$1 >> {log_s}"));
        script(&hooks, "20-b", &format!("echo b-$1 >> {log_s}; exit 3"));
        script(&hooks, "30-c", &format!("echo c-$1 >> {log_s}"));
        let programs = hook_programs(&hooks).unwrap();
        let first = run_hook(&programs[1], "freeze").unwrap_err();
        assert_eq!(first.desc, "fsfreeze hook has failed with status 3");
        std::fs::remove_file(&log).unwrap();

        let mut system = super::super::fixture::System::new();
        system.settings.fsfreeze_hook = Some(hooks.clone());
        let ctx = system.ctx();
        assert!(hook_freeze(&ctx).is_err());
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a-freeze\nb-freeze\na-thaw\n");
        std::fs::remove_file(&log).unwrap();
        assert!(hook_thaw(&ctx).is_err(), "20-b fails at thaw too");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "c-thaw\nb-thaw\na-thaw\n");
    }

    #[test]
    fn under_a_test_root_nothing_freezes_and_the_reason_is_given() {
        let mut system = super::super::fixture::System::new();
        let mut ctx = system.ctx();
        let err = freeze(&mut ctx, &Args::new()).unwrap_err();
        assert!(err.desc.contains("running system only"), "{}", err.desc);
        assert_eq!(status(&mut ctx, &Args::new()).unwrap(), json!("thawed"));
        assert!(thaw(&mut ctx, &Args::new()).is_err());
        assert!(fstrim(&mut ctx, &Args::new()).is_err());
        assert!(!system.frozen);
    }

    #[test]
    fn the_marker_left_by_an_earlier_run_means_frozen() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!restore(dir.path()));
        std::fs::write(dir.path().join(MARKER), "").unwrap();
        assert!(restore(dir.path()));
        quiet(false);
    }
}
