//! `agentupdate` through the daemon (socket communicator, and XenStore as
//! the dom0 plugin sends it), with builds served by a real HTTP server in the
//! test (std TcpListener: 404, 500, slow, redirect loop, truncated,
//! oversize) and stand-in builds compiled here with `gcc -static`. Under
//! `--root` the build is installed and nothing restarts. The live root is in
//! `update_live.rs`, https and signatures in `update_trust.rs`.

use crate::harness::{Agent, TestRoot};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};
use serde_json::json;
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
pub(crate) const TARGET: &str = "/usr/sbin/singularity";
pub(crate) const OLD: &[u8] = b"\x7fELF the build in place";

/// What the test server answers for a path.
#[derive(Clone)]
pub(crate) enum Route {
    Body(Vec<u8>),
    Status(u16),
    Slow(Duration, Vec<u8>),
    Redirect(String),
    Truncated(Vec<u8>),
}

/// A tiny HTTP/1.1 server: one thread per connection, `Connection: close`.
pub(crate) struct Server {
    pub(crate) base: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
}

impl Server {
    pub(crate) fn start() -> Server {
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
    pub(crate) fn at(&self, path: &str, route: Route) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), route);
        format!("{}{path}", self.base)
    }
}

/// A stand-in build: a static C program that prints `singularity <version>`
/// for `--version`, exits `config_rc` for `config`, and as `daemon` exits 1,
/// executes `real` with its own arguments, or (`real` = `"hang"`) sleeps.
pub(crate) fn stand_in(dir: &Path, name: &str, version: &str, config_rc: u8, real: Option<&str>) -> Vec<u8> {
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

pub(crate) fn md5(data: &[u8]) -> String {
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
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
pub(crate) fn sbin(root: &TestRoot) -> Vec<(String, Vec<u8>, u32)> {
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

pub(crate) fn update(url: &str, sum: &str) -> serde_json::Value {
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
