//! The golden network files (`tests/golden/<renderer>/<case>/…`) checked by
//! the tools that read them on the real systems, all from Debian 12:
//!
//! - ifupdown: `ifup --no-act` parses every golden (ours, the edited main
//!   file, the snapshot used for `ifdown`), then the file is brought up for
//!   real in a network namespace and the addresses and routes compared with
//!   what the vm-data asks for ([`bring_up_ifupdown`], reusable end to end);
//! - netplan: `netplan generate --root-dir` (alone and merged with the
//!   distro's file), then networkd on the generated files in a namespace;
//! - systemd-networkd 252 runs on our `.network` files in a namespace;
//! - NetworkManager 1.42 loads our keyfiles (private D-Bus) in a namespace,
//!   and `nmcli connection load` + `up id` (our bring-up) work;
//! - ifupdown-ng (Alpine; the Debian package, downloaded, not installed as it
//!   conflicts with ifupdown): `ifparse` and `ifup --no-act`;
//! - RHEL/SUSE ifcfg, Gentoo conf.d/net, FreeBSD rc.conf: `sh -n`, and the
//!   variables read back by sh (no tool on Debian can apply them).
//!
//! A missing tool or no root fails the test unless `SINGULARITY_ALLOW_SKIP=1`.

mod common;

use common::netns::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn ifupdown_goldens_parse_with_ifup_no_act() {
    if !have("ifup", "ifupdown") {
        return;
    }
    for (case, path) in golden("ifupdown") {
        let state = tempfile::tempdir().expect("state");
        let ours = path.join("etc/network/interfaces.d/50-singularity");
        let out = output(
            Command::new("ifup")
                .args(["-n", "-a", "--state-dir"])
                .arg(state.path())
                .arg("-i")
                .arg(&ours),
        );
        let commands = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {commands}");
        let want = expected(&case);
        for a in want.addrs.values().flatten() {
            let ip = a.split('/').next().unwrap_or("");
            assert!(
                commands.contains(&format!("addr add {ip}/")),
                "{case}: no command adds {a}:\n{commands}"
            );
        }
        // The edited main file, its `source` line pointed at the golden tree.
        let main = fs::read_to_string(path.join("etc/network/interfaces")).expect("interfaces");
        let tmp = state.path().join("interfaces");
        fs::write(
            &tmp,
            main.replace("/etc/network/", &format!("{}/etc/network/", path.display())),
        )
        .expect("write");
        let listed = ok(Command::new("ifquery").arg("-i").arg(&tmp).arg("--list"));
        let listed: BTreeSet<&str> = listed.lines().collect();
        assert!(
            listed.contains("lo") && listed.iter().all(|n| *n == "lo" || want.addrs.contains_key(*n)),
            "{case}: {listed:?}"
        );
        let previous = path.join("run/singularity/ifupdown-previous.interfaces");
        if previous.exists() {
            ok(Command::new("ifquery").arg("-i").arg(&previous).arg("--list"));
        }
    }
}

#[test]
fn ifupdown_goldens_come_up_in_a_namespace() {
    if !have("ifup", "ifupdown") || !netns_ok() {
        return;
    }
    for (case, path) in golden("ifupdown") {
        let nics = listing(&case);
        let (ns, out) = bring_up_ifupdown(&path.join("etc/network/interfaces.d/50-singularity"), &nics);
        assert!(
            out.status.success(),
            "{case}: ifup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ns.wait_for(&nics, &expected(&case), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

/// Copies `files` into `dir` with the mode the renderer gives them.
fn stage(dir: &Path, files: &[PathBuf], mode: u32) {
    fs::create_dir_all(dir).expect("mkdir");
    for f in files {
        let to = dir.join(f.file_name().expect("name"));
        fs::copy(f, &to).expect("copy");
        fs::set_permissions(&to, fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

#[test]
fn netplan_goldens_generate() {
    if !have("netplan", "netplan.io") {
        return;
    }
    let distro = dir("fixtures/network/targets/netplan/root/etc/netplan/50-cloud-init.yaml");
    for (case, path) in golden("netplan") {
        let ours = path.join("etc/netplan/90-singularity.yaml");
        for files in [vec![ours.clone()], vec![distro.clone(), ours.clone()]] {
            let root = tempfile::tempdir().expect("root");
            stage(&root.path().join("etc/netplan"), &files, 0o600);
            let out = output(
                Command::new("netplan")
                    .arg("generate")
                    .arg("--root-dir")
                    .arg(root.path()),
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && err.trim().is_empty(),
                "{case}: netplan generate: {err}"
            );
            for (nic, _) in expected(&case).addrs.iter().filter(|(_, a)| !a.is_empty()) {
                let net = root
                    .path()
                    .join(format!("run/systemd/network/10-netplan-{nic}.network"));
                let text = fs::read_to_string(&net).unwrap_or_else(|e| panic!("{case}: {}: {e}", net.display()));
                assert!(!text.contains("DHCP="), "{case}: {nic} still has DHCP:\n{text}");
            }
        }
    }
}

/// Runs systemd-networkd on the `.network` files in `conf` for `case`.
fn networkd_state(case: &str, conf: &Path) {
    let nics = listing(case);
    let mut ns = NetNs::new(&nics);
    ns.private_mounts(&[(conf, "/etc/systemd/network")]);
    ok(ns.enter(false).args(["mkdir", "-p", "/run/systemd/netif"]));
    ok(ns
        .enter(false)
        .args(["chown", "systemd-network:systemd-network", "/run/systemd/netif"]));
    let log = conf.with_extension("log");
    ns.spawn(&["/lib/systemd/systemd-networkd"], &log);
    let result = ns.wait_for(&nics, &expected(case), Duration::from_secs(10));
    let text = fs::read_to_string(&log).unwrap_or_default();
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("/etc/systemd/network/"))
        .collect();
    assert!(
        complaints.is_empty(),
        "{case}: networkd complained:\n{}",
        complaints.join("\n")
    );
    result.unwrap_or_else(|e| {
        panic!(
            "{case}: {e}\nlog tail:\n{}",
            text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        )
    });
}

#[test]
fn networkd_goldens_come_up_in_a_namespace() {
    if !Path::new("/lib/systemd/systemd-networkd").exists()
        && unavailable("systemd-networkd missing (apt-get install systemd)")
    {
        return;
    }
    if !netns_ok() {
        return;
    }
    for (case, path) in golden("networkd") {
        let tmp = tempfile::tempdir().expect("tmp");
        let files: Vec<PathBuf> = fs::read_dir(path.join("etc/systemd/network"))
            .expect("dir")
            .map(|e| e.expect("e").path())
            .collect();
        let conf = tmp.path().join("network");
        stage(&conf, &files, 0o644);
        networkd_state(&case, &conf);
    }
}

#[test]
fn netplan_goldens_come_up_through_networkd() {
    if !have("netplan", "netplan.io") || !netns_ok() {
        return;
    }
    for (case, path) in golden("netplan") {
        let root = tempfile::tempdir().expect("root");
        stage(
            &root.path().join("etc/netplan"),
            &[path.join("etc/netplan/90-singularity.yaml")],
            0o600,
        );
        ok(Command::new("netplan")
            .arg("generate")
            .arg("--root-dir")
            .arg(root.path()));
        let conf = root.path().join("network");
        fs::create_dir_all(&conf).expect("mkdir");
        // Test only: a veth has no permanent MAC, so netplan's
        // PermanentMACAddress= match never fits one (network.md §3.3).
        for e in fs::read_dir(root.path().join("run/systemd/network")).expect("generated") {
            let p = e.expect("e").path();
            if p.extension().is_some_and(|x| x == "network") {
                let text = fs::read_to_string(&p)
                    .expect("read")
                    .replace("PermanentMACAddress=", "MACAddress=");
                fs::write(conf.join(p.file_name().expect("name")), text).expect("write");
            }
        }
        networkd_state(&case, &conf);
    }
}

/// The bring-up commands of a golden case (from its `outcome.txt`).
fn bringup_commands(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path.join("outcome.txt"))
        .expect("outcome")
        .lines()
        .filter_map(|l| l.strip_prefix("bringup: "))
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect()
}

/// Polls `cmd` until it succeeds.
fn until_ok(mut cmd: impl FnMut() -> Command, what: &str) {
    let start = Instant::now();
    while !output(&mut cmd()).status.success() {
        assert!(start.elapsed() < Duration::from_secs(15), "{what} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn networkmanager_goldens_load_and_come_up_in_a_namespace() {
    if !Path::new("/usr/sbin/NetworkManager").exists()
        && unavailable("NetworkManager missing (apt-get install network-manager)")
    {
        return;
    }
    if !have("dbus-daemon", "dbus") || !netns_ok() {
        return;
    }
    for (case, path) in golden("networkmanager") {
        let tmp = tempfile::tempdir().expect("tmp");
        let (nm, varlib, resolv) = (
            tmp.path().join("nm"),
            tmp.path().join("varlib"),
            tmp.path().join("resolv.conf"),
        );
        fs::create_dir_all(nm.join("system-connections")).expect("mkdir");
        fs::create_dir_all(&varlib).expect("mkdir");
        fs::write(&resolv, b"").expect("resolv");
        // Test-only daemon settings: keyfiles only, no DHCP profiles for the
        // veth peers, leave resolv.conf alone.
        fs::write(
            nm.join("NetworkManager.conf"),
            "[main]\nplugins=keyfile\nno-auto-default=*\nrc-manager=unmanaged\n",
        )
        .expect("conf");
        let nics = listing(&case);
        let mut ns = NetNs::new(&nics);
        ns.private_mounts(&[
            (&nm, "/etc/NetworkManager"),
            (&varlib, "/var/lib/NetworkManager"),
            (&resolv, "/etc/resolv.conf"),
        ]);
        ok(ns.enter(false).args(["mkdir", "-p", "/run/dbus"]));
        ns.spawn(
            &["dbus-daemon", "--system", "--nofork", "--nopidfile"],
            &tmp.path().join("dbus.log"),
        );
        until_ok(
            || {
                let mut c = ns.enter(false);
                c.args(["test", "-S", "/run/dbus/system_bus_socket"]);
                c
            },
            "dbus",
        );
        let log = tmp.path().join("nm.log");
        ns.spawn(&["/usr/sbin/NetworkManager", "--debug"], &log);
        until_ok(
            || {
                let mut c = ns.enter(true);
                c.args(["nmcli", "-t", "general", "status"]);
                c
            },
            "NetworkManager",
        );
        // The keyfiles appear while NM runs, then our own bring-up loads them.
        let dir = path.join("etc/NetworkManager/system-connections");
        let files: Vec<PathBuf> = fs::read_dir(&dir).expect("dir").map(|e| e.expect("e").path()).collect();
        stage(&nm.join("system-connections"), &files, 0o600);
        for cmd in bringup_commands(&path) {
            let mut c = ns.enter(true);
            c.arg(&cmd[0]);
            if cmd[0] == "nmcli" {
                c.args(["--wait", "20"]);
            }
            c.args(&cmd[1..]);
            let out = output(&mut c);
            assert!(
                out.status.success(),
                "{case}: {cmd:?}: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("<warn>"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        ns.wait_for(&nics, &expected(&case), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let text = fs::read_to_string(&log).unwrap_or_default();
        let complaints: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("keyfile") && (l.contains("<warn>") || l.contains("<error>")))
            .collect();
        assert!(
            complaints.is_empty(),
            "{case}: NetworkManager complained:\n{}",
            complaints.join("\n")
        );
    }
}

/// ifupdown-ng from Debian, downloaded and unpacked (it conflicts with
/// ifupdown) into `${XDG_CACHE_HOME:-$HOME/.cache}/singularity-test`.
fn ifupdown_ng() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("singularity-test/ifupdown-ng");
    let root = cache.join("root");
    if root.join("sbin/ifparse").exists() {
        return Some(root);
    }
    let _ = fs::create_dir_all(&cache);
    let fetch = || {
        Command::new("apt-get")
            .args(["download", "ifupdown-ng"])
            .current_dir(&cache)
            .output()
    };
    if !fetch().is_ok_and(|o| o.status.success()) {
        let _ = Command::new("apt-get").args(["update", "-q"]).output();
        if !fetch().is_ok_and(|o| o.status.success()) {
            return None.filter(|_: &PathBuf| !unavailable("apt-get download ifupdown-ng failed"));
        }
    }
    let deb = fs::read_dir(&cache)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))?;
    let tmp = cache.join(format!("root-{}", std::process::id()));
    ok(Command::new("dpkg").arg("-x").arg(&deb).arg(&tmp));
    let _ = fs::rename(&tmp, &root);
    Some(root)
}

#[test]
fn alpine_goldens_parse_and_come_up_with_ifupdown_ng() {
    let Some(ng) = ifupdown_ng() else { return };
    let exec = ng.join("usr/libexec/ifupdown-ng");
    for (case, path) in golden("alpine") {
        let file = path.join("etc/network/interfaces");
        let want = expected(&case);
        let parsed = ok(Command::new(ng.join("sbin/ifparse")).arg("-i").arg(&file).arg("--all"));
        for a in want.addrs.values().flatten() {
            assert!(
                parsed.contains(&format!("address {a}")),
                "{case}: ifparse lost {a}:\n{parsed}"
            );
        }
        if !netns_ok() {
            return;
        }
        let nics = listing(&case);
        let tmp = tempfile::tempdir().expect("tmp");
        let etc = tmp.path().join("network");
        fs::create_dir_all(&etc).expect("mkdir");
        fs::write(etc.join("ifupdown-ng.conf"), "allow_addon_scripts = 0\n").expect("conf");
        let mut ns = NetNs::new(&nics);
        ns.private_mounts(&[(&etc, "/etc/network")]);
        let out = output(
            ns.enter(true)
                .arg(ng.join("sbin/ifup"))
                .arg("-E")
                .arg(&exec)
                .arg("-S")
                .arg(tmp.path().join("state"))
                .arg("-i")
                .arg(&file)
                .arg("-a"),
        );
        assert!(
            out.status.success(),
            "{case}: ifupdown-ng ifup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ns.wait_for(&nics, &want, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

/// `sh -n`, then the variables the file sets, as sh reads them.
fn sh_vars(file: &Path) -> BTreeMap<String, String> {
    ok(Command::new("sh").arg("-n").arg(file));
    let env = ok(Command::new("env")
        .args(["-i", "sh", "-c", "set -a; . \"$1\"; env -0", "sh"])
        .arg(file));
    env.split('\0')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| !matches!(*k, "PWD" | "SHLVL" | "_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Adds the case's addresses in a namespace, then `ip route add` of each
/// line (`dev NIC` added when missing), then checks that every route of the
/// case's `expected-state` is in the kernel. The `route-*`, `route6-*` and
/// netifrc `routes_*` lines are `ip route` arguments; callers turn gateway
/// variables and SUSE `ifroute-*` lines into such lines.
fn routes_accepted(case: &str, lines: &[(String, String)]) {
    if lines.is_empty() || !netns_ok() {
        return;
    }
    let nics = listing(case);
    let ns = NetNs::new(&nics);
    for (nic, addrs) in &expected(case).addrs {
        ns.ip(&["link", "set", nic, "up"]);
        for a in addrs {
            ns.ip(&["addr", "add", a, "dev", nic]);
        }
    }
    for (nic, line) in lines {
        let mut args: Vec<&str> = vec!["route", "add"];
        args.extend(line.split_whitespace());
        if !line.contains(" dev ") {
            args.extend(["dev", nic]);
        }
        let out = output(Command::new("ip").args(["-n", &ns.name]).args(&args));
        assert!(
            out.status.success(),
            "{case}: ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every route the vm-data asks for is now in the kernel (files may add
    // helpers, e.g. a host route to an off-link gateway).
    let got = ns.state(&nics).routes;
    for route in &expected(case).routes {
        assert!(
            got.contains(route),
            "{case}: route {route:?} missing; the kernel has {got:?}"
        );
    }
}

#[test]
fn rhel_ifcfg_goldens_read_back() {
    for (case, path) in golden("ifcfg") {
        let want = expected(&case);
        let mut lines = Vec::new();
        for (nic, addrs) in want.addrs.iter().filter(|(_, a)| !a.is_empty()) {
            let base = path.join("etc/sysconfig/network-scripts");
            let v = sh_vars(&base.join(format!("ifcfg-{nic}")));
            assert_eq!(v.get("DEVICE").map(String::as_str), Some(nic.as_str()), "{case}");
            let mut got = BTreeSet::new();
            for i in 0.. {
                let (Some(ip), Some(p)) = (v.get(&format!("IPADDR{i}")), v.get(&format!("PREFIX{i}"))) else {
                    break;
                };
                got.insert(format!("{ip}/{p}"));
            }
            got.extend(v.get("IPV6ADDR").cloned());
            got.extend(
                v.get("IPV6ADDR_SECONDARIES")
                    .into_iter()
                    .flat_map(|s| s.split_whitespace().map(str::to_string)),
            );
            assert_eq!(&got, addrs, "{case}/{nic}: addresses (numbered from 0 without gaps)");
            if let Some(gw) = v.get("IPV6_DEFAULTGW").filter(|g| g.starts_with("fe80")) {
                assert!(
                    gw.ends_with(&format!("%{nic}")),
                    "{case}: link-local IPV6_DEFAULTGW needs %{nic}: {gw}"
                );
            }
            for key in ["GATEWAY", "IPV6_DEFAULTGW"] {
                if let Some(gw) = v.get(key) {
                    let gw = gw.trim_end_matches(&format!("%{nic}"));
                    lines.push((nic.clone(), format!("default via {gw}")));
                }
            }
            for file in ["route", "route6"] {
                let text = fs::read_to_string(base.join(format!("{file}-{nic}"))).unwrap_or_default();
                lines.extend(
                    text.lines()
                        .filter(|l| !l.starts_with('#'))
                        .map(|l| (nic.clone(), l.to_string())),
                );
            }
        }
        routes_accepted(&case, &lines);
    }
}

#[test]
fn suse_goldens_read_back() {
    for (case, path) in golden("suse") {
        let mut lines = Vec::new();
        for (nic, addrs) in expected(&case).addrs.iter().filter(|(_, a)| !a.is_empty()) {
            let base = path.join("etc/sysconfig/network");
            let v = sh_vars(&base.join(format!("ifcfg-{nic}")));
            let got: BTreeSet<String> = v
                .iter()
                .filter(|(k, _)| k.starts_with("IPADDR"))
                .map(|(_, a)| a.clone())
                .collect();
            assert_eq!(&got, addrs, "{case}/{nic}");
            assert_eq!(v.get("BOOTPROTO").map(String::as_str), Some("static"), "{case}/{nic}");
            let routes = fs::read_to_string(base.join(format!("ifroute-{nic}"))).unwrap_or_default();
            for line in routes.lines().filter(|l| !l.starts_with('#')) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                assert!(cols.len() == 4 && cols[3] == nic, "{case}: ifroute-{nic}: {line}");
                // DESTINATION GATEWAY NETMASK INTERFACE, '-' for none
                let via = if cols[1] == "-" {
                    String::new()
                } else {
                    format!(" via {}", cols[1])
                };
                lines.push((nic.clone(), format!("{}{via}", cols[0])));
            }
        }
        routes_accepted(&case, &lines);
    }
}

#[test]
fn gentoo_goldens_read_back() {
    for (case, path) in golden("gentoo") {
        let v = sh_vars(&path.join("etc/conf.d/net"));
        let mut lines = Vec::new();
        for (nic, addrs) in expected(&case).addrs.iter().filter(|(_, a)| !a.is_empty()) {
            let got: BTreeSet<String> = v[&format!("config_{nic}")].lines().map(str::to_string).collect();
            assert_eq!(&got, addrs, "{case}/{nic}");
            let routes = v.get(&format!("routes_{nic}")).cloned().unwrap_or_default();
            lines.extend(routes.lines().map(|l| (nic.clone(), l.to_string())));
        }
        routes_accepted(&case, &lines);
    }
}

#[test]
fn freebsd_goldens_read_back() {
    for (case, path) in golden("freebsd") {
        let v = sh_vars(&path.join("etc/rc.conf"));
        for (i, (nic, addrs)) in expected(&case)
            .addrs
            .iter()
            .enumerate()
            .filter(|(_, (_, a))| !a.is_empty())
        {
            let xn = format!("xn{}", nic.trim_start_matches("eth"));
            let mut got = BTreeSet::new();
            let mut add = |text: &str| {
                let w: Vec<&str> = text.split_whitespace().collect();
                match w[..] {
                    ["inet", a, "netmask", m] => {
                        let bits: u32 = m.split('.').map(|o| o.parse::<u8>().expect("octet").count_ones()).sum();
                        got.insert(format!("{a}/{bits}"));
                    }
                    ["inet6", a, "prefixlen", p] => {
                        got.insert(format!("{a}/{p}"));
                    }
                    _ => panic!("{case}: unexpected ifconfig value {text}"),
                }
            };
            v.get(&format!("ifconfig_{xn}")).into_iter().for_each(|t| add(t));
            v.get(&format!("ifconfig_{xn}_ipv6")).into_iter().for_each(|t| add(t));
            let mut n = 0;
            while let Some(t) = v.get(&format!("ifconfig_{xn}_alias{n}")) {
                add(t);
                n += 1;
            }
            let aliases = v
                .keys()
                .filter(|k| k.starts_with(&format!("ifconfig_{xn}_alias")))
                .count();
            assert_eq!(aliases, n, "{case}: alias numbers of {xn} must be contiguous from 0");
            // Same-subnet IPv4 aliases are /32 on FreeBSD: compare addresses only.
            let strip = |s: &BTreeSet<String>| {
                s.iter()
                    .map(|a| a.split('/').next().unwrap_or("").to_string())
                    .collect::<BTreeSet<_>>()
            };
            assert_eq!(strip(&got), strip(addrs), "{case}/{xn} ({i})");
        }
        if let Some(gw) = v.get("ipv6_defaultrouter").filter(|g| g.starts_with("fe80")) {
            assert!(
                gw.contains("%xn"),
                "{case}: link-local ipv6_defaultrouter needs %xnN: {gw}"
            );
        }
    }
}
