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
        Ga::singularity_with_run(root, block, extra, None)
    }

    /// The same, its run-time directory `run` (kept across restarts) when given.
    fn singularity_with_run(root: &Path, block: &str, extra: &str, run: Option<&Path>) -> Ga {
        let dir = tempfile::tempdir().unwrap();
        let run = run.map_or_else(|| dir.path().join("run"), Path::to_path_buf);
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
            .arg(&run)
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
    r#"{"execute":"guest-ping","execute":"guest-info"}"#,
    "\u{FE}{\"execute\":\"guest-ping\",\"id\":\"fe\"}",
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

/// Takes every disk's `serial` member out of `v`, in order (`None` for a
/// disk without one).
fn take_serials(v: &mut Value) -> Vec<Option<Value>> {
    let mut out = Vec::new();
    match v {
        Value::Object(members) => {
            if members.contains_key("bus-type") {
                out.push(members.remove("serial"));
            }
            for member in members.values_mut() {
                out.extend(take_serials(member));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| out.extend(take_serials(i))),
        _ => {}
    }
    out
}

/// Held by each test that runs singularity on the live system: one daemon
/// per system (its instance lock), so these tests take turns.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live_system() -> std::sync::MutexGuard<'static, ()> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request on `stream`, and its reply line.
fn ask(stream: &mut UnixStream, request: Value) -> Value {
    stream.write_all(request.to_string().as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while Instant::now() < deadline {
        match stream.read(&mut byte) {
            Ok(0) => panic!("the agent closed the connection"),
            Ok(_) if byte[0] == b'\n' => return serde_json::from_slice(&buf).unwrap(),
            Ok(_) => buf.push(byte[0]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!("no reply to {request}");
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}: {status}");
}

/// A small ext4 filesystem mounted from a loop device; thawed and
/// unmounted on drop, whatever the test left.
struct LoopFs {
    mnt: PathBuf,
}

impl LoopFs {
    fn new(dir: &Path) -> LoopFs {
        let img = dir.join("fs.img");
        fs::File::create(&img).unwrap().set_len(16 << 20).unwrap();
        run("mkfs.ext4", &["-q", "-F", img.to_str().unwrap()]);
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).unwrap();
        run("mount", &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()]);
        LoopFs { mnt }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze")
            .arg("-u")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// Writes `path` in a thread; the receiver gets `()` once the data is on disk.
fn write_in_background(path: PathBuf) -> std::sync::mpsc::Receiver<()> {
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(b"written while frozen\n").unwrap();
        f.sync_all().unwrap();
        let _ = done.send(());
    });
    wait
}

/// `guest-fsfreeze-freeze-list` on a real filesystem (a loop-mounted ext4;
/// only it is listed, so that nothing of this machine freezes): a write
/// waits until the thaw, the hook runs around it, and the frozen state
/// survives a restart of the agent, which meanwhile runs only what qemu-ga
/// runs while frozen.
#[test]
fn a_frozen_filesystem_holds_writes_until_the_thaw_even_across_a_restart() {
    let _live = live_system();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: freezing a filesystem needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let loopfs = LoopFs::new(dir.path());
    let mnt = loopfs.mnt.to_str().unwrap().to_string();
    let run_dir = dir.path().join("run");
    let hooks = dir.path().join("hooks");
    fs::create_dir(&hooks).unwrap();
    let hook_log = dir.path().join("hook.log");
    let hook = hooks.join("10-log");
    fs::write(&hook, format!("#!/bin/sh\necho \"$1\" >> {}\n", hook_log.display())).unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let extra = format!("fsfreeze_hook = {}\n", hooks.display());

    let agent = Ga::singularity_with_run(Path::new("/"), "", &extra, Some(&run_dir));
    let mut s = agent.connect();
    let none = ask(
        &mut s,
        json!({"execute": "guest-fsfreeze-freeze-list", "arguments": {"mountpoints": ["/no/such/mount"]}}),
    );
    assert_eq!(none, json!({"return": 0}));
    let frozen = ask(
        &mut s,
        json!({"execute": "guest-fsfreeze-freeze-list", "arguments": {"mountpoints": [mnt]}}),
    );
    assert_eq!(frozen, json!({"return": 1}));
    assert_eq!(
        ask(&mut s, json!({"execute": "guest-fsfreeze-status"})),
        json!({"return": "frozen"})
    );
    let written = write_in_background(loopfs.mnt.join("file"));
    assert!(
        written.recv_timeout(Duration::from_secs(1)).is_err(),
        "a write went through to a frozen filesystem"
    );
    // Frozen: only what qemu-ga allows then.
    let refused = ask(&mut s, json!({"execute": "guest-get-osinfo"}));
    assert_eq!(
        refused["error"]["desc"],
        "Command guest-get-osinfo has been disabled: the agent is in frozen state"
    );
    assert_eq!(
        ask(&mut s, json!({"execute": "guest-fsfreeze-freeze"}))["error"]["class"],
        "CommandNotFound"
    );

    // The agent goes away and comes back: still frozen.
    drop(s);
    drop(agent);
    let agent = Ga::singularity_with_run(Path::new("/"), "", &extra, Some(&run_dir));
    let mut s = agent.connect();
    assert_eq!(
        ask(&mut s, json!({"execute": "guest-fsfreeze-status"})),
        json!({"return": "frozen"})
    );
    assert_eq!(ask(&mut s, json!({"execute": "guest-ping"})), json!({"return": {}}));
    let info = ask(&mut s, json!({"execute": "guest-info"}));
    let enabled = |name: &str| {
        info["return"]["supported_commands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["enabled"]
            .clone()
    };
    assert_eq!(enabled("guest-fsfreeze-thaw"), json!(true));
    assert_eq!(enabled("guest-set-user-password"), json!(false));
    assert!(written.try_recv().is_err(), "the write waits");

    assert_eq!(
        ask(&mut s, json!({"execute": "guest-fsfreeze-thaw"})),
        json!({"return": 1})
    );
    written
        .recv_timeout(Duration::from_secs(10))
        .expect("the write goes through after the thaw");
    assert_eq!(
        ask(&mut s, json!({"execute": "guest-fsfreeze-status"})),
        json!({"return": "thawed"})
    );
    assert_eq!(
        ask(&mut s, json!({"execute": "guest-fsfreeze-thaw"})),
        json!({"return": 0})
    );
    assert!(!run_dir.join("qga-frozen").exists());
    assert_eq!(
        fs::read_to_string(&hook_log).unwrap(),
        "freeze\nthaw\nfreeze\nthaw\nthaw\n",
        "each thaw runs the hook, as with qemu-ga"
    );

    // A clean stop while frozen thaws (qemu-ga 7.2 ignores SIGTERM then).
    let frozen = ask(
        &mut s,
        json!({"execute": "guest-fsfreeze-freeze-list", "arguments": {"mountpoints": [mnt]}}),
    );
    assert_eq!(frozen, json!({"return": 1}));
    let written = write_in_background(loopfs.mnt.join("second"));
    assert!(written.recv_timeout(Duration::from_millis(500)).is_err(), "frozen");
    let mut agent = agent;
    // SAFETY: kill with a child's pid and a valid signal.
    assert_eq!(unsafe { libc::kill(agent.child.id() as i32, libc::SIGTERM) }, 0);
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "{status}");
    written
        .recv_timeout(Duration::from_secs(10))
        .expect("thawed at the stop");
    assert!(!run_dir.join("qga-frozen").exists());
}

/// The commands that only read: both agents run on this machine's live
/// system (singularity allowed nothing else), and their answers must agree
/// in shape everywhere, and in value where the facts are the same for both.
#[test]
fn read_only_commands_describe_this_machine_as_qemu_ga_does() {
    let _live = live_system();
    let read_only = [
        "guest-get-osinfo",
        "guest-get-host-name",
        "guest-get-timezone",
        "guest-get-users",
        "guest-get-time",
        "guest-get-vcpus",
        "guest-network-get-interfaces",
        "guest-get-fsinfo",
        "guest-get-disks",
    ];
    let allow = format!("allow = guest-sync,guest-ping,guest-info,{}\n", read_only.join(","));
    let ours = Ga::singularity(Path::new("/"), "", &allow);
    let theirs = Ga::qemu_ga(QEMU_GA_ONLY);
    let (mut a, mut b) = (ours.connect(), theirs.connect());
    for name in read_only {
        let request = json!({ "execute": name });
        let (mut mine, mut qemu) = (ask(&mut a, request.clone()), ask(&mut b, request));
        assert!(qemu.get("return").is_some(), "{name}: qemu-ga answered {qemu}");
        // A disk's serial: singularity reads sysfs, qemu-ga asks udev's
        // database, which a machine may lack; compared where both have it.
        for (x, y) in take_serials(&mut mine).into_iter().zip(take_serials(&mut qemu)) {
            if y.is_some() {
                assert_eq!(x, y, "{name}: a disk's serial");
            }
        }
        assert_eq!(shape(&mine), shape(&qemu), "{name}:\n ours {mine}\n qemu-ga {qemu}");
        let same_value = match name {
            "guest-get-time" => {
                let (x, y) = (mine["return"].as_i64().unwrap(), qemu["return"].as_i64().unwrap());
                assert!((x - y).abs() < 5_000_000_000, "{name}: {x} vs {y}");
                false
            }
            // Sessions and byte counters move between the two questions.
            "guest-get-users" | "guest-network-get-interfaces" | "guest-get-fsinfo" => false,
            _ => true,
        };
        if same_value {
            assert_eq!(mine, qemu, "{name}");
        }
    }
    let names = |v: &Value, key: &str| -> Vec<Value> {
        let mut n: Vec<Value> = v["return"].as_array().unwrap().iter().map(|i| i[key].clone()).collect();
        n.sort_by_key(|x| x.to_string());
        n
    };
    let interfaces = json!({"execute": "guest-network-get-interfaces"});
    let (mine, qemu) = (ask(&mut a, interfaces.clone()), ask(&mut b, interfaces));
    assert_eq!(names(&mine, "name"), names(&qemu, "name"));
    let addresses = |v: &Value| -> Vec<Value> {
        let mut all: Vec<Value> = v["return"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| json!([i["name"], i["hardware-address"], i["ip-addresses"]]))
            .collect();
        all.sort_by_key(|x| x.to_string());
        all
    };
    assert_eq!(addresses(&mine), addresses(&qemu));
    let fsinfo = json!({"execute": "guest-get-fsinfo"});
    let (mine, qemu) = (ask(&mut a, fsinfo.clone()), ask(&mut b, fsinfo));
    assert_eq!(names(&mine, "mountpoint"), names(&qemu, "mountpoint"));
}

/// A slow command (a freeze hook that takes 3 s) does not hold up
/// `guest-sync`: its reply comes at once. The slow command still runs, but
/// its reply is dropped: a client that resynchronised gave up on it and
/// takes what follows the sync's reply as the answer to what it asks next.
/// A `guest-ping` sent while the worker is busy keeps its place in line.
#[test]
fn guest_sync_overtakes_a_slow_command_whose_reply_is_then_dropped() {
    let _live = live_system();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the freeze hook must be root's");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("slow-hook");
    let ran = dir.path().join("ran");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$1\" >> {}\n[ \"$1\" = freeze ] && sleep 3\nexit 0\n",
            ran.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let extra = format!("fsfreeze_hook = {}\n", hook.display());
    // Only a mount that does not exist is named: nothing freezes.
    let agent = Ga::singularity_with_run(Path::new("/"), "", &extra, Some(&dir.path().join("run")));
    let mut s = agent.connect();
    let slow =
        br#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/no/such/mount"]},"id":"slow"}"#;
    // In order behind it: a ping, then (after the sync) a host name.
    s.write_all(slow).unwrap();
    s.write_all(br#"{"execute":"guest-ping","id":"ping"}"#).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let sync = ask(&mut s, json!({"execute": "guest-sync", "arguments": {"id": 7}}));
    assert_eq!(sync, json!({"return": 7}), "guest-sync first");
    let after = ask(&mut s, json!({"execute": "guest-get-host-name", "id": "after"}));
    assert_eq!(
        after["id"], "after",
        "the slow reply and the ping's are dropped: {after}"
    );
    assert!(after["return"]["host-name"].is_string(), "{after}");
    assert_eq!(
        fs::read_to_string(&ran).unwrap(),
        "freeze\nthaw\n",
        "the slow command ran"
    );

    // Without a sync in between, a ping waits for the slow command.
    s.write_all(slow).unwrap();
    let ping = ask(&mut s, json!({"execute": "guest-ping", "id": "ping"}));
    assert_eq!(ping, json!({"return": 0, "id": "slow"}), "the slow reply first");
    let mut rest = Vec::new();
    let mut byte = [0u8; 1];
    while s.read(&mut byte).map(|n| n == 1 && byte[0] != b'\n').unwrap_or(false) {
        rest.push(byte[0]);
    }
    assert_eq!(
        serde_json::from_slice::<Value>(&rest).unwrap(),
        json!({"return": {}, "id": "ping"})
    );
}

/// SIGHUP re-reads the configuration: what is blocked changes without a
/// restart, and `guest-info` says so.
#[test]
fn a_reload_changes_which_commands_run() {
    let root = TestRoot::new();
    let agent = Ga::singularity(root.base(), "guest-get-osinfo", "");
    let mut s = agent.connect();
    let osinfo = json!({"execute": "guest-get-osinfo"});
    assert_eq!(
        ask(&mut s, osinfo.clone())["error"]["desc"],
        "Command guest-get-osinfo has been disabled"
    );
    let conf = agent._dir.path().join("conf/singularity.conf");
    let text = fs::read_to_string(&conf).unwrap();
    fs::write(
        &conf,
        text.replace("block = guest-get-osinfo", "block = guest-get-host-name"),
    )
    .unwrap();
    // SAFETY: kill with a child's pid and a valid signal.
    assert_eq!(unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = ask(&mut s, osinfo.clone());
        if reply.get("return").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after the reload: {reply}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        ask(&mut s, json!({"execute": "guest-get-host-name"}))["error"]["desc"],
        "Command guest-get-host-name has been disabled"
    );
}

/// `method = isa-serial` on a terminal (a pseudo-terminal standing in for
/// the guest's serial port): raw bytes both ways, resynchronisation, and
/// the port kept while the host end is silent.
#[test]
fn isa_serial_serves_a_terminal() {
    let (mut master, slave_path) = pty();
    let dir = tempfile::tempdir().unwrap();
    let root = TestRoot::new();
    let conf = dir.path().join("conf");
    fs::create_dir(&conf).unwrap();
    fs::write(
        conf.join("singularity.conf"),
        format!("[main]\ncommunicator = qga\n[qga]\nmethod = isa-serial\npath = {slave_path}\n"),
    )
    .unwrap();
    let log = dir.path().join("agent.log");
    let mut child = Command::new(bin())
        .arg("-f")
        .arg(&conf)
        .arg("-H")
        .arg(&log)
        .args(["-l", "debug", "--root"])
        .arg(root.base())
        .args(["daemon", "--nodaemonize", "--pidfile"])
        .arg(dir.path().join("pid"))
        .arg("--run")
        .arg(dir.path().join("run"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let killer = KillOnDrop(&mut child);
    // Until the agent has the port: a sync after 0xFF, again and again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut id = 100;
    loop {
        id += 1;
        master
            .write_all(
                format!("\u{1}{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{id}}}}}").as_bytes(),
            )
            .unwrap();
        let got = read_pty(&mut master, Duration::from_millis(500));
        if let Some(at) = got.windows(1).position(|w| w[0] == 0xFF) {
            let line = String::from_utf8_lossy(&got[at + 1..]).into_owned();
            if line.contains(&format!("\"return\":{id}")) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no answer on {slave_path}: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }
    // Garbage, then a request split across writes, then a ping.
    master.write_all(b"\xFE}garbage{{").unwrap();
    master.write_all(&[0xFF]).unwrap();
    master.write_all(br#"{"execute":"guest-pi"#).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(br#"ng","id":"serial"}"#).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(r#""id":"serial""#) {
        assert!(
            Instant::now() < deadline,
            "no ping reply: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend(read_pty(&mut master, Duration::from_millis(200)));
    }
    let text = String::from_utf8_lossy(&got);
    let last = text.lines().rfind(|l| l.contains("serial")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(last).unwrap(),
        json!({"return": {}, "id": "serial"})
    );
    drop(killer);
}

struct KillOnDrop<'a>(&'a mut Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A pseudo-terminal: its master end, and the path of its slave end, set
/// raw (as a serial port the guest's getty does not use).
fn pty() -> (fs::File, String) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills the two descriptors; the pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: termios is plain data filled by tcgetattr; `slave` is open.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave, &mut t), 0);
        libc::cfmakeraw(&mut t);
        assert_eq!(libc::tcsetattr(slave, libc::TCSANOW, &t), 0);
    }
    let path = fs::read_link(format!("/proc/self/fd/{slave}")).unwrap();
    // The slave stays open for the test's life, so that the master never
    // sees a hang-up while the agent (re)opens its end. Leaked on purpose.
    // SAFETY: `master` is a new descriptor owned by nothing else.
    (
        unsafe { fs::File::from_raw_fd(master) },
        path.to_string_lossy().into_owned(),
    )
}

/// What the master end has to read within `wait`.
fn read_pty(master: &mut fs::File, wait: Duration) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if n <= 0 {
            return out;
        }
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => return out,
        }
    }
}

/// Keys added through the QEMU guest agent are cached as an injected file
/// is on Xen, and `singularity apply` puts them back, the user's again.
#[test]
fn keys_added_through_qga_are_restored_by_apply() {
    use std::os::unix::fs::MetadataExt;
    let root = TestRoot::new();
    root.write(
        "/etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nalice:x:4242:4343:Alice:/home/alice:/bin/sh\n",
        0o644,
    );
    root.write(
        "/etc/shadow",
        b"root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n",
        0o640,
    );
    fs::create_dir_all(root.path("/home/alice")).unwrap();
    {
        let agent = Ga::singularity(root.base(), "", "");
        let mut s = agent.connect();
        let add = json!({"execute": "guest-ssh-add-authorized-keys",
            "arguments": {"username": "alice", "keys": ["ssh-ed25519 AAAAC3Nza alice@laptop"]}});
        assert_eq!(ask(&mut s, add), json!({"return": {}}));
    }
    let keys = "/home/alice/.ssh/authorized_keys";
    assert_eq!(root.read(keys), b"ssh-ed25519 AAAAC3Nza alice@laptop\n");
    fs::remove_file(root.path(keys)).unwrap();
    let conf = tempfile::tempdir().unwrap();
    fs::write(conf.path().join("singularity.conf"), "").unwrap();
    let apply = || {
        Command::new(bin())
            .arg("-f")
            .arg(conf.path())
            .args(["-H", "-", "--root"])
            .arg(root.base())
            .args(["apply", "file"])
            .output()
            .unwrap()
    };
    let out = apply();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "file: restored\n");
    assert_eq!(root.read(keys), b"ssh-ed25519 AAAAC3Nza alice@laptop\n");
    assert_eq!(root.mode(keys), 0o600);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let meta = fs::metadata(root.path(keys)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "alice's again");
    }

    // Alice points her ~/.ssh at root's: the restore stays in her home.
    root.write("/root/.ssh/authorized_keys", b"root's key\n", 0o600);
    fs::remove_dir_all(root.path("/home/alice/.ssh")).unwrap();
    std::os::unix::fs::symlink("/root/.ssh", root.path("/home/alice/.ssh")).unwrap();
    let out = apply();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outside the allowed paths"), "{err}");
    assert_eq!(root.read("/root/.ssh/authorized_keys"), b"root's key\n");
}
