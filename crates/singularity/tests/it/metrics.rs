//! The metrics function end to end: the real agent binary against the
//! simulator with the home laid out as xenopsd makes it (`data` and `attr`
//! the guest's, `control` read-only), in a network namespace whose veth
//! carries the MAC of `device/vif/0/mac`; and the library's metrics thread
//! against Debian's real C xenstored and oxenstored.

use crate::harness::TestRoot;
use crate::netns::{netns_ok, NetNs};
use crate::realxs::{self, Daemon, Kind};
use crate::xenlab::{GuestLink, XenLab};
use singularity::metrics::{self, MetricsConfig};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xenstore::sim::Config;
use xenstore::{Access, Client, Optional, Perm};

const WAIT: Duration = Duration::from_secs(10);
/// How long an address change may take to show. With `memory_interval` at a
/// day and no polling, only an rtnetlink event can explain an update at all.
const FOLLOW: Duration = Duration::from_secs(5);
const UID: &str = "0b1c8e9a-5c38-4c2e-9d55-6f7d01e2a001";

/// `attr` the guest's, `control`, `unique-domain-id` and each vif's `mac`
/// read-only to it, `control/shutdown` empty, as xenopsd leaves them.
fn xenopsd_layout(lab: &XenLab, vifs: &[(u32, &str)]) {
    let c = lab.client();
    let guest = [Perm::new(7, Access::None)];
    let read_only = [Perm::new(0, Access::None), Perm::new(7, Access::Read)];
    let mut nodes: Vec<(String, String, &[Perm])> = vec![
        ("attr".into(), String::new(), &guest[..]),
        ("control".into(), String::new(), &read_only[..]),
        ("control/shutdown".into(), String::new(), &read_only[..]),
        ("unique-domain-id".into(), UID.into(), &read_only[..]),
    ];
    for (devid, mac) in vifs {
        nodes.push((format!("device/vif/{devid}"), String::new(), &read_only[..]));
        nodes.push((format!("device/vif/{devid}/mac"), mac.to_string(), &read_only[..]));
    }
    for (node, value, perms) in nodes {
        c.write(&lab.home(&node), value).unwrap();
        c.set_perms(&lab.home(&node), perms).unwrap();
    }
}

fn read(c: &Client, path: &str) -> Option<String> {
    c.read_string(path).optional().unwrap()
}

fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `attr/vif/<devid>/<family>`: index → address.
fn listed(c: &Client, lab: &XenLab, devid: u32, family: &str) -> BTreeMap<String, String> {
    let dir = lab.home(&format!("attr/vif/{devid}/{family}"));
    let names = c.directory(&dir).optional().unwrap().unwrap_or_default();
    names
        .into_iter()
        .filter_map(|n| read(c, &format!("{dir}/{n}")).map(|v| (n, v)))
        .collect()
}

fn v4(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(n, a)| (n.to_string(), a.to_string())).collect()
}

#[test]
fn vif_addresses_follow_changes_in_a_network_namespace() {
    if !netns_ok() {
        return;
    }
    // Matched by MAC, whatever the name; the second NIC is no vif.
    let ns = NetNs::new(&[
        ("wan0".into(), "02:00:5e:00:53:01".into()),
        ("eth1".into(), "02:00:5e:00:53:02".into()),
    ]);
    ns.ip(&["addr", "add", "198.51.100.7/24", "dev", "eth1"]);
    ns.ip(&["link", "set", "eth1", "up"]);
    ns.ip(&["addr", "add", "192.0.2.10/24", "dev", "wan0"]);
    let root = TestRoot::new();
    root.seed_debian(&[]);
    // A balloon driver: the feature is wanted, and refused by the read-only `control`.
    std::fs::create_dir_all(root.path("/sys/devices/system/xen_memory")).unwrap();
    let mut lab = XenLab::new(GuestLink::Stream, Config::default());
    xenopsd_layout(&lab, &[(0, "02:00:5E:00:53:01")]);
    lab.start_agent_in(Some(&ns.name), root.base(), &[], "[metrics]\nmemory_interval = 86400\n");
    let c = lab.client();
    assert_eq!(
        read(&c, &lab.home("data/os_name")).as_deref(),
        Some("Debian GNU/Linux 12 (bookworm)")
    );
    assert_eq!(listed(&c, &lab, 0, "ipv4"), v4(&[("0", "192.0.2.10")]));
    // The link comes up: its link-local IPv6 address is reported too.
    ns.ip(&["link", "set", "wan0", "up"]);
    wait_until("no link-local address", FOLLOW, || {
        listed(&c, &lab, 0, "ipv6").values().any(|a| a.starts_with("fe80::"))
    });
    // Another subnet: removing a primary address takes its secondaries along.
    ns.ip(&["addr", "add", "203.0.113.11/24", "dev", "wan0"]);
    ns.ip(&["addr", "add", "2001:db8::10/64", "dev", "wan0"]);
    wait_until("203.0.113.11 not added", FOLLOW, || {
        listed(&c, &lab, 0, "ipv4") == v4(&[("0", "192.0.2.10"), ("1", "203.0.113.11")])
    });
    wait_until("2001:db8::10 not added", FOLLOW, || {
        listed(&c, &lab, 0, "ipv6").values().any(|a| a == "2001:db8::10")
    });
    // A removed address's node goes; the others keep their index, and the
    // next address takes the free one.
    ns.ip(&["addr", "del", "192.0.2.10/24", "dev", "wan0"]);
    wait_until("192.0.2.10 not removed", FOLLOW, || {
        listed(&c, &lab, 0, "ipv4") == v4(&[("1", "203.0.113.11")])
    });
    ns.ip(&["addr", "add", "192.0.2.12/24", "dev", "wan0"]);
    wait_until("192.0.2.12 not added", FOLLOW, || {
        listed(&c, &lab, 0, "ipv4") == v4(&[("0", "192.0.2.12"), ("1", "203.0.113.11")])
    });
    ns.ip(&["addr", "flush", "dev", "wan0", "scope", "global"]);
    wait_until("global addresses not removed", FOLLOW, || {
        listed(&c, &lab, 0, "ipv4").is_empty() && listed(&c, &lab, 0, "ipv6").values().all(|a| a.starts_with("fe80::"))
    });
    assert_eq!(c.directory(&lab.home("attr/vif")).unwrap(), ["0"]);
    // A vif plugged in while the agent runs: the toolstack writes its
    // `device/vif/<devid>` first, then the NIC appears (a link event).
    c.write(&lab.home("device/vif/1/mac"), "02:00:5e:00:53:03").unwrap();
    ns.ip(&[
        "link",
        "add",
        "lan7",
        "address",
        "02:00:5e:00:53:03",
        "type",
        "veth",
        "peer",
        "name",
        "peer7",
    ]);
    ns.ip(&["addr", "add", "192.0.2.50/24", "dev", "lan7"]);
    wait_until("the new vif's address not added", FOLLOW, || {
        listed(&c, &lab, 1, "ipv4") == v4(&[("0", "192.0.2.50")])
    });
    // control/shutdown is untouched; the refused balloon feature is "not
    // supported", not an error: nothing above debug level was logged.
    assert_eq!(read(&c, &lab.home("control/shutdown")).as_deref(), Some(""));
    assert_eq!(read(&c, &lab.home("control/feature-balloon")), None);
    assert!(lab.stop_agent(), "SIGTERM gives a clean exit");
    let log = lab.agent_log();
    assert!(log.contains("control/feature-balloon is read-only"), "{log}");
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": WARN: ") || l.contains(": ERROR: "))
        .collect();
    assert!(noisy.is_empty(), "{noisy:?}");
}

#[test]
fn metrics_over_the_device_and_disabled_by_functions() {
    let root = TestRoot::new();
    root.seed_debian(&[]);
    for (args, config, on) in [
        (&[][..], "", true),
        (&["-F", "version,features"][..], "", false),
        (&[][..], "[main]\nfunctions = password, version\n", false),
    ] {
        let mut lab = XenLab::new(GuestLink::Device, Config::default());
        xenopsd_layout(&lab, &[]);
        // The first key set is written before the agent answers.
        lab.start_agent(&root, args, config);
        let c = lab.client();
        let os = read(&c, &lab.home("data/os_distro"));
        let major = read(&c, &lab.home("attr/PVAddons/MajorVersion"));
        let updated = read(&c, &lab.home("data/updated"));
        if on {
            assert_eq!(os.as_deref(), Some("debian"));
            assert_eq!(major.as_deref(), Some(env!("CARGO_PKG_VERSION_MAJOR")));
            assert!(updated.is_some());
        } else {
            assert_eq!((os, major, updated), (None, None, None), "{args:?} {config:?}");
        }
        assert!(lab.stop_agent());
    }
}

/// The names of the agent's threads.
fn threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn sighup_starts_and_stops_metrics() {
    let root = TestRoot::new();
    root.seed_debian(&[]);
    let meminfo = |free: u32| {
        let text = format!("MemTotal: 4000 kB\nMemAvailable: {free} kB\n");
        root.write("/proc/meminfo", text.as_bytes(), 0o444);
    };
    meminfo(1000);
    let off = "[main]\nfunctions = version,features\n[metrics]\nmemory_interval = 1\n";
    let on = "[main]\nfunctions = version,features,metrics\n[metrics]\nmemory_interval = 1\n";
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    xenopsd_layout(&lab, &[]);
    lab.start_agent(&root, &[], off);
    let pid = lab.agent_pid().unwrap();
    let c = lab.client();
    let key = |k: &str| read(&c, &lab.home(k));
    let hup = |config: &str| {
        lab.write_config(config);
        // SAFETY: kill(2) on the agent, our own child.
        unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    };
    let metrics_threads = || {
        threads(pid)
            .into_iter()
            .filter(|n| n.starts_with("metrics"))
            .collect::<Vec<_>>()
    };
    assert_eq!(key("data/os_name"), None);
    assert!(metrics_threads().is_empty());

    // A reload that enables metrics starts it: the full key set, then free
    // memory as it changes.
    hup(on);
    wait_until("metrics not started by the reload", WAIT, || {
        key("data/os_name").is_some() && key("attr/PVAddons/MajorVersion").is_some()
    });
    assert_eq!(key("data/meminfo_free").as_deref(), Some("1000"));
    meminfo(2000);
    wait_until("free memory not followed", WAIT, || {
        key("data/meminfo_free").as_deref() == Some("2000")
    });

    // A reload that disables it stops the thread; its keys stay as they were.
    hup(off);
    wait_until("metrics not stopped by the reload", WAIT, || {
        lab.agent_log().contains("metrics: stopped")
    });
    assert_eq!(metrics_threads(), ["metrics-netlink"]);
    c.rm(&lab.home("data/os_name")).unwrap();
    meminfo(3000);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(key("data/meminfo_free").as_deref(), Some("2000"));
    assert_eq!(key("data/os_name"), None);

    // Enabled again: a full rewrite, with the one netlink listener.
    hup(on);
    wait_until("metrics not started again", WAIT, || {
        key("data/os_name").is_some() && key("data/meminfo_free").as_deref() == Some("3000")
    });
    assert_eq!(metrics_threads(), ["metrics", "metrics-netlink"]);
    // A reload with the same settings leaves the thread alone.
    hup(on);
    wait_until("second reload not logged", WAIT, || {
        lab.agent_log().matches("configuration reloaded").count() == 4
    });
    assert_eq!(lab.agent_log().matches("metrics: stopped").count(), 1);
    assert!(lab.stop_agent());
    let log = lab.agent_log();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(": WARN: ") || l.contains(": ERROR: "))
        .collect();
    assert!(noisy.is_empty(), "{noisy:?}");
}

/// The library's metrics thread for domain 0 of `daemon` (its
/// `unique-domain-id` set), on a Debian root with 3000 KiB of free memory
/// read every `interval`; stopped through the flag.
fn metrics_thread(daemon: &Daemon, interval: Duration) -> (Client, TestRoot, Arc<AtomicBool>, metrics::Metrics) {
    let c = Client::connect(daemon.socket()).unwrap();
    c.write("/local/domain/0/unique-domain-id", UID).unwrap();
    let root = TestRoot::new();
    root.seed_debian(&[]);
    root.write("/proc/meminfo", b"MemTotal: 4000 kB\nMemAvailable: 3000 kB\n", 0o444);
    let stop = Arc::new(AtomicBool::new(false));
    let for_thread = Arc::clone(&stop);
    let m = metrics::start(
        MetricsConfig {
            xenstore: Some(daemon.socket().to_str().unwrap().into()),
            root: root.base().to_path_buf(),
            memory_interval: interval,
        },
        Arc::new(move || for_thread.load(Ordering::Acquire)),
    )
    .unwrap();
    (c, root, stop, m)
}

/// The metrics thread as dom0 of a real daemon: the key set, nothing sent
/// while nothing changes, a new `unique-domain-id` and a daemon restart
/// (an empty store) each bring a full rewrite.
fn real_daemon(kind: Kind) {
    let Some(env) = realxs::env_or_skip() else {
        return;
    };
    let mut daemon = Daemon::start(&env, kind).unwrap_or_else(|e| panic!("starting {kind:?}: {e}"));
    let home = "/local/domain/0";
    let (c, _root, stop, m) = metrics_thread(&daemon, Duration::from_millis(200));
    let key = |k: &str| read(&c, &format!("{home}/{k}"));
    assert_eq!(key("data/os_name").as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    assert_eq!(key("data/meminfo_free").as_deref(), Some("3000"));
    assert_eq!(key("attr/PVAddons/BuildVersion").as_deref(), Some("0"));
    assert!(key("data/updated").is_some());
    // Memory is read five times a second and does not change: nothing is sent.
    let watch = c.watch(home).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    while watch.try_recv().unwrap().is_some() {}
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(watch.try_recv().unwrap(), None, "a write while nothing changed");
    drop(watch);
    c.rm(&format!("{home}/data/os_name")).unwrap();
    c.write(
        &format!("{home}/unique-domain-id"),
        "0b1c8e9a-5c38-4c2e-9d55-6f7d01e2a002",
    )
    .unwrap();
    wait_until("no rewrite on a new unique-domain-id", WAIT, || {
        key("data/os_name").is_some()
    });
    daemon.restart().unwrap();
    let c2 = Client::connect(daemon.socket()).unwrap();
    wait_until("no rewrite after a reconnection", WAIT, || {
        read(&c2, &format!("{home}/attr/PVAddons/MajorVersion")).is_some()
            && read(&c2, &format!("{home}/data/os_distro")).is_some()
    });
    stop.store(true, Ordering::Release);
    m.join();
}

#[test]
fn real_c_xenstored_keeps_the_metrics() {
    real_daemon(Kind::C);
}

#[test]
fn real_oxenstored_keeps_the_metrics() {
    real_daemon(Kind::Ox);
}

#[test]
fn memory_interval_is_checked_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let config = |text: &str| {
        std::fs::write(conf.join("singularity.conf"), text).unwrap();
        std::process::Command::new(crate::harness::bin())
            .arg("-f")
            .arg(&conf)
            .arg("config")
            .output()
            .unwrap()
    };
    let bad = config("[metrics]\nmemory_interval = 0\n");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(
            ":2: bad value '0' for 'memory_interval' in [metrics]: expected a whole number of seconds, 1 to 86400"
        ),
        "{err}"
    );
    let good = config("[metrics]\nmemory_interval = 30\n");
    assert!(good.status.success());
    // `config` prints the effective configuration as INI, with its sources.
    let out = String::from_utf8_lossy(&good.stdout).into_owned();
    assert!(out.contains("singularity.conf:2\nmemory_interval = 30\n"), "{out}");
    let default = config("");
    let out = String::from_utf8_lossy(&default.stdout).into_owned();
    assert!(out.contains("# default\nmemory_interval = 60\n"), "{out}");
}

/// How long the idle test watches the store.
const IDLE_WINDOW: Duration = Duration::from_secs(180);

/// Idle for three minutes against oxenstored, whose access log records every
/// request: with the default 60 s memory reading, the store sees nothing
/// from the agent but the one refresh after free memory changed (its value
/// and `data/updated`).
#[test]
fn idle_for_three_minutes_the_store_sees_only_the_memory_refresh() {
    let Some(env) = realxs::env_or_skip() else {
        return;
    };
    let daemon = Daemon::start(&env, Kind::Ox).unwrap_or_else(|e| panic!("starting oxenstored: {e}"));
    let log = daemon.access_log().unwrap();
    let home = "/local/domain/0";
    let (c, root, stop, m) = metrics_thread(&daemon, Duration::from_secs(60));
    wait_until("the first writes", WAIT, || {
        read(&c, &format!("{home}/data/updated")).is_some()
    });
    std::thread::sleep(Duration::from_secs(1));
    let start = std::fs::read_to_string(&log).unwrap().lines().count();
    let began = Instant::now();
    std::thread::sleep(IDLE_WINDOW / 2);
    root.write("/proc/meminfo", b"MemTotal: 4000 kB\nMemAvailable: 2000 kB\n", 0o444);
    std::thread::sleep(IDLE_WINDOW.saturating_sub(began.elapsed()));
    let text = std::fs::read_to_string(&log).unwrap();
    let during: Vec<&str> = text.lines().skip(start).collect();
    stop.store(true, Ordering::Release);
    m.join();
    let writes: Vec<&str> = during.iter().copied().filter(|l| l.contains("write")).collect();
    assert!(
        writes.len() == 2 && writes[0].contains("data/meminfo_free") && writes[1].contains("data/updated"),
        "expected the one refresh; the store logged: {during:#?}"
    );
    assert_eq!(during.len(), writes.len(), "nothing but those writes: {during:#?}");
    assert_eq!(read(&c, &format!("{home}/data/meminfo_free")).as_deref(), Some("2000"));
}
