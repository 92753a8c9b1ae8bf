//! The client suite against the in-process simulator (C and oxenstored
//! flavours, dom0 socket), and the guest-side cases only the simulator can
//! reproduce: the seqpacket device emulation and unprivileged guest sockets.

#[path = "common/xslife.rs"]
mod xslife;
#[path = "common/xssuite.rs"]
mod xssuite;

use std::path::PathBuf;
use std::time::Duration;
use xenstore::sim::{Config, Simulator};
use xenstore::{Client, Error, ErrorKind, WatchEvent};
use xssuite::{drain, next, wait_changed, Flavour, Target};

fn dom0_target(config: Config, flavour: Flavour) -> (Simulator, tempfile::TempDir, Target) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("socket");
    let sim = Simulator::new(config);
    sim.listen_dom0(&socket).expect("listen");
    let killer = sim.clone();
    let target = Target {
        name: format!("sim-{flavour:?}"),
        socket,
        flavour,
        restart: Box::new(move || killer.kill_connections()),
        freeze: None,
    };
    (sim, dir, target)
}

#[test]
fn sim_c_flavour_suite() {
    let (sim, _dir, mut t) = dom0_target(Config::default(), Flavour::C);
    xssuite::run_all(&mut t);
    xslife::restart_mid_session(&mut t);
    sim.shutdown();
}

#[test]
fn sim_ox_flavour_suite() {
    let (sim, _dir, mut t) = dom0_target(Config::oxenstored_like(), Flavour::Ox);
    xssuite::run_all(&mut t);
    xslife::restart_mid_session(&mut t);
    sim.shutdown();
}

/// A simulator with domain 5 and its device emulation socket.
fn guest(device: bool) -> (Simulator, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(if device { "xenbus" } else { "guest" });
    let sim = Simulator::new(Config::default());
    sim.create_domain(5, "guest5");
    if device {
        sim.add_guest_device(5, &path).expect("device");
    } else {
        sim.add_guest(5, &path).expect("guest socket");
    }
    (sim, dir, path)
}

fn client(path: &PathBuf) -> Client {
    let c = Client::connect(path).expect("connect");
    c.set_timeout(Some(Duration::from_secs(10)));
    c
}

#[test]
fn device_emulation_relative_paths_permissions_and_limits() {
    let (sim, _dir, path) = guest(true);
    let c = client(&path);
    assert!(c.is_device(), "seqpacket socket means device rules");
    c.write("data/x", "v").expect("write own data");
    assert_eq!(sim.read("/local/domain/5/data/x").as_deref(), Some(&b"v"[..]));
    assert_eq!(c.read_string("domid").expect("domid"), "5");
    let denied = c.write("/local/domain/0/x", "no").expect_err("foreign path");
    assert_eq!(denied.kind(), Some(&ErrorKind::Acces));
    // "data/x\0" is 7 bytes: 4073 + 7 = 4080 fits the device, 4074 does not.
    let err = c.write("data/x", vec![b'a'; 4074]).expect_err("too big for the device");
    assert!(matches!(err, Error::TooBig { len: 4081, max: 4080 }), "{err:?}");
    let big = c
        .write("data/x", vec![b'a'; 4073])
        .expect_err("over the guest node quota");
    assert_eq!(big.kind(), Some(&ErrorKind::Nospc));
    c.write("data/bin", b"a\0b\xff").expect("binary");
    assert_eq!(c.read("data/bin").expect("binary"), b"a\0b\xff");
    sim.shutdown();
}

#[test]
fn device_emulation_watches_dedupe_and_garbage_event_headers() {
    let (sim, _dir, path) = guest(true);
    let c = client(&path);
    let a = c.watch("data").expect("watch");
    let b = c.watch("data").expect("second watch on the same path");
    assert_eq!(a.token(), b.token(), "one kernel registration");
    assert_eq!(next(&a), WatchEvent::Changed("data".into()));
    assert_eq!(next(&b), WatchEvent::Changed("data".into()));
    drain(&a);
    drain(&b);
    // Many events (with garbage req_id/tx_id) interleaved with requests.
    for i in 0..50 {
        sim.write(&format!("/local/domain/5/data/k{i}"), b"x");
        assert_eq!(c.read(&format!("data/k{i}")).expect("read"), b"x");
    }
    wait_changed(&a, "data/k49");
    wait_changed(&b, "data/k49");
    drop(a);
    sim.write("/local/domain/5/data/after", b"1");
    wait_changed(&b, "data/after");
    b.unwatch().expect("unwatch");
    sim.shutdown();
}

#[test]
fn device_emulation_transactions_retry_on_eagain_and_resume() {
    let (sim, _dir, path) = guest(true);
    let c = client(&path);
    sim.fail_next_commits(2);
    let mut runs = 0;
    c.transaction(|tx| {
        runs += 1;
        tx.write("data/t", runs.to_string())
    })
    .expect("commit after two EAGAINs");
    assert_eq!(runs, 3);
    assert_eq!(c.read("data/t").expect("read"), b"3");

    // A resume during a transaction: EAGAIN on commit, the closure re-runs;
    // every watch fires its initial event again.
    let w = c.watch("data").expect("watch");
    drain(&w);
    let mut runs = 0;
    c.transaction(|tx| {
        runs += 1;
        if runs == 1 {
            sim.simulate_resume(5);
        }
        tx.write("data/r", "1")
    })
    .expect("commit after resume");
    assert_eq!(runs, 2);
    wait_changed(&w, "data");
    sim.shutdown();
}

#[test]
fn device_emulation_reconnects_after_kill_connections() {
    let (sim, _dir, path) = guest(true);
    let c = client(&path);
    let w = c.watch("data").expect("watch");
    drain(&w);
    sim.kill_connections();
    let mut reconnected = false;
    for _ in 0..50 {
        if let Ok(Some(WatchEvent::Reconnected)) = w.recv_timeout(Duration::from_millis(200)) {
            reconnected = true;
            break;
        }
    }
    assert!(reconnected, "Reconnected delivered");
    c.write("data/again", "1").expect("write after reconnect");
    wait_changed(&w, "data/again");
    assert_eq!(c.reconnect_count(), 1);
    sim.shutdown();
}

#[test]
fn guest_stream_socket_is_unprivileged() {
    let (sim, _dir, path) = guest(false);
    let c = client(&path);
    assert!(!c.is_device());
    let w = c.watch("data").expect("watch");
    assert_eq!(next(&w), WatchEvent::Changed("data".into()));
    c.write("data/y", "1").expect("write");
    wait_changed(&w, "data/y");
    assert_eq!(
        c.rm("/local/domain/0").expect_err("foreign").kind(),
        Some(&ErrorKind::Acces)
    );
    drop(c);
    drop(w);
    sim.shutdown();
}
