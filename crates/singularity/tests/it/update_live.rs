//! `agentupdate` on the live root (in a private mount namespace with its own
//! /run): the daemon re-executes the new build in place, and the previous
//! build comes back when the new one exits at start or never serves.

use crate::harness::{bin, in_mount_namespace, mount_tmpfs, rerun_in_mount_namespace};
use crate::update::{md5, stand_in, update, Route, Server, VERSION};
use serde_json::json;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Re-runs the named test in a private mount namespace with tmpfs on /run
/// (the instance lock is /run/singularity.lock on the live root); true in
/// the copy that runs there.
fn in_namespace(name: &str) -> bool {
    if in_mount_namespace() {
        mount_tmpfs("/run");
        return true;
    }
    rerun_in_mount_namespace(name);
    false
}

/// A daemon on the live root started from `exe` (its own copy of the agent),
/// with the socket communicator and everything else in `dir`.
struct LiveAgent {
    child: std::process::Child,
    dir: PathBuf,
}

impl LiveAgent {
    fn start(exe: &Path, dir: &Path, config: &str) -> LiveAgent {
        let agent = LiveAgent::spawn(exe, dir, config, &dir.join("agent.sock"));
        agent.wait_version(VERSION);
        agent
    }

    /// Starts the agent on `socket` without waiting for it to serve.
    fn spawn(exe: &Path, dir: &Path, config: &str, socket: &Path) -> LiveAgent {
        fs::create_dir_all(dir.join("conf")).unwrap();
        fs::write(dir.join("conf/singularity.conf"), config).unwrap();
        let child = Command::new(exe)
            .arg("-f")
            .arg(dir.join("conf"))
            .arg("-H")
            .arg(dir.join("agent.log"))
            .args(["-l", "debug", "-c"])
            .arg(dir.join("cache"))
            .args(["daemon", "--nodaemonize", "--communicator", "socket", "--socket"])
            .arg(socket)
            .arg("--pidfile")
            .arg(dir.join("agent.pid"))
            .arg("--run")
            .arg(dir.join("run"))
            .env_remove("INVOCATION_ID")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .spawn()
            .expect("start the agent");
        LiveAgent {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn call(&self, request: serde_json::Value) -> Option<(String, String)> {
        let stream = std::os::unix::net::UnixStream::connect(self.dir.join("agent.sock")).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        (&stream).write_all(&line).ok()?;
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).ok()?;
        let v: serde_json::Value = serde_json::from_str(&reply).ok()?;
        Some((
            v["returncode"].as_str()?.to_string(),
            v["message"].as_str()?.to_string(),
        ))
    }

    /// Waits until an agent answers `version` with `want`.
    fn wait_version(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Some((rc, v)) = self.call(json!({"name": "version", "value": "agent"})) {
                if rc == "0" && v == want {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no agent answered version {want}; log:\n{}", self.log());
    }

    fn pid_file(&self) -> u32 {
        fs::read_to_string(self.dir.join("agent.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for LiveAgent {
    fn drop(&mut self) {
        let pid = self.pid_file();
        if pid != 0 && pid != self.child.id() {
            // SAFETY: the restarted agent of this test.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The old build in `dir/sbin/singularity` (a copy of the agent under test).
fn install_old(dir: &Path) -> PathBuf {
    let sbin = dir.join("sbin");
    fs::create_dir_all(&sbin).unwrap();
    let exe = sbin.join("singularity");
    fs::copy(bin(), &exe).unwrap();
    exe
}

#[test]
fn on_the_live_root_the_new_build_runs_in_the_same_process() {
    const NAME: &str = "update_live::on_the_live_root_the_new_build_runs_in_the_same_process";
    if !in_namespace(NAME) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = install_old(dir.path());
    let old = fs::read(&exe).unwrap();
    // The new build reports 9.9.9 and, as a daemon, hands over to a copy of
    // the agent under test (the same pid all along).
    let real = dir.path().join("real-singularity");
    fs::copy(bin(), &real).unwrap();
    let new = stand_in(dir.path(), "new", "9.9.9", 0, Some(real.to_str().unwrap()));
    let srv = Server::start();
    let url = srv.at("/new", Route::Body(new.clone()));
    let config = format!("[update]\ntarget = {}\n", exe.display());
    let mut agent = LiveAgent::start(&exe, dir.path(), &config);
    let pid = agent.child.id();
    assert_eq!(
        agent.call(update(&url, &md5(&new))),
        Some(("0".to_string(), "updated to 9.9.9; restarting".to_string()))
    );
    // The copy serves again, in the same process, and cleared the marker.
    agent.wait_version(VERSION);
    let marker = PathBuf::from(format!("{}.pending", exe.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!marker.exists(), "the marker stayed; log:\n{}", agent.log());
    assert_eq!(agent.child.try_wait().unwrap(), None, "the agent process exited");
    assert_eq!(agent.pid_file(), pid);
    assert_eq!(fs::read(&exe).unwrap(), new);
    assert_eq!(fs::read(format!("{}.previous", exe.display())).unwrap(), old);
    assert!(agent.log().contains("update complete"), "{}", agent.log());
    // The watcher went its own way: no zombie left in the agent's process.
    std::thread::sleep(Duration::from_millis(300));
    let zombies: Vec<String> = fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map_or("", |(_, r)| r)
                .split_whitespace()
                .collect();
            fields.first() == Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str())
        })
        .collect();
    assert!(zombies.is_empty(), "{zombies:?}");
}

#[test]
fn a_new_build_that_exits_at_start_is_rolled_back_and_the_previous_one_runs_again() {
    const NAME: &str = "update_live::a_new_build_that_exits_at_start_is_rolled_back_and_the_previous_one_runs_again";
    if !in_namespace(NAME) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = install_old(dir.path());
    let old = fs::read(&exe).unwrap();
    let broken = stand_in(dir.path(), "broken", "9.9.9", 0, None);
    let srv = Server::start();
    let url = srv.at("/broken", Route::Body(broken.clone()));
    let config = format!("[update]\ntarget = {}\n", exe.display());
    let mut agent = LiveAgent::start(&exe, dir.path(), &config);
    let pid = agent.child.id();
    assert_eq!(
        agent.call(update(&url, &md5(&broken))),
        Some(("0".to_string(), "updated to 9.9.9; restarting".to_string()))
    );
    // The stand-in exits 1 in the agent's process.
    let status = agent.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    // The watcher puts the previous build back and starts it.
    agent.wait_version(VERSION);
    assert_eq!(fs::read(&exe).unwrap(), old);
    assert!(!Path::new(&format!("{}.previous", exe.display())).exists());
    assert!(!Path::new(&format!("{}.pending", exe.display())).exists());
    let restarted = agent.pid_file();
    assert!(restarted != 0 && restarted != pid, "pid file {restarted}");
}

#[test]
fn a_new_build_that_never_serves_is_killed_after_30_s_and_rolled_back() {
    const NAME: &str = "update_live::a_new_build_that_never_serves_is_killed_after_30_s_and_rolled_back";
    if !in_namespace(NAME) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = install_old(dir.path());
    let old = fs::read(&exe).unwrap();
    let stuck = stand_in(dir.path(), "stuck", "9.9.9", 0, Some("hang"));
    let srv = Server::start();
    let url = srv.at("/stuck", Route::Body(stuck.clone()));
    let config = format!("[update]\ntarget = {}\n", exe.display());
    let mut agent = LiveAgent::start(&exe, dir.path(), &config);
    let started = Instant::now();
    assert_eq!(
        agent.call(update(&url, &md5(&stuck))),
        Some(("0".to_string(), "updated to 9.9.9; restarting".to_string()))
    );
    // Killed by the watcher once 30 s have passed without the marker cleared.
    let status = agent.child.wait().unwrap();
    assert!(started.elapsed() >= Duration::from_secs(29), "{:?}", started.elapsed());
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    agent.wait_version(VERSION);
    assert_eq!(fs::read(&exe).unwrap(), old);
    assert!(!Path::new(&format!("{}.pending", exe.display())).exists());
}

/// An update whose new build had not come back when the machine went down:
/// `dir/sbin/singularity` is the new build (the agent under test), its
/// `.previous` a copy with other bytes, and the marker is dated before the
/// boot. Returns the new build's path and the previous build's bytes.
fn interrupted_update(dir: &Path) -> (PathBuf, Vec<u8>) {
    let exe = install_old(dir);
    let mut previous = fs::read(&exe).unwrap();
    previous.extend_from_slice(b"\0the previous build");
    let previous_path = PathBuf::from(format!("{}.previous", exe.display()));
    fs::write(&previous_path, &previous).unwrap();
    fs::set_permissions(&previous_path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let marker = fs::File::create(format!("{}.pending", exe.display())).unwrap();
    marker
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1))
        .unwrap();
    (exe, previous)
}

#[test]
fn an_update_cut_short_by_a_reboot_is_watched_again_and_a_build_that_serves_keeps_it() {
    const NAME: &str = "update_live::an_update_cut_short_by_a_reboot_is_watched_again_and_a_build_that_serves_keeps_it";
    if !in_namespace(NAME) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (exe, previous) = interrupted_update(dir.path());
    let new = fs::read(&exe).unwrap();
    let config = format!("[update]\ntarget = {}\n", exe.display());
    let agent = LiveAgent::start(&exe, dir.path(), &config);
    let marker = PathBuf::from(format!("{}.pending", exe.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while marker.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!marker.exists(), "the marker stayed; log:\n{}", agent.log());
    let log = agent.log();
    assert!(log.contains("cut short by a restart of the machine"), "{log}");
    assert!(log.contains("update complete"), "{log}");
    // Past the watch: the new build stays, and keeps its previous build.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(fs::read(&exe).unwrap(), new);
    assert_eq!(fs::read(format!("{}.previous", exe.display())).unwrap(), previous);
    assert_eq!(agent.pid_file(), agent.child.id());
}

#[test]
fn an_update_cut_short_by_a_reboot_whose_build_never_serves_is_rolled_back_after_30_s() {
    const NAME: &str =
        "update_live::an_update_cut_short_by_a_reboot_whose_build_never_serves_is_rolled_back_after_30_s";
    if !in_namespace(NAME) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (exe, previous) = interrupted_update(dir.path());
    let config = format!("[update]\ntarget = {}\n", exe.display());
    // A socket in a directory that does not exist: the agent retries the
    // bind and never serves.
    let nowhere = dir.path().join("missing/agent.sock");
    let started = Instant::now();
    let mut agent = LiveAgent::spawn(&exe, dir.path(), &config, &nowhere);
    let status = agent.child.wait().unwrap();
    assert!(started.elapsed() >= Duration::from_secs(29), "{:?}", started.elapsed());
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL),
        "log:\n{}",
        agent.log()
    );
    // The watcher killed it first; the previous build is put back and
    // started in its stead (with the same arguments, so it does not serve
    // either).
    let deadline = Instant::now() + Duration::from_secs(10);
    while (agent.pid_file() == agent.child.id() || fs::read(&exe).unwrap() != previous) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(fs::read(&exe).unwrap() == previous, "not rolled back");
    assert!(!Path::new(&format!("{}.previous", exe.display())).exists());
    assert!(!Path::new(&format!("{}.pending", exe.display())).exists());
    let restarted = agent.pid_file();
    assert!(restarted != 0 && restarted != agent.child.id(), "pid file {restarted}");
}
