//! `agentupdate`'s trust: https against the system's CA store and
//! `[update] ca_file` (a real TLS server), and minisign signatures made here
//! with the configured key and with another.

use crate::harness::{Agent, TestRoot};
use crate::update::{md5, stand_in, update, Route, Server, OLD, TARGET};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
