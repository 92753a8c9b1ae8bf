//! resetnetwork for real: the daemon, with root `/`, inside a network
//! namespace whose veth NICs carry the MACs of the test data and a private
//! mount namespace whose `/etc` is a temporary copy of the system's, brings
//! the interfaces up with ifupdown, or with systemd-networkd (on a private
//! system D-Bus, through `networkctl`); the addresses and routes are then read
//! back with `ip -j` and compared with what the vm-data asks for.
//!
//! The kernel hostname is not part of this test (it would need a UTS
//! namespace); the hostname function is covered under a temporary root.

mod common;

use common::netns::*;
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Writes the case's vm-data as the socket communicator reads it.
fn stage_vm_data(case: &str, dest: &Path) {
    let text = fs::read_to_string(dir(&format!("fixtures/network/cases/{case}/vm-data.json"))).unwrap();
    let Value::Object(map) = serde_json::from_str(&text).unwrap() else {
        panic!("object")
    };
    fs::create_dir_all(dest.join("networking")).unwrap();
    for (key, value) in map {
        let raw = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let rel = key.strip_prefix("vm-data/").unwrap();
        fs::write(dest.join(rel), raw).unwrap();
    }
}

fn call(socket: &Path, request: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("agent socket: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    (&stream).write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

/// How the namespace runs its network configuration.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// ifupdown: the agent runs `ifdown`/`ifup`.
    Ifupdown,
    /// systemd-networkd on a private system D-Bus: the agent runs `networkctl`.
    Networkd,
}

fn until(mut check: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what} never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a system D-Bus and systemd-networkd inside the namespace.
fn start_networkd(ns: &mut NetNs, tmp: &Path) {
    ok(ns.enter(false).args(["mkdir", "-p", "/run/dbus", "/run/systemd/netif"]));
    ok(ns
        .enter(false)
        .args(["chown", "systemd-network:systemd-network", "/run/systemd/netif"]));
    ns.spawn(
        &["dbus-daemon", "--system", "--nofork", "--nopidfile"],
        &tmp.join("dbus.log"),
    );
    until(
        || {
            ns.enter(false)
                .args(["test", "-S", "/run/dbus/system_bus_socket"])
                .status()
                .is_ok_and(|s| s.success())
        },
        "D-Bus",
    );
    ns.spawn(&["/lib/systemd/systemd-networkd"], &tmp.join("networkd.log"));
    until(
        || {
            ns.enter(true)
                .args(["networkctl", "list"])
                .output()
                .is_ok_and(|o| o.status.success())
        },
        "systemd-networkd",
    );
}

fn run_case(case: &str) {
    run_with(case, Backend::Ifupdown);
}

fn run_with(case: &str, backend: Backend) {
    if !netns_ok() || !have("ifup", "ifupdown") {
        return;
    }
    if backend == Backend::Networkd && !(have("dbus-daemon", "dbus") && have("networkctl", "systemd")) {
        return;
    }
    let nics = listing(case);
    let want = expected(case);
    let tmp = tempfile::tempdir().unwrap();
    ok(Command::new("cp").args(["-a", "/etc"]).arg(tmp.path()));
    let etc = tmp.path().join("etc");
    stage_vm_data(case, &tmp.path().join("vm-data"));
    fs::create_dir_all(tmp.path().join("conf")).unwrap();
    let renderer = match backend {
        Backend::Ifupdown => "ifupdown",
        Backend::Networkd => "networkd",
    };
    let conf = format!(
        "[main]\nnetwork_renderer = {renderer}\n[socket]\nvm_data = {}\n",
        tmp.path().join("vm-data").display()
    );
    fs::write(tmp.path().join("conf/singularity.conf"), conf).unwrap();

    let mut ns = NetNs::new(&nics);
    ns.private_mounts(&[(&etc, "/etc")]);
    // Without a resolver daemon in the namespace, resolv.conf is not ours to
    // restart for networkd; the DNS servers still go into the .network files.
    let functions = match backend {
        Backend::Ifupdown => "network,resolvers,hosts",
        Backend::Networkd => {
            start_networkd(&mut ns, tmp.path());
            "network,hosts"
        }
    };
    let socket = tmp.path().join("agent.sock");
    let (confdir, cache, pid) = (
        tmp.path().join("conf"),
        tmp.path().join("cache"),
        tmp.path().join("pid"),
    );
    let args = [
        env!("CARGO_BIN_EXE_singularity"),
        "-f",
        confdir.to_str().unwrap(),
        "-H",
        "-",
        "-l",
        "debug",
        "--root",
        "/",
        "-c",
        cache.to_str().unwrap(),
        "-F",
        functions,
        "daemon",
        "--nodaemonize",
        "--communicator",
        "socket",
        "--socket",
        socket.to_str().unwrap(),
        "--pidfile",
        pid.to_str().unwrap(),
    ];
    let log = tmp.path().join("agent.log");
    ns.spawn(&args, &log);
    let reply = call(&socket, r#"{"name": "resetnetwork", "value": ""}"#);
    let agent_log = || fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(reply["returncode"], "0", "{reply}\n{}", agent_log());
    if let Err(diff) = ns.wait_for(&nics, &want, Duration::from_secs(20)) {
        panic!("{case}: {diff}\n{}", agent_log());
    }
    let ours = match backend {
        Backend::Ifupdown => fs::read_to_string(etc.join("network/interfaces.d/50-singularity")).unwrap(),
        Backend::Networkd => {
            fs::read_to_string(etc.join(format!("systemd/network/10-singularity-{}.network", nics[0].0))).unwrap()
        }
    };
    assert!(ours.contains("Address") || ours.contains("iface"), "{ours}");
    let runs = agent_log().matches("running ").count();
    assert!(runs > 0, "the first resetnetwork ran the bring-up:\n{}", agent_log());
    // The same request again writes nothing and runs nothing; the daemon
    // (networkd may still be settling) keeps the wanted state.
    let again = call(&socket, r#"{"name": "resetnetwork", "value": ""}"#);
    assert_eq!(again["returncode"], "0");
    assert_eq!(agent_log().matches("running ").count(), runs, "{}", agent_log());
    let after = match backend {
        Backend::Ifupdown => fs::read_to_string(etc.join("network/interfaces.d/50-singularity")).unwrap(),
        Backend::Networkd => {
            fs::read_to_string(etc.join(format!("systemd/network/10-singularity-{}.network", nics[0].0))).unwrap()
        }
    };
    assert_eq!(after, ours);
    if let Err(diff) = ns.wait_for(&nics, &want, Duration::from_secs(20)) {
        panic!("{case} after the second request: {diff}\n{}", agent_log());
    }
}

#[test]
fn networkd_brings_up_the_rackspace_pair() {
    run_with("rackspace", Backend::Networkd);
}

#[test]
fn networkd_brings_up_ipv6_routes() {
    run_with("ipv6-routes", Backend::Networkd);
}

#[test]
fn rackspace_public_and_private_come_up() {
    run_case("rackspace");
}

#[test]
fn nova_example_ipv4_and_ipv6_come_up() {
    run_case("nova");
}

#[test]
fn ipv6_routes_come_up() {
    run_case("ipv6-routes");
}
