//! Golden files for every network renderer: each case in
//! `tests/fixtures/network/cases/` (vm-data JSON and a `/sys/class/net`
//! listing) is planned against each target skeleton in
//! `tests/fixtures/network/targets/<renderer>/root` (os-release, the distro's
//! own files), with the renderer detected, not forced. The files written end
//! up in `tests/golden/<renderer>/<case>/<path as on disk>`, and the commands,
//! modes and notes in `tests/golden/<renderer>/<case>/outcome.txt`.
//! `BLESS=1 cargo test --test network_golden` rewrites them; otherwise a
//! difference fails with a diff. Each case is then planned again on the
//! written root: nothing may change and no command may run.

use serde_json::Value;
use singularity::functions::Functions;
use singularity::network::{plan, NetworkOutcome, NetworkRequest, Renderer};
use singularity::plan::Step;
use singularity::root::Root;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(rel)
}

fn cases() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir("fixtures/network/cases"))
        .expect("cases")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Copies a tree, keeping symbolic links as links.
fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir");
    for e in fs::read_dir(src).expect("read_dir") {
        let e = e.expect("entry");
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ty = e.file_type().expect("type");
        if ty.is_symlink() {
            symlink(fs::read_link(&from).expect("readlink"), &to).expect("symlink");
        } else if ty.is_dir() {
            copy_tree(&from, &to);
        } else {
            fs::copy(&from, &to).expect("copy");
        }
    }
}

/// The vm-data of a case as a request.
fn request(case: &str) -> NetworkRequest {
    let text = fs::read_to_string(dir(&format!("fixtures/network/cases/{case}/vm-data.json"))).expect("vm-data");
    let Value::Object(map) = serde_json::from_str(&text).expect("json") else {
        panic!("not an object")
    };
    let raw = |v: &Value| match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => serde_json::to_vec(other).expect("json"),
    };
    NetworkRequest {
        entries: map
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("vm-data/networking/")
                    .map(|key| (key.to_string(), raw(v)))
            })
            .collect(),
        hostname: map.get("vm-data/hostname").map(raw),
    }
}

/// A guest root: the target skeleton plus the case's NICs (renamed as the
/// target's `names` file says, e.g. `xn0` on FreeBSD).
fn guest(target: &str, case: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(&dir(&format!("fixtures/network/targets/{target}/root")), tmp.path());
    let names = fs::read_to_string(dir(&format!("fixtures/network/targets/{target}/names"))).unwrap_or_default();
    let rename: BTreeMap<&str, &str> = names.lines().filter_map(|l| l.split_once(' ')).collect();
    let listing = fs::read_to_string(dir(&format!("fixtures/network/cases/{case}/sys-class-net"))).expect("listing");
    for line in listing.lines() {
        let (name, mac) = line.split_once(' ').expect("NAME MAC");
        let name = rename.get(name).copied().unwrap_or(name);
        let nic = tmp.path().join("sys/class/net").join(name);
        fs::create_dir_all(nic.join("device")).expect("mkdir");
        fs::write(nic.join("address"), format!("{mac}\n")).expect("address");
    }
    let lo = tmp.path().join("sys/class/net/lo");
    fs::create_dir_all(&lo).expect("mkdir");
    fs::write(lo.join("address"), "00:00:00:00:00:00\n").expect("lo");
    tmp
}

/// Final contents of every written file, plus `outcome.txt`: every step,
/// mode, command and note.
fn summarize(o: &NetworkOutcome) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut text = format!("renderer: {} ({})\n", o.renderer, o.why);
    for p in &o.plans {
        for step in &p.steps {
            match step {
                Step::Write(w) => {
                    text += &format!("{}: write {} (mode {:04o})\n", p.function, w.path, w.mode);
                    files.insert(w.path.trim_start_matches('/').to_string(), w.contents.to_vec());
                }
                Step::Run(r) => text += &format!("{}: run {} {}\n", p.function, r.program, r.args.join(" ")),
                Step::Symlink { path, target } => text += &format!("{}: link {path} -> {target}\n", p.function),
                Step::SetHostname(h) => text += &format!("{}: sethostname {h}\n", p.function),
                Step::SetPassword { .. } => text += "unexpected password step\n",
            }
        }
    }
    for r in &o.bringup {
        text += &format!("bringup: {} {}\n", r.program, r.args.join(" "));
    }
    for r in &o.report {
        text += &format!("report: {r}\n");
    }
    files.insert("outcome.txt".to_string(), text.into_bytes());
    files
}

/// A line diff (longest common subsequence), `-` golden, `+` actual.
fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        }
    }
    out
}

fn walk(base: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for e in fs::read_dir(at).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            walk(base, &e.path(), out);
        } else {
            let rel = e
                .path()
                .strip_prefix(base)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            out.insert(rel, fs::read(e.path()).expect("read golden"));
        }
    }
}

/// Compares `actual` with the golden directory, or rewrites it with BLESS=1.
fn check_golden(golden: &Path, actual: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    if std::env::var_os("BLESS").is_some() {
        let _ = fs::remove_dir_all(golden);
        for (rel, data) in actual {
            let p = golden.join(rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, data).expect("bless");
        }
        return Vec::new();
    }
    let mut expected = BTreeMap::new();
    walk(golden, golden, &mut expected);
    let mut failures = Vec::new();
    for rel in expected
        .keys()
        .chain(actual.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (want, got) = (expected.get(rel), actual.get(rel));
        if want != got {
            let text = |v: Option<&Vec<u8>>| v.map(|d| String::from_utf8_lossy(d).into_owned()).unwrap_or_default();
            let what = match (want, got) {
                (None, _) => "not in the goldens",
                (_, None) => "not written",
                _ => "differs",
            };
            failures.push(format!(
                "{}/{rel} {what}:\n{}",
                golden.display(),
                diff(&text(want), &text(got))
            ));
        }
    }
    failures
}

/// Writes the planned files and links into the root.
fn apply(root: &Path, o: &NetworkOutcome) {
    for p in &o.plans {
        for step in &p.steps {
            match step {
                Step::Write(w) => {
                    let target = root.join(w.path.trim_start_matches('/'));
                    fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
                    let _ = fs::remove_file(&target);
                    fs::write(&target, &w.contents).expect("write");
                }
                Step::Symlink { path, target } => {
                    let at = root.join(path.trim_start_matches('/'));
                    fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
                    symlink(target, at).expect("symlink");
                }
                _ => {}
            }
        }
    }
}

fn run_target(renderer: Renderer) {
    let target = renderer.to_string();
    let mut failures = Vec::new();
    for case in cases() {
        let tmp = guest(&target, &case);
        let root = Root::new(tmp.path());
        let req = request(&case);
        let outcome = plan(&req, &root, &Functions::all(), None).unwrap_or_else(|e| panic!("{target}/{case}: {e}"));
        assert_eq!(
            outcome.renderer, renderer,
            "{case}: detected {} ({})",
            outcome.renderer, outcome.why
        );
        let files = summarize(&outcome);
        failures.extend(check_golden(&dir(&format!("golden/{target}/{case}")), &files));
        apply(tmp.path(), &outcome);
        let again = plan(&req, &root, &Functions::all(), None).expect("second plan");
        let steps: usize = again.plans.iter().map(|p| p.steps.len()).sum();
        if steps > 0 || !again.bringup.is_empty() || again.hostname.is_some() || !again.symlinks.is_empty() {
            failures.push(format!(
                "{target}/{case}: not idempotent:\n{}",
                summarize(&again)["outcome.txt"].escape_ascii()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_ifupdown() {
    run_target(Renderer::IFUPDOWN);
}

#[test]
fn golden_netplan() {
    run_target(Renderer::NETPLAN);
}

#[test]
fn golden_ifcfg() {
    run_target(Renderer::IFCFG);
}

#[test]
fn golden_networkmanager() {
    run_target(Renderer::NM_KEYFILE);
}

#[test]
fn golden_networkd() {
    run_target(Renderer::NETWORKD);
}

#[test]
fn golden_suse() {
    run_target(Renderer::SUSE);
}

#[test]
fn golden_gentoo() {
    run_target(Renderer::GENTOO);
}

#[test]
fn golden_alpine() {
    run_target(Renderer::ALPINE);
}

#[test]
fn golden_freebsd() {
    run_target(Renderer::FREEBSD);
}

/// The DNS servers of a case's vm-data, in order, each once, read here
/// without the agent's parser (entries may be JSON objects or JSON strings).
fn vm_data_dns(case: &str) -> Vec<String> {
    let text = fs::read_to_string(dir(&format!("fixtures/network/cases/{case}/vm-data.json"))).expect("vm-data");
    let all: BTreeMap<String, Value> = serde_json::from_str(&text).expect("json");
    let mut out: Vec<String> = Vec::new();
    for (_, v) in all.iter().filter(|(k, _)| k.starts_with("vm-data/networking/")) {
        let entry: Value = match v {
            Value::String(s) => serde_json::from_str(s).expect("entry json"),
            other => other.clone(),
        };
        for d in entry["dns"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !out.iter().any(|o| o == d) {
                out.push(d.to_string());
            }
        }
    }
    out
}

#[test]
fn golden_resolv_conf_lists_the_vm_data_servers() {
    let mut checked = 0;
    for renderer in fs::read_dir(dir("golden")).expect("golden").flatten() {
        for case in cases() {
            let Ok(text) = fs::read_to_string(renderer.path().join(&case).join("etc/resolv.conf")) else {
                continue;
            };
            let servers: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("nameserver "))
                .map(str::trim)
                .collect();
            // glibc reads three at most.
            let want = vm_data_dns(&case);
            let want: Vec<&str> = want.iter().take(3).map(String::as_str).collect();
            assert_eq!(servers, want, "{}/{case}", renderer.file_name().to_string_lossy());
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} resolv.conf goldens");
}
