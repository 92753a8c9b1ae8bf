//! resetnetwork for real: the daemon, with root `/`, inside a network
//! namespace whose veth NICs carry the MACs of the test data and a private
//! mount namespace whose `/etc` is a temporary copy of the system's, brings
//! the interfaces up with ifupdown; the addresses and routes are then read
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

fn run_case(case: &str) {
    if !netns_ok() || !have("ifup", "ifupdown") {
        return;
    }
    let nics = listing(case);
    let want = expected(case);
    let tmp = tempfile::tempdir().unwrap();
    ok(Command::new("cp").args(["-a", "/etc"]).arg(tmp.path()));
    let etc = tmp.path().join("etc");
    stage_vm_data(case, &tmp.path().join("vm-data"));
    fs::create_dir_all(tmp.path().join("conf")).unwrap();
    let conf = format!(
        "[main]\nnetwork_renderer = ifupdown\n[socket]\nvm_data = {}\n",
        tmp.path().join("vm-data").display()
    );
    fs::write(tmp.path().join("conf/singularity.conf"), conf).unwrap();

    let mut ns = NetNs::new(&nics);
    ns.private_mounts(&[(&etc, "/etc")]);
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
        "network,resolvers,hosts",
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
    let ours = fs::read_to_string(etc.join("network/interfaces.d/50-singularity")).unwrap();
    assert!(ours.contains("iface"), "{ours}");
    // The same request again changes nothing and brings nothing down.
    let before = ns.state(&nics);
    let again = call(&socket, r#"{"name": "resetnetwork", "value": ""}"#);
    assert_eq!(again["returncode"], "0");
    assert_eq!(ns.state(&nics), before);
    assert!(!agent_log().contains("running ifup") || agent_log().matches("running ifup").count() == nics.len());
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
