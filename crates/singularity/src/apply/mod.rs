//! The one place that changes the system. An [`Applier`] carries out a
//! [`Plan`] under its [`Root`]: it checks every target first, so that a plan
//! that cannot be carried out changes nothing, then writes files atomically
//! (keeping mode and owner, optionally keeping a backup and a cached copy for
//! `singularity apply`). Commands run only when the root is the live system;
//! otherwise they are logged.

mod lock;
mod system;
mod write;

pub use system::{LogRunner, Runner, SystemRunner};

use crate::plan::{FileWrite, Plan, Step};
use crate::root::{Root, RootError};
use crate::shadow;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
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
#[derive(Clone)]
pub struct Applier {
    root: Root,
    backup: bool,
    cache: Option<String>,
    runner: Arc<dyn Runner>,
}

impl fmt::Debug for Applier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Applier")
            .field("root", &self.root)
            .field("backup", &self.backup)
            .field("cache", &self.cache)
            .finish()
    }
}

/// What to put back if a change fails half-way.
#[derive(Default)]
struct Undo {
    /// Files written: their path under the root and previous contents (`None`: did not exist).
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// Links made: path under the root and previous target (`None`: did not exist).
    links: Vec<(PathBuf, Option<PathBuf>)>,
    /// Directories created on the way to a file.
    dirs: Vec<PathBuf>,
    /// The hostname before it was set.
    hostname: Option<String>,
}

impl Applier {
    /// An applier for `root`; `backup` keeps `.<name>.bak` copies; `cache` (a
    /// system path such as `/var/cache/singularity`) keeps a copy of every file
    /// written, as `<cache>/<function>/<path>`.
    pub fn new(root: Root, backup: bool, cache: Option<String>) -> Applier {
        let runner: Arc<dyn Runner> = if root.is_live() {
            Arc::new(SystemRunner)
        } else {
            Arc::new(LogRunner)
        };
        Applier {
            root,
            backup,
            cache,
            runner,
        }
    }

    /// The same applier with another way to run commands (tests).
    pub fn with_runner(mut self, runner: Arc<dyn Runner>) -> Applier {
        self.runner = runner;
        self
    }

    /// The root this applier works under.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Carries out `plan` (see [`Applier::apply_all`]).
    pub fn apply(&self, plan: &Plan) -> Result<Outcome, ApplyError> {
        self.apply_all(std::slice::from_ref(plan))
    }

    /// Carries out several plans as one change. Every target is checked before
    /// anything is written; then files, links, the hostname and the password
    /// are changed; then the commands run. If any of that fails, every file
    /// and link is put back as it was, the hostname too, and the commands run
    /// again to bring the previous state back. Only a complete change is
    /// cached.
    pub fn apply_all(&self, plans: &[Plan]) -> Result<Outcome, ApplyError> {
        let mut checked = Vec::new();
        for plan in plans {
            for step in &plan.steps {
                match step {
                    Step::Write(w) => checked.push(self.check_target(&w.path)?),
                    Step::Symlink { path, .. } => self.check_link(path)?,
                    _ => {}
                }
            }
        }
        let mut undo = Undo::default();
        match self.change(plans, checked, &mut undo) {
            Ok(outcome) => {
                for plan in plans {
                    for step in &plan.steps {
                        if let Step::Write(w) = step {
                            // The live change is done; a cache failure only costs `apply` later.
                            if let Err(e) = self.cache_copy(&plan.function, w) {
                                log::warn!("{} written, but not cached: {e}", w.path);
                            }
                        }
                    }
                }
                Ok(outcome)
            }
            Err(e) => {
                self.roll_back(plans, undo);
                Err(e)
            }
        }
    }

    fn change(
        &self,
        plans: &[Plan],
        checked: Vec<(PathBuf, Existing)>,
        undo: &mut Undo,
    ) -> Result<Outcome, ApplyError> {
        let mut outcome = Outcome::default();
        let mut checked = checked.into_iter();
        for plan in plans {
            for step in &plan.steps {
                let changed = match step {
                    Step::Write(w) => {
                        let (target, existing) = checked.next().ok_or_else(|| ApplyError::Refused {
                            path: w.path.clone(),
                            why: "was not checked",
                        })?;
                        let previous = match existing {
                            Existing::File { .. } => Some(std::fs::read(&target).map_err(io_err("read", &w.path))?),
                            Existing::Missing => None,
                        };
                        undo.files.push((target.clone(), previous));
                        self.write_file(w, &target, &existing, &mut undo.dirs)?
                    }
                    Step::Symlink { path, target } => {
                        let link = self.root.join(path)?;
                        undo.links.push((link.clone(), std::fs::read_link(&link).ok()));
                        write::symlink(&link, target).map_err(io_err("link", path))?
                    }
                    Step::SetHostname(name) => {
                        if undo.hostname.is_none() {
                            undo.hostname = self.runner.hostname();
                        }
                        self.runner.set_hostname(name).map_err(|detail| ApplyError::Command {
                            command: format!("sethostname {name}"),
                            detail,
                        })?;
                        self.root.is_live()
                    }
                    Step::SetPassword { user, hash } => self.set_password(user, hash.expose())?,
                    Step::Run(_) => false,
                };
                outcome.changed |= changed;
            }
        }
        for plan in plans {
            for step in &plan.steps {
                if let Step::Run(run) = step {
                    self.runner.run(run).map_err(|detail| ApplyError::Command {
                        command: format!("{} {}", run.program, run.args.join(" ")).trim_end().to_string(),
                        detail,
                    })?;
                    outcome.changed |= self.root.is_live();
                }
            }
        }
        Ok(outcome)
    }

    /// Puts back what a failed change did, newest first, and re-runs the
    /// commands so the previous configuration is live again.
    fn roll_back(&self, plans: &[Plan], undo: Undo) {
        for (target, previous) in undo.files.into_iter().rev() {
            let restored = match previous {
                Some(old) => write::inspect(&target)
                    .map_err(|_| std::io::Error::other("not a regular file"))
                    .and_then(|state| write::replace(&target, &old, 0o644, &state).map(|_| ())),
                None => std::fs::remove_file(&target).or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                }),
            };
            if let Err(e) = restored {
                log::error!("cannot restore {}: {e}", target.display());
            }
        }
        for (link, previous) in undo.links.into_iter().rev() {
            let restored = match previous {
                Some(old) => write::symlink(&link, &old.to_string_lossy()).map(|_| ()),
                None => std::fs::remove_file(&link),
            };
            if let Err(e) = restored {
                log::error!("cannot restore {}: {e}", link.display());
            }
        }
        // Newest first, so a directory is empty again when its turn comes.
        for dir in undo.dirs.into_iter().rev() {
            if let Err(e) = std::fs::remove_dir(&dir) {
                log::error!("cannot remove {}: {e}", dir.display());
            }
        }
        if let Some(name) = undo.hostname {
            if let Err(e) = self.runner.set_hostname(&name) {
                log::error!("cannot restore the hostname: {e}");
            }
        }
        for plan in plans {
            for step in &plan.steps {
                if let Step::Run(run) = step {
                    if let Err(e) = self.runner.run(run) {
                        log::error!("while restoring the previous configuration: {e}");
                    }
                }
            }
        }
    }

    fn check_link(&self, path: &str) -> Result<(), ApplyError> {
        let link = self.root.join(path)?;
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if !meta.file_type().is_symlink() => Err(ApplyError::Refused {
                path: path.to_string(),
                why: "exists and is not a symbolic link",
            }),
            _ => Ok(()),
        }
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
        w: &FileWrite,
        target: &PathBuf,
        existing: &Existing,
        created: &mut Vec<PathBuf>,
    ) -> Result<bool, ApplyError> {
        for (dir, mode) in &w.dirs {
            let on_disk = self.root.join(dir)?;
            if write::ensure_dir(&on_disk, *mode).map_err(io_err("create directory", dir))? {
                created.push(on_disk);
            }
        }
        if self.backup
            && matches!(existing, Existing::File { .. })
            && std::fs::read(target).ok().as_deref() != Some(&w.contents[..])
        {
            write::backup(target, existing).map_err(io_err("back up", &w.path))?;
        }
        write::replace(target, &w.contents, w.mode, existing).map_err(io_err("write", &w.path))
    }

    /// Stores what was written under `<cache>/<function>/<path>` (mode kept,
    /// private directories), so `singularity apply` can restore it later.
    fn cache_copy(&self, function: &str, w: &FileWrite) -> Result<(), ApplyError> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        let base = cache.trim_end_matches('/');
        let cached = format!("{base}/{function}{}", w.path);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::Function;
    use crate::plan::Run;
    use std::sync::Mutex;

    /// Records commands; fails every command while `fail` is set.
    struct FailingRunner {
        calls: Mutex<Vec<String>>,
        fail: bool,
    }

    impl Runner for FailingRunner {
        fn run(&self, run: &Run) -> Result<(), String> {
            self.calls.lock().unwrap().push(run.program.clone());
            if self.fail {
                Err("exit status: 1: ifup: no such interface".into())
            } else {
                Ok(())
            }
        }
        fn set_hostname(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn hostname(&self) -> Option<String> {
            None
        }
    }

    fn plan(steps: Vec<Step>) -> Plan {
        Plan {
            function: Function::Network.into(),
            steps,
        }
    }

    #[test]
    fn failed_bring_up_restores_every_file_and_reruns_the_commands() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("etc/network")).unwrap();
        std::fs::write(dir.path().join("etc/network/interfaces"), "old\n").unwrap();
        std::os::unix::fs::symlink("net.lo", dir.path().join("etc/net.eth9")).unwrap();
        let runner = Arc::new(FailingRunner {
            calls: Mutex::new(Vec::new()),
            fail: true,
        });
        let applier = Applier::new(root, false, Some("/var/cache/singularity".into())).with_runner(runner.clone());
        let plans = [plan(vec![
            Step::Write(FileWrite::new("/etc/network/interfaces", b"new\n".to_vec(), 0o644)),
            Step::Write(FileWrite::new("/etc/network/interfaces.d/50-x", b"x\n".to_vec(), 0o644)),
            Step::Symlink {
                path: "/etc/net.eth0".into(),
                target: "net.lo".into(),
            },
            Step::Run(Run {
                program: "ifup".into(),
                args: vec!["eth0".into()],
            }),
        ])];
        let err = applier.apply_all(&plans).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command 'ifup eth0' failed: exit status: 1: ifup: no such interface"
        );
        assert_eq!(
            std::fs::read(dir.path().join("etc/network/interfaces")).unwrap(),
            b"old\n"
        );
        assert!(
            !dir.path().join("etc/network/interfaces.d").exists(),
            "created directories removed too"
        );
        assert!(std::fs::symlink_metadata(dir.path().join("etc/net.eth0")).is_err());
        assert_eq!(
            std::fs::read_link(dir.path().join("etc/net.eth9")).unwrap(),
            std::path::Path::new("net.lo")
        );
        assert_eq!(
            *runner.calls.lock().unwrap(),
            vec!["ifup", "ifup"],
            "run, then run again to restore"
        );
        assert!(
            !dir.path().join("var/cache/singularity").exists(),
            "a failed change is not cached"
        );
    }

    #[test]
    fn a_symlink_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/init.d")).unwrap();
        std::fs::write(dir.path().join("etc/init.d/net.eth0"), "script").unwrap();
        let applier = Applier::new(Root::new(dir.path()), false, None);
        let err = applier
            .apply(&plan(vec![Step::Symlink {
                path: "/etc/init.d/net.eth0".into(),
                target: "net.lo".into(),
            }]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing to write /etc/init.d/net.eth0: it exists and is not a symbolic link"
        );
    }
}
