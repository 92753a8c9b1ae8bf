//! Writes while another process rearranges the root: a parent directory is
//! swapped with a symbolic link to a directory outside the root, over and
//! over, while the real applier writes files below it.

use singularity::apply::Applier;
use singularity::functions::Function;
use singularity::plan::{FileWrite, Plan, Step};
use singularity::root::Root;
use std::ffi::CString;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const WRITES: usize = 10_000;

/// Every regular file below `dir`, with its path.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

fn exchange(a: &CString, b: &CString) {
    // SAFETY: both are valid NUL-terminated paths; renameat2 only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
}

#[test]
fn swapping_a_parent_directory_for_a_link_never_lets_a_write_out_of_the_root() {
    race("a");
}

#[test]
fn swapping_the_directory_a_file_goes_in_for_a_link_never_lets_a_write_out_of_the_root() {
    race("a/b");
}

/// Writes `/a/b/f<n>` while `swapped` (`a` or `a/b`) trades places with a
/// link to the matching directory outside the root.
fn race(swapped: &str) {
    // tmpfs when there is one: the test is about races, not disk speed.
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let root = base.path().join("root");
    let outside = base.path().join("outside");
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::create_dir_all(outside.join("a/b")).unwrap();
    // `swapped` and `<swapped>.link` trade places all the time: a directory,
    // then a link to the outside directory, then a directory again.
    let link = root.join(format!("{swapped}.link"));
    std::os::unix::fs::symlink(outside.join(swapped), &link).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let a = CString::new(root.join(swapped).into_os_string().into_encoded_bytes()).unwrap();
        let swap = CString::new(link.clone().into_os_string().into_encoded_bytes()).unwrap();
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                exchange(&a, &swap);
                swaps += 1;
            }
            // Leave the directory where it was.
            if swaps % 2 == 1 {
                exchange(&a, &swap);
            }
            swaps
        })
    };

    let applier = Applier::new(Root::new(&root), false, None);
    let mut written = 0;
    for i in 0..WRITES {
        let plan = Plan {
            function: Function::File.into(),
            steps: vec![Step::Write(FileWrite::new(
                &format!("/a/b/f{i}"),
                b"ssh-ed25519 AAAA k\n".to_vec(),
                0o600,
            ))],
        };
        if applier.apply(&plan).is_ok() {
            written += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 100, "the swapper ran ({swaps} swaps)");
    assert!(written > 0, "some writes got through");

    let mut out = Vec::new();
    files_under(&outside, &mut out);
    assert_eq!(out, Vec::<std::path::PathBuf>::new(), "files written outside the root");

    let mut inside = Vec::new();
    files_under(&root, &mut inside);
    let temps: Vec<_> = inside
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert!(
        temps.is_empty(),
        "{} temporary files left, e.g. {:?}",
        temps.len(),
        temps.first()
    );
    assert_eq!(
        inside.len(),
        written,
        "every write that succeeded is in the root, and only those"
    );
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}
