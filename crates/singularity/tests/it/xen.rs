//! Every command end to end over XenStore: the simulator's guest socket (and
//! its exact `/dev/xen/xenbus` emulation), the real agent binary, and a host
//! that writes `data/host/<uuid>` and polls `data/guest/<uuid>` like the
//! os-xenapi plugin.

use crate::harness::TestRoot;
use crate::socket::system_crypt;
use crate::xenlab::{GuestLink, XenLab, DOMID};
use singularity::crypto::cipher::Digest;
use singularity_host::dom0::commands::NicSpec;
use singularity_host::dom0::HostError;
use std::time::{Duration, Instant};
use xenstore::sim::Config;
use xenstore::wire::MsgType;

const T: Duration = Duration::from_secs(20);

fn boot_sequence(link: GuestLink, config: Config) {
    let root = TestRoot::new();
    root.seed_debian(&[("eth0", "bc:76:4e:20:6c:5b")]);
    let mut lab = XenLab::new(link, config);
    lab.start_agent(&root, &[], "");
    let host = lab.host();
    let (reply, features) = host.features().unwrap();
    assert_eq!(reply.returncode, "0");
    assert_eq!(
        features.join(","),
        "version,features,keyinit,password,injectfile,file_inject,resetnetwork,agentupdate"
    );
    let key = b"\n# The following ssh key was injected by Nova\nssh-ed25519 AAAAC3 test\n";
    assert_eq!(
        host.inject("/root/.ssh/authorized_keys", key, T).unwrap().returncode,
        "0"
    );
    assert_eq!(root.read("/root/.ssh/authorized_keys"), key);
    assert_eq!(root.mode("/root/.ssh/authorized_keys"), 0o600);
    for (digest, pw) in [(Digest::Md5, "first-Pass"), (Digest::Sha256, "second pässword")] {
        let reply = host.password(pw, digest, T).unwrap();
        assert_eq!((reply.returncode.as_str(), reply.message.as_str()), ("0", ""));
        let hash = root.shadow_hash("root");
        assert_eq!(system_crypt(pw, &hash), hash);
    }
    // resetnetwork from vm-data written as nova writes it.
    let nic = crate::xenlab::public_nic();
    host.set_network(&nic).unwrap();
    host.set_hostname("guest-seven").unwrap();
    let reply = host.resetnetwork(Some(T)).unwrap();
    assert_eq!((reply.returncode.as_str(), reply.message.as_str()), ("0", ""));
    let stanza = String::from_utf8(root.read("/etc/network/interfaces.d/50-singularity")).unwrap();
    assert!(
        stanza.contains("iface eth0 inet static\n    address 203.0.113.10/24\n    gateway 203.0.113.1\n"),
        "{stanza}"
    );
    assert_eq!(root.read("/etc/hostname"), b"guest-seven\n");
    let hosts = String::from_utf8(root.read("/etc/hosts")).unwrap();
    assert!(hosts.contains("203.0.113.10\tguest-seven"), "{hosts}");
    // A second resetnetwork with the same data changes nothing.
    let before = root.snapshot();
    assert_eq!(host.resetnetwork(Some(T)).unwrap().returncode, "0");
    assert_eq!(root.snapshot(), before);

    // Nothing left in data/host; every reply stays in data/guest.
    let c = lab.client();
    lab.wait_no_requests();
    assert_eq!(c.directory(&lab.home("data/guest")).unwrap().len(), 10);
    assert!(lab.stop_agent(), "SIGTERM gives a clean exit");
}

#[test]
fn boot_sequence_over_stream_socket() {
    boot_sequence(GuestLink::Stream, Config::default());
}

#[test]
fn boot_sequence_over_device_emulation() {
    boot_sequence(GuestLink::Device, Config::default());
}

#[test]
fn boot_sequence_with_oxenstored_limits() {
    boot_sequence(GuestLink::Device, Config::oxenstored_like());
}

#[test]
fn requests_waiting_at_start_are_answered() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    let c = lab.client();
    c.write(
        &lab.home("data/host/early-1"),
        br#"{"name": "version", "value": "agent"}"#,
    )
    .unwrap();
    c.write(&lab.home("data/host/early-2"), br#"{"name": "bogus", "value": ""}"#)
        .unwrap();
    lab.start_agent(&root, &[], "");
    let deadline = Instant::now() + T;
    while !c.exists(&lab.home("data/guest/early-2")).unwrap() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let v1: serde_json::Value = serde_json::from_slice(&c.read(&lab.home("data/guest/early-1")).unwrap()).unwrap();
    assert_eq!(v1["returncode"], "0");
    let v2 = c.read(&lab.home("data/guest/early-2")).unwrap();
    assert_eq!(v2, br#"{"returncode":"404","message":"No such agent command 'bogus'"}"#);
    lab.wait_no_requests();
}

#[test]
fn multi_line_and_binary_requests_over_xenstore() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    lab.start_agent(&root, &[], "");
    let host = lab.host();
    let before = root.snapshot();
    let r = host
        .call_raw(b"{\n  \"name\": \"version\",\n  \"value\": \"agent\"\n}\n", T)
        .unwrap();
    assert_eq!(r.returncode, "0");
    let r = host.call_raw(b"\x00\xff{", T).unwrap();
    assert_eq!(r.returncode, "500");
    assert_eq!(r.message, "Request is malformed: not valid JSON (not UTF-8)");
    let r = host.call_raw(b"", T).unwrap();
    assert_eq!(
        r.message,
        "Request is malformed: not valid JSON (EOF while parsing a value at line 1 column 0)"
    );
    assert_eq!(root.snapshot(), before);
    assert!(lab.agent_alive());
}

#[test]
fn agent_survives_xenstored_dropping_connections() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Stream, Config::default());
    lab.start_agent(&root, &[], "");
    lab.sim.kill_connections();
    let host = lab.host();
    let reply = host.version(T).unwrap();
    assert_eq!(reply.returncode, "0");
    assert!(lab.agent_alive());
}

#[test]
fn idle_agent_makes_no_xenstore_traffic() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    lab.start_agent(&root, &[], "");
    std::thread::sleep(Duration::from_millis(300));
    let count = |lab: &XenLab| lab.sim.stats().requests.values().sum::<u64>();
    let before = count(&lab);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&lab), before, "requests while idle");
    assert!(!lab.sim.stats().requests.contains_key(&MsgType::ResetWatches));
}

#[test]
fn request_written_by_the_toolstack_is_answered() {
    // Written straight into the store (as xenopsd would), not over a connection.
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Stream, Config::default());
    lab.start_agent(&root, &[], "[xen]\nrescan_interval = 1\n");
    let c = lab.client();
    lab.sim
        .write(&lab.home("data/host/quiet"), br#"{"name": "version", "value": ""}"#);
    let deadline = Instant::now() + T;
    while !c.exists(&lab.home("data/guest/quiet")).unwrap() {
        assert!(Instant::now() < deadline, "request never answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn host_times_out_and_removes_its_request() {
    let lab = XenLab::new(GuestLink::Stream, Config::default());
    let host = lab.host();
    let started = Instant::now();
    let err = host.version(Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, HostError::Timeout(_)));
    assert_eq!(err.to_string(), "TIMEOUT: No response from agent within 1 seconds.");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(lab.client().directory(&lab.home("data/host")).unwrap().is_empty());
}

#[test]
fn host_detects_reboot() {
    let lab = XenLab::new(GuestLink::Stream, Config::default());
    let host = lab.host();
    let sim = lab.sim.clone();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        sim.destroy_domain(DOMID);
    });
    let err = host.version(T).unwrap_err();
    killer.join().unwrap();
    assert_eq!(err.to_string(), format!("REBOOT: dom_id {DOMID} no longer present"));
}

#[test]
fn host_picks_injectfile_when_file_inject_is_not_offered() {
    // A minimal old-style agent answering as the Unix agent did.
    let lab = XenLab::new(GuestLink::Stream, Config::default());
    let guest = xenstore::Client::connect(&lab.guest).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let responder = std::thread::spawn(move || {
        let watch = guest.watch("data/host").unwrap();
        let mut answered = 0;
        let deadline = Instant::now() + Duration::from_secs(25);
        while answered < 2 {
            assert!(Instant::now() < deadline, "responder saw {answered} requests");
            let _ = watch.recv_timeout(Duration::from_millis(50));
            let ids = match guest.directory("data/host") {
                Ok(ids) => ids,
                Err(e) if e.is_noent() => continue,
                Err(e) => panic!("responder cannot list data/host: {e}"),
            };
            for id in ids {
                let req = guest.read(&format!("data/host/{id}")).unwrap();
                guest.rm(&format!("data/host/{id}")).unwrap();
                let v: serde_json::Value = serde_json::from_slice(&req).unwrap();
                let reply = if v["name"] == "features" {
                    r#"{"returncode": "0", "message": "keyinit,features,version,password,resetnetwork,injectfile,agentupdate,kmsactivate"}"#
                } else {
                    r#"{"returncode": "0", "message": ""}"#
                };
                seen2.lock().unwrap().push(v);
                guest.write(&format!("data/guest/{id}"), reply).unwrap();
                answered += 1;
            }
        }
    });
    let reply = lab.host().inject("/etc/motd", b"hello, world", T).unwrap();
    responder.join().unwrap();
    assert_eq!(reply.returncode, "0");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["name"], "features");
    assert_eq!(seen[1]["name"], "injectfile");
    // base64("/etc/motd,hello, world")
    assert_eq!(seen[1]["value"], "L2V0Yy9tb3RkLGhlbGxvLCB3b3JsZA==");
}

#[test]
fn sigterm_during_a_burst_answers_or_leaves_each_request() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    lab.start_agent(&root, &[], "");
    let c = lab.client();
    let ids: Vec<String> = (0..30).map(|i| format!("burst-{i:02}")).collect();
    let payload = |i: usize| {
        let data = base64_encode(format!("line {i}\n").as_bytes());
        format!(r#"{{"name": "file_inject", "value": {{"b64_path": "L2V0Yy9idXJzdA==", "b64_file": "{data}"}}}}"#)
    };
    for (i, id) in ids.iter().enumerate() {
        c.write(&lab.home(&format!("data/host/{id}")), payload(i)).unwrap();
    }
    assert!(lab.stop_agent(), "clean exit on SIGTERM");
    let mut answered = 0;
    for id in &ids {
        let reply = c.read(&lab.home(&format!("data/guest/{id}")));
        let pending = c.exists(&lab.home(&format!("data/host/{id}"))).unwrap();
        match reply {
            Ok(r) => {
                assert!(!pending, "{id} answered and still pending");
                assert_eq!(r, br#"{"returncode":"0","message":""}"#);
                answered += 1;
            }
            Err(e) => {
                assert!(e.is_noent());
                assert!(pending, "{id} neither answered nor left in place");
            }
        }
    }
    // The file holds exactly one complete write, or none was answered.
    if answered == 0 {
        assert!(!root.path("/etc/burst").exists());
    } else {
        let content = String::from_utf8(root.read("/etc/burst")).unwrap();
        assert!(
            content.starts_with("line ") && content.ends_with('\n') && content.lines().count() == 1,
            "{content:?}"
        );
    }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn old_replies_make_room_when_data_guest_is_full() {
    // C xenstored counts child names against the 2048-byte node quota of an
    // unprivileged domain: about fifty UUIDs fill data/guest, and nobody on
    // the host ever removes a reply.
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    let guest = xenstore::Client::connect(&lab.guest).unwrap();
    let mut filled = 0;
    loop {
        let id = singularity_host::dom0::uuid4().unwrap();
        match guest.write(&format!("data/guest/{id}"), r#"{"returncode":"0","message":""}"#) {
            Ok(()) => filled += 1,
            Err(e) => {
                assert_eq!(e.kind(), Some(&xenstore::ErrorKind::Nospc), "{e}");
                break;
            }
        }
    }
    assert!(filled > 20, "{filled}");
    drop(guest);
    lab.start_agent(&root, &[], "");
    let host = lab.host();
    for _ in 0..10 {
        assert_eq!(host.version(T).unwrap().returncode, "0");
    }
    let left = lab.client().directory(&lab.home("data/guest")).unwrap().len();
    assert!(left <= filled, "old replies were removed: {left} of {filled} + 11");
}

#[test]
fn a_burst_of_200_requests_is_all_answered_on_oxenstored() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::oxenstored_like());
    lab.start_agent(&root, &[], "");
    let c = lab.client();
    let ids: Vec<String> = (0..200).map(|i| format!("burst-{i:03}")).collect();
    for id in &ids {
        c.write(
            &lab.home(&format!("data/host/{id}")),
            br#"{"name": "version", "value": "agent"}"#,
        )
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        let node = lab.home(&format!("data/guest/{id}"));
        while !c.exists(&node).unwrap() {
            assert!(Instant::now() < deadline, "{id} never answered");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    lab.wait_no_requests();
    assert!(lab.agent_alive());
}

/// A dom0 id shaped like nova's (a UUID, 36 characters).
fn uuid_like(i: usize) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

#[test]
fn a_burst_of_2000_requests_is_all_answered_under_the_guest_quota() {
    // C xenstored's guest limits: a reply node under 2048 bytes, and data/guest
    // itself (its child names) too, so about fifty UUID replies at a time.
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    lab.start_agent(&root, &[], "");
    let c = lab.client();
    let ids: Vec<String> = (0..2000).map(uuid_like).collect();
    let long_name = "n".repeat(3000);
    let request = |i: usize| {
        if i % 100 == 7 {
            // An unknown command whose echo alone is over the quota.
            format!(r#"{{"name": "{long_name}", "value": ""}}"#)
        } else {
            r#"{"name": "version", "value": "agent"}"#.to_string()
        }
    };
    for (i, id) in ids.iter().enumerate() {
        c.write(&lab.home(&format!("data/host/{id}")), request(i)).unwrap();
    }
    // A host that reads each reply in turn and then removes it; it starts
    // only once data/guest is crowded, so the agent meets the quota.
    let deadline = Instant::now() + Duration::from_secs(300);
    while c.directory(&lab.home("data/guest")).unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "the agent answered nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut cut = 0;
    for (i, id) in ids.iter().enumerate() {
        let node = lab.home(&format!("data/guest/{id}"));
        let raw = loop {
            match c.read(&node) {
                Ok(raw) => break raw,
                Err(e) if e.is_noent() => {
                    assert!(Instant::now() < deadline, "{id} (#{i}) never answered");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        };
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let (code, message) = (v["returncode"].as_str().unwrap(), v["message"].as_str().unwrap());
        if i % 100 == 7 {
            assert_eq!(code, "404");
            assert!(message.starts_with("No such agent command 'nnn"), "{message}");
            assert!(message.ends_with("[reply cut to fit XenStore]"), "{message}");
            assert!(raw.len() <= 2048);
            cut += 1;
        } else {
            assert_eq!((code, message), ("0", singularity::handler::VERSION));
        }
        c.rm(&node).unwrap();
    }
    assert_eq!(cut, 20);
    lab.wait_no_requests();
    assert!(lab.agent_alive());
}

#[test]
fn resetnetwork_with_many_stale_entries_is_answered_with_a_cut_note() {
    let root = TestRoot::new();
    root.seed_debian(&[("eth0", "bc:76:4e:20:6c:5b")]);
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    lab.start_agent(&root, &[], "");
    let host = lab.host();
    for i in 0..80 {
        let nic = NicSpec {
            mac: format!("BC:76:4E:00:{:02X}:{:02X}", i / 256, i % 256),
            label: format!("stale-{i}"),
            ip: Some(format!("203.0.113.{}/24", i + 10).parse().unwrap()),
            ..NicSpec::default()
        };
        host.set_network(&nic).unwrap();
    }
    let reply = host.resetnetwork(Some(T)).unwrap();
    assert_eq!(reply.returncode, "0", "{}", reply.message);
    assert!(
        reply.message.ends_with("[reply cut to fit XenStore]"),
        "{}",
        reply.message
    );
    assert!(lab.agent_alive());
}

#[test]
fn passwords_that_cannot_be_typed_are_refused() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    lab.start_agent(&root, &[], "");
    let host = lab.host();
    let before = root.snapshot();
    let nul = host.password("abc\0def", Digest::Sha256, T).unwrap();
    assert_eq!(
        (nul.returncode.as_str(), nul.message.as_str()),
        ("500", "Password refused: it contains a NUL byte, which cannot be typed")
    );
    let empty = host.password("", Digest::Sha256, T).unwrap();
    assert_eq!(empty.returncode, "500");
    assert_eq!(
        empty.message,
        "Password refused: it is empty (allowed only with allow_empty = true in [password])"
    );
    assert_eq!(root.snapshot(), before, "nothing changed");
    assert!(lab.stop_agent());
    // Allowed on purpose.
    lab.start_agent(&root, &[], "[password]\nallow_empty = true\n");
    let host = lab.host();
    assert_eq!(host.password("", Digest::Sha256, T).unwrap().returncode, "0");
    let hash = root.shadow_hash("root");
    assert_eq!(system_crypt("", &hash), hash);
}

/// Holds the shadow suite's lock (`/etc/.pwd.lock`, an fcntl write lock) of
/// `root` until dropped, as `passwd` would.
struct PwdLock {
    _file: std::fs::File,
}

impl PwdLock {
    fn take(root: &TestRoot) -> PwdLock {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::create(root.path("/etc/.pwd.lock")).unwrap();
        // SAFETY: all-zero is a valid flock; filled in below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: a descriptor this test owns and a valid flock.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) };
        assert_eq!(rc, 0);
        PwdLock { _file: file }
    }
}

#[test]
fn a_password_request_cut_short_by_sigkill_is_answered_after_the_restart() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Device, Config::default());
    lab.start_agent(&root, &[], "");
    let lock = PwdLock::take(&root);
    let host = lab.host();
    let waiting = std::thread::spawn(move || host.password("Interrupted-1", Digest::Sha256, Duration::from_secs(60)));
    // The agent has taken the password request and waits for the lock.
    let journal = root.path("/run/singularity/journal");
    let deadline = Instant::now() + T;
    let taken =
        || {
            std::fs::read_dir(&journal).into_iter().flatten().flatten().any(|e| {
                std::fs::read(e.path()).is_ok_and(|raw| String::from_utf8_lossy(&raw).contains("\"password\""))
            })
        };
    while !taken() {
        assert!(Instant::now() < deadline, "the password request was never taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    lab.kill_agent();
    drop(lock);
    lab.start_agent(&root, &[], "");
    let reply = waiting.join().unwrap().expect("answered, not timed out");
    assert_eq!(
        (reply.returncode.as_str(), reply.message.as_str()),
        ("500", "agent restarted while handling this request")
    );
    assert_eq!(root.shadow_hash("root"), "*", "the password was not set");
    lab.wait_no_requests();
    // Forgotten right after the removal.
    let deadline = Instant::now() + T;
    while std::fs::read_dir(&journal).unwrap().next().is_some() {
        assert!(Instant::now() < deadline, "journal never emptied");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_request_over_64_kib_is_refused_once_without_reconnecting() {
    let root = TestRoot::new();
    let mut lab = XenLab::new(GuestLink::Stream, Config::default());
    lab.start_agent(&root, &[], "");
    let host = lab.host();
    let c = lab.client();
    // Written by the toolstack: no daemon limit stopped it.
    let big = format!(r#"{{"name": "version", "value": "{}"}}"#, "x".repeat(70 * 1024));
    lab.sim.write(&lab.home("data/host/big"), big.as_bytes());
    // Any later request makes the agent list data/host, and so find it.
    assert_eq!(host.version(T).unwrap().returncode, "0");
    let deadline = Instant::now() + T;
    while c.exists(&lab.home("data/host/big")).unwrap() {
        assert!(Instant::now() < deadline, "never removed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let reply = c.read(&lab.home("data/guest/big")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(v["returncode"], "500");
    assert!(v["message"].as_str().unwrap().starts_with("Request is too large: "));
    // No reconnection loop (it used to reconnect about four times a second).
    let accepted = lab.sim.stats().connections_accepted;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(host.version(T).unwrap().returncode, "0");
    assert_eq!(lab.sim.stats().connections_accepted, accepted, "reconnections");
    assert!(lab.agent_alive());
}
