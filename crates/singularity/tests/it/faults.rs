//! Fault injection: the agent killed with SIGKILL at random points of a
//! 1,500-request run, and 30 cuts of its XenStore connection, against the
//! simulator without quotas (so that nothing but the faults delays a reply).
//! Every request must be answered, none answered twice by a running agent
//! (it logs one line per request it answers; a killed one logs nothing for
//! the request it was cut off in, which runs again), none left in
//! `data/host`, every injected file written, and nothing left in the
//! journal. Under SIGKILL a watch on `data/guest` also counts every reply
//! written: exactly one each, and none changed after the host read it.

use crate::harness::TestRoot;
use crate::xenlab::{GuestLink, XenLab, DOMID};
use base64::Engine;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xenstore::sim::Config;
use xenstore::{Client, Optional};

const REQUESTS: usize = 1500;
const FAULTS: usize = 30;

/// A small deterministic generator (the seed is printed, to replay a run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let seed = u64::from(nanos) | 1;
    println!("fault injection seed {seed}");
    seed
}

fn unlimited() -> Config {
    Config {
        node_size_max: usize::MAX,
        nodes_per_domain: 1_000_000,
        ..Config::default()
    }
}

fn home(rel: &str) -> String {
    format!("/local/domain/{DOMID}/{rel}")
}

/// Request `i`: mostly `version` and `features`, every tenth an injected
/// file of its own, every twentieth a `keyinit` (journaled: it cannot run
/// twice).
fn request(i: usize) -> (String, Vec<u8>) {
    let id = format!("req-{i:05}");
    let body = if i % 20 == 7 {
        r#"{"name": "keyinit", "value": "12345678901234567890"}"#.to_string()
    } else if i % 10 == 3 {
        let text = format!("/srv/faults/{i},contents of {i}\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(text);
        format!(r#"{{"name": "injectfile", "value": "{b64}"}}"#)
    } else if i % 2 == 0 {
        r#"{"name": "version", "value": "agent"}"#.to_string()
    } else {
        r#"{"name": "features", "value": ""}"#.to_string()
    };
    (id, body.into_bytes())
}

/// Writes a request and waits for its reply, as a host does; a write that
/// failed with the connection is repeated only if neither the request nor
/// its reply is there.
fn call(c: &Client, id: &str, body: &[u8]) -> Vec<u8> {
    let (req, rep) = (home(&format!("data/host/{id}")), home(&format!("data/guest/{id}")));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut written = false;
    loop {
        assert!(Instant::now() < deadline, "{id} never answered");
        if !written {
            match c.write(&req, body) {
                Ok(()) => written = true,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    let there = |p: &str| c.exists(p).unwrap_or(false);
                    written = there(&req) || there(&rep);
                    continue;
                }
            }
        }
        if let Ok(Some(reply)) = c.read(&rep).optional() {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs every request while `fault` strikes `FAULTS` times at random
/// moments, then checks every request was answered once.
/// `count_writes`: also count every write of a reply through a watch of
/// `data/guest` (from a connection the faults leave alone).
fn run(lab: XenLab, root: &TestRoot, count_writes: bool, fault: impl Fn(&mut XenLab, &Path) + Send + 'static) {
    let log = lab.log();
    let client = lab.client();
    let writes = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let counter = count_writes.then(|| {
        let watcher = lab.client();
        let watch = watcher.watch(&home("data/guest")).unwrap();
        let writes = Arc::clone(&writes);
        std::thread::spawn(move || {
            let _keep = &watcher;
            while let Ok(event) = watch.recv() {
                if let xenstore::WatchEvent::Changed(path) = event {
                    if let Some(id) = path.rsplit('/').next().filter(|id| id.starts_with("req-")) {
                        *writes.lock().unwrap().entry(id.to_string()).or_default() += 1;
                    }
                }
            }
        })
    });
    let lab = Arc::new(Mutex::new(lab));
    let done = Arc::new(AtomicBool::new(false));
    let mut rng = Lcg(seed());
    let pauses: Vec<u64> = (0..FAULTS).map(|_| 20 + rng.next(100)).collect();
    let striker = {
        let (lab, done, root) = (Arc::clone(&lab), Arc::clone(&done), root.base().to_path_buf());
        std::thread::spawn(move || {
            let mut struck = 0;
            for pause in pauses {
                std::thread::sleep(Duration::from_millis(pause));
                if done.load(Ordering::SeqCst) {
                    break;
                }
                fault(&mut lab.lock().unwrap(), &root);
                struck += 1;
            }
            struck
        })
    };
    let mut replies = HashMap::new();
    for i in 0..REQUESTS {
        let (id, body) = request(i);
        replies.insert(id.clone(), call(&client, &id, &body));
    }
    done.store(true, Ordering::SeqCst);
    let struck = striker.join().unwrap();
    let lab = Arc::try_unwrap(lab).ok().unwrap().into_inner().unwrap();
    lab.wait_no_requests();
    println!("{REQUESTS} requests, {struck} faults");
    assert!(struck >= FAULTS / 2, "only {struck} faults struck during the run");

    for (id, raw) in &replies {
        let v: serde_json::Value = serde_json::from_slice(raw).unwrap_or_else(|e| panic!("{id}: {e}"));
        let rc = v["returncode"].as_str().expect("string returncode");
        let i: usize = id[4..].parse().unwrap();
        let ok = match request(i).1.starts_with(br#"{"name": "keyinit""#) {
            // Interrupted by a kill before its reply: refused, as documented.
            true => rc == "D0" || v["message"] == "agent restarted while handling this request",
            false => rc == "0",
        };
        assert!(ok, "{id}: {v}");
        if i % 10 == 3 && i % 20 != 7 {
            assert_eq!(
                root.read(&format!("/srv/faults/{i}")),
                format!("contents of {i}\n").as_bytes()
            );
        }
    }
    if counter.is_some() {
        // The last reply written is the one the host read (a keyinit run
        // twice would have written another key), and it was written once.
        std::thread::sleep(Duration::from_millis(500));
        let writes = writes.lock().unwrap();
        for (id, raw) in &replies {
            let now = client.read(&home(&format!("data/guest/{id}"))).unwrap();
            assert_eq!(&now, raw, "{id}: the reply changed after the host read it");
            assert_eq!(
                writes.get(id),
                Some(&1),
                "{id}: reply written {:?} times",
                writes.get(id)
            );
        }
    }
    // One log line per answered request: never two (a request cut short by
    // a kill logs nothing before it runs again).
    let text = std::fs::read_to_string(log).unwrap();
    let mut handled: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.split("request req-").nth(1) {
            if line.contains(" returncode ") {
                *handled.entry(&rest[..5]).or_default() += 1;
            }
        }
    }
    let twice: Vec<_> = handled.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
    let journal = root.base().join("run/singularity/journal");
    let left: Vec<_> = std::fs::read_dir(&journal)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the journal: {left:?}");
}

#[test]
fn sigkill_at_random_points_loses_and_repeats_no_request() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, unlimited());
    lab.start_agent(&root, &[], "");
    run(lab, &root, true, |lab, root| {
        lab.kill_agent();
        lab.start_agent_at(root, &[], "");
    });
}

#[test]
fn thirty_connection_cuts_lose_and_repeat_no_request() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Stream, unlimited());
    lab.start_agent(&root, &[], "");
    run(lab, &root, false, |lab, _| {
        lab.sim.kill_connections();
        assert!(lab.agent_alive(), "the agent survives a cut");
    });
}
