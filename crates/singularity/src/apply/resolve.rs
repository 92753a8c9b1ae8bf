//! Finding where a system path leads under the root, one component at a time,
//! with directory handles instead of path strings.
//!
//! Every component is opened with `O_NOFOLLOW` relative to the directory
//! before it. A symbolic link is read and its target walked the same way, as
//! if the root were `/` (an absolute target starts again at the root, `..`
//! stops at the root), so resolution never leaves the root, and the result
//! names the real directory a write will land in. Links inside `/proc`
//! (`/proc/self/cwd`, `/proc/1/root`, ...) are refused: they jump to places
//! the text of their target does not describe. This is the walk
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` does, kept in user space
//! so it works on kernels older than 5.6. Nothing here changes the system.

use rustix::fs::{self, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The most symbolic links followed for one path (the kernel's limit).
const MAX_LINKS: u32 = 40;
/// `statfs.f_type` of procfs.
const PROC_SUPER_MAGIC: u64 = 0x9fa0;

/// Why a path cannot be resolved.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// The path leads somewhere a write must not go.
    Refused(&'static str),
    /// A system call failed.
    Io(io::Error),
}

impl From<io::Error> for ResolveError {
    fn from(e: io::Error) -> ResolveError {
        ResolveError::Io(e)
    }
}

/// Where a directory path leads.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The deepest directory on the way that exists, opened.
    pub dir: OwnedFd,
    /// Its system path as components, links replaced by what they lead to.
    pub dir_path: Vec<String>,
    /// The components below `dir` that do not exist (yet), outermost first.
    pub missing: Vec<String>,
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// Opens `path` (following links: it is chosen by the administrator) as the
/// directory every resolution starts from.
pub(crate) fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "root contains a NUL byte"))?;
    Ok(fs::open(
        &c,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `name` in `dir`, refusing a symbolic link.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(fs::openat(dir, &c, flags, Mode::empty())?)
}

/// `lstat` of `name` in `dir`.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Stat> {
    let c = c_name(name)?;
    Ok(fs::statat(dir, &c, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// Whether `st` is a symbolic link's.
pub(crate) fn is_symlink(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Symlink
}

/// The target of the symbolic link `name` in `dir`.
pub(crate) fn readlink_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Vec<u8>> {
    let c = c_name(name)?;
    Ok(fs::readlinkat(dir, &c, Vec::new())?.into_bytes())
}

fn on_procfs(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let st = fs::fstatfs(dir)?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
    Ok(u64::try_from(st.f_type).ok() == Some(PROC_SUPER_MAGIC))
}

/// The components of an absolute path, without empty and `.` parts.
pub(crate) fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !matches!(*p, "" | "."))
        .map(str::to_string)
        .collect()
}

/// Walks the directory components `parts` from `root`. A component that does
/// not exist ends the walk: it and the rest are `missing`, and must be plain
/// names. A link whose target does not exist is refused (no directory is ever
/// created through one), and so is a link in `/proc`.
pub(crate) fn resolve_dirs(root: &OwnedFd, parts: &[String]) -> Result<Resolved, ResolveError> {
    walk(root, parts, None)
}

/// [`resolve_dirs`], following only links owned by `link_owner` when given.
fn walk(root: &OwnedFd, parts: &[String], link_owner: Option<u32>) -> Result<Resolved, ResolveError> {
    // (component, came from a link's target)
    let mut queue: VecDeque<(String, bool)> = parts.iter().map(|p| (p.clone(), false)).collect();
    let mut stack: Vec<(OwnedFd, String)> = Vec::new();
    let mut links = 0;
    while let Some((part, from_link)) = queue.pop_front() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                stack.pop(); // `..` of the root is the root
                continue;
            }
            _ => {}
        }
        let cur = stack.last().map_or(root.as_fd(), |(fd, _)| fd.as_fd());
        match open_dir_at(cur, &part) {
            Ok(fd) => stack.push((fd, part)),
            Err(e) if Errno::from_io_error(&e) == Some(Errno::NOENT) => {
                if from_link {
                    return Err(ResolveError::Refused(
                        "passes through a symbolic link that leads nowhere",
                    ));
                }
                let mut missing = vec![part];
                for (rest, _) in queue {
                    match rest.as_str() {
                        "" | "." => {}
                        ".." => return Err(ResolveError::Io(e)),
                        _ => missing.push(rest),
                    }
                }
                let dir = match stack.last() {
                    Some((fd, _)) => fd.try_clone()?,
                    None => root.try_clone()?,
                };
                let dir_path = stack.into_iter().map(|(_, name)| name).collect();
                return Ok(Resolved { dir, dir_path, missing });
            }
            Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::LOOP | Errno::NOTDIR)) => {
                let st = lstat_at(cur, &part)?;
                if !is_symlink(&st) {
                    return Err(ResolveError::Io(io::Error::from(Errno::NOTDIR)));
                }
                if on_procfs(cur)? {
                    return Err(ResolveError::Refused("passes through a symbolic link in /proc"));
                }
                if link_owner.is_some_and(|uid| uid != st.st_uid) {
                    return Err(ResolveError::Refused("passes through a symbolic link of another user"));
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(ResolveError::Io(io::Error::from(Errno::LOOP)));
                }
                let target = String::from_utf8(readlink_at(cur, &part)?)
                    .map_err(|_| ResolveError::Refused("passes through a symbolic link to a non-UTF-8 path"))?;
                if target.starts_with('/') {
                    stack.clear();
                }
                for p in target.split('/').rev() {
                    queue.push_front((p.to_string(), true));
                }
            }
            Err(e) => return Err(ResolveError::Io(e)),
        }
    }
    let dir = match stack.last() {
        Some((fd, _)) => fd.try_clone()?,
        None => root.try_clone()?,
    };
    let dir_path = stack.into_iter().map(|(_, name)| name).collect();
    Ok(Resolved {
        dir,
        dir_path,
        missing: Vec::new(),
    })
}

/// Where an allowed prefix leads, as components: its existing directories
/// resolved like a target's, the rest (a missing tail, or a file at its end)
/// as written. Only links owned by the agent's own user (root) are followed:
/// a link a user made, say `/home/u/.ssh -> /etc`, would otherwise move the
/// allowed tree. `None` when it cannot be resolved; then nothing is under it.
pub(crate) fn resolve_prefix(root: &OwnedFd, prefix: &str) -> Option<Vec<String>> {
    let me = rustix::process::geteuid().as_raw();
    let parts = components(prefix);
    // The longest leading run of parts that are directories or links to them.
    for keep in (0..=parts.len()).rev() {
        match walk(root, &parts[..keep], Some(me)) {
            Ok(r) => {
                let mut out = r.dir_path;
                out.extend(r.missing);
                out.extend(parts[keep..].iter().cloned());
                return Some(out);
            }
            Err(ResolveError::Io(e)) if Errno::from_io_error(&e) == Some(Errno::NOTDIR) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Whether `path` is `prefix` or below it, component by component.
pub(crate) fn is_under(path: &[String], prefix: &[String]) -> bool {
    path.len() >= prefix.len() && path[..prefix.len()] == *prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, OwnedFd) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/home/u")).unwrap();
        std::fs::create_dir_all(dir.path().join("root/.ssh")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "x").unwrap();
        let root = open_root(dir.path()).unwrap();
        (dir, root)
    }

    fn path_of(r: &Resolved) -> String {
        let mut all = r.dir_path.clone();
        all.extend(r.missing.iter().cloned());
        format!("/{}", all.join("/"))
    }

    #[test]
    fn links_resolve_as_if_the_root_were_slash() {
        let (dir, root) = setup();
        symlink("var/home", dir.path().join("home")).unwrap();
        symlink("../../etc", dir.path().join("root/.ssh/etc2")).unwrap();
        symlink("/etc", dir.path().join("root/.ssh/etc")).unwrap();
        symlink("../../../../../../..", dir.path().join("root/.ssh/up")).unwrap();
        let r = |p: &str| resolve_dirs(&root, &components(p)).unwrap();
        assert_eq!(path_of(&r("/home/u/.ssh")), "/var/home/u/.ssh");
        assert_eq!(r("/home/u/.ssh").missing, vec![".ssh"]);
        assert_eq!(path_of(&r("/root/.ssh/etc2")), "/etc");
        assert_eq!(path_of(&r("/root/.ssh/etc")), "/etc");
        assert_eq!(path_of(&r("/root/.ssh/up/etc")), "/etc", "`..` stops at the root");
        assert_eq!(path_of(&r("/")), "/");
    }

    #[test]
    fn dangling_links_loops_and_files_are_refused() {
        let (dir, root) = setup();
        symlink("/nowhere", dir.path().join("srv")).unwrap();
        symlink("loop", dir.path().join("loop")).unwrap();
        let r = |p: &str| resolve_dirs(&root, &components(p));
        assert!(matches!(r("/srv/x"), Err(ResolveError::Refused(_))));
        assert!(matches!(r("/loop"), Err(ResolveError::Io(e)) if e.raw_os_error() == Some(libc::ELOOP)));
        assert!(matches!(r("/etc/passwd/x"), Err(ResolveError::Io(e)) if e.raw_os_error() == Some(libc::ENOTDIR)));
    }

    #[test]
    fn links_in_proc_are_refused() {
        let root = open_root(std::path::Path::new("/")).unwrap();
        for p in ["/proc/self/cwd", "/proc/self/root/etc", "/proc/1/root/etc"] {
            assert!(
                matches!(resolve_dirs(&root, &components(p)), Err(ResolveError::Refused(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn prefixes_resolve_through_links_and_keep_missing_tails() {
        let (dir, root) = setup();
        symlink("var/home", dir.path().join("home")).unwrap();
        let p = |s: &str| resolve_prefix(&root, s).map(|v| format!("/{}", v.join("/")));
        assert_eq!(p("/home/u/.ssh").as_deref(), Some("/var/home/u/.ssh"));
        assert_eq!(p("/etc/passwd").as_deref(), Some("/etc/passwd"));
        assert_eq!(p("/").as_deref(), Some("/"));
        assert!(is_under(&components("/var/home/u/.ssh/k"), &components("/var/home/u")));

        assert!(!is_under(&components("/var/home/uu"), &components("/var/home/u")));
    }
}
