//! Extended attributes of the files the agent replaces: the SELinux label
//! (`security.selinux`) and the other `security.*` attributes (not the
//! IMA/EVM signatures of the old contents), POSIX ACLs
//! (`system.posix_acl_access`), `trusted.*` and `user.*`, read from one open
//! file and set on another, always through descriptors. Nothing here looks a
//! path up.

use rustix::fs;
use rustix::io::Errno;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::BorrowedFd;

/// The attribute that holds a file's SELinux context.
pub(crate) const SELINUX: &CStr = c"security.selinux";

/// Whether an attribute travels with a file's contents when it is replaced.
/// Not the IMA and EVM values: they are signatures of the old contents, which
/// the kernel computes anew for the new ones. Not file capabilities: they
/// grant privileges to the old program, and the kernel drops them on any
/// write.
fn copied(name: &[u8]) -> bool {
    (name.starts_with(b"security.")
        && name != b"security.ima"
        && name != b"security.evm"
        && name != b"security.capability")
        || name.starts_with(b"user.")
        || name.starts_with(b"trusted.")
        || name == b"system.posix_acl_access"
}

/// Whether the error means the file system keeps no extended attributes.
fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error())
}

/// Asks `query` for the size, then calls `fill` with a buffer that large,
/// until the result fits (the value may grow between the two calls).
fn sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    fill: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<u8>> {
    loop {
        let mut buf = vec![0u8; query()?];
        match fill(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The names of `fd`'s extended attributes; none where the file system has
/// none.
pub(crate) fn list(fd: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    match sized(|| fs::flistxattr_query(fd), |buf| fs::flistxattr(fd, buf)) {
        Ok(raw) => Ok(raw
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .filter_map(|n| CString::new(n).ok())
            .collect()),
        Err(e) if unsupported(&e) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The value of `fd`'s attribute `name`, if it has one.
pub(crate) fn get(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    match sized(|| fs::fgetxattr_query(fd, name), |buf| fs::fgetxattr(fd, name, buf)) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(Errno::NODATA.raw_os_error()) || unsupported(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sets `fd`'s attribute `name` to `value`.
pub(crate) fn set(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    Ok(fs::fsetxattr(fd, name, value, fs::XattrFlags::empty())?)
}

/// Gives `to` every attribute of `from` that travels with a file (see
/// [`copied`]). Set after the mode, so an ACL's mask is the original's. With
/// `strict` (root, who may set them all), an attribute that cannot be set is
/// an error; without, it is left out, as the owner is.
pub(crate) fn copy(from: BorrowedFd<'_>, to: BorrowedFd<'_>, strict: bool) -> io::Result<()> {
    for name in list(from)? {
        if !copied(name.as_bytes()) {
            continue;
        }
        if let Some(value) = get(from, &name)? {
            match set(to, &name, &value) {
                Ok(()) => {}
                Err(e) if !strict => log::debug!("attribute {} not kept: {e}", name.to_string_lossy()),
                Err(e) => {
                    let what = format!("cannot set {}: {e}", name.to_string_lossy());
                    return Err(io::Error::new(e.kind(), what));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[test]
    fn user_attributes_are_copied_and_others_chosen_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let (fa, fb) = (File::create(&a).unwrap(), File::create(&b).unwrap());
        match set(fa.as_fd(), c"user.origin", b"image-42") {
            Err(e) if unsupported(&e) => {
                eprintln!("SKIPPED: {} keeps no user.* attributes", dir.path().display());
                return;
            }
            other => other.unwrap(),
        }
        let long = vec![b'x'; 3000];
        set(fa.as_fd(), c"user.long", &long).unwrap();
        copy(fa.as_fd(), fb.as_fd(), true).unwrap();
        assert_eq!(
            get(fb.as_fd(), c"user.origin").unwrap().as_deref(),
            Some(&b"image-42"[..])
        );
        assert_eq!(get(fb.as_fd(), c"user.long").unwrap(), Some(long));
        assert_eq!(get(fb.as_fd(), c"user.absent").unwrap(), None);
        assert!(copied(b"security.selinux") && copied(b"system.posix_acl_access") && copied(b"trusted.x"));
        assert!(!copied(b"system.posix_acl_default") && !copied(b"system.nfs4_acl"));
        assert!(!copied(b"security.ima") && !copied(b"security.evm") && !copied(b"security.capability"));
    }
}
