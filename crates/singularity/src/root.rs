//! Every path the agent touches goes through [`Root::join`] (reads) or
//! [`Root::components`] (writes, which the applier resolves itself with
//! directory handles), so that the whole agent can run against a temporary
//! directory instead of `/`.

use std::fmt;
use std::path::{Path, PathBuf};

/// The directory that stands for `/` of the managed system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

/// A path that cannot be placed under the root.
#[derive(Debug, PartialEq, Eq)]
pub struct RootError {
    /// The offending path.
    pub path: String,
    /// Why it was refused.
    pub why: &'static str,
}

impl fmt::Display for RootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path '{}' refused: {}", self.path, self.why)
    }
}

impl std::error::Error for RootError {}

impl Root {
    /// A root at `base` (`/` for the live system).
    pub fn new(base: impl Into<PathBuf>) -> Root {
        Root { base: base.into() }
    }

    /// Whether this is the live system (`/`): only then are system commands run
    /// and kernel state changed.
    pub fn is_live(&self) -> bool {
        self.base == Path::new("/")
    }

    /// The root directory itself.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Maps an absolute system path (`/etc/shadow`) to the path under the root.
    /// Refuses relative paths, `..` components and NUL bytes.
    pub fn join(&self, path: &str) -> Result<PathBuf, RootError> {
        let parts = Root::components(path)?;
        if !self.is_live() && !self.parents_stay_inside(&parts) {
            return Err(RootError {
                path: path.to_string(),
                why: "a symbolic link in its directories leads outside the root",
            });
        }
        let mut out = self.base.clone();
        out.extend(&parts);
        Ok(out)
    }

    /// The components of an absolute system path, without empty and `.`
    /// parts. Refuses relative paths, `..` components and NUL bytes.
    pub fn components(path: &str) -> Result<Vec<&str>, RootError> {
        let refuse = |why| RootError {
            path: path.to_string(),
            why,
        };
        if !path.starts_with('/') {
            return Err(refuse("not absolute"));
        }
        if path.contains('\0') {
            return Err(refuse("contains a NUL byte"));
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !matches!(*p, "" | ".")).collect();
        if parts.contains(&"..") {
            return Err(refuse("contains '..'"));
        }
        Ok(parts)
    }

    /// Whether every existing directory on the way to `parts` (the last part
    /// excluded: writers refuse a link there themselves) lies inside the
    /// root once symbolic links are followed. On the live system everything
    /// does; under another root a link may point at the host's own files.
    fn parents_stay_inside(&self, parts: &[&str]) -> bool {
        let Ok(base) = std::fs::canonicalize(&self.base) else {
            return true; // no root yet: nothing under it either
        };
        let mut dir = self.base.clone();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Err(_) => return true, // nothing exists further down
                Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(&dir) {
                    Ok(real) if real.starts_with(&base) => {}
                    _ => return false, // outside, or dangling
                },
                Ok(_) => {}
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_under_the_root_only() {
        let r = Root::new("/tmp/x");
        assert_eq!(r.join("/etc/shadow").unwrap(), PathBuf::from("/tmp/x/etc/shadow"));
        assert_eq!(r.join("//etc/./hosts").unwrap(), PathBuf::from("/tmp/x/etc/hosts"));
        assert!(r.join("etc/shadow").is_err());
        assert!(r.join("/etc/../../x").is_err());
        assert!(r.join("/a\0").is_err());
        assert!(Root::new("/").is_live() && !r.is_live());
    }

    #[test]
    fn symbolic_links_may_not_lead_outside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = Root::new(root.path());
        std::fs::create_dir_all(root.path().join("var/home")).unwrap();
        std::os::unix::fs::symlink("var/home", root.path().join("home")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("srv")).unwrap();
        std::os::unix::fs::symlink("/nonexistent-singularity", root.path().join("opt")).unwrap();
        assert_eq!(
            r.join("/home/u/.ssh/authorized_keys").unwrap(),
            root.path().join("home/u/.ssh/authorized_keys")
        );
        let refused = r.join("/srv/u/.ssh/authorized_keys").unwrap_err();
        assert_eq!(refused.why, "a symbolic link in its directories leads outside the root");
        assert!(r.join("/opt/x").is_err(), "dangling");
        // The last component is the writer's to judge; a link there is allowed here.
        assert_eq!(r.join("/srv").unwrap(), root.path().join("srv"));
        // The live system follows its links wherever they go.
        assert!(Root::new("/").join("/proc/self/cwd/x").is_ok());
    }
}
