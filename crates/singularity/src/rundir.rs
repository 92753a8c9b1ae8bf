//! The run-time directory (`-r`/`--run`, `[daemon] run`): where the daemon
//! keeps its run-time items, such as the socket communicator's socket. It is a
//! path on the agent's own system, never under `--root`. The daemon creates it
//! when missing (0755, owned by the daemon's user) and refuses one that is a
//! symbolic link, not a directory, owned by another user, or writable by its
//! group or by others: a socket there could be replaced by anyone who may
//! write it. Its parents are created as needed and may be links
//! (`/var/run` → `/run`).

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Mode of a created run-time directory.
pub const MODE: u32 = 0o755;

/// Creates `dir` if missing and checks that it is safe to use; `owner` is
/// the user it must belong to (the daemon's effective uid).
pub fn ensure(dir: &Path, owner: u32) -> Result<(), String> {
    let err = |what: &str, e: io::Error| format!("run-time directory {}: {what}: {e}", dir.display());
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| err("cannot create its parent", e))?;
    }
    // mkdir never follows a link in the last component: an existing link
    // fails with EEXIST and is refused below.
    match DirBuilder::new().mode(MODE).create(dir) {
        Ok(()) => {
            // The umask may have taken bits away; set exactly 0755.
            fs::set_permissions(dir, fs::Permissions::from_mode(MODE)).map_err(|e| err("cannot set its mode", e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err("cannot create it", e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| err("cannot inspect it", e))?;
    let refuse = |why: String| Err(format!("refusing run-time directory {}: {why}", dir.display()));
    if meta.file_type().is_symlink() {
        return refuse("it is a symbolic link".into());
    }
    if !meta.is_dir() {
        return refuse("it is not a directory".into());
    }
    if meta.uid() != owner {
        return refuse(format!("it belongs to uid {}, not {owner}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "its mode {:04o} lets others than its owner write it",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn euid() -> u32 {
        // SAFETY: geteuid cannot fail.
        unsafe { libc::geteuid() }
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
        assert!(ensure(&link, euid()).unwrap_err().ends_with("it is a symbolic link"));

        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(ensure(&file, euid()).unwrap_err().ends_with("it is not a directory"));

        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(ensure(&open, euid())
            .unwrap_err()
            .ends_with("its mode 1777 lets others than its owner write it"));

        assert!(ensure(&target, euid() + 1).unwrap_err().contains("it belongs to uid"));
    }
}
