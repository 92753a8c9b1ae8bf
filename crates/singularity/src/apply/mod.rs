//! The one place that changes the system. An [`Applier`] carries out a
//! [`Plan`] under its [`Root`]: it checks every target first, so that a plan
//! that cannot be carried out changes nothing, then writes files atomically
//! (keeping mode and owner, optionally keeping a backup and a cached copy for
//! `singularity apply`). Commands run only when the root is the live system;
//! otherwise they are logged.

mod lock;
mod write;

use crate::functions::Function;
use crate::plan::{FileWrite, Plan, Run, Step};
use crate::root::{Root, RootError};
use crate::shadow;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::SystemTime;
use write::{Existing, TargetError};

/// Where the shadow file and its lock live.
const SHADOW: &str = "/etc/shadow";
const PWD_LOCK: &str = "/etc/.pwd.lock";

/// Why a plan was not (fully) carried out.
#[derive(Debug)]
pub enum ApplyError {
    /// A path could not be placed under the root.
    Root(RootError),
    /// A target exists but must not be replaced.
    Refused {
        /// The system path.
        path: String,
        /// Why.
        why: &'static str,
    },
    /// A file-system operation failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The system path.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// `/etc/shadow` could not be edited.
    Shadow(shadow::ShadowError),
    /// A command failed.
    Command {
        /// The command line.
        command: String,
        /// Its exit status and error output.
        detail: String,
    },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Root(e) => e.fmt(f),
            ApplyError::Refused { path, why } => write!(f, "refusing to write {path}: it {why}"),
            ApplyError::Io { op, path, source } => write!(f, "cannot {op} {path}: {source}"),
            ApplyError::Shadow(e) => write!(f, "cannot update {SHADOW}: {e}"),
            ApplyError::Command { command, detail } => write!(f, "command '{command}' failed: {detail}"),
        }
    }
}

impl std::error::Error for ApplyError {}

impl From<RootError> for ApplyError {
    fn from(e: RootError) -> ApplyError {
        ApplyError::Root(e)
    }
}

fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Io {
        op,
        path: path.to_string(),
        source,
    }
}

/// What applying a plan did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Whether anything on the system changed.
    pub changed: bool,
}

/// Carries out plans under a root.
#[derive(Clone, Debug)]
pub struct Applier {
    root: Root,
    backup: bool,
    cache: Option<String>,
}

impl Applier {
    /// An applier for `root`; `backup` keeps `.<name>.bak` copies; `cache` (a
    /// system path such as `/var/cache/singularity`) keeps a copy of every file
    /// written, as `<cache>/<function>/<path>`.
    pub fn new(root: Root, backup: bool, cache: Option<String>) -> Applier {
        Applier { root, backup, cache }
    }

    /// The root this applier works under.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Carries out `plan`. Every target is checked before anything is written.
    pub fn apply(&self, plan: &Plan) -> Result<Outcome, ApplyError> {
        let mut targets = Vec::new();
        for step in &plan.steps {
            if let Step::Write(w) = step {
                targets.push(self.check_target(&w.path)?);
            }
        }
        let mut outcome = Outcome::default();
        let mut targets = targets.into_iter();
        for step in &plan.steps {
            let changed = match step {
                Step::Write(w) => {
                    let (target, existing) = targets.next().ok_or_else(|| ApplyError::Refused {
                        path: w.path.clone(),
                        why: "was not checked",
                    })?;
                    self.write_file(plan.function, w, &target, &existing)?
                }
                Step::SetPassword { user, hash } => self.set_password(user, hash.expose())?,
                Step::Run(run) => self.run(run)?,
            };
            outcome.changed |= changed;
        }
        Ok(outcome)
    }

    fn check_target(&self, path: &str) -> Result<(PathBuf, Existing), ApplyError> {
        let target = self.root.join(path)?;
        match write::inspect(&target) {
            Ok(existing) => Ok((target, existing)),
            Err(TargetError::NotRegular(why)) => Err(ApplyError::Refused {
                path: path.to_string(),
                why,
            }),
            Err(TargetError::Io(e)) => Err(io_err("inspect", path)(e)),
        }
    }

    fn write_file(
        &self,
        function: Function,
        w: &FileWrite,
        target: &PathBuf,
        existing: &Existing,
    ) -> Result<bool, ApplyError> {
        for (dir, mode) in &w.dirs {
            let on_disk = self.root.join(dir)?;
            write::ensure_dir(&on_disk, *mode).map_err(io_err("create directory", dir))?;
        }
        if self.backup
            && matches!(existing, Existing::File { .. })
            && std::fs::read(target).ok().as_deref() != Some(&w.contents[..])
        {
            write::backup(target, existing).map_err(io_err("back up", &w.path))?;
        }
        let changed = write::replace(target, &w.contents, w.mode, existing).map_err(io_err("write", &w.path))?;
        // The live change is done; a cache failure only costs `apply` later.
        if let Err(e) = self.cache_copy(function, w) {
            log::warn!("{} written, but not cached: {e}", w.path);
        }
        Ok(changed)
    }

    /// Stores what was written under `<cache>/<function>/<path>` (mode kept,
    /// private directories), so `singularity apply` can restore it later.
    fn cache_copy(&self, function: Function, w: &FileWrite) -> Result<(), ApplyError> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        let base = cache.trim_end_matches('/');
        let cached = format!("{base}/{}{}", function.name(), w.path);
        for dir in crate::plan::ancestors(&cached) {
            // Directories from the cache down are private; above it, ordinary.
            let mode = if dir.len() >= base.len() { 0o700 } else { 0o755 };
            let on_disk = self.root.join(&dir)?;
            write::ensure_dir(&on_disk, mode).map_err(io_err("create directory", &dir))?;
        }
        let target = self.root.join(&cached)?;
        let mode = match write::inspect(&self.root.join(&w.path)?) {
            Ok(Existing::File { mode, .. }) => mode,
            _ => w.mode,
        };
        let existing = write::inspect(&target).map_err(|e| match e {
            TargetError::NotRegular(why) => ApplyError::Refused {
                path: cached.clone(),
                why,
            },
            TargetError::Io(e) => io_err("inspect", &cached)(e),
        })?;
        write::replace(&target, &w.contents, mode, &existing).map_err(io_err("write", &cached))?;
        Ok(())
    }

    fn set_password(&self, user: &str, hash: &str) -> Result<bool, ApplyError> {
        let lock_path = self.root.join(PWD_LOCK)?;
        let _lock = lock::lock_pwd(&lock_path).map_err(io_err("lock", PWD_LOCK))?;
        let (target, existing) = self.check_target(SHADOW)?;
        let old = std::fs::read(&target).map_err(io_err("read", SHADOW))?;
        let days = shadow::days_since_epoch(SystemTime::now());
        let new = shadow::set_password(&old, user, hash, days).map_err(ApplyError::Shadow)?;
        if self.backup {
            write::backup(&target, &existing).map_err(io_err("back up", SHADOW))?;
        }
        write::replace(&target, &new, 0o640, &existing).map_err(io_err("write", SHADOW))
    }

    fn run(&self, run: &Run) -> Result<bool, ApplyError> {
        let line = format!("{} {}", run.program, run.args.join(" "));
        if !self.root.is_live() {
            log::info!(
                "root is {}: not running '{}'",
                self.root.base().display(),
                line.trim_end()
            );
            return Ok(false);
        }
        let out = Command::new(&run.program)
            .args(&run.args)
            .output()
            .map_err(|e| ApplyError::Command {
                command: line.clone(),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(ApplyError::Command {
                command: line,
                detail: format!("{}: {}", out.status, stderr.trim()),
            });
        }
        Ok(true)
    }
}
