//! Finding the system tools the tests check against.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `name` on `PATH`, if there.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// `name` on `PATH`; when missing, `None` (after a loud SKIPPED line) with
/// `SINGULARITY_ALLOW_SKIP=1`, else the test fails.
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    if let Some(path) = which(name) {
        return Some(path);
    }
    let reason = format!("{name} not installed (apt-get install {package})");
    if std::env::var("SINGULARITY_ALLOW_SKIP").as_deref() == Ok("1") {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
        None
    } else {
        panic!("{reason} (set SINGULARITY_ALLOW_SKIP=1 to skip)");
    }
}
