//! Helpers shared by the network tests: the fixtures, the state a case asks
//! for, and network namespaces with veth NICs (and, for daemons, private
//! mounts) that are always torn down.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(rel)
}

pub fn golden(renderer: &str) -> Vec<(String, PathBuf)> {
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
pub fn unavailable(what: &str) -> bool {
    if std::env::var("SINGULARITY_ALLOW_SKIP").as_deref() == Ok("1") {
        let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
        return true;
    }
    panic!("{what} (set SINGULARITY_ALLOW_SKIP=1 to skip)");
}

/// Whether `program` can run (else fail or skip).
pub fn have(program: &str, package: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    found || !unavailable(&format!("{program} not found (apt-get install {package})"))
}

/// Whether namespaces can be made (root, `ip netns`).
pub fn netns_ok() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    (root && have("ip", "iproute2") && have("nsenter", "util-linux")) || !unavailable("network namespaces need root")
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

pub fn ok(cmd: &mut Command) -> String {
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
pub fn listing(case: &str) -> Vec<(String, String)> {
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

/// What the vm-data of `case` asks for, as written out by hand in the case's
/// `expected-state` (not derived by the agent's own parser).
pub fn expected(case: &str) -> State {
    let path = dir(&format!("fixtures/network/cases/{case}/expected-state"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut s = State::default();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["nic", nic] => {
                s.addrs.entry(nic.to_string()).or_default();
            }
            ["addr", nic, addr] => {
                s.addrs.entry(nic.to_string()).or_default().insert(addr.to_string());
            }
            ["route", nic, dest, gw] => {
                let gw = if gw == "-" { String::new() } else { gw.to_string() };
                s.routes.insert((nic.to_string(), dest.to_string(), gw));
            }
            _ => panic!("{}: bad line {line:?}", path.display()),
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
