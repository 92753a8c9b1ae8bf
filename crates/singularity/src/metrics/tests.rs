//! The metrics thread against the simulator, with the home laid out as
//! xenopsd makes it: `data` and `attr` owned by the guest, `control` read-only
//! to it.

use super::facts::BALLOON;
use super::publish::removals;
use super::*;
use std::fs;
use xenstore::sim::{Config, Simulator};
use xenstore::wire::MsgType;
use xenstore::{Access, Perm};

const HOME: &str = "/local/domain/7";
const WAIT: Duration = Duration::from_secs(10);

struct Lab {
    sim: Simulator,
    dom0: Client,
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    metrics: Option<Metrics>,
}

impl Lab {
    /// A domain 7 as xenopsd makes it; `control_writable` makes `control`
    /// the guest's (as some toolstacks do).
    fn new(config: Config, control_writable: bool) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let sim = Simulator::new(config);
        sim.add_guest(7, &dir.path().join("guest")).unwrap();
        sim.listen_dom0(&dir.path().join("dom0")).unwrap();
        let dom0 = Client::connect(dir.path().join("dom0")).unwrap();
        let guest_owned = [Perm::new(7, Access::None)];
        let read_only = [Perm::new(0, Access::None), Perm::new(7, Access::Read)];
        for (node, perms) in [
            ("attr", &guest_owned[..]),
            (
                "control",
                if control_writable {
                    &guest_owned[..]
                } else {
                    &read_only[..]
                },
            ),
            ("unique-domain-id", &read_only[..]),
            ("device/vif/0/mac", &read_only[..]),
        ] {
            let path = format!("{HOME}/{node}");
            let value = match node {
                "unique-domain-id" => "2b5a1a41-7e1b-4a04-8c2e-57f0e8f2a001",
                "device/vif/0/mac" => "00:16:3e:00:00:99",
                _ => "",
            };
            dom0.write(&path, value).unwrap();
            dom0.set_perms(&path, perms).unwrap();
        }
        dom0.write(&format!("{HOME}/control/shutdown"), "").unwrap();
        let root = dir.path().join("root");
        for (file, text) in [
            (
                "etc/os-release",
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12.5\"\n",
            ),
            ("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n"),
            (
                "proc/meminfo",
                "MemTotal: 2000000 kB\nMemFree: 100000 kB\nMemAvailable: 1500000 kB\n",
            ),
        ] {
            let path = root.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        fs::create_dir_all(root.join("sys/devices/system/xen_memory")).unwrap();
        Lab {
            sim,
            dom0,
            dir,
            stop: Arc::new(AtomicBool::new(false)),
            metrics: None,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn start(&mut self, memory_interval: Duration) {
        let cfg = MetricsConfig {
            xenstore: Some(self.dir.path().join("guest").to_str().unwrap().to_string()),
            root: self.root(),
            memory_interval,
        };
        let stop = Arc::clone(&self.stop);
        self.metrics = Some(start(cfg, Arc::new(move || stop.load(Ordering::Acquire))).unwrap());
    }

    fn read(&self, key: &str) -> Option<String> {
        self.sim
            .read(&format!("{HOME}/{key}"))
            .map(|v| String::from_utf8(v).unwrap())
    }

    /// Waits until `key` holds `value` (`None`: is absent).
    fn wait_for(&self, key: &str, value: Option<&str>) {
        let until = Instant::now() + WAIT;
        while self.read(key).as_deref() != value {
            assert!(Instant::now() < until, "{key} is {:?}, not {value:?}", self.read(key));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the first change set is complete.
    fn wait_updated(&self) {
        let until = Instant::now() + WAIT;
        while self.read(UPDATED).is_none() {
            assert!(Instant::now() < until, "no {UPDATED}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn writes(&self) -> u64 {
        let s = self.sim.stats();
        s.requests_of(MsgType::Write) + s.requests_of(MsgType::Rm) + s.requests_of(MsgType::Mkdir)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(m) = self.metrics.take() {
            m.join();
        }
        self.sim.shutdown();
    }
}

#[test]
fn publishes_the_key_set_in_order_and_leaves_control_alone() {
    let mut lab = Lab::new(Config::default(), false);
    let events = lab.dom0.watch(HOME).unwrap();
    lab.start(MEMORY_INTERVAL);
    let mut order: Vec<String> = Vec::new();
    let until = Instant::now() + WAIT;
    while !order.iter().any(|p| p.ends_with(UPDATED)) {
        assert!(Instant::now() < until, "no data/updated; events {order:?}");
        if let Some(WatchEvent::Changed(p)) = events.recv_timeout(Duration::from_millis(100)).unwrap() {
            order.push(p);
        }
    }
    for (key, value) in [
        ("data/os_name", "Debian GNU/Linux 12 (bookworm)"),
        ("data/os_distro", "debian"),
        ("data/os_majorver", "12"),
        ("data/os_minorver", "5"),
        ("data/os_uname", "6.1.0-18-amd64"),
        ("data/meminfo_total", "2000000"),
        ("data/meminfo_free", "1500000"),
        ("attr/PVAddons/MajorVersion", env!("CARGO_PKG_VERSION_MAJOR")),
        ("attr/PVAddons/MinorVersion", env!("CARGO_PKG_VERSION_MINOR")),
        ("attr/PVAddons/MicroVersion", env!("CARGO_PKG_VERSION_PATCH")),
        ("attr/PVAddons/BuildVersion", "0"),
    ] {
        assert_eq!(lab.read(key).as_deref(), Some(value), "{key}");
    }
    assert!(lab.read(UPDATED).unwrap().parse::<u64>().is_ok());
    // `control` is read-only here: no balloon feature, and shutdown untouched.
    assert_eq!(lab.read(BALLOON), None);
    assert_eq!(lab.read("control/shutdown").as_deref(), Some(""));
    let pos = |pred: &dyn Fn(&str) -> bool| order.iter().position(|p| pred(p.trim_start_matches(HOME)));
    let last_data = order
        .iter()
        .rposition(|p| p.contains("/data/") && !p.ends_with(UPDATED))
        .unwrap();
    let first_attr = pos(&|p| p.starts_with("/attr/")).unwrap();
    assert!(last_data < first_attr, "{order:?}");
    assert_eq!(order.last().map(|p| p.ends_with(UPDATED)), Some(true), "{order:?}");
}

#[test]
fn the_balloon_feature_needs_the_driver_and_a_writable_control() {
    let mut lab = Lab::new(Config::default(), true);
    lab.start(MEMORY_INTERVAL);
    lab.wait_for(BALLOON, Some("1"));
    drop(lab);
    let mut lab = Lab::new(Config::default(), true);
    fs::remove_dir(lab.root().join("sys/devices/system/xen_memory")).unwrap();
    lab.start(MEMORY_INTERVAL);
    lab.wait_updated();
    assert_eq!(lab.read("data/os_distro").as_deref(), Some("debian"));
    assert_eq!(lab.read(BALLOON), None);
}

#[test]
fn nothing_is_written_while_nothing_changes() {
    let mut lab = Lab::new(Config::default(), false);
    lab.start(Duration::from_millis(200));
    lab.wait_updated();
    let before = lab.writes();
    // Several memory refreshes with the same value: no write at all (and the
    // refused balloon feature is not tried again).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lab.writes(), before);
    fs::write(
        lab.root().join("proc/meminfo"),
        "MemTotal: 2000000 kB\nMemAvailable: 1234 kB\n",
    )
    .unwrap();
    lab.wait_for("data/meminfo_free", Some("1234"));
    std::thread::sleep(Duration::from_millis(600));
    // meminfo_free, then data/updated: nothing else.
    assert_eq!(lab.writes(), before + 2);
}

#[test]
fn a_new_unique_domain_id_rewrites_everything() {
    let mut lab = Lab::new(Config::default(), false);
    lab.start(MEMORY_INTERVAL);
    lab.wait_for("attr/PVAddons/BuildVersion", Some("0"));
    // What a clone or a migration leaves: values lost, stale addresses.
    lab.dom0.rm(&format!("{HOME}/data/os_name")).unwrap();
    lab.dom0.rm(&format!("{HOME}/attr/PVAddons")).unwrap();
    lab.dom0
        .write(&format!("{HOME}/attr/vif/3/ipv4/0"), "192.0.2.1")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.read("data/os_name"), None, "only a new id rewrites");
    lab.dom0
        .write(
            &format!("{HOME}/unique-domain-id"),
            "2b5a1a41-7e1b-4a04-8c2e-57f0e8f2a002",
        )
        .unwrap();
    lab.wait_for("data/os_name", Some("Debian GNU/Linux 12 (bookworm)"));
    lab.wait_for("attr/PVAddons/MajorVersion", Some(env!("CARGO_PKG_VERSION_MAJOR")));
    lab.wait_for("attr/vif/3/ipv4/0", None);
}

#[test]
fn a_reconnection_rewrites_everything() {
    let mut lab = Lab::new(Config::oxenstored_like(), false);
    lab.start(MEMORY_INTERVAL);
    lab.wait_for("attr/PVAddons/BuildVersion", Some("0"));
    lab.dom0.rm(&format!("{HOME}/data/os_distro")).unwrap();
    lab.sim.kill_connections();
    lab.wait_for("data/os_distro", Some("debian"));
}

#[test]
fn removals_take_the_emptied_vif_directories() {
    let written: BTreeMap<String, String> = [
        "attr/vif/0/ipv4/0",
        "attr/vif/0/ipv4/1",
        "attr/vif/0/ipv6/0",
        "attr/vif/1/ipv4/0",
        "data/os_minorver",
    ]
    .iter()
    .map(|k| (k.to_string(), "x".to_string()))
    .collect();
    let desired: BTreeMap<String, String> = [("attr/vif/0/ipv4/0".to_string(), "x".to_string())].into();
    let attr: Vec<String> = removals(&written, &desired, "attr/").into_iter().collect();
    assert_eq!(attr, ["attr/vif/0/ipv4/1", "attr/vif/0/ipv6", "attr/vif/1"]);
    let data: Vec<String> = removals(&written, &desired, "data/").into_iter().collect();
    assert_eq!(data, ["data/os_minorver"]);
}
