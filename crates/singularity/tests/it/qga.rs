//! The qga communicator side by side with Debian's real qemu-ga, both on a
//! Unix socket (`unix-listen`, outside a VM): the same request scripts must
//! give replies of the same shape (members, types, error classes, and the
//! same messages where the protocol fixes them).
//!
//! Nothing sent to qemu-ga here may change this machine: it runs as root on
//! the live system, so only requests that fail before they act, and
//! read-only commands, are sent. `guest-fsfreeze-freeze` never is.

use super::harness::{bin, TestRoot};
use serde_json::{json, Value};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running agent on a Unix socket; killed on drop.
struct Ga {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Ga {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ga {
    /// Debian's qemu-ga, with `block` disabled.
    fn qemu_ga(block: &str) -> Ga {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ga.sock");
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        let log = dir.path().join("ga.log");
        let child = Command::new("qemu-ga")
            .args(["-m", "unix-listen", "-p"])
            .arg(&socket)
            .arg("-t")
            .arg(&state)
            .args(["-b", block, "-l"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run qemu-ga (Debian's qemu-guest-agent; scripts/test installs it): {e}")
            });
        Ga::ready(Ga {
            child,
            socket,
            log,
            _dir: dir,
        })
    }

    /// The agent under test, with the qga communicator on `root`, `block`
    /// disabled, and `extra` appended to its configuration.
    fn singularity(root: &Path, block: &str, extra: &str) -> Ga {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("ga.sock");
        let log = dir.path().join("agent.log");
        let conf = dir.path().join("conf");
        fs::create_dir(&conf).unwrap();
        fs::write(
            conf.join("singularity.conf"),
            format!(
                "[main]\ncommunicator = qga\n[qga]\nmethod = unix-listen\npath = {}\nblock = {block}\n{extra}",
                socket.display()
            ),
        )
        .unwrap();
        let child = Command::new(bin())
            .arg("-f")
            .arg(&conf)
            .arg("-H")
            .arg(&log)
            .args(["-l", "debug", "--root"])
            .arg(root)
            .args(["daemon", "--nodaemonize", "--pidfile"])
            .arg(dir.path().join("pid"))
            .arg("--run")
            .arg(dir.path().join("run"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Ga::ready(Ga {
            child,
            socket,
            log,
            _dir: dir,
        })
    }

    fn ready(mut ga: Ga) -> Ga {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if UnixStream::connect(&ga.socket).is_ok() {
                return ga;
            }
            if let Ok(Some(status)) = ga.child.try_wait() {
                panic!(
                    "agent exited with {status}: {}",
                    fs::read_to_string(&ga.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} never came up", ga.socket.display());
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        s
    }
}

/// One reply line: whether 0xFF came before it, and its JSON.
#[derive(Debug)]
struct Line {
    delimited: bool,
    json: Value,
}

/// Reads replies until the one to `guest-sync` with `id`; every line must be
/// JSON (a stray byte or a non-JSON line fails).
fn until_sync(stream: &mut UnixStream, id: i64) -> Vec<Line> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = buf.drain(..=end).collect();
            let delimited = raw.first() == Some(&0xFF);
            let text = if delimited {
                &raw[1..raw.len() - 1]
            } else {
                &raw[..raw.len() - 1]
            };
            let json: Value = serde_json::from_slice(text)
                .unwrap_or_else(|e| panic!("not a JSON line: {:?}: {e}", String::from_utf8_lossy(&raw)));
            let done = json == json!({"return": id});
            lines.push(Line { delimited, json });
            if done {
                lines.pop();
                return lines;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no reply to guest-sync {id}; so far {lines:?}"
        );
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk) {
            Ok(0) => panic!("the agent closed the connection; so far {lines:?}"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Sends `script` on a new connection, then a `guest-sync` (after 0xFF, so
/// that it is read whatever state the script left), and returns the replies
/// before the sync's.
fn exchange(ga: &Ga, script: &[u8], id: i64) -> Vec<Line> {
    let mut s = ga.connect();
    s.write_all(script).unwrap();
    let sync = format!("{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{id}}}}}");
    s.write_all(&[0xFF]).unwrap();
    s.write_all(sync.as_bytes()).unwrap();
    let mut lines = until_sync(&mut s, id);
    // The 0xFF added here draws one error of its own, whatever the state.
    let last = lines.pop().expect("the error for 0xFF");
    assert!(
        last.json["error"]["desc"].as_str().is_some_and(|d| d.contains("stray")),
        "{last:?}"
    );
    lines
}

/// The shape of a value: its JSON type, and for objects each member's shape
/// (for arrays, the shapes of their elements, each kind once).
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!("int"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => {
            let mut kinds: Vec<Value> = Vec::new();
            for item in items {
                let s = shape(item);
                if !kinds.contains(&s) {
                    kinds.push(s);
                }
            }
            Value::Array(kinds)
        }
        Value::Object(members) => Value::Object(members.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

/// What must agree between the agents for one reply: the delimiter, the
/// members, the error class; the message too when `exact`.
fn comparable(line: &Line, exact: bool) -> Value {
    let mut v = json!({ "delimited": line.delimited, "shape": shape(&line.json) });
    if let Some(e) = line.json.get("error") {
        v["class"] = e["class"].clone();
        if exact {
            v["desc"] = e["desc"].clone();
        }
    }
    if exact {
        if let Some(r) = line.json.get("return") {
            v["return"] = r.clone();
        }
        if let Some(id) = line.json.get("id") {
            v["id"] = id.clone();
        }
    }
    v
}

/// Request scripts whose replies are fixed by the protocol (messages and
/// values compared exactly).
const EXACT: &[&str] = &[
    r#"{"execute":"guest-ping"}"#,
    r#"{"execute":"guest-ping","id":[1,{"a":"b"}]}{"execute":"guest-ping","id":"x"}"#,
    r#"{"execute":"guest-sync","arguments":{"id":-5}}"#,
    r#"{"execute":"guest-sync-delimited","arguments":{"id":77},"id":"d"}"#,
    r#"{"execute":"guest-sync"}"#,
    r#"{"execute":"guest-sync","arguments":{"id":"x"}}"#,
    r#"{"execute":"guest-sync","arguments":{"id":1.5}}"#,
    r#"{"execute":"guest-sync","arguments":{"id":null}}"#,
    r#"{"execute":"guest-sync","arguments":{"id":18446744073709551615}}"#,
    r#"{"execute":"guest-sync","arguments":{"id":1,"z":2}}"#,
    r#"{"execute":"guest-ping","arguments":{"a":1}}"#,
    r#"{"execute":"nope","id":7}"#,
    r#"{"execute":"guest-get-time"}"#,
    r#"[1]"#,
    r#""str""#,
    r#"{"arguments":{}}"#,
    r#"{"execute":1,"id":7}"#,
    r#"{"execute":"guest-ping","arguments":[]}"#,
    r#"{"execute":"guest-ping","arguments":null}"#,
    r#"{"execute":"guest-ping","exec-oob":1}"#,
    r#"{"execute":"guest-ping","id":7,"zz":1}"#,
    "garbage{\"execute\":\"guest-ping\"}",
    "\u{1}{\"execute\":\"guest-ping\"}",
    "{\"execute\":\"guest-ping\",\"id\":\"a\u{1}b\"}{\"execute\":\"guest-ping\"}",
    "1 {\"execute\":\"guest-ping\"}",
    r#"{"execute":"guest-ping"}} {"execute":"guest-ping"}"#,
    r#"{"execute":"guest-ping","id":x}"#,
    r#"{"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA=="}}"#,
    r#"{"execute":"guest-set-user-password","arguments":{"username":"root","password":1,"crypted":false}}"#,
    r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"root","keys":"k"}}"#,
    r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"root","keys":[1]}}"#,
    r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":"a"}]}}"#,
    r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0}]}}"#,
    r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":[1]}}"#,
    r#"{"execute":"guest-shutdown","arguments":{"mode":7}}"#,
    r#"{"execute":"guest-set-time","arguments":{"time":"now"}}"#,
    r#"{"execute":"guest-fstrim","arguments":{"minimum":"x"}}"#,
];

/// The disabled command in both agents.
const BLOCKED: &str = "guest-get-time";
/// qemu-ga's commands that run programs or touch any file: blocked in the
/// qemu-ga these tests start (it would run them, as root), absent from
/// singularity. Both answer CommandNotFound ("has been disabled" from one,
/// "has not been found" from the other).
const QEMU_GA_ONLY: &str = "guest-exec,guest-exec-status,guest-file-open,guest-file-close,guest-file-read,guest-file-write,guest-file-seek,guest-file-flush";

#[test]
fn protocol_replies_match_qemu_ga() {
    let root = TestRoot::new();
    let ours = Ga::singularity(root.base(), BLOCKED, "");
    let theirs = Ga::qemu_ga(&format!("{BLOCKED},{QEMU_GA_ONLY}"));
    let mut id = 1000;
    for script in EXACT {
        id += 1;
        let a: Vec<Value> = exchange(&ours, script.as_bytes(), id)
            .iter()
            .map(|l| comparable(l, true))
            .collect();
        let b: Vec<Value> = exchange(&theirs, script.as_bytes(), id)
            .iter()
            .map(|l| comparable(l, true))
            .collect();
        assert_eq!(a, b, "script {script:?}");
        assert!(!a.is_empty(), "no reply to {script:?}");
    }
    // What qemu-ga has and singularity never will: the same class.
    for name in QEMU_GA_ONLY.split(',') {
        id += 1;
        let script = format!(r#"{{"execute":"{name}","arguments":{{"path":"/etc/shadow"}},"id":1}}"#);
        let a = exchange(&ours, script.as_bytes(), id);
        let b = exchange(&theirs, script.as_bytes(), id);
        assert_eq!(comparable(&a[0], false), comparable(&b[0], false), "{name}");
        assert_eq!(
            a[0].json["error"]["desc"],
            format!("The command {name} has not been found")
        );
    }
}

#[test]
fn a_half_sent_request_continues_on_the_next_connection_as_with_qemu_ga() {
    let root = TestRoot::new();
    let ours = Ga::singularity(root.base(), BLOCKED, "");
    let theirs = Ga::qemu_ga(&format!("{BLOCKED},{QEMU_GA_ONLY}"));
    for ga in [&ours, &theirs] {
        let mut first = ga.connect();
        first.write_all(br#"{"execute":"guest-pi"#).unwrap();
        drop(first);
        std::thread::sleep(Duration::from_millis(100));
        let mut second = ga.connect();
        second
            .write_all(br#"ng","id":"joined"}{"execute":"guest-sync","arguments":{"id":5}}"#)
            .unwrap();
        let lines = until_sync(&mut second, 5);
        let got: Vec<Value> = lines.iter().map(|l| l.json.clone()).collect();
        assert_eq!(got, [json!({"return": {}, "id": "joined"})]);
    }
}

/// Malformed and oversized requests: each gets an error of qemu-ga's class
/// from both agents, and both still serve afterwards.
#[test]
fn hostile_requests_get_qemu_ga_errors_and_the_agent_keeps_serving() {
    let mut hostile: Vec<Vec<u8>> = vec![
        b"{".repeat(2000),
        b"[".repeat(2000),
        format!("{}{}", "[".repeat(1500), "]".repeat(1500)).into_bytes(),
        {
            let mut big = br#"{"execute":"guest-ping","arguments":{"x":""#.to_vec();
            big.extend(std::iter::repeat_n(b'A', 64 * 1024 * 1024));
            big.extend(br#""}}"#);
            big
        },
        br#"{"execute":"guest-ping","id":"\xc3\x28"}"#.to_vec(),
        b"{\"execute\":\"guest-ping\",\"id\":\"\xff\"}".to_vec(),
        br#"{"execute":"guest-ping","execute":"guest-info"}"#.to_vec(),
        br#"{"execute":"guest-ping","exec-oob":"guest-ping"}"#.to_vec(),
        br#"{"exec-oob":"guest-ping"}"#.to_vec(),
        br#"{"execute":"guest-sync","arguments":{"id":[]}}"#.to_vec(),
        br#"{"execute":"guest-sync","arguments":{"id":{}}}"#.to_vec(),
        br#"{"execute":"guest-sync","arguments":{"id":true}}"#.to_vec(),
        br#"{"execute":"guest-sync","arguments":{"id":"1"}}"#.to_vec(),
        br#"{"execute":"guest-sync","arguments":{"id":1e3}}"#.to_vec(),
        br#"{"execute":"guest-sync","arguments":{"id":-9223372036854775809}}"#.to_vec(),
        br#"{"execute":"guest-sync","arguments":{"ID":1}}"#.to_vec(),
        br#"{"execute":"guest-sync","arguments":"id"}"#.to_vec(),
        br#"{"execute":["guest-ping"]}"#.to_vec(),
        br#"{"execute":null}"#.to_vec(),
        br#"{"execute":""}"#.to_vec(),
        format!(r#"{{"execute":"{}"}}"#, "g".repeat(100_000)).into_bytes(),
        br#"{"execute":"guest-ping\u0000"}"#.to_vec(),
        br#"{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","id"]}}"#.to_vec(),
        br#"{"execute":"guest-exec-status","arguments":{"pid":1}}"#.to_vec(),
        br#"{"execute":"guest-file-read","arguments":{"handle":1}}"#.to_vec(),
        br#"{"execute":"guest-set-user-password","arguments":{"username":1,"password":"eA==","crypted":false}}"#.to_vec(),
        br#"{"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA==","crypted":"no"}}"#.to_vec(),
        br#"{"execute":"guest-set-user-password","arguments":{"username":"root","password":"eA==","crypted":false,"x":1}}"#.to_vec(),
        br#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"root"}}"#.to_vec(),
        br#"{"execute":"guest-set-vcpus","arguments":{"vcpus":{}}}"#.to_vec(),
        br#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":"yes"}]}}"#.to_vec(),
        br#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0,"online":true,"extra":1}]}}"#.to_vec(),
        br#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":"/"}}"#.to_vec(),
        br#"{"execute":"guest-shutdown","arguments":{"mode":["reboot"]}}"#.to_vec(),
        b"}}}}]]]]".to_vec(),
        b"\x00\x00\x00\x00".to_vec(),
        b"\"unterminated".to_vec(),
        b"{\"execute\":\"guest-ping\"\r\n\t}".to_vec(),
        b"nul\x00l".to_vec(),
        b":::,,,".to_vec(),
    ];
    assert_eq!(hostile.len(), 40);
    let root = TestRoot::new();
    let ours = Ga::singularity(root.base(), BLOCKED, "");
    let theirs = Ga::qemu_ga(&format!("{BLOCKED},{QEMU_GA_ONLY}"));
    let classes = |lines: &[Line]| -> Vec<String> {
        let mut c: Vec<String> = lines
            .iter()
            .map(|l| l.json["error"]["class"].as_str().unwrap_or("return").to_string())
            .collect();
        c.dedup();
        c
    };
    let mut unanswered = Vec::new();
    for (i, payload) in hostile.drain(..).enumerate() {
        let id = 5000 + i as i64;
        let a = exchange(&ours, &payload, id);
        let b = exchange(&theirs, &payload, id);
        let shown = String::from_utf8_lossy(&payload[..payload.len().min(80)]).into_owned();
        assert_eq!(classes(&a), classes(&b), "#{i} {shown:?}\nours {a:?}\nqemu-ga {b:?}");
        // A request cut short (an unterminated string) draws its error only
        // from the 0xFF that ends it, which `exchange` takes away.
        if a.is_empty() {
            unanswered.push(shown);
        }
    }
    assert_eq!(unanswered, ["\"unterminated"]);
    // Still serving, and still itself.
    let mut s = ours.connect();
    s.write_all(br#"{"execute":"guest-ping","id":"after"}{"execute":"guest-sync","arguments":{"id":1}}"#)
        .unwrap();
    let lines = until_sync(&mut s, 1);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].json, json!({"return": {}, "id": "after"}));
}
