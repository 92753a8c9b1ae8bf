//! The Xen communicator against Debian 12's real C xenstored and oxenstored
//! 4.17 (through the fakexen shim, as the xenstore crate's tests run them),
//! connected as dom0: a reply is cut to 2,048 bytes by default and written,
//! and only then is the request removed. Guest quotas need a guest
//! connection, which only the simulator offers (see `xen.rs`).

use crate::realxs::{self, Daemon, Kind};
use singularity::communicator::xen::XenCommunicator;
use singularity::communicator::Communicator;
use singularity::protocol::Reply;
use std::time::Duration;

fn long_reply_is_cut_then_the_request_removed(kind: Kind) {
    let Some(env) = realxs::env_or_skip() else {
        return;
    };
    let daemon = Daemon::start(&env, kind).unwrap_or_else(|e| panic!("starting {kind:?}: {e}"));
    let host = xenstore::Client::connect(daemon.socket()).unwrap();
    let home = "/local/domain/0";
    host.write(&format!("{home}/data/host/long"), br#"{"name":"x","value":""}"#)
        .unwrap();
    let socket = daemon.socket().to_str().unwrap().to_string();
    let mut comm = XenCommunicator::connect(Some(&socket), Duration::from_secs(3600)).unwrap();
    let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("the request");
    assert_eq!(incoming.id, "long");
    assert!(
        host.exists(&format!("{home}/data/host/long")).unwrap(),
        "kept until answered"
    );
    let reply = Reply::new("404", format!("No such agent command '{}'", "n".repeat(3000)));
    comm.reply("long", &reply).unwrap();
    let raw = host.read(&format!("{home}/data/guest/long")).unwrap();
    assert!(raw.len() <= 2048, "{}", raw.len());
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["returncode"], "404");
    assert!(v["message"]
        .as_str()
        .unwrap()
        .ends_with("... [reply cut to fit XenStore]"));
    assert!(!host.exists(&format!("{home}/data/host/long")).unwrap());
}

#[test]
fn real_c_xenstored_takes_a_cut_reply() {
    long_reply_is_cut_then_the_request_removed(Kind::C);
}

#[test]
fn real_oxenstored_takes_a_cut_reply() {
    long_reply_is_cut_then_the_request_removed(Kind::Ox);
}
