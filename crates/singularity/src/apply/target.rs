//! Finding a step's target under the root before anything changes: the
//! directory handle it will be written through, what is there now, and
//! whether the path, once resolved, stays within the allowed paths. Nothing
//! here changes the system.

use super::resolve;
use super::write::{self, Existing, TargetError};
use super::{io_err, ApplyError};
use crate::root::Root;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// A path found under the root: the deepest directory on its way that
/// exists is open, so nothing looks the path up again before writing.
pub(super) struct Target {
    /// The directory the file is in, or the deepest existing one on the way.
    pub(super) dir: OwnedFd,
    /// That directory's system path as components, links resolved.
    pub(super) dir_path: Vec<String>,
    /// Directories still to create below `dir`, outermost first.
    pub(super) missing: Vec<String>,
    /// The file name.
    pub(super) name: String,
}

/// A step's target, checked before anything changes.
pub(super) enum Checked {
    /// A file to write and what is there now.
    Write(Target, Existing),
    /// A symbolic link to make.
    Link(Target),
}

/// Finds `path` under the root without leaving it (see [`resolve`]).
pub(super) fn locate(root: &OwnedFd, path: &str) -> Result<Target, ApplyError> {
    let mut parts: Vec<String> = Root::components(path)?.into_iter().map(str::to_string).collect();
    let Some(name) = parts.pop() else {
        return Err(ApplyError::Refused {
            path: path.to_string(),
            why: "is a directory",
        });
    };
    match resolve::resolve_dirs(root, &parts) {
        Ok(r) => Ok(Target {
            dir: r.dir,
            dir_path: r.dir_path,
            missing: r.missing,
            name,
        }),
        Err(resolve::ResolveError::Refused(why)) => Err(ApplyError::Refused {
            path: path.to_string(),
            why,
        }),
        Err(resolve::ResolveError::Io(e)) => Err(io_err("inspect", path)(e)),
    }
}

/// Finds the link `path`: its directory must exist, and anything but a link
/// there is refused.
pub(super) fn check_link(root: &OwnedFd, path: &str) -> Result<Target, ApplyError> {
    let link = locate(root, path)?;
    if !link.missing.is_empty() {
        return Err(io_err("link", path)(io::Error::from(rustix::io::Errno::NOENT)));
    }
    match resolve::lstat_at(link.dir.as_fd(), &link.name) {
        Ok(st) if !resolve::is_symlink(&st) => Err(ApplyError::Refused {
            path: path.to_string(),
            why: "exists and is not a symbolic link",
        }),
        _ => Ok(link),
    }
}

/// Finds the file `path` under the root and what is there now. With a
/// non-empty `within`, the file must lie at or below one of those paths
/// once every symbolic link on the way (and in them) is resolved.
pub(super) fn check_target(root: &OwnedFd, path: &str, within: &[String]) -> Result<(Target, Existing), ApplyError> {
    let target = locate(root, path)?;
    if !within.is_empty() {
        let mut resolved = target.dir_path.clone();
        resolved.extend(target.missing.iter().cloned());
        resolved.push(target.name.clone());
        let inside = within
            .iter()
            .filter_map(|prefix| resolve::resolve_prefix(root, prefix))
            .any(|prefix| resolve::is_under(&resolved, &prefix));
        if !inside {
            return Err(ApplyError::Refused {
                path: path.to_string(),
                why: "lies outside the allowed paths once symbolic links are resolved",
            });
        }
    }
    if !target.missing.is_empty() {
        return Ok((target, Existing::Missing));
    }
    match write::inspect(target.dir.as_fd(), &target.name) {
        Ok(existing) => Ok((target, existing)),
        Err(TargetError::NotRegular(why)) => Err(ApplyError::Refused {
            path: path.to_string(),
            why,
        }),
        Err(TargetError::Io(e)) => Err(io_err("inspect", path)(e)),
    }
}
