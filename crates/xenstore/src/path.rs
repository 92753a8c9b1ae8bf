//! XenStore path syntax: validation and resolution of relative paths against a
//! connection's home. Pure functions, no I/O.
//!
//! Paths use `[A-Za-z0-9-/_@]`, have no `//` and no trailing `/` (except `/`
//! itself). Absolute paths are at most 3072 bytes, relative ones 2048. Special
//! watch paths start with `@` (`@introduceDomain`, `@releaseDomain`).

use crate::wire::{ABS_PATH_MAX, REL_PATH_MAX};
use std::fmt;

/// Why a path was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path is empty.
    Empty,
    /// A byte outside `[A-Za-z0-9-/_@]`.
    BadChar(u8),
    /// `//` somewhere, or a trailing `/`.
    EmptyComponent,
    /// Longer than the limit for its kind.
    TooLong(usize),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Empty => f.write_str("empty path"),
            PathError::BadChar(b) => write!(f, "invalid character 0x{b:02x} in path"),
            PathError::EmptyComponent => f.write_str("empty path component ('//' or trailing '/')"),
            PathError::TooLong(n) => write!(f, "path of {n} bytes is too long"),
        }
    }
}

impl std::error::Error for PathError {}

fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Checks a path as a client would send it (absolute, relative or `@special`).
pub fn validate(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if let Some(b) = path.bytes().find(|&b| !valid_char(b)) {
        return Err(PathError::BadChar(b));
    }
    if path != "/" && (path.ends_with('/') || path.contains("//")) {
        return Err(PathError::EmptyComponent);
    }
    let limit = if path.starts_with('/') {
        ABS_PATH_MAX
    } else {
        REL_PATH_MAX
    };
    if path.len() >= limit {
        return Err(PathError::TooLong(path.len()));
    }
    Ok(())
}

/// Resolves `path` against `home` (e.g. `/local/domain/3`) after validating it.
/// Absolute and `@special` paths are returned unchanged.
pub fn resolve(home: &str, path: &str) -> Result<String, PathError> {
    validate(path)?;
    if path.starts_with('/') || path.starts_with('@') {
        return Ok(path.to_string());
    }
    let full = format!("{home}/{path}");
    if full.len() >= ABS_PATH_MAX {
        return Err(PathError::TooLong(full.len()));
    }
    Ok(full)
}

/// The parent of an absolute path (`/` for top-level nodes, `None` for `/`).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Whether `path` equals `ancestor` or lies below it.
pub fn is_at_or_below(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    path == ancestor || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// The home path of a domain.
pub fn domain_home(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in ["/", "/local/domain/0", "data/host", "@releaseDomain", "a-b_c/D9"] {
            assert_eq!(validate(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn refuses_bad_paths() {
        assert_eq!(validate(""), Err(PathError::Empty));
        assert_eq!(validate("/a//b"), Err(PathError::EmptyComponent));
        assert_eq!(validate("/a/"), Err(PathError::EmptyComponent));
        assert_eq!(validate("a b"), Err(PathError::BadChar(b' ')));
        assert_eq!(validate("a.b"), Err(PathError::BadChar(b'.')));
        assert_eq!(validate("a\0b"), Err(PathError::BadChar(0)));
        let long = "a".repeat(REL_PATH_MAX);
        assert_eq!(validate(&long), Err(PathError::TooLong(REL_PATH_MAX)));
        let abs = format!("/{}", "a".repeat(ABS_PATH_MAX));
        assert!(matches!(validate(&abs), Err(PathError::TooLong(_))));
        assert_eq!(validate(&format!("/{}", "a".repeat(2100))), Ok(()));
    }

    #[test]
    fn resolves_relative_paths() {
        assert_eq!(
            resolve("/local/domain/3", "data/host").as_deref(),
            Ok("/local/domain/3/data/host")
        );
        assert_eq!(resolve("/local/domain/3", "/tool").as_deref(), Ok("/tool"));
        assert_eq!(
            resolve("/local/domain/3", "@introduceDomain").as_deref(),
            Ok("@introduceDomain")
        );
    }

    #[test]
    fn parents_and_ancestry() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(is_at_or_below("/a", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/x", "/"));
    }
}
