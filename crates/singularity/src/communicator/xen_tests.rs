//! The Xen communicator against the simulator with C xenstored's guest
//! quotas (oxenstored's where said): what is a request, oversize requests and
//! replies, a full store, pruning, and the journal across a restart.

use super::*;
use xenstore::sim::{Config, Simulator};

#[test]
fn a_waker_ends_the_wait_and_requests_still_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let guest = dir.path().join("xenbus");
    let sim = Simulator::new(Config::default());
    sim.add_guest_device(7, &guest).unwrap();
    let mut comm = XenCommunicator::connect(Some(guest.to_str().unwrap()), Duration::from_secs(3600)).unwrap();
    crate::communicator::assert_waker_ends_wait(&mut comm);
    sim.write("/local/domain/7/data/host/r1", br#"{"name":"version","value":""}"#);
    let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("the request");
    assert_eq!(incoming.id, "r1");
    comm.reply("r1", &Reply::ok("1")).unwrap();
    // Also when every wait ends in a rescan (the wake may be taken by one).
    let mut busy = XenCommunicator::connect(Some(guest.to_str().unwrap()), Duration::ZERO).unwrap();
    crate::communicator::assert_waker_ends_wait(&mut busy);
    sim.shutdown();
}

#[test]
fn events_name_requests() {
    assert_eq!(event_path("data/host/abc-1"), EventPath::Request("abc-1"));
    assert_eq!(
        event_path("/local/domain/7/data/host/abc-1"),
        EventPath::Request("abc-1")
    );
    assert_eq!(event_path("data/host/abc/x"), EventPath::Nested("abc/x"));
    assert_eq!(event_path("data/host"), EventPath::Other);
    assert_eq!(event_path("data/host/"), EventPath::Other);
}

/// Adds domain 7 with its xenbus device in `dir`.
fn domain(sim: &Simulator, dir: &std::path::Path) {
    sim.add_guest_device(7, &dir.join("xenbus")).unwrap();
}

fn guest(dir: &std::path::Path) -> XenCommunicator {
    let path = dir.join("xenbus");
    XenCommunicator::connect(Some(path.to_str().unwrap()), Duration::from_secs(3600)).unwrap()
}

fn dom0(sim: &Simulator, dir: &std::path::Path) -> xenstore::Client {
    let path = dir.join("dom0");
    sim.listen_dom0(&path).unwrap();
    xenstore::Client::connect(&path).unwrap()
}

const HOME: &str = "/local/domain/7";
const VERSION: &[u8] = br#"{"name":"version","value":""}"#;

#[test]
fn a_request_id_with_a_slash_is_not_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    domain(&sim, dir.path());
    sim.write(&format!("{HOME}/data/host/foo/bar"), VERSION);
    sim.write(&format!("{HOME}/data/host/r1"), VERSION);
    let mut comm = guest(dir.path());
    // Also announced by an event, as a host's write would be.
    let host = dom0(&sim, dir.path());
    host.write(&format!("{HOME}/data/host/foo/baz"), VERSION).unwrap();
    let first = comm.recv(Duration::from_secs(10)).unwrap().expect("r1");
    assert_eq!(first.id, "r1");
    comm.reply("r1", &Reply::ok("1")).unwrap();
    assert!(comm.recv(Duration::from_millis(300)).unwrap().is_none());
    assert_eq!(sim.read(&format!("{HOME}/data/host/foo/bar")).unwrap(), VERSION);
    assert_eq!(sim.read(&format!("{HOME}/data/host/foo/baz")).unwrap(), VERSION);
    assert_eq!(sim.directory(&format!("{HOME}/data/guest")), ["r1"]);
    assert_eq!(comm.ignored.len(), 2, "{:?}", comm.ignored);
    sim.shutdown();
}

fn reply_at(sim: &Simulator, id: &str) -> (String, String) {
    let raw = sim.read(&format!("{HOME}/data/guest/{id}")).expect("a reply");
    let v: serde_json::Value = serde_json::from_slice(&raw).expect("JSON");
    assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{v}");
    (
        v["returncode"].as_str().expect("string").to_string(),
        v["message"].as_str().expect("string").to_string(),
    )
}

fn oversize_request_is_refused_once(device: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    let path = dir.path().join("xenbus");
    if device {
        sim.add_guest_device(7, &path).unwrap();
    } else {
        sim.add_guest(7, &path).unwrap();
    }
    let big = format!(r#"{{"name":"version","value":"{}"}}"#, "x".repeat(70 * 1024));
    sim.write(&format!("{HOME}/data/host/big"), big.as_bytes());
    sim.write(&format!("{HOME}/data/host/r1"), VERSION);
    let mut comm = guest(dir.path());
    let next = comm.recv(Duration::from_secs(10)).unwrap().expect("r1");
    assert_eq!(next.id, "r1");
    let (code, message) = reply_at(&sim, "big");
    assert_eq!(code, "500");
    assert!(message.starts_with("Request is too large"), "{message}");
    assert!(sim.read(&format!("{HOME}/data/host/big")).is_none());
    assert_eq!(comm.client.reconnect_count(), 0);
    assert!(comm.recv(Duration::from_millis(200)).unwrap().is_none());
    sim.shutdown();
}

#[test]
fn a_request_over_64_kib_is_answered_500_and_removed_over_the_device() {
    oversize_request_is_refused_once(true);
}

#[test]
fn a_request_over_64_kib_is_answered_500_and_removed_over_a_socket() {
    oversize_request_is_refused_once(false);
}

#[test]
fn a_reply_too_large_for_the_guest_quota_is_cut_and_written() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    domain(&sim, dir.path());
    sim.write(&format!("{HOME}/data/host/long"), VERSION);
    let mut comm = guest(dir.path());
    let name = "a".repeat(3000);
    assert_eq!(comm.recv(Duration::from_secs(10)).unwrap().unwrap().id, "long");
    let reply = Reply::new("404", format!("No such agent command '{name}'"));
    comm.reply("long", &reply).unwrap();
    let (code, message) = reply_at(&sim, "long");
    assert_eq!(code, "404");
    assert!(message.starts_with("No such agent command 'aaaa"), "{message}");
    assert!(message.ends_with(super::super::replies::CUT_MARKER), "{message}");
    assert!(sim.read(&format!("{HOME}/data/host/long")).is_none());
    // Learnt: the next long reply is cut at once.
    assert!(comm.reply_cap < DEFAULT_REPLY_CAP);
    sim.shutdown();
}

#[test]
fn with_data_guest_full_the_reply_is_held_and_new_requests_wait() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    domain(&sim, dir.path());
    let ids: Vec<String> = (0..120).map(|i| format!("{:036}", i)).collect();
    for id in &ids {
        sim.write(&format!("{HOME}/data/host/{id}"), VERSION);
    }
    let mut comm = guest(dir.path());
    let mut answered = Vec::new();
    while let Some(incoming) = comm.recv(Duration::from_millis(300)).unwrap() {
        comm.reply(&incoming.id, &Reply::ok("1")).unwrap();
        answered.push(incoming.id);
    }
    // Full after a few dozen: the last one taken is held, and it and every
    // later request are still in data/host.
    let mut uniq = answered.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), answered.len(), "{answered:?}");
    assert_eq!(comm.held.len(), 1);
    let (held, _) = comm.held[0].clone();
    assert_eq!(answered.last(), Some(&held));
    let waiting = sim.directory(&format!("{HOME}/data/host"));
    assert_eq!(waiting.len(), ids.len() - answered.len() + 1, "{}", answered.len());
    assert!(waiting.contains(&held));
    for id in &answered[..answered.len() - 1] {
        assert_eq!(reply_at(&sim, id), ("0".to_string(), "1".to_string()));
    }
    // The host makes room: everything is answered, nothing is lost.
    let mut seen = std::collections::BTreeSet::new();
    loop {
        for id in sim.directory(&format!("{HOME}/data/guest")) {
            assert_eq!(reply_at(&sim, &id).0, "0");
            sim.rm(&format!("{HOME}/data/guest/{id}"));
            assert!(seen.insert(id));
        }
        match comm.recv(Duration::from_millis(300)).unwrap() {
            Some(incoming) => comm.reply(&incoming.id, &Reply::ok("1")).unwrap(),
            None if comm.held.is_empty() && sim.directory(&format!("{HOME}/data/host")).is_empty() => break,
            None => {}
        }
    }
    seen.extend(sim.directory(&format!("{HOME}/data/guest")));
    assert!(seen.iter().eq(ids.iter()));
    sim.shutdown();
}

#[test]
fn stale_replies_are_pruned_in_small_batches_while_idle() {
    let dir = tempfile::tempdir().unwrap();
    // oxenstored keeps no node-size quota: thousands of replies fit.
    let sim = Simulator::new(Config::oxenstored_like());
    domain(&sim, dir.path());
    for i in 0..2000 {
        sim.write(
            &format!("{HOME}/data/guest/old-{i:04}"),
            br#"{"returncode":"0","message":""}"#,
        );
    }
    let mut comm = guest(dir.path());
    comm.retention = Duration::ZERO;
    sim.write(&format!("{HOME}/data/host/first"), VERSION);
    let rms = |sim: &Simulator| sim.stats().requests_of(xenstore::wire::MsgType::Rm);
    let before = rms(&sim);
    let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("the request");
    comm.reply(&incoming.id, &Reply::ok("1")).unwrap();
    // On the request's path: its own removal and at most one batch.
    assert!(rms(&sim) - before <= 1 + PRUNE_BATCH as u64, "{}", rms(&sim) - before);
    // Idle time removes the rest, the new reply included (all are stale here).
    assert!(comm.recv(Duration::ZERO).unwrap().is_none());
    assert!(sim.directory(&format!("{HOME}/data/guest")).is_empty());
    sim.shutdown();
}

#[test]
fn requests_taken_before_a_restart_are_answered_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    domain(&sim, dir.path());
    let journal = Journal::open(&dir.path().join("journal")).unwrap();
    let password = br#"{"name":"password","value":"AAAA"}"#;
    let answered = br#"{"returncode":"0","message":"1"}"#;
    // Taken, not answered: one to run again, one that cannot be.
    for (id, raw) in [("again", VERSION), ("pw", &password[..])] {
        sim.write(&format!("{HOME}/data/host/{id}"), raw);
        journal.record(id, raw).unwrap();
    }
    // Answered, not yet removed.
    sim.write(&format!("{HOME}/data/host/done"), VERSION);
    sim.write(&format!("{HOME}/data/guest/done"), answered);
    journal.record("done", VERSION).unwrap();
    // Given up by the host.
    journal.record("gone", VERSION).unwrap();
    // Never taken: handled as new.
    sim.write(&format!("{HOME}/data/host/new"), VERSION);

    let mut comm = guest(dir.path()).with_journal(&dir.path().join("journal"));
    assert_eq!(
        reply_at(&sim, "pw"),
        (
            "500".to_string(),
            "agent restarted while handling this request".to_string()
        )
    );
    let mut seen = Vec::new();
    while let Some(incoming) = comm.recv(Duration::from_millis(300)).unwrap() {
        comm.reply(&incoming.id, &Reply::ok("1")).unwrap();
        seen.push(incoming.id);
    }
    assert_eq!(seen, ["again", "new"]);
    assert_eq!(sim.read(&format!("{HOME}/data/guest/done")).unwrap(), answered);
    assert!(sim.directory(&format!("{HOME}/data/host")).is_empty());
    assert!(sim.read(&format!("{HOME}/data/guest/gone")).is_none());
    assert!(journal.pending().unwrap().is_empty());
    sim.shutdown();
}

#[test]
fn a_request_is_in_the_journal_exactly_until_it_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    domain(&sim, dir.path());
    let keyinit = br#"{"name":"keyinit","value":"12345"}"#;
    sim.write(&format!("{HOME}/data/host/r1"), keyinit);
    let mut comm = guest(dir.path()).with_journal(&dir.path().join("journal"));
    let journal = Journal::open(&dir.path().join("journal")).unwrap();
    let incoming = comm.recv(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(journal.pending().unwrap(), [("r1".to_string(), keyinit.to_vec())]);
    comm.reply(&incoming.id, &Reply::new("D0", "1")).unwrap();
    assert!(journal.pending().unwrap().is_empty());
    // A request that can simply run again is not journaled: it stays in
    // data/host until answered, and is handled again after a crash.
    sim.write(&format!("{HOME}/data/host/r2"), VERSION);
    let incoming = comm.recv(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(incoming.id, "r2");
    assert!(journal.pending().unwrap().is_empty());
    drop(comm);
    let mut again = guest(dir.path()).with_journal(&dir.path().join("journal"));
    let incoming = again.recv(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!((incoming.id.as_str(), incoming.data.as_slice()), ("r2", VERSION));
    sim.shutdown();
}

#[test]
fn refusals_held_at_start_are_all_written_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    domain(&sim, dir.path());
    let journal = Journal::open(&dir.path().join("journal")).unwrap();
    let password = br#"{"name":"password","value":"AAAA"}"#;
    for id in ["pw-1", "pw-2"] {
        sim.write(&format!("{HOME}/data/host/{id}"), password);
        journal.record(id, password).unwrap();
    }
    let comm = guest(dir.path());
    // data/guest filled by someone else: nothing the agent may remove.
    let filler = xenstore::Client::connect(dir.path().join("xenbus")).unwrap();
    let mut fillers = Vec::new();
    for width in [36, 1] {
        for i in 0.. {
            let id = format!("{i:0width$}");
            if filler.write(&format!("data/guest/{id}"), "x").is_err() {
                break;
            }
            fillers.push(id);
        }
    }
    let mut comm = comm.with_journal(&dir.path().join("journal"));
    assert_eq!(comm.held.len(), 2);
    assert_eq!(sim.directory(&format!("{HOME}/data/host")).len(), 2);
    for id in &fillers {
        sim.rm(&format!("{HOME}/data/guest/{id}"));
    }
    assert!(comm.recv(Duration::from_millis(300)).unwrap().is_none());
    for id in ["pw-1", "pw-2"] {
        assert_eq!(reply_at(&sim, id).1, RESTARTED);
    }
    assert!(comm.held.is_empty());
    assert!(sim.directory(&format!("{HOME}/data/host")).is_empty());
    assert!(journal.pending().unwrap().is_empty());
    sim.shutdown();
}

#[test]
fn a_reply_cut_off_by_a_reconnect_is_written_after_it_and_the_request_not_handled_again() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    let path = dir.path().join("xenstored");
    sim.add_guest(7, &path).unwrap();
    sim.write(&format!("{HOME}/data/host/r1"), VERSION);
    let mut comm = XenCommunicator::connect(Some(path.to_str().unwrap()), Duration::from_secs(3600)).unwrap();
    let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("r1");
    sim.kill_connections();
    comm.reply(&incoming.id, &Reply::ok("1")).unwrap();
    let mut again = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.read(&format!("{HOME}/data/guest/r1")).is_none() || !comm.held.is_empty() {
        assert!(Instant::now() < deadline, "reply never written");
        if let Some(i) = comm.recv(Duration::from_millis(100)).unwrap() {
            again.push(i.id);
        }
    }
    assert!(comm.client.reconnect_count() >= 1);
    assert!(comm.recv(Duration::from_millis(300)).unwrap().is_none());
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(reply_at(&sim, "r1"), ("0".to_string(), "1".to_string()));
    assert!(sim.directory(&format!("{HOME}/data/host")).is_empty());
    sim.shutdown();
}

#[test]
fn a_request_costs_three_xenstore_requests() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    domain(&sim, dir.path());
    let host = dom0(&sim, dir.path());
    let mut comm = guest(dir.path());
    assert!(comm.recv(Duration::from_millis(100)).unwrap().is_none());
    let count = |sim: &Simulator| sim.stats().total_requests();
    for i in 0..3 {
        let before = count(&sim);
        host.write(&format!("{HOME}/data/host/r{i}"), VERSION).unwrap();
        let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("the request");
        comm.reply(&incoming.id, &Reply::ok("1")).unwrap();
        // The watch event of the removal comes and goes without a read.
        assert!(comm.recv(Duration::from_millis(200)).unwrap().is_none());
        // The host's write, then read, reply and removal.
        assert_eq!(count(&sim) - before, 1 + 3, "request {i}");
    }
    sim.shutdown();
}

#[test]
fn a_request_answered_before_a_restart_is_only_removed() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(Config::default());
    domain(&sim, dir.path());
    // Killed between the reply and the removal: both nodes are there.
    sim.write(&format!("{HOME}/data/host/done"), VERSION);
    sim.write(
        &format!("{HOME}/data/guest/done"),
        br#"{"returncode":"0","message":"1"}"#,
    );
    sim.write(&format!("{HOME}/data/host/open"), VERSION);
    let mut comm = guest(dir.path());
    let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("the open request");
    assert_eq!(incoming.id, "open");
    comm.reply("open", &Reply::ok("1")).unwrap();
    assert!(comm.recv(Duration::from_millis(200)).unwrap().is_none());
    assert!(sim.directory(&format!("{HOME}/data/host")).is_empty());
    // A later request with a reply already there (written by someone else) is
    // no business of this check: it is handled.
    sim.write(&format!("{HOME}/data/guest/later"), b"x");
    sim.write(&format!("{HOME}/data/host/later"), VERSION);
    let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("the later request");
    assert_eq!(incoming.id, "later");
    sim.shutdown();
}
