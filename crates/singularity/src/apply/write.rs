//! Atomic file replacement: a temporary file in the same directory, the old
//! file's mode and owner, `fsync`, `rename`, then `fsync` of the directory.
//! Symbolic links and non-regular files are never followed or replaced.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What is at a target path before writing.
#[derive(Debug)]
pub(crate) enum Existing {
    /// Nothing.
    Missing,
    /// A regular file with this mode, owner and group.
    File { mode: u32, uid: u32, gid: u32 },
}

/// Why a target cannot be written at all.
#[derive(Debug)]
pub(crate) enum TargetError {
    /// A symbolic link, directory, device, ...
    NotRegular(&'static str),
    /// `lstat` failed for another reason.
    Io(io::Error),
}

/// Inspects `target` without following a symbolic link in its last component.
pub(crate) fn inspect(target: &Path) -> Result<Existing, TargetError> {
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::Missing),
        Err(e) => Err(TargetError::Io(e)),
        Ok(meta) => {
            let kind = meta.file_type();
            if kind.is_symlink() {
                Err(TargetError::NotRegular("is a symbolic link"))
            } else if kind.is_dir() {
                Err(TargetError::NotRegular("is a directory"))
            } else if !kind.is_file() {
                Err(TargetError::NotRegular("is not a regular file"))
            } else {
                Ok(Existing::File {
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                })
            }
        }
    }
}

fn is_root_user() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn chown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

/// Creates `dir` with `mode` (not subject to the umask) if it is missing; new
/// directories are owned by root when the agent runs as root.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> io::Result<bool> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a directory", dir.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::DirBuilder::new().mode(mode).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    if is_root_user() {
        chown(dir, 0, 0)?;
    }
    Ok(true)
}

fn temp_path(target: &Path) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "target has no file name"))?
        .to_string_lossy()
        .into_owned();
    let mut random = [0u8; 6];
    getrandom::getrandom(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(target.with_file_name(format!(".{name}.{suffix}.tmp")))
}

/// Replaces `target` with `contents`. An existing file keeps its mode, owner and
/// group; a new file gets `new_mode` and root ownership (when running as root).
/// Returns `false` and writes nothing when the content is already identical.
pub(crate) fn replace(target: &Path, contents: &[u8], new_mode: u32, existing: &Existing) -> io::Result<bool> {
    if let Existing::File { .. } = existing {
        if fs::read(target)? == contents {
            return Ok(false);
        }
    }
    let (mode, owner) = match *existing {
        Existing::File { mode, uid, gid } => (mode, Some((uid, gid))),
        Existing::Missing => (new_mode, is_root_user().then_some((0, 0))),
    };
    let temp = temp_path(target)?;
    let result = write_temp(&temp, contents, mode, owner).and_then(|()| fs::rename(&temp, target));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    if let Some(dir) = target.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(true)
}

fn write_temp(temp: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(temp)?;
    file.write_all(contents)?;
    if let Some((uid, gid)) = owner {
        // Only root may give a file away; elsewhere the new file stays ours.
        if is_root_user() {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
    }
    // After fchown, which clears set-id bits.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.sync_all()
}

/// Makes `link` a symbolic link to `target`, atomically (a temporary link
/// renamed over it). Returns `false` when it already points there.
pub(crate) fn symlink(link: &Path, target: &str) -> io::Result<bool> {
    if fs::read_link(link).ok().as_deref() == Some(Path::new(target)) {
        return Ok(false);
    }
    let temp = temp_path(link)?;
    std::os::unix::fs::symlink(target, &temp)?;
    if let Err(e) = fs::rename(&temp, link) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(true)
}

/// Copies the current `target` to `.<name>.bak` beside it (atomically).
pub(crate) fn backup(target: &Path, existing: &Existing) -> io::Result<Option<PathBuf>> {
    let Existing::File { mode, .. } = existing else {
        return Ok(None);
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bak = target.with_file_name(format!(".{name}.bak"));
    let old = fs::read(target)?;
    let bak_state = match inspect(&bak) {
        Ok(state) => state,
        Err(TargetError::Io(e)) => return Err(e),
        Err(TargetError::NotRegular(why)) => return Err(io::Error::other(format!("backup {} {why}", bak.display()))),
    };
    // The backup always gets the original's mode, even if an older backup exists.
    if let Existing::File { .. } = bak_state {
        fs::remove_file(&bak)?;
    }
    replace(&bak, &old, *mode, &Existing::Missing)?;
    Ok(Some(bak))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_mode_and_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        fs::write(&f, b"old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        let state = inspect(&f).unwrap();
        assert!(replace(&f, b"new", 0o600, &state).unwrap());
        assert_eq!(fs::read(&f).unwrap(), b"new");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
        let state = inspect(&f).unwrap();
        assert!(!replace(&f, b"new", 0o600, &state).unwrap());
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn refuses_links_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert!(matches!(inspect(&link), Err(TargetError::NotRegular(_))));
        assert!(matches!(inspect(dir.path()), Err(TargetError::NotRegular(_))));
    }

    #[test]
    fn backup_keeps_the_old_content_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("keys");
        fs::write(&f, b"old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let state = inspect(&f).unwrap();
        let bak = backup(&f, &state).unwrap().unwrap();
        assert_eq!(bak, dir.path().join(".keys.bak"));
        assert_eq!(fs::read(&bak).unwrap(), b"old");
        assert_eq!(fs::metadata(&bak).unwrap().mode() & 0o7777, 0o600);
    }
}
