//! The daemon's life cycle through the real binary: start (detached, pid file
//! under flock), a second start refused, a stale pid file taken over, status
//! (0 or 3), reload by SIGHUP with a good and a bad configuration, restart,
//! stop.

use crate::harness::{bin, TestRoot};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Daemon {
    dir: tempfile::TempDir,
    root: TestRoot,
}

impl Daemon {
    fn new() -> Daemon {
        let d = Daemon {
            dir: tempfile::tempdir().unwrap(),
            root: TestRoot::new(),
        };
        std::fs::create_dir_all(d.dir.path().join("conf")).unwrap();
        d.config("");
        d
    }

    fn config(&self, body: &str) {
        std::fs::write(self.dir.path().join("conf/singularity.conf"), body).unwrap();
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("run/singularity.pid")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn run(&self, action: &str) -> Output {
        Command::new(bin())
            .arg("-f")
            .arg(self.dir.path().join("conf"))
            .arg("-H")
            .arg(self.dir.path().join("agent.log"))
            .args(["-l", "info", "--root"])
            .arg(self.root.base())
            .args(["daemon", action, "--communicator", "socket", "--socket"])
            .arg(self.socket())
            .arg("--pidfile")
            .arg(self.pidfile())
            .arg("--run")
            .arg(self.dir.path().join("run"))
            .output()
            .unwrap()
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pidfile()).ok()?.trim().parse().ok()
    }

    fn call(&self, request: serde_json::Value) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match UnixStream::connect(self.socket()) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("agent socket: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (&stream).write_all(format!("{request}\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        (
            v["returncode"].as_str().unwrap().into(),
            v["message"].as_str().unwrap().into(),
        )
    }

    fn features(&self) -> String {
        self.call(json!({"name": "features", "value": ""})).1
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) of a daemon this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` exists and is not a zombie (the detached daemon is reaped
/// by whatever adopts it, maybe late).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit(") ").next().and_then(|rest| rest.chars().next());
    state != Some('Z')
}

#[test]
fn start_status_second_start_stop() {
    let d = Daemon::new();
    let out = d.run("status");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(text(&out).trim(), "singularity is not running");

    let out = d.run("start");
    assert!(out.status.success(), "{}", text(&out));
    let pid = d.pid().expect("pid file written");
    assert_ne!(pid as u32, std::process::id());
    assert_eq!(d.call(json!({"name": "version", "value": "agent"})).0, "0");

    let out = d.run("status");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out).trim(), format!("singularity is running (pid {pid})"));

    let out = d.run("start");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(&format!("singularity is already running (pid {pid}")),
        "{}",
        text(&out)
    );
    assert!(alive(pid));

    let out = d.run("stop");
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(pid));
    assert!(!d.pidfile().exists(), "pid file removed");
    assert_eq!(d.run("status").status.code(), Some(3));
    assert!(d.run("stop").status.success(), "stopping a stopped daemon is fine");
}

#[test]
fn stale_pidfile_is_taken_over() {
    let d = Daemon::new();
    std::fs::create_dir_all(d.pidfile().parent().unwrap()).unwrap();
    std::fs::write(d.pidfile(), "999999\n").unwrap();
    assert_eq!(d.run("status").status.code(), Some(3));
    let out = d.run("start");
    assert!(out.status.success(), "{}", text(&out));
    let pid = d.pid().unwrap();
    assert_ne!(pid, 999999);
    assert!(alive(pid));
    assert!(d.run("stop").status.success());
}

#[test]
fn reload_applies_a_good_config_and_keeps_the_old_one_on_error() {
    let d = Daemon::new();
    assert!(d.run("start").status.success());
    let pid = d.pid().unwrap();
    assert_eq!(
        d.features(),
        "version,features,keyinit,password,injectfile,file_inject,resetnetwork,agentupdate"
    );

    d.config("[main]\nfunctions = version,features,file\n");
    assert!(d.run("reload").status.success());
    wait_for(
        || d.features() == "version,features,injectfile,file_inject",
        "reloaded functions",
    );

    // `reload` checks the file first and refuses to signal with a bad one...
    d.config("[main]\nfunctions = version,features,no/such\n");
    let out = d.run("reload");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("singularity.conf:2: bad value 'version,features,no/such' for 'functions' in [main]"),
        "{}",
        text(&out)
    );
    // ...and a SIGHUP that arrives anyway keeps the old configuration.
    // SAFETY: kill(2) of the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for(
        || d.log().contains("configuration not reloaded"),
        "reload error in the log",
    );
    assert!(
        d.log()
            .contains("singularity.conf:2: bad value 'version,features,no/such' for 'functions' in [main]"),
        "{}",
        d.log()
    );
    assert_eq!(
        d.features(),
        "version,features,injectfile,file_inject",
        "old config kept"
    );
    assert_eq!(d.pid(), Some(pid), "same process throughout");

    d.config("[main]\nfunctions = version,features\n");
    let out = d.run("restart");
    assert!(out.status.success(), "{}", text(&out));
    let new_pid = d.pid().unwrap();
    assert_ne!(new_pid, pid);
    assert!(!alive(pid));
    assert_eq!(d.features(), "version,features");
    assert!(d.run("stop").status.success());
}

#[test]
fn reload_when_not_running_starts_the_daemon() {
    let d = Daemon::new();
    let out = d.run("reload");
    assert!(out.status.success(), "{}", text(&out));
    assert!(d.pid().is_some_and(alive));
    assert!(d.run("stop").status.success());
}

#[test]
fn bad_config_at_start_is_an_error_naming_file_and_line() {
    let d = Daemon::new();
    d.config("[main]\nbackup = perhaps\n");
    let out = d.run("start");
    assert_eq!(out.status.code(), Some(1));
    let conf = d.dir.path().join("conf/singularity.conf");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "singularity: {}:2: bad value 'perhaps' for 'backup' in [main]: expected true or false",
            conf.display()
        )
    );
    assert!(!Path::new(&d.pidfile()).exists());
}

/// Runs `daemon --nodaemonize` with extra arguments and environment.
fn foreground(d: &Daemon, extra: &[&str], env: &[(&str, &Path)]) -> std::process::Child {
    let mut cmd = Command::new(bin());
    cmd.arg("-f")
        .arg(d.dir.path().join("conf"))
        .arg("-H")
        .arg(d.dir.path().join("agent.log"))
        .args(["-l", "info", "--root"])
        .arg(d.root.base())
        .args(["daemon", "--nodaemonize", "--communicator", "socket", "--socket"])
        .arg(d.socket())
        .arg("--pidfile")
        .arg(d.pidfile())
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

#[test]
fn systemd_notifications_around_start_reload_and_stop() {
    let d = Daemon::new();
    let notify_path = d.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut child = foreground(&d, &[], &[("NOTIFY_SOCKET", &notify_path)]);
    let next = || {
        let mut buf = [0u8; 256];
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1");
    assert_eq!(d.call(json!({"name": "version", "value": ""})).0, "0");
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(next(), "STOPPING=1");
    assert!(child.wait().unwrap().success());
    assert!(!d.pidfile().exists());
}

#[test]
fn privileges_are_dropped_after_connecting() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this test switches users and needs root");
    }
    let d = Daemon::new();
    let mut child = foreground(&d, &["-u", "nobody", "-g", "nogroup"], &[]);
    assert_eq!(d.call(json!({"name": "version", "value": ""})).0, "0");
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(field("Uid:"), "65534");
    assert_eq!(field("Gid:"), "65534");
    // nobody may not remove the pid file from root's directory: it empties it.
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read_to_string(d.pidfile()).unwrap(), "");
    assert!(
        text(&d.run("status")).contains("not running"),
        "{}",
        text(&d.run("status"))
    );
}

/// Context switches of each thread of `pid` (by thread id): each time one
/// of them slept after running, or was preempted.
fn context_switches(pid: u32) -> std::collections::HashMap<String, u64> {
    let mut out = std::collections::HashMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .filter_map(|line| {
                line.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .map(|n| n.trim().parse::<u64>().unwrap())
            .sum();
        out.insert(task.file_name().to_string_lossy().into_owned(), switches);
    }
    out
}

#[test]
fn idle_daemon_sleeps_until_a_request_or_a_signal() {
    let d = Daemon::new();
    let mut child = foreground(&d, &[], &[]);
    let pid = child.id();
    assert_eq!(d.call(json!({"name": "version", "value": ""})).0, "0");
    // Once start-up and the release of idle memory (2 s after the last
    // request) are over, a whole second passes without any thread running.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = context_switches(pid);
        std::thread::sleep(Duration::from_secs(1));
        // Threads that ended meanwhile are not counted; new ones count whole.
        let woke: u64 = context_switches(pid)
            .iter()
            .map(|(tid, n)| n - before.get(tid).copied().unwrap_or(0))
            .sum();
        if woke == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle daemon still wakes up ({woke} times a second)"
        );
    }
    // Signals still reach the sleeping daemon at once.
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    wait_for(|| d.log().contains("configuration reloaded"), "the reload");
    assert_eq!(d.call(json!({"name": "version", "value": ""})).0, "0");
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let stopped = Instant::now();
    assert!(child.wait().unwrap().success());
    assert!(stopped.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_second_daemon_with_another_pid_file_is_refused() {
    let d = Daemon::new();
    let out = d.run("start");
    assert!(out.status.success(), "{}", text(&out));
    let pid = d.pid().unwrap();
    // Same system (root), its own pid file and socket.
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("-f")
        .arg(d.dir.path().join("conf"))
        .args(["-H", "-", "--root"])
        .arg(d.root.base())
        .args(["daemon", "start", "--communicator", "socket", "--socket"])
        .arg(other.path().join("agent.sock"))
        .arg("--pidfile")
        .arg(other.path().join("other.pid"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lock = d.root.base().join("run/singularity.lock");
    assert!(
        text(&out).contains(&format!(
            "singularity is already running (pid {pid}, instance lock {}): one daemon per system",
            lock.display()
        )),
        "{}",
        text(&out)
    );
    assert!(!other.path().join("agent.sock").exists());
    assert!(alive(pid));
    assert!(d.run("stop").status.success());
}

#[test]
fn stop_does_not_signal_a_process_that_merely_locked_the_pid_file() {
    let d = Daemon::new();
    let mut victim = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::create_dir_all(d.pidfile().parent().unwrap()).unwrap();
    std::fs::write(d.pidfile(), format!("{}\n", victim.id())).unwrap();
    // Someone else holds the pid file's lock (here: this test process).
    let held = std::fs::File::open(d.pidfile()).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this test owns.
    let rc = unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(rc, 0);
    for action in ["stop", "restart", "reload"] {
        let out = d.run(action);
        assert_eq!(out.status.code(), Some(1), "{action}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("pid {} from {} runs ", victim.id(), d.pidfile().display()))
                && text(&out).contains("not singularity; not signalling it"),
            "{action}: {}",
            text(&out)
        );
        assert!(matches!(victim.try_wait(), Ok(None)), "{action} killed the process");
    }
    drop(held);
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn a_fifo_or_dev_zero_as_configuration_is_refused_at_once() {
    let d = Daemon::new();
    let conf = d.dir.path().join("conf/singularity.conf");
    std::fs::remove_file(&conf).unwrap();
    let c_path = std::ffi::CString::new(conf.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    for _ in 0..2 {
        let mut child = Command::new(bin())
            .arg("-f")
            .arg(d.dir.path().join("conf"))
            .args(["-H", "-", "--root"])
            .arg(d.root.base())
            .args(["daemon", "start", "--communicator", "socket", "--socket"])
            .arg(d.socket())
            .arg("--pidfile")
            .arg(d.pidfile())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("start blocked on {}", conf.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains(&format!("cannot read {}: not a regular file", conf.display())),
            "{}",
            text(&out)
        );
        // Then a link to /dev/zero.
        std::fs::remove_file(&conf).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &conf).unwrap();
    }
    assert!(d.pid().is_none());
}
