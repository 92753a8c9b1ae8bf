//! The generated files checked in under `dist/` (man pages, completions,
//! default configuration) must match what the current code generates.

use std::path::Path;

mod common;
use common::tool;

fn dist_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist")
}

#[test]
fn checked_in_generated_files_are_current() {
    // Regenerate into a temporary directory, then compare with dist/.
    let tmp = tempfile::tempdir().unwrap();
    xtask::dist::write(tmp.path()).unwrap();
    assert!(xtask::dist::check(tmp.path()).unwrap().is_empty());
    let problems = xtask::dist::check(&dist_dir()).unwrap();
    assert!(
        problems.is_empty(),
        "dist/ is stale:\n{}\nrun `{}` to refresh",
        problems.join("\n"),
        xtask::dist::REFRESH
    );
}

#[test]
fn man_pages_render_without_warnings() {
    // groff's own checks (-ww: all warnings, -z: no output) on every page.
    let Some(groff) = tool("groff", "groff-base") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    xtask::dist::write(tmp.path()).unwrap();
    let mut pages: Vec<_> = ["man", "host/man"]
        .iter()
        .flat_map(|d| std::fs::read_dir(tmp.path().join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    pages.sort();
    assert!(pages.len() >= 4, "{pages:?}");
    for page in pages {
        let out = std::process::Command::new(&groff)
            .args(["-man", "-ww", "-z", "-Tutf8"])
            .arg(&page)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{}: {stderr}",
            page.display()
        );
    }
}
