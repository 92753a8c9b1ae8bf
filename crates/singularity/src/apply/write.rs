//! Atomic file replacement relative to a directory handle: a temporary file
//! in the same directory, the old file's mode, owner and extended attributes
//! (SELinux context, ACL, `user.*`, see [`super::xattrs`]), `fsync`,
//! `renameat`, then `fsync` of the directory. A new file gets the SELinux
//! context it is given. The directory is opened once (see
//! [`super::resolve`]) and never looked up by path again, so swapping a
//! directory on the way for a symbolic link cannot redirect a write.
//! Symbolic links and non-regular files are never followed or replaced, and
//! no temporary file outlives a failed write.

use super::resolve::{lstat_at, open_dir_at, readlink_at};
use super::xattrs;
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Uid};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use zeroize::Zeroizing;

/// What is at a target before writing.
#[derive(Debug)]
pub(crate) enum Existing {
    /// Nothing.
    Missing,
    /// A regular file with this mode, owner, group and number of links.
    File { mode: u32, uid: u32, gid: u32, links: u64 },
}

/// Where a file's extended attributes come from.
enum Attrs<'a> {
    /// All of this file's (the one replaced or backed up).
    CopyFrom(&'a File),
    /// Only this SELinux context, if any (a new file).
    Context(Option<&'a [u8]>),
}

/// Why a target cannot be written at all.
#[derive(Debug)]
pub(crate) enum TargetError {
    /// A symbolic link, directory, device, ...
    NotRegular(&'static str),
    /// `lstat` failed for another reason.
    Io(io::Error),
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// Inspects `name` in `dir` without following a symbolic link.
pub(crate) fn inspect(dir: BorrowedFd<'_>, name: &str) -> Result<Existing, TargetError> {
    match lstat_at(dir, name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::Missing),
        Err(e) => Err(TargetError::Io(e)),
        Ok(st) => match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => Err(TargetError::NotRegular("is a symbolic link")),
            FileType::Directory => Err(TargetError::NotRegular("is a directory")),
            FileType::RegularFile => Ok(Existing::File {
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                links: st.st_nlink,
            }),
            _ => Err(TargetError::NotRegular("is not a regular file")),
        },
    }
}

pub(crate) fn is_root_user() -> bool {
    rustix::process::geteuid().is_root()
}

/// Opens `name` in `dir` with `flags` (and `mode` for a new file), never
/// through a symbolic link.
pub(crate) fn open_at(dir: BorrowedFd<'_>, name: &str, flags: OFlags, mode: u32) -> io::Result<File> {
    let c = c_name(name)?;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(File::from(rfs::openat(dir, &c, flags, Mode::from_raw_mode(mode))?))
}

/// The largest file the agent reads (to compare, to undo, to edit). Every
/// file it manages is far smaller; a bigger one (a user's sparse
/// `authorized_keys`) is refused rather than read into memory.
pub(crate) const MAX_READ: u64 = 16 << 20;

fn too_large() -> io::Error {
    io::Error::other(format!("larger than {} MiB", MAX_READ >> 20))
}

/// Reads the regular file `name` in `dir` into memory that is wiped when
/// dropped (it may be a key), sized up front so no partial copy is left in
/// freed memory; at most [`MAX_READ`] bytes.
pub(crate) fn read(dir: BorrowedFd<'_>, name: &str) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut file = open_at(dir, name, OFlags::RDONLY | OFlags::NONBLOCK, 0)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_READ {
        return Err(too_large());
    }
    let size = usize::try_from(meta.len()).map_err(io::Error::other)?;
    let mut out = Zeroizing::new(Vec::with_capacity(size + 1));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        let n = file.read(&mut chunk[..])?;
        if n == 0 {
            return Ok(out);
        }
        if (out.len() + n) as u64 > MAX_READ {
            return Err(too_large());
        }
        if out.len() + n > out.capacity() {
            // The file grew while being read: move to a larger buffer, wiping the old one.
            let mut bigger = Zeroizing::new(Vec::with_capacity(2 * (out.len() + n)));
            bigger.extend_from_slice(&out);
            out = bigger;
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Creates the directory `name` in `dir` with `mode` (not subject to the
/// umask) and the SELinux `context`, owned by `owner` (root if `None`) when
/// the agent runs as root, and opens it. Returns the new directory and
/// whether it was created (`false`: it was there, and is left as it is).
pub(crate) fn make_dir(
    dir: BorrowedFd<'_>,
    name: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
    context: Option<&[u8]>,
) -> io::Result<(OwnedFd, bool)> {
    let c = c_name(name)?;
    let created = match rfs::mkdirat(dir, &c, Mode::from_raw_mode(0o700)) {
        Ok(()) => true,
        Err(rustix::io::Errno::EXIST) => false,
        Err(e) => return Err(e.into()),
    };
    let new = open_dir_at(dir, name)?;
    if created {
        if is_root_user() {
            let (uid, gid) = owner.unwrap_or((0, 0));
            rfs::fchown(&new, owner_uid(uid), owner_gid(gid))?;
        }
        rfs::fchmod(&new, Mode::from_raw_mode(mode))?;
        if let Some(context) = context {
            if let Err(e) = label(new.as_fd(), context) {
                let _ = remove_dir(dir, name);
                return Err(e);
            }
        }
    }
    Ok((new, created))
}

/// Removes the empty directory `name` from `dir`.
pub(crate) fn remove_dir(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    Ok(rfs::unlinkat(dir, &c, AtFlags::REMOVEDIR)?)
}

/// Removes the file or link `name` from `dir`; a missing one is fine.
pub(crate) fn remove(dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let c = c_name(name)?;
    match rfs::unlinkat(dir, &c, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn rename_at(dir: BorrowedFd<'_>, from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (c_name(from)?, c_name(to)?);
    Ok(rfs::renameat(dir, &from, dir, &to)?)
}

fn sync_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rfs::fsync(dir)?)
}

fn temp_name(name: &str) -> io::Result<String> {
    let mut random = [0u8; 6];
    getrandom::getrandom(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(".{name}.{suffix}.tmp"))
}

/// Replaces `name` in `dir` with `contents`. An existing file keeps its mode,
/// owner, group and extended attributes; a new file gets `new_mode`, root
/// ownership (when running as root) and the SELinux `context`, if any.
/// `owner`, when given, is the user the file is written for: a new file is
/// theirs; an existing one stays root's if it is root's, is theirs if it is
/// theirs, and is refused if it belongs to anyone else or has other hard
/// links (its contents would be handed to the user).
/// Returns `false` and writes nothing when the content is already identical.
pub(crate) fn replace(
    dir: BorrowedFd<'_>,
    name: &str,
    contents: &[u8],
    new_mode: u32,
    owner: Option<(u32, u32)>,
    existing: &Existing,
    context: Option<&[u8]>,
) -> io::Result<bool> {
    match *existing {
        Existing::File { mode, uid, gid, links } => {
            let owner = match owner {
                None => (uid, gid),
                Some(_) if links > 1 => {
                    return Err(io::Error::other("it has other hard links; refused for a user's file"));
                }
                Some(_) if uid == 0 => (uid, gid),
                Some((user, group)) if uid == user => (user, group),
                Some((user, _)) => {
                    return Err(io::Error::other(format!(
                        "it belongs to uid {uid}, not to uid {user} it is written for"
                    )));
                }
            };
            if read(dir, name)?[..] == *contents {
                return Ok(false);
            }
            let original = open_at(dir, name, OFlags::RDONLY | OFlags::NONBLOCK, 0)?;
            install(dir, name, contents, mode, Some(owner), Attrs::CopyFrom(&original))?;
        }
        Existing::Missing => {
            let owner = owner.or_else(|| is_root_user().then_some((0, 0)));
            install(dir, name, contents, new_mode, owner, Attrs::Context(context))?;
        }
    }
    Ok(true)
}

/// Writes `contents` to a temporary file beside `name` with `mode`, `owner`
/// and `attrs`, and renames it over `name`.
fn install(
    dir: BorrowedFd<'_>,
    name: &str,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    attrs: Attrs<'_>,
) -> io::Result<()> {
    let temp = temp_name(name)?;
    let file = open_at(dir, &temp, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o600)?;
    let result = fill(file, contents, mode, owner, attrs).and_then(|()| rename_at(dir, &temp, name));
    if let Err(e) = result {
        let _ = remove(dir, &temp);
        return Err(e);
    }
    sync_dir(dir)
}

fn fill(mut file: File, contents: &[u8], mode: u32, owner: Option<(u32, u32)>, attrs: Attrs<'_>) -> io::Result<()> {
    file.write_all(contents)?;
    if let Some((uid, gid)) = owner {
        // Only root may give a file away; elsewhere the new file stays ours.
        if is_root_user() {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
    }
    // After fchown. New contents never inherit set-user-id or set-group-id
    // bits (the kernel drops them on any write to such a file too).
    file.set_permissions(std::fs::Permissions::from_mode(mode & !0o6000))?;
    // After the mode: an ACL sets the group bits to its mask, the original's.
    match attrs {
        Attrs::CopyFrom(original) => xattrs::copy(original.as_fd(), file.as_fd(), is_root_user())?,
        Attrs::Context(Some(context)) => label(file.as_fd(), context)?,
        Attrs::Context(None) => {}
    }
    file.sync_all()
}

/// Gives a new file or directory the SELinux `context`. Only root may set
/// `security.*` attributes where no SELinux kernel decides; elsewhere the
/// file keeps the label the kernel gave it, as it stays ours (see `fill`).
fn label(fd: BorrowedFd<'_>, context: &[u8]) -> io::Result<()> {
    match xattrs::set(fd, xattrs::SELINUX, context) {
        Err(e) if !is_root_user() => {
            log::debug!("new file left without its SELinux context: {e}");
            Ok(())
        }
        other => other,
    }
}

/// The target of the link `name` in `dir`, if it is a link.
pub(crate) fn link_target(dir: BorrowedFd<'_>, name: &str) -> Option<String> {
    readlink_at(dir, name).ok().and_then(|t| String::from_utf8(t).ok())
}

/// Makes `name` in `dir` a symbolic link to `target`, atomically (a
/// temporary link renamed over it). Returns `false` when it already points
/// there.
pub(crate) fn symlink(dir: BorrowedFd<'_>, name: &str, target: &str) -> io::Result<bool> {
    if link_target(dir, name).as_deref() == Some(target) {
        return Ok(false);
    }
    let temp = temp_name(name)?;
    let (c_target, c_temp) = (c_name(target)?, c_name(&temp)?);
    rfs::symlinkat(&c_target, dir, &c_temp)?;
    if let Err(e) = rename_at(dir, &temp, name) {
        let _ = remove(dir, &temp);
        return Err(e);
    }
    Ok(true)
}

/// Copies the current `name` to `.<name>.bak` beside it (atomically), with
/// its mode, owner and extended attributes.
pub(crate) fn backup(dir: BorrowedFd<'_>, name: &str, existing: &Existing) -> io::Result<Option<String>> {
    let Existing::File { mode, uid, gid, .. } = *existing else {
        return Ok(None);
    };
    let bak = format!(".{name}.bak");
    let old = read(dir, name)?;
    match inspect(dir, &bak) {
        // The backup always gets the original's mode, even if an older backup exists.
        Ok(Existing::File { .. }) => remove(dir, &bak)?,
        Ok(Existing::Missing) => {}
        Err(TargetError::Io(e)) => return Err(e),
        Err(TargetError::NotRegular(why)) => return Err(io::Error::other(format!("backup {bak} {why}"))),
    }
    let original = open_at(dir, name, OFlags::RDONLY | OFlags::NONBLOCK, 0)?;
    install(dir, &bak, &old, mode, Some((uid, gid)), Attrs::CopyFrom(&original))?;
    Ok(Some(bak))
}

/// A uid for `chown`: `None` for -1 (`u32::MAX`), which leaves the id as it
/// is.
pub(crate) fn owner_uid(uid: u32) -> Option<Uid> {
    (uid != u32::MAX).then(|| Uid::from_raw(uid))
}

/// A gid for `chown`: `None` for -1 (`u32::MAX`), which leaves the id as it
/// is.
pub(crate) fn owner_gid(gid: u32) -> Option<Gid> {
    (gid != u32::MAX).then(|| Gid::from_raw(gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::resolve::open_root;
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn new_contents_lose_set_id_bits() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_root(dir.path()).unwrap();
        let f = dir.path().join("tool");
        fs::write(&f, b"old program").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o6755)).unwrap();
        let state = inspect(fd.as_fd(), "tool").unwrap();
        assert!(replace(fd.as_fd(), "tool", b"new program", 0o600, None, &state, None).unwrap());
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o755);
    }

    #[test]
    fn keeps_mode_and_skips_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_root(dir.path()).unwrap();
        let f = dir.path().join("x");
        fs::write(&f, b"old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        let state = inspect(fd.as_fd(), "x").unwrap();
        assert!(replace(fd.as_fd(), "x", b"new", 0o600, None, &state, None).unwrap());
        assert_eq!(fs::read(&f).unwrap(), b"new");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, 0o640);
        let state = inspect(fd.as_fd(), "x").unwrap();
        assert!(!replace(fd.as_fd(), "x", b"new", 0o600, None, &state, None).unwrap());
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn refuses_links_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_root(dir.path()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        assert!(matches!(inspect(fd.as_fd(), "l"), Err(TargetError::NotRegular(_))));
        assert!(matches!(inspect(fd.as_fd(), "d"), Err(TargetError::NotRegular(_))));
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_root(dir.path()).unwrap();
        // A directory where the file should go: the rename fails after the temp file is written.
        fs::create_dir(dir.path().join("k")).unwrap();
        assert!(replace(fd.as_fd(), "k", b"secret", 0o600, None, &Existing::Missing, None).is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["k"]);
    }

    #[test]
    fn new_directories_get_their_mode_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_root(dir.path()).unwrap();
        let (_, created) = make_dir(fd.as_fd(), "private", 0o700, None, None).unwrap();
        assert!(created);
        assert_eq!(fs::metadata(dir.path().join("private")).unwrap().mode() & 0o7777, 0o700);
        let (_, created) = make_dir(fd.as_fd(), "private", 0o755, None, None).unwrap();
        assert!(!created, "an existing directory is kept as it is");
        assert_eq!(fs::metadata(dir.path().join("private")).unwrap().mode() & 0o7777, 0o700);
        std::os::unix::fs::symlink("/tmp", dir.path().join("l")).unwrap();
        assert!(
            make_dir(fd.as_fd(), "l", 0o700, None, None).is_err(),
            "a link is not a directory"
        );
    }

    #[test]
    fn replaced_and_backed_up_files_keep_their_user_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_root(dir.path()).unwrap();
        let f = dir.path().join("conf");
        fs::write(&f, b"old").unwrap();
        let original = File::open(&f).unwrap();
        match xattrs::set(original.as_fd(), c"user.origin", b"image") {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                eprintln!("SKIPPED: {} keeps no user.* attributes", dir.path().display());
                return;
            }
            other => other.unwrap(),
        }
        drop(original);
        let state = inspect(fd.as_fd(), "conf").unwrap();
        backup(fd.as_fd(), "conf", &state).unwrap();
        assert!(replace(fd.as_fd(), "conf", b"new", 0o600, None, &state, None).unwrap());
        for name in ["conf", ".conf.bak"] {
            let file = File::open(dir.path().join(name)).unwrap();
            assert_eq!(
                xattrs::get(file.as_fd(), c"user.origin").unwrap().as_deref(),
                Some(&b"image"[..]),
                "{name}"
            );
        }
        assert_eq!(fs::read(&f).unwrap(), b"new");
    }

    #[test]
    fn backup_keeps_the_old_content_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open_root(dir.path()).unwrap();
        let f = dir.path().join("keys");
        fs::write(&f, b"old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let state = inspect(fd.as_fd(), "keys").unwrap();
        let bak = backup(fd.as_fd(), "keys", &state).unwrap().unwrap();
        assert_eq!(bak, ".keys.bak");
        assert_eq!(fs::read(dir.path().join(".keys.bak")).unwrap(), b"old");
        assert_eq!(
            fs::metadata(dir.path().join(".keys.bak")).unwrap().mode() & 0o7777,
            0o600
        );
    }
}
