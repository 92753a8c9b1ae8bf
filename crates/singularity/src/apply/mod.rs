//! The one place that changes the system. An [`Applier`] carries out a
//! [`Plan`] under its [`Root`]: it checks every target first, so that a plan
//! that cannot be carried out changes nothing, then writes files atomically
//! (keeping mode, owner and extended attributes such as the SELinux context,
//! giving new files the context of their path, optionally keeping a backup
//! and a cached copy for `singularity apply`). Targets are resolved once,
//! without leaving the root (`resolve`), and written through the directory
//! handles found then.
//! Commands run only when the root is the live system; otherwise they are
//! logged.

mod contexts;
mod lock;
mod resolve;
mod system;
mod target;
mod write;
mod xattrs;

pub use system::{LogRunner, RunError, Runner, SystemRunner};

use crate::plan::{FileWrite, Plan, Step};
use crate::root::{Root, RootError};
use crate::shadow;
use contexts::{Kind, Labels};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::SystemTime;
use target::{Checked, Target};
use write::Existing;
use zeroize::Zeroizing;

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
        /// How it failed: its exit status and error output.
        detail: RunError,
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

/// File contents kept in memory, wiped when dropped.
type Contents = Zeroizing<Vec<u8>>;

/// What to put back if a change fails half-way.
#[derive(Default)]
struct Undo {
    /// Files written: their directory, name and previous contents (`None`: did not exist).
    files: Vec<(OwnedFd, String, Option<Contents>)>,
    /// Links made: directory, name and previous target (`None`: did not exist).
    links: Vec<(OwnedFd, String, Option<String>)>,
    /// Directories created on the way to a file: their parent and name.
    dirs: Vec<(OwnedFd, String)>,
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

    /// The contents of the regular file `path`, found as a write to it would
    /// be (without leaving the root, within `within` when not empty, never
    /// through a link at its end); `None` when it does not exist. Nothing
    /// changes.
    pub fn read(&self, path: &str, within: &[String]) -> Result<Option<Zeroizing<Vec<u8>>>, ApplyError> {
        let root = resolve::open_root(self.root.base()).map_err(io_err("open the root", "/"))?;
        match target::check_target(&root, path, within)? {
            (_, Existing::Missing) => Ok(None),
            (target, Existing::File { .. }) => write::read(target.dir.as_fd(), &target.name)
                .map(Some)
                .map_err(io_err("read", path)),
        }
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
        let root = resolve::open_root(self.root.base()).map_err(io_err("open the root", "/"))?;
        let mut checked = Vec::new();
        let mut paths = std::collections::HashSet::new();
        for plan in plans {
            for step in &plan.steps {
                match step {
                    Step::Write(w) => {
                        // Two writers of one file in one change (a built-in
                        // and an external configurator): neither wins.
                        if !paths.insert(w.path.as_str()) {
                            return Err(ApplyError::Refused {
                                path: w.path.clone(),
                                why: "is written twice in one change (two configurators name it)",
                            });
                        }
                        let (target, existing) = target::check_target(&root, &w.path, &w.within)?;
                        checked.push(Checked::Write(target, existing));
                    }
                    Step::Symlink { path, .. } => checked.push(Checked::Link(target::check_link(&root, path)?)),
                    _ => {}
                }
            }
        }
        let labels = Labels::new(&root);
        let mut undo = Undo::default();
        match self.change(&root, &labels, plans, checked, &mut undo) {
            Ok(outcome) => {
                for plan in plans {
                    for step in &plan.steps {
                        if let Step::Write(w) = step {
                            // The live change is done; a cache failure only costs `apply` later.
                            if let Err(e) = self.cache_copy(&root, &labels, &plan.function, w) {
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
        root: &OwnedFd,
        labels: &Labels<'_>,
        plans: &[Plan],
        checked: Vec<Checked>,
        undo: &mut Undo,
    ) -> Result<Outcome, ApplyError> {
        let mut outcome = Outcome::default();
        let mut checked = checked.into_iter();
        for plan in plans {
            for step in &plan.steps {
                let changed = match step {
                    Step::Write(w) => {
                        let Some(Checked::Write(target, existing)) = checked.next() else {
                            return Err(ApplyError::Refused {
                                path: w.path.clone(),
                                why: "was not checked",
                            });
                        };
                        self.write_file(w, target, &existing, self.backup, undo, labels)?
                    }
                    Step::Symlink { path, target } => {
                        let Some(Checked::Link(link)) = checked.next() else {
                            return Err(ApplyError::Refused {
                                path: path.clone(),
                                why: "was not checked",
                            });
                        };
                        let dir = link.dir.as_fd();
                        let previous = write::link_target(dir, &link.name);
                        let keep = dir.try_clone_to_owned().map_err(io_err("link", path))?;
                        undo.links.push((keep, link.name.clone(), previous));
                        write::symlink(dir, &link.name, target).map_err(io_err("link", path))?
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
                    Step::SetPassword { user, hash } => self.set_password(root, user, hash.expose())?,
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
        for (dir, name, previous) in undo.files.into_iter().rev() {
            let dir = dir.as_fd();
            let restored = match previous {
                Some(old) => write::inspect(dir, &name)
                    .map_err(|_| io::Error::other("not a regular file"))
                    .and_then(|state| write::replace(dir, &name, &old, 0o600, None, &state, None).map(|_| ())),
                None => write::remove(dir, &name),
            };
            if let Err(e) = restored {
                log::error!("cannot restore {name}: {e}");
            }
        }
        for (dir, name, previous) in undo.links.into_iter().rev() {
            let dir = dir.as_fd();
            let restored = match previous {
                Some(old) => write::symlink(dir, &name, &old).map(|_| ()),
                None => write::remove(dir, &name),
            };
            if let Err(e) = restored {
                log::error!("cannot restore {name}: {e}");
            }
        }
        // Newest first, so a directory is empty again when its turn comes.
        for (parent, name) in undo.dirs.into_iter().rev() {
            if let Err(e) = write::remove_dir(parent.as_fd(), &name) {
                log::error!("cannot remove directory {name}: {e}");
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

    fn write_file(
        &self,
        w: &FileWrite,
        mut target: Target,
        existing: &Existing,
        backup: bool,
        undo: &mut Undo,
        labels: &Labels<'_>,
    ) -> Result<bool, ApplyError> {
        let path = w.path.as_str();
        // Where each new directory and the file really are, for their contexts.
        let mut resolved = std::mem::take(&mut target.dir_path);
        let system_path = |parts: &[String]| format!("/{}", parts.join("/"));
        // The missing directories are the last of the file's ancestors.
        let modes: Vec<u32> = w.dirs.iter().map(|(_, mode)| *mode).collect();
        let first = modes.len().saturating_sub(target.missing.len());
        for (i, name) in std::mem::take(&mut target.missing).into_iter().enumerate() {
            let mode = modes.get(first + i).copied().unwrap_or(0o700);
            resolved.push(name.clone());
            let context = labels.for_new(&system_path(&resolved), Kind::Dir, target.dir.as_fd());
            let (new, created) = write::make_dir(target.dir.as_fd(), &name, mode, w.owner, context.as_deref())
                .map_err(io_err("create directory", path))?;
            if created {
                undo.dirs.push((target.dir, name));
            }
            target.dir = new;
        }
        let dir = target.dir.as_fd();
        let previous = match existing {
            Existing::File { .. } => Some(write::read(dir, &target.name).map_err(io_err("read", path))?),
            Existing::Missing => None,
        };
        let unchanged = previous.as_ref().is_some_and(|old| old[..] == w.contents[..]);
        if backup && !unchanged {
            write::backup(dir, &target.name, existing).map_err(io_err("back up", path))?;
        }
        let context = match existing {
            Existing::Missing => {
                resolved.push(target.name.clone());
                labels.for_new(&system_path(&resolved), Kind::File, dir)
            }
            Existing::File { .. } => None,
        };
        let keep = dir.try_clone_to_owned().map_err(io_err("write", path))?;
        undo.files.push((keep, target.name.clone(), previous));
        write::replace(
            dir,
            &target.name,
            &w.contents,
            w.mode,
            w.owner,
            existing,
            context.as_deref(),
        )
        .map_err(io_err("write", path))
    }

    /// Stores what was written under `<cache>/<function>/<path>` (mode and
    /// owner kept, private directories), so `singularity apply` can restore
    /// it later.
    fn cache_copy(&self, root: &OwnedFd, labels: &Labels<'_>, function: &str, w: &FileWrite) -> Result<(), ApplyError> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        let base = cache.trim_end_matches('/');
        let cached = format!("{base}/{function}{}", w.path);
        // Directories from the cache down are private; above it, ordinary.
        let dirs = crate::plan::ancestors(&cached)
            .into_iter()
            .map(|dir| {
                let mode = if dir.len() >= base.len() { 0o700 } else { 0o755 };
                (dir, mode)
            })
            .collect();
        let mode = match target::check_target(root, &w.path, &[]) {
            Ok((_, Existing::File { mode, .. })) => mode,
            _ => w.mode,
        };
        let copy = FileWrite {
            path: cached.clone(),
            contents: w.contents.clone(),
            mode,
            dirs,
            within: Vec::new(),
            owner: None,
        };
        let (target, existing) = target::check_target(root, &cached, &[])?;
        // Nothing to undo: a cache copy is made only after the change is complete.
        self.write_file(&copy, target, &existing, false, &mut Undo::default(), labels)?;
        if let (Some((uid, gid)), true) = (w.owner, write::is_root_user()) {
            // The copy is the user's, in root's private directories.
            let (target, _) = target::check_target(root, &cached, &[])?;
            let name = std::ffi::CString::new(target.name.as_bytes())
                .map_err(|_| io_err("cache", &w.path)(io::Error::from(io::ErrorKind::InvalidInput)))?;
            rustix::fs::chownat(
                &target.dir,
                name.as_c_str(),
                crate::apply::write::owner_uid(uid),
                crate::apply::write::owner_gid(gid),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| io_err("cache", &w.path)(e.into()))?;
        }
        Ok(())
    }

    fn set_password(&self, root: &OwnedFd, user: &str, hash: &str) -> Result<bool, ApplyError> {
        let lock = target::locate(root, PWD_LOCK)?;
        if !lock.missing.is_empty() {
            return Err(io_err("lock", PWD_LOCK)(io::Error::from_raw_os_error(libc::ENOENT)));
        }
        let _lock = lock::lock_pwd(lock.dir.as_fd(), &lock.name).map_err(io_err("lock", PWD_LOCK))?;
        let (target, existing) = target::check_target(root, SHADOW, &[])?;
        if let Existing::Missing = existing {
            return Err(io_err("read", SHADOW)(io::Error::from_raw_os_error(libc::ENOENT)));
        }
        let dir = target.dir.as_fd();
        let old = write::read(dir, &target.name).map_err(io_err("read", SHADOW))?;
        let days = shadow::days_since_epoch(SystemTime::now());
        let new = Zeroizing::new(shadow::set_password(&old, user, hash, days).map_err(ApplyError::Shadow)?);
        if self.backup {
            write::backup(dir, &target.name, &existing).map_err(io_err("back up", SHADOW))?;
        }
        write::replace(dir, &target.name, &new, 0o640, None, &existing, None).map_err(io_err("write", SHADOW))
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
        fn run(&self, run: &Run) -> Result<(), RunError> {
            self.calls.lock().unwrap().push(run.program.clone());
            if self.fail {
                Err(RunError::Failed {
                    line: format!("{} {}", run.program, run.args.join(" ")),
                    status: std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
                    stderr: b"ifup: no such interface\n".to_vec(),
                })
            } else {
                Ok(())
            }
        }
        fn set_hostname(&self, _: &str) -> Result<(), RunError> {
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
    fn a_file_two_plans_write_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let applier = Applier::new(Root::new(dir.path()), false, None);
        let plans = [
            plan(vec![Step::Write(FileWrite::new("/etc/a", b"one\n".to_vec(), 0o644))]),
            plan(vec![
                Step::Write(FileWrite::new("/etc/b", b"b\n".to_vec(), 0o644)),
                Step::Write(FileWrite::new("/etc/a", b"two\n".to_vec(), 0o644)),
            ]),
        ];
        let err = applier.apply_all(&plans).unwrap_err().to_string();
        assert!(err.contains("/etc/a") && err.contains("written twice"), "{err}");
        assert!(!dir.path().join("etc").exists());
    }

    #[test]
    fn failed_bring_up_restores_every_file_and_reruns_the_commands() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("etc/network")).unwrap();
        std::fs::write(dir.path().join("etc/network/interfaces"), "old\n").unwrap();
        let interfaces = std::fs::File::open(dir.path().join("etc/network/interfaces")).unwrap();
        let attributes = xattrs::set(interfaces.as_fd(), c"user.origin", b"image").is_ok();
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
            "command 'ifup eth0' failed: ifup eth0: exit status: 1: ifup: no such interface"
        );
        assert_eq!(
            std::fs::read(dir.path().join("etc/network/interfaces")).unwrap(),
            b"old\n"
        );
        if attributes {
            let restored = std::fs::File::open(dir.path().join("etc/network/interfaces")).unwrap();
            assert_eq!(
                xattrs::get(restored.as_fd(), c"user.origin").unwrap().as_deref(),
                Some(&b"image"[..]),
                "the restored file keeps its attributes"
            );
        }
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
    fn an_owned_write_gives_the_file_and_its_new_directories_to_the_owner() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: only root gives files away");
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/u")).unwrap();
        let applier = Applier::new(Root::new(dir.path()), false, Some("/var/cache/singularity".into()));
        let mut w = FileWrite::new("/home/u/.ssh/authorized_keys", b"k\n".to_vec(), 0o600);
        w.dirs = vec![
            ("/home".into(), 0o755),
            ("/home/u".into(), 0o755),
            ("/home/u/.ssh".into(), 0o700),
        ];
        w.owner = Some((4242, 4343));
        applier.apply(&plan(vec![Step::Write(w)])).unwrap();
        let meta = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap();
        let keys = meta("home/u/.ssh/authorized_keys");
        assert_eq!((keys.uid(), keys.gid(), keys.mode() & 0o7777), (4242, 4343, 0o600));
        let ssh = meta("home/u/.ssh");
        assert_eq!((ssh.uid(), ssh.gid(), ssh.mode() & 0o7777), (4242, 4343, 0o700));
        assert_eq!(meta("home/u").uid(), 0, "an existing directory is left as it is");
        let cached = meta("var/cache/singularity/network/home/u/.ssh/authorized_keys");
        assert_eq!(cached.uid(), 4242, "the copy is the user's, for apply to restore it so");
        let cache_dir = meta("var/cache/singularity/network/home/u/.ssh");
        assert_eq!(
            (cache_dir.uid(), cache_dir.mode() & 0o777),
            (0, 0o700),
            "in root's private directories"
        );

        // A root-owned file (an administrator's lock on the user's keys)
        // stays root's, its mode kept.
        let keys_path = dir.path().join("home/u/.ssh/authorized_keys");
        std::fs::write(&keys_path, "old\n").unwrap();
        std::os::unix::fs::chown(&keys_path, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&keys_path, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
        let owned = |text: &[u8]| {
            let mut w = FileWrite::new("/home/u/.ssh/authorized_keys", text.to_vec(), 0o600);
            w.owner = Some((4242, 4343));
            plan(vec![Step::Write(w)])
        };
        applier.apply(&owned(b"new\n")).unwrap();
        let keys = meta("home/u/.ssh/authorized_keys");
        assert_eq!((keys.uid(), keys.gid(), keys.mode() & 0o7777), (0, 0, 0o640));
        assert_eq!(std::fs::read(&keys_path).unwrap(), b"new\n");

        // Another user's file, or one with other hard links (its contents
        // would be handed over), is refused and left as it is.
        std::os::unix::fs::chown(&keys_path, Some(777), Some(777)).unwrap();
        let err = applier.apply(&owned(b"newer\n")).unwrap_err().to_string();
        assert!(err.contains("belongs to uid 777"), "{err}");
        std::os::unix::fs::chown(&keys_path, Some(4242), Some(4343)).unwrap();
        std::fs::hard_link(&keys_path, dir.path().join("home/u/elsewhere")).unwrap();
        let err = applier.apply(&owned(b"newer\n")).unwrap_err().to_string();
        assert!(err.contains("hard links"), "{err}");
        assert_eq!(std::fs::read(&keys_path).unwrap(), b"new\n");
    }

    #[test]
    fn a_file_too_large_to_read_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        // Sparse: a terabyte that takes no disk.
        std::fs::File::create(dir.path().join("etc/big"))
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        let applier = Applier::new(Root::new(dir.path()), false, None);
        let err = applier.read("/etc/big", &[]).unwrap_err().to_string();
        assert!(err.contains("larger than 16 MiB"), "{err}");
        let w = FileWrite::new("/etc/big", b"small\n".to_vec(), 0o644);
        let err = applier.apply(&plan(vec![Step::Write(w)])).unwrap_err().to_string();
        assert!(err.contains("larger than 16 MiB"), "{err}");
        assert_eq!(std::fs::metadata(dir.path().join("etc/big")).unwrap().len(), 1 << 40);
    }

    #[test]
    fn read_finds_a_file_as_a_write_would() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/u/.ssh")).unwrap();
        std::fs::create_dir_all(dir.path().join("root/.ssh")).unwrap();
        std::fs::write(dir.path().join("home/u/.ssh/authorized_keys"), "k\n").unwrap();
        std::fs::write(dir.path().join("root/.ssh/authorized_keys"), "root's\n").unwrap();
        let applier = Applier::new(Root::new(dir.path()), false, None);
        let within = ["/home/u".to_string()];
        let read = |path: &str| applier.read(path, &within);
        assert_eq!(
            read("/home/u/.ssh/authorized_keys").unwrap().as_deref().map(|v| &v[..]),
            Some(&b"k\n"[..])
        );
        assert!(read("/home/u/.ssh/missing").unwrap().is_none());
        std::os::unix::fs::symlink("/root/.ssh/authorized_keys", dir.path().join("home/u/.ssh/other")).unwrap();
        assert!(read("/home/u/.ssh/other").is_err(), "a link at the end");
        std::os::unix::fs::symlink("/root/.ssh", dir.path().join("home/u/.ssh2")).unwrap();
        let err = read("/home/u/.ssh2/authorized_keys").unwrap_err().to_string();
        assert!(err.contains("outside the allowed paths"), "{err}");
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
