//! The hand-written files under `dist/`: systemd units, init scripts and
//! package scripts are syntactically valid, the commands they run parse with
//! the real command line, and the package metadata resolves to files that
//! exist and build into packages.

mod common;
use clap::Parser;
use common::{tool, which};
use singularity::cli::Cli;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: &[&str] = &["singularity.service", "singularity-apply.service"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dist(rel: &str) -> PathBuf {
    repo().join("dist").join(rel)
}

fn ok_and_silent(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "{cmd:?}: {}\n{text}",
        out.status
    );
}

/// `Key=value` lines of a unit file (continuations not used in ours).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    let text = fs::read_to_string(dist(unit)).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
        .collect()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = tool("systemd-analyze", "systemd") else {
        return;
    };
    // verify checks that Exec binaries exist: a root holding stand-ins.
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    for exe in ["usr/sbin/singularity", "bin/kill"] {
        let path = root.path().join(exe);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let mut cmd = Command::new(analyze);
    cmd.env_remove("SYSTEMD_LOG_LEVEL")
        .arg("verify")
        .arg("--man=no")
        .arg(format!("--root={}", root.path().display()));
    for unit in UNITS {
        fs::copy(dist(unit), units.join(unit)).unwrap();
        cmd.arg(format!("/usr/lib/systemd/system/{unit}"));
    }
    // Warnings (unknown keys, bad values) exit 0: any output fails.
    ok_and_silent(&mut cmd);
}

#[test]
fn systemd_analyze_verify_catches_a_broken_unit() {
    // The check above would pass vacuously if verify ignored the root.
    let Some(analyze) = tool("systemd-analyze", "systemd") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&units).unwrap();
    let text = fs::read_to_string(dist("singularity-apply.service")).unwrap();
    fs::write(
        units.join("broken.service"),
        text.replace("Type=oneshot", "Typo=oneshot"),
    )
    .unwrap();
    let out = Command::new(analyze)
        .env_remove("SYSTEMD_LOG_LEVEL")
        .args(["verify", "--man=no"])
        .arg(format!("--root={}", root.path().display()))
        .arg("/usr/lib/systemd/system/broken.service")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Typo"), "{text}");
    assert!(text.contains("/usr/sbin/singularity"), "{text}");
}

#[test]
fn units_have_the_agreed_shape() {
    assert_eq!(unit_values("singularity.service", "Type"), ["notify"]);
    assert_eq!(
        unit_values("singularity.service", "ExecStart"),
        ["/usr/sbin/singularity daemon --nodaemonize"]
    );
    assert_eq!(
        unit_values("singularity.service", "ExecReload"),
        ["/bin/kill -HUP $MAINPID"]
    );
    assert_eq!(unit_values("singularity.service", "Restart"), ["always"]);
    assert_eq!(unit_values("singularity-apply.service", "Type"), ["oneshot"]);
    assert_eq!(
        unit_values("singularity-apply.service", "ExecStart"),
        ["/usr/sbin/singularity apply network"]
    );
    for unit in UNITS {
        assert!(unit_values(unit, "Requires").is_empty(), "{unit}: use Wants=");
        assert_eq!(unit_values(unit, "DefaultDependencies"), ["no"], "{unit}");
        let before = unit_values(unit, "Before").join(" ");
        assert!(before.split(' ').any(|u| u == "network-pre.target"), "{unit}: {before}");
        let wants = unit_values(unit, "Wants").join(" ");
        assert!(wants.split(' ').any(|u| u == "network-pre.target"), "{unit}: {wants}");
        let stop: u64 = unit_values(unit, "TimeoutStopSec")[0].parse().unwrap();
        assert!(stop <= 30, "{unit}: TimeoutStopSec={stop}");
    }
}

fn parses(line: &str) {
    let words = std::iter::once("singularity").chain(line.split_whitespace());
    if let Err(e) = Cli::try_parse_from(words) {
        panic!("`singularity {line}` does not parse: {e}");
    }
}

#[test]
fn commands_in_units_and_init_scripts_parse() {
    for unit in UNITS {
        for exec in unit_values(unit, "ExecStart") {
            parses(exec.strip_prefix("/usr/sbin/singularity ").unwrap());
        }
    }
    let sysv = fs::read_to_string(dist("sysv/singularity")).unwrap();
    let openrc = fs::read_to_string(dist("openrc/singularity")).unwrap();
    for call in ["daemon --nodaemonize", "apply network"] {
        assert!(openrc.contains(call), "{call} missing from the OpenRC script");
    }
    parses("daemon --nodaemonize");
    // The SysV script run for real, with a stand-in binary recording its calls.
    let tmp = tempfile::tempdir().unwrap();
    let (stub, log) = (tmp.path().join("singularity"), tmp.path().join("calls"));
    fs::write(&stub, format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display())).unwrap();
    fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = tmp.path().join("init");
    let replaced = sysv.replace("DAEMON=/usr/sbin/singularity", &format!("DAEMON={}", stub.display()));
    assert_ne!(replaced, sysv, "the script names its binary in DAEMON=");
    fs::write(&script, replaced).unwrap();
    for (action, want) in [
        ("start", &["apply network", "daemon start"][..]),
        ("stop", &["daemon stop"][..]),
        ("restart", &["daemon restart"][..]),
        ("reload", &["daemon reload"][..]),
        ("force-reload", &["daemon reload"][..]),
        ("status", &["daemon status"][..]),
        ("try-restart", &["daemon status", "daemon restart"][..]),
    ] {
        let _ = fs::remove_file(&log);
        let status = Command::new("sh").arg(&script).arg(action).status().unwrap();
        assert!(status.success(), "init script {action}: {status}");
        let calls = fs::read_to_string(&log).unwrap_or_default();
        let calls: Vec<&str> = calls.lines().map(str::trim).collect();
        assert_eq!(calls, want, "init script {action}");
        for call in calls {
            parses(call);
        }
    }
}

#[test]
fn shell_scripts_parse() {
    let mut scripts = vec![
        dist("sysv/singularity"),
        dist("openrc/singularity"),
        dist("nova-agent-takeover"),
    ];
    for dir in ["deb", "rpm"] {
        let mut found: Vec<_> = fs::read_dir(dist(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        found.sort();
        scripts.extend(found);
    }
    for script in &scripts {
        ok_and_silent(Command::new("sh").arg("-n").arg(script));
        // dash (Debian's /bin/sh) and bash both, where present.
        if let Some(bash) = which("bash") {
            ok_and_silent(Command::new(bash).arg("-n").arg(script));
        }
    }
    for script in ["scripts/package", "scripts/package-test"] {
        if let Some(bash) = which("bash") {
            ok_and_silent(Command::new(bash).arg("-n").arg(repo().join(script)));
        }
    }
}

#[test]
fn lsb_header_is_complete() {
    let sysv = fs::read_to_string(dist("sysv/singularity")).unwrap();
    let header: Vec<&str> = sysv
        .lines()
        .skip_while(|l| *l != "### BEGIN INIT INFO")
        .take_while(|l| *l != "### END INIT INFO")
        .collect();
    for field in [
        "Provides:",
        "Required-Start:",
        "Required-Stop:",
        "Default-Start:",
        "Default-Stop:",
        "Short-Description:",
    ] {
        assert!(header.iter().any(|l| l.starts_with(&format!("# {field}"))), "{field}");
    }
    assert!(sysv.starts_with("#!/bin/sh\n"));
    let openrc = fs::read_to_string(dist("openrc/singularity")).unwrap();
    assert!(openrc.starts_with("#!/sbin/openrc-run\n"));
    assert!(openrc.contains("depend()"));
}

fn stand_in_release_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for binary in ["singularity", "singularity-host"] {
        fs::write(dir.path().join(binary), "#!/bin/sh\necho stand-in\n").unwrap();
    }
    dir
}

#[test]
fn package_metadata_resolves_to_existing_files() {
    let meta = xtask::package::read_meta(&repo(), "singularity").unwrap();
    let host = xtask::package::read_meta(&repo(), "singularity-host").unwrap();
    let release = stand_in_release_dir();
    let generated = xtask::dist::generate().unwrap();
    for (format, assets, host_assets) in [
        (
            "deb",
            xtask::package::deb_assets(&meta, release.path()).unwrap(),
            xtask::package::deb_assets(&host, release.path()).unwrap(),
        ),
        (
            "rpm",
            xtask::package::rpm_assets(&meta, release.path()).unwrap(),
            xtask::package::rpm_assets(&host, release.path()).unwrap(),
        ),
    ] {
        let dests: Vec<PathBuf> = assets.iter().map(|a| a.installed()).collect();
        let has = |p: &str| dests.iter().any(|d| d == Path::new(p));
        assert!(has("usr/sbin/singularity"), "{format}: {dests:?}");
        for unit in UNITS {
            assert!(has(&format!("usr/lib/systemd/system/{unit}")), "{format}: {unit}");
        }
        // Every generated man page and completion ships: the operator
        // tools' (dist/host/) in their package, the rest in the agent's.
        for g in &generated {
            let name = g.path.display();
            let (ours, theirs) = if g.path.starts_with("host") {
                (&host_assets, &assets)
            } else {
                (&assets, &host_assets)
            };
            let shipped = |assets: &Vec<xtask::package::Asset>| assets.iter().any(|a| a.source.ends_with(&g.path));
            assert!(shipped(ours), "{format}: {name} is generated but not packaged");
            assert!(!shipped(theirs), "{format}: {name} is in the wrong package");
        }
        let host_dests: Vec<PathBuf> = host_assets.iter().map(|a| a.installed()).collect();
        assert!(
            host_dests.contains(&PathBuf::from("usr/bin/singularity-host")),
            "{format}: {host_dests:?}"
        );
        assert!(!has("usr/bin/singularity-host"), "{format}: the agent ships the tools");
        assert!(
            assets
                .iter()
                .any(|a| a.installed() == Path::new("usr/lib/singularity/nova-agent-takeover") && a.mode == 0o755),
            "{format}: the nova-agent takeover script is not packaged, executable"
        );
        let config: Vec<_> = assets.iter().filter(|a| a.config).map(|a| a.installed()).collect();
        assert!(
            config.contains(&PathBuf::from("etc/singularity/singularity.conf")),
            "{format}: {config:?}"
        );
    }
    for field in ["conflicts", "replaces", "provides"] {
        assert_eq!(meta.deb[field], "nova-agent, python3-nova-agent", "{field}");
    }
    for table in ["obsoletes", "conflicts"] {
        for old in ["nova-agent", "python3-nova-agent"] {
            assert!(meta.rpm[table][old].is_string(), "{table} {old}");
        }
    }
}

/// 2023-11-14 22:13:20 UTC.
const EPOCH: u64 = 1_700_000_000;

#[test]
fn packages_are_reproducible() {
    let meta = xtask::package::read_meta(&repo(), "singularity").unwrap();
    let release = stand_in_release_dir();
    let build = |epoch: u64| {
        let out = tempfile::tempdir().unwrap();
        let mut built = Vec::new();
        if tool("dpkg-deb", "dpkg").is_some() {
            let deb = xtask::package::build_deb(&meta, release.path(), "x86_64", epoch, out.path()).unwrap();
            built.push(std::fs::read(deb.path).unwrap());
        }
        if tool("rpmbuild", "rpm").is_some() {
            let rpm = xtask::package::build_rpm(&meta, release.path(), "x86_64", epoch, out.path()).unwrap();
            built.push(std::fs::read(rpm.path).unwrap());
        }
        built
    };
    let first = build(EPOCH);
    // Later, in another directory, after the staged files' times changed.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = build(EPOCH);
    assert_eq!(first.len(), second.len());
    for (a, b) in first.iter().zip(&second) {
        assert!(a == b, "two builds from the same inputs differ");
    }
    // Another umask (the build's directories and files are created under it).
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "umask 0002 && exec \"$@\"",
        "sh",
        env!("CARGO_BIN_EXE_xtask"),
        "package",
    ]);
    if tool("rpmbuild", "rpm").is_none() {
        cmd.arg("--deb");
    }
    let status = cmd
        .arg(release.path())
        .arg(out.path())
        .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // In the order `build` gives: .deb, then .rpm.
    let mut names: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb" || x == "rpm"))
        .filter(|p| !p.to_string_lossy().contains("singularity-host"))
        .collect();
    names.sort_by_key(|p| p.extension().is_some_and(|x| x == "rpm"));
    let other_umask: Vec<Vec<u8>> = names.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(first.len(), other_umask.len());
    for (a, b) in first.iter().zip(&other_umask) {
        assert!(a == b, "a build under umask 0002 differs");
    }
    // The date is part of the input.
    let later = build(EPOCH + 86_400);
    for (a, b) in first.iter().zip(&later) {
        assert!(a != b, "a build with another date is identical");
    }
}

#[test]
fn packages_build_from_a_stand_in_binary() {
    let meta = xtask::package::read_meta(&repo(), "singularity").unwrap();
    let release = stand_in_release_dir();
    let out = tempfile::tempdir().unwrap();
    if let Some(dpkg_deb) = tool("dpkg-deb", "dpkg") {
        let deb = xtask::package::build_deb(&meta, release.path(), "x86_64", EPOCH, out.path()).unwrap();
        let fields = Command::new(&dpkg_deb)
            .args(["-f"])
            .arg(&deb.path)
            .args(["Package", "Conflicts", "Replaces", "Provides"])
            .output()
            .unwrap();
        let fields = String::from_utf8_lossy(&fields.stdout);
        assert_eq!(
            fields,
            "Package: singularity\nConflicts: nova-agent, python3-nova-agent\n\
             Replaces: nova-agent, python3-nova-agent\nProvides: nova-agent, python3-nova-agent\n"
        );
        let listing = Command::new(&dpkg_deb).arg("-c").arg(&deb.path).output().unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(listing.contains("./usr/sbin/singularity\n"), "{listing}");
        assert!(
            listing.contains("./usr/share/man/man5/singularity.conf.5.gz\n"),
            "{listing}"
        );
    }
    if let (Some(_), Some(rpm)) = (tool("rpmbuild", "rpm"), tool("rpm", "rpm")) {
        let built = xtask::package::build_rpm(&meta, release.path(), "x86_64", EPOCH, out.path()).unwrap();
        let config = Command::new(rpm)
            .args(["-qp", "--configfiles"])
            .arg(&built.path)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&config.stdout),
            "/etc/singularity/singularity.conf\n"
        );
    }
}
