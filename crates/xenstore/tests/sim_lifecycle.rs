//! Simulator lifecycle: kill_connections, shutdown and drop leave no threads
//! and no socket files, and an idle simulator sees no traffic. One test only:
//! it counts the process's threads, which parallel tests would disturb.

mod sim_support;

use sim_support::{Peer, Rig, WAIT};
use std::time::{Duration, Instant};
use xenstore::sim::{Config, Simulator};
use xenstore::wire::MsgType;

fn sim_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("xs-sim"))
        .count()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn lifecycle() {
    assert_eq!(sim_threads(), 0);
    let rig = Rig::c();
    wait_for("one accept thread per socket", || sim_threads() == 3);

    // Connections: one thread each; idle means no traffic at all.
    let mut d = rig.dom0();
    let mut g = rig.guest();
    let mut dev = rig.device();
    d.watch("/k", "t").unwrap();
    g.write("data/k", b"1").unwrap();
    dev.read("data/k").unwrap();
    wait_for("connection threads", || sim_threads() == 6);
    let stats = rig.sim.stats();
    assert_eq!(stats.connections, 3);
    assert_eq!(stats.connections_accepted, 3);
    std::thread::sleep(Duration::from_millis(300));
    let idle = rig.sim.stats();
    assert_eq!(idle.total_requests(), stats.total_requests());
    assert_eq!(idle.requests_of(MsgType::Watch), 1);

    // kill_connections: clients see EOF, the tree and the listeners stay.
    rig.sim.kill_connections();
    assert_eq!(rig.sim.stats().connections, 0);
    wait_for("connection threads gone", || sim_threads() == 3);
    for p in [&mut d, &mut g, &mut dev] {
        assert!(p.closed_within(WAIT));
    }
    let mut d = rig.dom0();
    assert_eq!(d.read("/local/domain/5/data/k").unwrap(), b"1");
    rig.sim.write("/k", b"");
    d.no_event();

    // shutdown: threads joined, sockets unlinked, idempotent.
    let paths = [rig.path("dom0"), rig.path("guest5"), rig.path("dev5")];
    assert!(paths.iter().all(|p| p.exists()));
    let clone = rig.sim.clone();
    clone.shutdown();
    wait_for("all threads gone", || sim_threads() == 0);
    assert!(paths.iter().all(|p| !p.exists()));
    assert!(d.closed_within(WAIT));
    rig.sim.shutdown();
    assert!(rig.sim.listen_dom0(&rig.path("again")).is_err());
    drop(rig);

    // Dropping the last clone shuts down too.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    let sim = Simulator::new(Config::oxenstored_like());
    sim.listen_dom0(&sock).unwrap();
    let second = sim.clone();
    let mut p = Peer::stream(&sock);
    assert_eq!(p.read("/local/domain/0/name").unwrap(), b"Domain-0");
    drop(sim);
    assert!(sock.exists(), "a clone is still alive");
    drop(second);
    assert!(!sock.exists());
    wait_for("all threads gone after drop", || sim_threads() == 0);
    assert!(p.closed_within(WAIT));

    // A stale socket file is replaced; a live one or a plain file is not.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let sim = Simulator::new(Config::default());
    assert!(sim.listen_dom0(&dir.path().join("file")).is_err());
    let live = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = sim.listen_dom0(&sock).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    drop(live);
    sim.listen_dom0(&sock).unwrap();
    let mut p = Peer::stream(&sock);
    assert!(p.read("/tool/xenstored").is_ok());
    let other = Simulator::new(Config::default());
    assert!(other.add_guest(3, &sock).is_err(), "in use by the first simulator");
}
