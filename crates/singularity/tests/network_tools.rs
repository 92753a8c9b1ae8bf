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

use serde_json::Value;
use singularity::network::vmdata::parse_entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(rel)
}

fn golden(renderer: &str) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = fs::read_dir(dir(&format!("golden/{renderer}")))
        .expect("goldens")
        .map(|e| {
            let e = e.expect("entry");
            (e.file_name().to_string_lossy().into_owned(), e.path())
        })
        .collect();
    v.sort();
    v
}

/// Fails, or skips loudly with `SINGULARITY_ALLOW_SKIP=1`.
fn unavailable(what: &str) -> bool {
    if std::env::var("SINGULARITY_ALLOW_SKIP").as_deref() == Ok("1") {
        let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
        return true;
    }
    panic!("{what} (set SINGULARITY_ALLOW_SKIP=1 to skip)");
}

/// Whether `program` can run (else fail or skip).
fn have(program: &str, package: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    found || !unavailable(&format!("{program} not found (apt-get install {package})"))
}

/// Whether namespaces can be made (root, `ip netns`).
fn netns_ok() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    (root && have("ip", "iproute2") && have("nsenter", "util-linux")) || !unavailable("network namespaces need root")
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The NICs of a case: (name, MAC) from its `/sys/class/net` listing.
fn listing(case: &str) -> Vec<(String, String)> {
    let text = fs::read_to_string(dir(&format!("fixtures/network/cases/{case}/sys-class-net"))).expect("listing");
    text.lines()
        .filter_map(|l| l.split_once(' ').map(|(n, m)| (n.to_string(), m.to_string())))
        .collect()
}

/// Global addresses per NIC and routes (dev, destination, gateway).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct State {
    /// `ADDR/PREFIX` per NIC.
    pub addrs: BTreeMap<String, BTreeSet<String>>,
    /// Non-kernel routes of the main table.
    pub routes: BTreeSet<(String, String, String)>,
}

/// What the vm-data of `case` asks for, read with the agent's own parser.
pub fn expected(case: &str) -> State {
    let text = fs::read_to_string(dir(&format!("fixtures/network/cases/{case}/vm-data.json"))).expect("vm-data");
    let Value::Object(map) = serde_json::from_str(&text).expect("json") else {
        panic!("object")
    };
    let nics = listing(case);
    let mut s = State::default();
    for (name, _) in &nics {
        s.addrs.insert(name.clone(), BTreeSet::new());
    }
    for (key, v) in map
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("vm-data/networking/").map(|k| (k, v)))
    {
        let raw = match v {
            Value::String(s) => s.as_bytes().to_vec(),
            other => serde_json::to_vec(other).expect("json"),
        };
        let d = parse_entry(key, &raw).expect("entry");
        let Some((name, _)) = nics
            .iter()
            .find(|(_, m)| m.parse::<singularity::network::addr::Mac>().ok() == Some(d.mac))
        else {
            continue;
        };
        let addrs = s.addrs.entry(name.clone()).or_default();
        addrs.extend(d.ipv4.iter().map(ToString::to_string));
        addrs.extend(d.ipv6.iter().map(ToString::to_string));
        let gw = |g: Option<String>| g.unwrap_or_default();
        for g in [d.gateway4.map(|g| g.to_string()), d.gateway6.map(|g| g.to_string())]
            .into_iter()
            .flatten()
        {
            s.routes.insert((name.clone(), "default".into(), g));
        }
        for r in &d.routes {
            s.routes
                .insert((name.clone(), r.dest.to_string(), gw(r.gateway.map(|g| g.to_string()))));
        }
    }
    s
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace with veth NICs, optionally a private mount namespace
/// (read-only sysfs of the netns, tmpfs on /run) for daemons. Everything,
/// daemons included, is torn down on drop.
pub struct NetNs {
    /// The namespace name.
    pub name: String,
    mounts: Option<PathBuf>,
    children: Vec<Child>,
}

impl NetNs {
    /// A namespace with `lo` up, IPv6 DAD off (no waiting), and one veth per
    /// `(name, mac)`, its peer up so the link has carrier.
    pub fn new(nics: &[(String, String)]) -> NetNs {
        let name = format!("sgt{}x{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = NetNs {
            name,
            mounts: None,
            children: Vec::new(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        for key in ["all", "default"] {
            ok(Command::new("ip")
                .args(["netns", "exec", &ns.name, "sysctl", "-q", "-w"])
                .arg(format!("net.ipv6.conf.{key}.accept_dad=0")));
        }
        for (i, (nic, mac)) in nics.iter().enumerate() {
            let peer = format!("peer{i}");
            ns.ip(&[
                "link", "add", nic, "address", mac, "type", "veth", "peer", "name", &peer,
            ]);
            ns.ip(&["link", "set", &peer, "up"]);
        }
        ns
    }

    /// `ip -n NS ARGS`.
    pub fn ip(&self, args: &[&str]) -> String {
        ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// A private mount namespace for daemons: read-only sysfs of this netns
    /// (networkd then does not wait for udev), tmpfs on `/run`, and `binds`
    /// (source, target) mounted over system paths.
    pub fn private_mounts(&mut self, binds: &[(&Path, &str)]) {
        let base = tempfile::tempdir().expect("tempdir").keep();
        ok(Command::new("mount").arg("--bind").arg(&base).arg(&base));
        ok(Command::new("mount").arg("--make-private").arg(&base));
        fs::write(base.join("mnt"), b"").expect("mnt file");
        self.mounts = Some(base.clone());
        ok(Command::new("unshare")
            .arg(format!("--mount={}", base.join("mnt").display()))
            .args(["--propagation", "private", "true"]));
        ok(self
            .enter(true)
            .args(["mount", "-t", "sysfs", "-o", "ro", "sysfs", "/sys"]));
        ok(self.enter(false).args(["mount", "-t", "tmpfs", "tmpfs", "/run"]));
        for (src, target) in binds {
            ok(self.enter(false).args(["mount", "--bind"]).arg(src).arg(target));
        }
    }

    /// `nsenter` into the mount namespace (and the netns if `net`).
    pub fn enter(&self, net: bool) -> Command {
        let mut c = Command::new("nsenter");
        if let Some(base) = &self.mounts {
            c.arg(format!("--mount={}", base.join("mnt").display()));
        }
        if net {
            c.arg(format!("--net=/run/netns/{}", self.name));
        }
        c
    }

    /// Starts a daemon in both namespaces; it is killed on drop.
    pub fn spawn(&mut self, args: &[&str], log: &Path) -> &mut Child {
        let log = fs::File::create(log).expect("log");
        let child = self
            .enter(true)
            .args(args)
            .env("SYSTEMD_LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        self.children.push(child);
        self.children.last_mut().expect("child")
    }

    /// The current addresses and routes of `nics`.
    pub fn state(&self, nics: &[(String, String)]) -> State {
        let mut s = State::default();
        let names: BTreeSet<&str> = nics.iter().map(|(n, _)| n.as_str()).collect();
        let addrs: Value = serde_json::from_str(&self.ip(&["-j", "addr", "show"])).expect("ip -j addr");
        for link in addrs.as_array().into_iter().flatten() {
            let Some(name) = link["ifname"].as_str().filter(|n| names.contains(n)) else {
                continue;
            };
            let set = s.addrs.entry(name.to_string()).or_default();
            for a in link["addr_info"].as_array().into_iter().flatten() {
                if a["scope"] == "global" {
                    set.insert(format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]));
                }
            }
        }
        for family in ["-4", "-6"] {
            let routes: Value =
                serde_json::from_str(&self.ip(&["-j", family, "route", "show", "table", "main"])).expect("ip -j route");
            for r in routes.as_array().into_iter().flatten() {
                let dev = r["dev"].as_str().unwrap_or("");
                if !names.contains(dev) || r["protocol"] == "kernel" || r.get("type").is_some_and(|t| t != "unicast") {
                    continue;
                }
                let dst = r["dst"].as_str().unwrap_or("").to_string();
                s.routes
                    .insert((dev.to_string(), dst, r["gateway"].as_str().unwrap_or("").to_string()));
            }
        }
        s
    }

    /// Polls until the state of `nics` is `want` (minus host routes a tool
    /// adds to reach an on-link gateway), or `timeout`.
    pub fn wait_for(&self, nics: &[(String, String)], want: &State, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let mut got = self.state(nics);
            let gateways: BTreeSet<String> = want.routes.iter().map(|(_, _, g)| g.clone()).collect();
            got.routes
                .retain(|(_, dst, gw)| !(gw.is_empty() && gateways.contains(dst)));
            if got == *want {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!("want {want:#?}\ngot {got:#?}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(base) = &self.mounts {
            let _ = Command::new("umount").arg(base.join("mnt")).status();
            let _ = Command::new("umount").arg(base).status();
            let _ = fs::remove_dir_all(base);
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Brings `file` (an ifupdown `interfaces` file) up with `ifup -a` in a new
/// namespace whose veth NICs carry `nics` (name, MAC), then returns the
/// namespace for inspection (dropping it cleans up).
pub fn bring_up_ifupdown(file: &Path, nics: &[(String, String)]) -> (NetNs, Output) {
    let ns = NetNs::new(nics);
    let state = tempfile::tempdir().expect("state dir");
    let out = output(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "ifup", "--no-scripts", "--state-dir"])
            .arg(state.path())
            .arg("-i")
            .arg(file)
            .arg("-a"),
    );
    (ns, out)
}

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
/// line (plus `extra` arguments): the `route-*`, `route6-*` and netifrc
/// `routes_*` lines are `ip route` arguments.
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
            }
        }
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
