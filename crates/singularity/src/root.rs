//! Every path the agent touches goes through [`Root::join`], so that the whole
//! agent can run against a temporary directory instead of `/`.

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
        let mut out = self.base.clone();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(refuse("contains '..'")),
                other => out.push(other),
            }
        }
        Ok(out)
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
}
