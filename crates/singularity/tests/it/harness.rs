//! Test harness: temporary guest roots seeded like a small Debian system, a
//! running agent process, and byte-exact snapshots of a root.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shadow line of root in a fresh test root.
pub const ROOT_SHADOW: &str = "root:*:19000:0:99999:7:::";

/// A temporary guest root with `/etc/shadow`, `/etc/passwd` and `/root`.
pub struct TestRoot {
    dir: tempfile::TempDir,
}

impl TestRoot {
    pub fn new() -> TestRoot {
        TestRoot::new_in(&std::env::temp_dir())
    }

    /// A test root in the directory `parent` (a file system of the test's choice).
    pub fn new_in(parent: &Path) -> TestRoot {
        let dir = tempfile::tempdir_in(parent).expect("tempdir");
        let root = TestRoot { dir };
        root.write(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
            0o644,
        );
        let shadow = format!("{ROOT_SHADOW}\ndaemon:*:19000:0:99999:7:::\n");
        root.write("/etc/shadow", shadow.as_bytes(), 0o640);
        fs::create_dir_all(root.path("/root")).expect("mkdir /root");
        fs::set_permissions(root.path("/root"), fs::Permissions::from_mode(0o700)).expect("chmod");
        root
    }

    /// Makes the root look like Debian 12 with ifupdown and these NICs
    /// (name, MAC) in `/sys/class/net`.
    pub fn seed_debian(&self, nics: &[(&str, &str)]) {
        self.write(
            "/etc/os-release",
            b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nID=debian\n",
            0o644,
        );
        self.write(
            "/etc/network/interfaces",
            b"source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
            0o644,
        );
        self.write("/etc/hostname", b"localhost\n", 0o644);
        self.write(
            "/etc/hosts",
            b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            0o644,
        );
        self.write("/sys/class/net/lo/address", b"00:00:00:00:00:00\n", 0o444);
        for (name, mac) in nics {
            self.write(
                &format!("/sys/class/net/{name}/address"),
                format!("{mac}\n").as_bytes(),
                0o444,
            );
        }
    }

    pub fn base(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, abs: &str) -> PathBuf {
        self.dir.path().join(abs.trim_start_matches('/'))
    }

    pub fn write(&self, abs: &str, data: &[u8], mode: u32) {
        let p = self.path(abs);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, data).expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    pub fn read(&self, abs: &str) -> Vec<u8> {
        fs::read(self.path(abs)).unwrap_or_else(|e| panic!("read {abs}: {e}"))
    }

    pub fn mode(&self, abs: &str) -> u32 {
        fs::symlink_metadata(self.path(abs)).expect("stat").mode() & 0o7777
    }

    /// Every entry under the root: type, mode and contents (or link target),
    /// except the daemon's own run-time state (its instance lock and request
    /// journal under `/run`, which come and go with every request).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        walk(self.base(), self.base(), &mut out);
        out.retain(|p, _| !(p.starts_with("run/singularity") || p.starts_with("run/singularity.lock")));
        out
    }

    /// The shadow field 2 (hash) of `user`.
    pub fn shadow_hash(&self, user: &str) -> String {
        let text = String::from_utf8(self.read("/etc/shadow")).expect("utf8");
        let line = text
            .lines()
            .find(|l| l.split(':').next() == Some(user))
            .expect("user line");
        line.split(':').nth(1).expect("hash field").to_string()
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let meta = fs::symlink_metadata(&p).expect("lstat");
        let rel = p.strip_prefix(base).expect("under base").to_path_buf();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&p).expect("readlink");
            out.insert(rel, (meta.mode(), target.as_os_str().as_encoded_bytes().to_vec()));
        } else if meta.is_dir() {
            out.insert(rel, (meta.mode(), Vec::new()));
            walk(base, &p, out);
        } else if meta.is_file() {
            out.insert(rel, (meta.mode(), fs::read(&p).expect("read")));
        } else {
            // FIFOs, sockets, devices: type and mode only (reading could block).
            out.insert(rel, (meta.mode(), Vec::new()));
        }
    }
}

/// The agent binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_singularity")
}

/// The operator tools' binary, `singularity-host`, built beside the agent by
/// `cargo test --workspace` (the README's test command).
pub fn host_bin() -> std::path::PathBuf {
    let path = std::path::Path::new(bin()).with_file_name("singularity-host");
    assert!(
        path.exists(),
        "{} is missing: build the whole workspace (cargo test --workspace)",
        path.display()
    );
    path
}

/// A running `singularity daemon --nodaemonize`; killed on drop.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// Starts the agent with the socket communicator on `root`, with extra
    /// global arguments (e.g. `-F`) and an optional configuration file body.
    pub fn socket(root: &TestRoot, extra: &[&str], config: Option<&str>) -> Agent {
        Agent::socket_at(root.base(), extra, &[], config, None)
    }

    /// [`Agent::socket`] with extra `daemon` options too.
    pub fn socket_with(root: &TestRoot, extra: &[&str], daemon: &[&str], config: Option<&str>) -> Agent {
        Agent::socket_at(root.base(), extra, daemon, config, None)
    }

    /// Like [`Agent::socket_with`], with any directory as the root (`/` is
    /// the live system) and, optionally, the directory the agent starts in.
    pub fn socket_at(base: &Path, extra: &[&str], daemon: &[&str], config: Option<&str>, cwd: Option<&Path>) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("agent.sock");
        let confdir = dir.path().join("conf");
        fs::create_dir_all(&confdir).expect("mkdir");
        fs::write(confdir.join("singularity.conf"), config.unwrap_or("")).expect("conf");
        let log = dir.path().join("agent.log");
        let mut cmd = Command::new(bin());
        cmd.arg("-f")
            .arg(&confdir)
            .arg("-H")
            .arg(&log)
            .args(["-l", "debug", "--root"])
            .arg(base);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        cmd.args(extra);
        cmd.args(["daemon", "--nodaemonize", "--communicator", "socket", "--socket"])
            .arg(&socket);
        cmd.arg("--pidfile").arg(dir.path().join("singularity.pid"));
        cmd.arg("--run").arg(dir.path().join("run"));
        cmd.args(daemon);
        let child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn agent");
        let mut agent = Agent {
            child,
            socket,
            _dir: dir,
        };
        agent.wait_ready();
        agent
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                let log = fs::read_to_string(self._dir.path().join("agent.log")).unwrap_or_default();
                panic!("agent exited with {status} before serving:\n{err}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("agent socket {} never came up", self.socket.display());
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the agent logged (it runs with `-l debug`).
    pub fn log(&self) -> String {
        fs::read_to_string(self._dir.path().join("agent.log")).unwrap_or_default()
    }

    /// A connection for line requests.
    pub fn connect(&self) -> Conn {
        let stream = UnixStream::connect(&self.socket).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            stream,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client connection to the socket communicator.
pub struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    /// Sends one request line and returns the reply as `(returncode, message)`.
    pub fn call(&mut self, request: &[u8]) -> (String, String) {
        let mut line = request.to_vec();
        line.push(b'\n');
        self.stream.write_all(&line).expect("send");
        let mut reply = String::new();
        self.reader.read_line(&mut reply).expect("reply");
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?}: {e}"));
        let rc = v["returncode"].as_str().expect("string returncode").to_string();
        let msg = v["message"].as_str().expect("string message").to_string();
        assert_eq!(
            v.as_object().map(|o| o.len()),
            Some(2),
            "reply has exactly two keys: {reply}"
        );
        (rc, msg)
    }

    pub fn json(&mut self, request: serde_json::Value) -> (String, String) {
        self.call(request.to_string().as_bytes())
    }
}

/// Set in the copy of a test that runs inside a private mount namespace.
const IN_MOUNT_NAMESPACE: &str = "SINGULARITY_TEST_IN_MOUNT_NAMESPACE";

/// Whether this is the copy of the test inside the mount namespace.
pub fn in_mount_namespace() -> bool {
    std::env::var_os(IN_MOUNT_NAMESPACE).is_some()
}

/// Runs the test `name` (its whole path) again under `unshare --mount`
/// (with a user namespace when not root), and fails unless it passed there.
pub fn rerun_in_mount_namespace(name: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new("unshare");
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(IN_MOUNT_NAMESPACE, "1");
    let out = cmd.output().expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "in the namespace:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the test did not run in the namespace:\n{stdout}"
    );
}

/// Mounts a tmpfs at `at`: only the private mount namespace sees it.
pub fn mount_tmpfs(at: &str) {
    let target = std::ffi::CString::new(at).unwrap();
    let (src, fstype, opts) = (c"singularity-test", c"tmpfs", c"mode=0755");
    // SAFETY: every pointer is a valid NUL-terminated string for the duration of the call.
    let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, opts.as_ptr().cast()) };
    assert_eq!(rc, 0, "mount tmpfs on {at}: {}", std::io::Error::last_os_error());
}
