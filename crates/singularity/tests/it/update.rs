//! `agentupdate` through the daemon (socket communicator), with builds
//! served by a real HTTP server in the test (std TcpListener: 404, 500, slow,
//! redirect loop, truncated, oversize) and stand-in builds compiled here
//! with `gcc -static`. Under `--root` the build is installed and nothing
//! restarts; on the live root (in a private mount namespace) the daemon
//! re-executes in place, and a build that exits at start is rolled back.

use crate::harness::{bin, Agent, TestRoot};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};
use serde_json::json;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const TARGET: &str = "/usr/sbin/singularity";
const OLD: &[u8] = b"\x7fELF the build in place";

/// What the test server answers for a path.
#[derive(Clone)]
enum Route {
    Body(Vec<u8>),
    Status(u16),
    Slow(Duration, Vec<u8>),
    Redirect(String),
    Truncated(Vec<u8>),
}

/// A tiny HTTP/1.1 server: one thread per connection, `Connection: close`.
struct Server {
    base: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let shared = routes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let routes = shared.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut first = String::new();
                    if reader.read_line(&mut first).is_err() {
                        return;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                    }
                    let path = first.split(' ').nth(1).unwrap_or("/").to_string();
                    let route = routes.lock().unwrap().get(&path).cloned();
                    let mut s = stream;
                    let head = |code: u16, len: usize, extra: &str| {
                        format!("HTTP/1.1 {code} X\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
                    };
                    let _ = match route {
                        None | Some(Route::Status(404)) => s.write_all(head(404, 0, "").as_bytes()),
                        Some(Route::Status(code)) => s.write_all(head(code, 0, "").as_bytes()),
                        Some(Route::Body(b)) => s
                            .write_all(head(200, b.len(), "").as_bytes())
                            .and_then(|()| s.write_all(&b)),
                        Some(Route::Slow(d, b)) => {
                            std::thread::sleep(d);
                            s.write_all(head(200, b.len(), "").as_bytes())
                                .and_then(|()| s.write_all(&b))
                        }
                        Some(Route::Redirect(to)) => {
                            s.write_all(head(302, 0, &format!("Location: {to}\r\n")).as_bytes())
                        }
                        Some(Route::Truncated(b)) => s
                            .write_all(head(200, b.len() * 4, "").as_bytes())
                            .and_then(|()| s.write_all(&b)),
                    };
                });
            }
        });
        Server { base, routes }
    }

    /// Serves `route` at `path`; returns its URL.
    fn at(&self, path: &str, route: Route) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), route);
        format!("{}{path}", self.base)
    }
}

/// A stand-in build: a static C program that prints `singularity <version>`
/// for `--version`, exits `config_rc` for `config`, and as `daemon` exits 1,
/// executes `real` with its own arguments, or (`real` = `"hang"`) sleeps.
fn stand_in(dir: &Path, name: &str, version: &str, config_rc: u8, real: Option<&str>) -> Vec<u8> {
    let src = dir.join(format!("{name}.c"));
    let daemon = match real {
        Some("hang") => "sleep(600); return 1;".to_string(),
        Some(path) => format!("execv(\"{path}\", argv); return 2;"),
        None => "return 1;".to_string(),
    };
    fs::write(
        &src,
        format!(
            "#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n\
             int main(int argc, char **argv) {{\n\
               for (int i = 1; i < argc; i++) {{\n\
                 if (!strcmp(argv[i], \"--version\")) {{ puts(\"singularity {version}\"); return 0; }}\n\
                 if (!strcmp(argv[i], \"config\")) {{ if ({config_rc}) fputs(\"bad key in [update]\\n\", stderr); return {config_rc}; }}\n\
                 if (!strcmp(argv[i], \"daemon\")) {{ {daemon} }}\n\
               }}\n\
               return 1;\n\
             }}\n"
        ),
    )
    .unwrap();
    let out = dir.join(name);
    let status = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc (with a static libc) is needed");
    assert!(status.success(), "gcc -static failed");
    fs::read(&out).unwrap()
}

fn md5(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A 64-bit little-endian AArch64 executable header.
fn aarch64() -> Vec<u8> {
    let mut d = vec![0u8; 64 + 56];
    d[..4].copy_from_slice(b"\x7fELF");
    d[4] = 2;
    d[5] = 1;
    d[6] = 1;
    d[16..18].copy_from_slice(&2u16.to_le_bytes());
    d[18..20].copy_from_slice(&183u16.to_le_bytes());
    d[32..40].copy_from_slice(&64u64.to_le_bytes());
    d[54..56].copy_from_slice(&56u16.to_le_bytes());
    d[56..58].copy_from_slice(&1u16.to_le_bytes());
    d[64..68].copy_from_slice(&1u32.to_le_bytes());
    d
}

/// The directory of the target, as (name, contents, mode) rows.
fn sbin(root: &TestRoot) -> Vec<(String, Vec<u8>, u32)> {
    let mut rows: Vec<_> = fs::read_dir(root.path("/usr/sbin"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
                meta.permissions().mode() & 0o7777,
            )
        })
        .collect();
    rows.sort();
    rows
}

fn update(url: &str, sum: &str) -> serde_json::Value {
    json!({"name": "agentupdate", "value": format!("{url},{sum}")})
}

#[test]
fn refused_updates_answer_what_is_wrong_and_change_nothing() {
    let root = TestRoot::new();
    root.write(TARGET, OLD, 0o755);
    let work = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let good = stand_in(work.path(), "good", "9.9.9", 0, None);
    let badconf = stand_in(work.path(), "badconf", "9.9.9", 3, None);
    let dynamic = fs::read("/bin/true").unwrap();
    let key = STANDARD.encode([b"Ed".as_slice(), &[7u8; 8], &[9u8; 32]].concat());
    let config = format!("[update]\ntarget = {TARGET}\nmax_size = 1\ntimeout = 2\nconnect_timeout = 2\n");
    let agent = Agent::socket(&root, &[], Some(&config));
    let before = sbin(&root);
    let mut c = agent.connect();
    let big = vec![0u8; (1 << 20) + 1];
    let installer = tgz(&[
        ("nova-agent-1.39.1/installer.sh", b"#!/bin/sh\nexit 0\n"),
        ("nova-agent-1.39.1/x", b"x"),
    ]);
    let two = tgz(&[("a", &good), ("b", &good)]);
    let script = b"#!/bin/sh\necho singularity 9.9.9\n".to_vec();
    let wrong_arch = aarch64();
    let loop_url = srv.at("/loop", Route::Redirect(format!("{}/loop", srv.base)));
    let cases: Vec<(String, String, String)> = vec![
        {
            let url = srv.at("/good", Route::Body(good.clone()));
            let bad = md5(b"something else");
            (
                url,
                bad.clone(),
                format!("MD5 sums do not match ({bad} != {})", md5(&good)),
            )
        },
        {
            let url = srv.at("/missing", Route::Status(404));
            (
                url.clone(),
                md5(b""),
                format!("cannot download {url}: the server answered HTTP 404"),
            )
        },
        {
            let url = srv.at("/broken", Route::Status(500));
            (
                url.clone(),
                md5(b""),
                format!("cannot download {url}: the server answered HTTP 500"),
            )
        },
        {
            let url = srv.at("/big", Route::Body(big.clone()));
            (
                url.clone(),
                md5(&big),
                format!("cannot download {url}: larger than the limit of 1048576 bytes ([update] max_size)"),
            )
        },
        (
            loop_url.clone(),
            md5(b""),
            format!("cannot download {loop_url}: more than 3 redirects"),
        ),
        {
            let url = srv.at("/installer.tar.gz", Route::Body(installer.clone()));
            (
                url,
                md5(&installer),
                "the download is an installer tarball (installer.sh, the old agent's update format), not a singularity build".into(),
            )
        },
        {
            let url = srv.at("/two.tar.gz", Route::Body(two.clone()));
            (
                url,
                md5(&two),
                "the download is a tarball with 2 files; a singularity build tarball holds exactly one".into(),
            )
        },
        {
            let url = srv.at("/script", Route::Body(script.clone()));
            (
                url,
                md5(&script),
                "the download is a script (#!), not a singularity build".into(),
            )
        },
        {
            let url = srv.at("/arm64", Route::Body(wrong_arch.clone()));
            (
                url,
                md5(&wrong_arch),
                "the download is an ELF executable for another architecture (64-bit little-endian AArch64)".into(),
            )
        },
        {
            let url = srv.at("/true", Route::Body(dynamic.clone()));
            (
                url,
                md5(&dynamic),
                "the download is a dynamically linked ELF executable (it has an interpreter); a singularity build is static"
                    .into(),
            )
        },
        {
            let url = srv.at("/badconf", Route::Body(badconf.clone()));
            (
                url,
                md5(&badconf),
                "the new build does not accept the running configuration (config exit status: 3): bad key in [update]"
                    .into(),
            )
        },
    ];
    for (url, sum, want) in cases {
        assert_eq!(c.json(update(&url, &sum)), ("500".to_string(), want), "{url}");
        assert_eq!(sbin(&root), before, "{url} changed something");
    }

    // Slow (the timeout's words are the HTTP client's), and truncated.
    let slow = srv.at("/slow", Route::Slow(Duration::from_secs(4), good.clone()));
    let started = Instant::now();
    let (rc, msg) = c.json(update(&slow, &md5(&good)));
    assert_eq!(rc, "500");
    assert!(msg.starts_with(&format!("cannot download {slow}: timed out")), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let cut = srv.at("/cut", Route::Truncated(good[..1000].to_vec()));
    let (rc, msg) = c.json(update(&cut, &md5(&good)));
    assert_eq!(rc, "500");
    assert_eq!(
        msg,
        format!("cannot download {cut}: the connection closed before the whole body arrived")
    );
    assert_eq!(sbin(&root), before);

    // Bad values never reach the network.
    assert_eq!(
        c.json(json!({"name": "agentupdate", "value": {"url": slow}})),
        (
            "500".to_string(),
            "Invalid value for 'agentupdate': missing URL or MD5 sum in dictionary arguments ('md5sum')".to_string()
        )
    );
    drop(c);
    drop(agent);

    // With a public key, a build without a signature, or with a bad one, is refused.
    let config = format!("[update]\ntarget = {TARGET}\npublic_key = {key}\n");
    let agent = Agent::socket(&root, &[], Some(&config));
    let mut c = agent.connect();
    let url = srv.at("/signed", Route::Body(good.clone()));
    assert_eq!(
        c.json(update(&url, &md5(&good))),
        (
            "500".to_string(),
            format!(
                "a public key is configured and the signature {url}.minisig is missing: the server answered HTTP 404"
            )
        )
    );
    let sig = format!(
        "untrusted comment: test\n{}\ntrusted comment: test\n{}\n",
        STANDARD.encode([b"Ed".as_slice(), &[7u8; 8], &[1u8; 64]].concat()),
        STANDARD.encode([3u8; 64])
    );
    srv.at("/signed.minisig", Route::Body(sig.into_bytes()));
    let (rc, msg) = c.json(update(&url, &md5(&good)));
    assert_eq!(rc, "500");
    assert!(
        msg.starts_with(&format!(
            "signature refused: {url}.minisig does not verify with the configured key"
        )),
        "{msg}"
    );
    assert_eq!(sbin(&root), before);
}

#[test]
fn under_a_root_the_build_is_installed_beside_the_previous_one_and_nothing_restarts() {
    let root = TestRoot::new();
    root.write(TARGET, OLD, 0o750);
    let work = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let config = format!("[update]\ntarget = {TARGET}\n");
    let agent = Agent::socket(&root, &[], Some(&config));
    let mut c = agent.connect();

    // The running version: "0", nothing changes.
    let same = stand_in(work.path(), "same", VERSION, 0, None);
    let url = srv.at("/same", Route::Body(same.clone()));
    assert_eq!(
        c.json(update(&url, &md5(&same))),
        (
            "0".to_string(),
            format!("version {VERSION} is already running; nothing changed")
        )
    );
    assert_eq!(sbin(&root), vec![("singularity".to_string(), OLD.to_vec(), 0o750)]);

    // A new version in a tarball, with the older object form of the value.
    let new = stand_in(work.path(), "new", "9.9.9", 0, None);
    let archive = tgz(&[("singularity-9.9.9/singularity", &new)]);
    let url = srv.at("/singularity-9.9.9.tar.gz", Route::Body(archive.clone()));
    let (rc, msg) = c.json(json!({"name": "agentupdate", "value": {"url": url, "md5sum": md5(&archive)}}));
    assert_eq!(
        (rc.as_str(), msg.as_str()),
        (
            "0",
            format!(
                "installed 9.9.9 at {}; not restarted (not the live root)",
                root.path(TARGET).display()
            )
            .as_str()
        )
    );
    assert_eq!(
        sbin(&root),
        vec![
            ("singularity".to_string(), new.clone(), 0o750),
            ("singularity.previous".to_string(), OLD.to_vec(), 0o750),
        ]
    );
    // The daemon still serves, as the same process.
    assert_eq!(c.json(json!({"name": "version", "value": "agent"})).1, VERSION);
    assert!(agent.log().contains("agentupdate: installed version 9.9.9"));
}

// ---- the live root: re-execution in place and rollback ----

const IN_NAMESPACE: &str = "SINGULARITY_TEST_UPDATE_IN_NAMESPACE";

/// Re-runs the named test in a private mount namespace with tmpfs on /run
/// (the instance lock is /run/singularity.lock on the live root).
fn in_namespace(name: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        let (src, target, fstype) = (c"singularity-test", CString::new("/run").unwrap(), c"tmpfs");
        // SAFETY: every pointer is a valid NUL-terminated string for the call.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                c"mode=0755".as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs on /run: {}", std::io::Error::last_os_error());
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new("unshare");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1");
    let out = cmd.output().expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "in the namespace:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the test did not run in the namespace:\n{stdout}"
    );
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
            .arg(dir.join("agent.sock"))
            .arg("--pidfile")
            .arg(dir.join("agent.pid"))
            .arg("--run")
            .arg(dir.join("run"))
            .env_remove("INVOCATION_ID")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .spawn()
            .expect("start the agent");
        let agent = LiveAgent {
            child,
            dir: dir.to_path_buf(),
        };
        agent.wait_version(VERSION);
        agent
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
    const NAME: &str = "update::on_the_live_root_the_new_build_runs_in_the_same_process";
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
    const NAME: &str = "update::a_new_build_that_exits_at_start_is_rolled_back_and_the_previous_one_runs_again";
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
fn agentupdate_over_xenstore_as_nova_sends_it() {
    use crate::xenlab::{GuestLink, XenLab};
    let root = TestRoot::new();
    root.write(TARGET, OLD, 0o755);
    let work = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let mut lab = XenLab::new(GuestLink::Stream, xenstore::sim::Config::default());
    lab.start_agent(&root, &[], &format!("[update]\ntarget = {TARGET}\n"));
    let host = lab.host();
    let t = Duration::from_secs(30);
    // UNIX's installer tarball, as an old agent_builds row would send it.
    let installer = tgz(&[("nova-agent-1.39.1/installer.sh", b"#!/bin/sh\nexit 0\n")]);
    let url = srv.at("/nova-agent-Linux-x86_64-1.39.1.tar.gz", Route::Body(installer.clone()));
    let reply = host.agentupdate(&url, &md5(&installer), t).unwrap();
    assert_eq!(
        (reply.returncode.as_str(), reply.message.as_str()),
        (
            "500",
            "the download is an installer tarball (installer.sh, the old agent's update format), not a singularity build"
        )
    );
    assert_eq!(root.read(TARGET), OLD);
    // A singularity build is installed (under --root: no restart).
    let new = stand_in(work.path(), "new", "9.9.9", 0, None);
    let url = srv.at("/singularity-9.9.9", Route::Body(new.clone()));
    let reply = host.agentupdate(&url, &md5(&new), t).unwrap();
    assert_eq!(reply.returncode, "0", "{}", reply.message);
    assert_eq!(root.read(TARGET), new);
    assert_eq!(root.read(&format!("{TARGET}.previous")), OLD);
    assert!(lab.stop_agent(), "SIGTERM gives a clean exit");
}

/// A minisign key made here: its public key line and a signer producing
/// `.minisig` files (prehashed "ED" signatures, as minisign makes by default).
fn minisign_key() -> (String, impl Fn(&[u8]) -> String) {
    use blake2::{Blake2b512, Digest as _};
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let id = [5u8; 8];
    let public = STANDARD.encode([b"Ed".as_slice(), &id, pair.public_key().as_ref()].concat());
    let sign = move |data: &[u8]| {
        let signature = pair.sign(&Blake2b512::digest(data));
        let trusted = "timestamp:1765000000\tfile:singularity";
        let global = pair.sign(&[signature.as_ref(), trusted.as_bytes()].concat());
        format!(
            "untrusted comment: signature from the test key\n{}\ntrusted comment: {trusted}\n{}\n",
            STANDARD.encode([b"ED".as_slice(), &id, signature.as_ref()].concat()),
            STANDARD.encode(global.as_ref())
        )
    };
    (public, sign)
}

#[test]
fn with_a_public_key_a_signed_build_is_installed_and_a_build_signed_otherwise_is_not() {
    let root = TestRoot::new();
    root.write(TARGET, OLD, 0o755);
    let work = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let (public, sign) = minisign_key();
    let (_, sign_other) = minisign_key();
    let key_file = work.path().join("update.pub");
    fs::write(&key_file, format!("untrusted comment: test key\n{public}\n")).unwrap();
    // The key as a file, then as the base64 line.
    for (i, key) in [key_file.display().to_string(), public.clone()].into_iter().enumerate() {
        root.write(TARGET, OLD, 0o755);
        let _ = fs::remove_file(root.path(&format!("{TARGET}.previous")));
        let agent = Agent::socket(
            &root,
            &[],
            Some(&format!("[update]\ntarget = {TARGET}\npublic_key = {key}\n")),
        );
        let mut c = agent.connect();
        let new = stand_in(work.path(), &format!("new{i}"), "9.9.9", 0, None);
        let url = srv.at(&format!("/s{i}"), Route::Body(new.clone()));
        // Signed with another key (same key id): refused, nothing changes.
        srv.at(&format!("/s{i}.minisig"), Route::Body(sign_other(&new).into_bytes()));
        let (rc, msg) = c.json(update(&url, &md5(&new)));
        assert_eq!(rc, "500");
        assert!(
            msg.starts_with(&format!(
                "signature refused: {url}.minisig does not verify with the configured key"
            )),
            "{msg}"
        );
        assert_eq!(root.read(TARGET), OLD);
        // Signed with the configured key: installed.
        srv.at(&format!("/s{i}.minisig"), Route::Body(sign(&new).into_bytes()));
        let (rc, msg) = c.json(update(&url, &md5(&new)));
        assert_eq!(rc, "0", "{msg}");
        assert_eq!(root.read(TARGET), new);
        assert_eq!(root.read(&format!("{TARGET}.previous")), OLD);
    }
}

#[test]
fn a_new_build_that_never_serves_is_killed_after_30_s_and_rolled_back() {
    const NAME: &str = "update::a_new_build_that_never_serves_is_killed_after_30_s_and_rolled_back";
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

#[test]
fn without_the_update_function_agentupdate_is_404_and_not_offered() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &["-F", "version,features"], None);
    let mut c = agent.connect();
    assert_eq!(
        c.json(update("http://127.0.0.1:9/x", &md5(b""))),
        ("404".to_string(), "No such agent command 'agentupdate'".to_string())
    );
    assert_eq!(
        c.json(json!({"name": "features", "value": ""})),
        ("0".to_string(), "version,features".to_string())
    );
}

/// A real HTTPS server: Python's http.server wrapped in its ssl module,
/// serving `dir` with a certificate for 127.0.0.1 signed by a CA made here
/// with the openssl command. Returns the server, its base URL and the CA file.
fn https_server(dir: &Path, work: &Path) -> (std::process::Child, String, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(work)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=singularity test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    fs::write(
        work.join("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = format!(
        "import functools, http.server, ssl\n\
         handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory={dir:?})\n\
         server = http.server.ThreadingHTTPServer(('127.0.0.1', {port}), handler)\n\
         context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         context.load_cert_chain({cert:?}, {key:?})\n\
         server.socket = context.wrap_socket(server.socket, server_side=True)\n\
         server.serve_forever()\n",
        dir = dir.to_str().unwrap(),
        cert = work.join("srv.pem").to_str().unwrap(),
        key = work.join("srv.key").to_str().unwrap(),
    );
    let child = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the HTTPS server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("https://127.0.0.1:{port}"), work.join("ca.pem"))
}

#[test]
fn over_https_the_server_must_be_trusted_and_ca_file_adds_a_trusted_ca() {
    let root = TestRoot::new();
    root.write(TARGET, OLD, 0o755);
    let work = tempfile::tempdir().unwrap();
    let served = work.path().join("srv");
    fs::create_dir(&served).unwrap();
    let new = stand_in(work.path(), "new", "9.9.9", 0, None);
    fs::write(served.join("singularity"), &new).unwrap();
    let (mut server, base, ca) = https_server(&served, work.path());
    let url = format!("{base}/singularity");

    // The system's CA store does not know the test CA: refused, nothing changes.
    let agent = Agent::socket(&root, &[], Some(&format!("[update]\ntarget = {TARGET}\n")));
    let (rc, msg) = agent.connect().json(update(&url, &md5(&new)));
    assert_eq!(rc, "500");
    assert!(msg.starts_with(&format!("cannot download {url}: ")), "{msg}");
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    assert_eq!(root.read(TARGET), OLD);
    drop(agent);

    // With the CA as [update] ca_file: installed.
    let config = format!("[update]\ntarget = {TARGET}\nca_file = {}\n", ca.display());
    let agent = Agent::socket(&root, &[], Some(&config));
    let (rc, msg) = agent.connect().json(update(&url, &md5(&new)));
    assert_eq!(rc, "0", "{msg}");
    assert_eq!(root.read(TARGET), new);
    let _ = server.kill();
    let _ = server.wait();
}
