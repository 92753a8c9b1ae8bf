//! The run-time directory (`-r`/`--run`, `[daemon] run`): where the daemon
//! keeps its run-time items, such as the socket communicator's socket. It is a
//! path on the agent's own system, never under `--root`. The daemon creates it
//! when missing (0755, owned by the daemon's user) and refuses one that is a
//! symbolic link, not a directory, owned by another user, or writable by its
//! group or by others: a socket there could be replaced by anyone who may
//! write it. Its parents are created as needed and may be links
//! (`/var/run` → `/run`).

use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a created run-time directory.
pub const MODE: u32 = 0o755;

/// What was being done to the run-time directory when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Creating its parents.
    CreateParent,
    /// Creating it.
    Create,
    /// Setting its mode.
    SetMode,
    /// Reading its metadata.
    Inspect,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::CreateParent => "cannot create its parent",
            Step::Create => "cannot create it",
            Step::SetMode => "cannot set its mode",
            Step::Inspect => "cannot inspect it",
        })
    }
}

/// Why an existing run-time directory is not safe to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It is a symbolic link.
    Symlink,
    /// It is not a directory.
    NotDirectory,
    /// It belongs to another user.
    Owner {
        /// Its owner.
        uid: u32,
        /// The user it must belong to.
        expected: u32,
    },
    /// Its group or others may write it.
    Writable {
        /// Its permission bits.
        mode: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Symlink => f.write_str("it is a symbolic link"),
            Refusal::NotDirectory => f.write_str("it is not a directory"),
            Refusal::Owner { uid, expected } => write!(f, "it belongs to uid {uid}, not {expected}"),
            Refusal::Writable { mode } => write!(f, "its mode {mode:04o} lets others than its owner write it"),
        }
    }
}

/// Why the run-time directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// A file-system call failed.
    #[error("run-time directory {}: {step}: {source}", .dir.display())]
    Io {
        /// The run-time directory.
        dir: PathBuf,
        /// What was being done.
        step: Step,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// It exists but is not safe to use.
    #[error("refusing run-time directory {}: {reason}", .dir.display())]
    Refused {
        /// The run-time directory.
        dir: PathBuf,
        /// Why.
        reason: Refusal,
    },
}

/// Creates `dir` if missing and checks that it is safe to use; `owner` is
/// the user it must belong to (the daemon's effective uid).
pub fn ensure(dir: &Path, owner: u32) -> Result<(), RunDirError> {
    let err = |step, source| RunDirError::Io {
        dir: dir.to_path_buf(),
        step,
        source,
    };
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| err(Step::CreateParent, e))?;
    }
    // mkdir never follows a link in the last component: an existing link
    // fails with EEXIST and is refused below.
    match DirBuilder::new().mode(MODE).create(dir) {
        Ok(()) => {
            // The umask may have taken bits away; set exactly 0755.
            fs::set_permissions(dir, fs::Permissions::from_mode(MODE)).map_err(|e| err(Step::SetMode, e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(Step::Create, e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| err(Step::Inspect, e))?;
    match refusal(&meta, owner) {
        Some(reason) => Err(RunDirError::Refused {
            dir: dir.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Why a directory with metadata `meta` must not be used by `owner`, if it
/// must not.
fn refusal(meta: &fs::Metadata, owner: u32) -> Option<Refusal> {
    if meta.file_type().is_symlink() {
        Some(Refusal::Symlink)
    } else if !meta.is_dir() {
        Some(Refusal::NotDirectory)
    } else if meta.uid() != owner {
        Some(Refusal::Owner {
            uid: meta.uid(),
            expected: owner,
        })
    } else if meta.mode() & 0o022 != 0 {
        Some(Refusal::Writable {
            mode: meta.mode() & 0o7777,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn a_missing_directory_is_created_0755_with_its_parents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/run");
        ensure(&dir, euid()).unwrap();
        assert_eq!(fs::symlink_metadata(&dir).unwrap().mode() & 0o7777, 0o755);
        // Twice is fine.
        ensure(&dir, euid()).unwrap();
    }

    #[test]
    fn links_files_foreign_and_writable_directories_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        fs::create_dir(&target).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let refused = |dir: &Path, owner: u32| match ensure(dir, owner) {
            Err(RunDirError::Refused { reason, .. }) => reason,
            other => panic!("{}: {other:?}", dir.display()),
        };
        assert_eq!(refused(&link, euid()), Refusal::Symlink);

        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        assert_eq!(refused(&file, euid()), Refusal::NotDirectory);

        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(
            ensure(&open, euid()).unwrap_err().to_string(),
            format!(
                "refusing run-time directory {}: its mode 1777 lets others than its owner write it",
                open.display()
            )
        );

        assert_eq!(
            refused(&target, euid() + 1),
            Refusal::Owner {
                uid: euid(),
                expected: euid() + 1
            }
        );
    }
}
