//! Runs Debian 12's real `xenstored` (C) and `oxenstored` (OCaml), Xen 4.17, on
//! a machine without Xen, for tests and the benchmark (xenstore.md §3.3).
//!
//! The packages are fetched with `apt-get download` into a cache outside the
//! checkout (`${XDG_CACHE_HOME:-$HOME/.cache}/singularity-test`), unpacked with
//! `dpkg -x`, and `tests/fakexen/fakexen.c` is built there with gcc and
//! LD_PRELOADed. oxenstored runs in a private mount namespace with a directory
//! bind-mounted over `/run`, because its socket path is compiled in.
#![allow(dead_code)]

use std::fs;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Debian packages the daemons need.
pub const PACKAGES: [&str; 11] = [
    "xen-utils-4.17",
    "libxenmisc4.17",
    "libxenevtchn1",
    "libxengnttab1",
    "libxentoollog1",
    "libxentoolcore1",
    "libxencall1",
    "libxenforeignmemory1",
    "libxendevicemodel1",
    "libxenstore4",
    "xenstore-utils",
];

const SHIM_SOURCE: &str = include_str!("../fakexen/fakexen.c");

/// Which daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The C `xenstored`.
    C,
    /// `oxenstored`.
    Ox,
}

/// Unpacked binaries and the built shim.
#[derive(Clone, Debug)]
pub struct Env {
    /// Root of the unpacked packages.
    pub root: PathBuf,
    /// The built `fakexen.so`.
    pub shim: PathBuf,
}

impl Env {
    fn libdir(&self) -> PathBuf {
        self.root.join("usr/lib/x86_64-linux-gnu")
    }
    fn bin(&self, name: &str) -> PathBuf {
        self.root.join("usr/lib/xen-4.17/bin").join(name)
    }
}

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("singularity-test")
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Cheap stable content hash (FNV-1a) for cache names.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn have_all_debs(debs: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let entries: Vec<PathBuf> = fs::read_dir(debs)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    for pkg in PACKAGES {
        let prefix = format!("{pkg}_");
        let hit = entries.iter().find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        });
        match hit {
            Some(p) => found.push(p.clone()),
            None => return Err(format!("missing {pkg}")),
        }
    }
    Ok(found)
}

fn prepare_uncached() -> Result<Env, String> {
    let cache = cache_dir();
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    // Serialise with other processes (test binaries, the benchmark) using the cache.
    let lock = fs::File::create(cache.join("lock")).map_err(|e| e.to_string())?;
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };

    let files = match have_all_debs(&debs) {
        Ok(f) => f,
        Err(_) => {
            let download = || {
                run(Command::new("apt-get")
                    .arg("download")
                    .args(PACKAGES)
                    .current_dir(&debs))
            };
            if let Err(first) = download() {
                // A fresh machine may have no package lists yet.
                run(Command::new("apt-get").arg("update").arg("-q"))
                    .map_err(|e| format!("apt-get download failed ({first}); apt-get update failed too: {e}"))?;
                download()?;
            }
            have_all_debs(&debs)?
        }
    };

    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let root = cache.join(format!("root-{:016x}", fnv(names.join("\n").as_bytes())));
    if !root.join(".complete").exists() {
        let tmp = cache.join(format!("root-tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        for deb in &files {
            run(Command::new("dpkg").arg("-x").arg(deb).arg(&tmp))?;
        }
        fs::write(tmp.join(".complete"), b"").map_err(|e| e.to_string())?;
        let _ = fs::remove_dir_all(&root);
        fs::rename(&tmp, &root).map_err(|e| e.to_string())?;
    }

    let shim = cache.join(format!("fakexen-{:016x}.so", fnv(SHIM_SOURCE.as_bytes())));
    if !shim.exists() {
        let src = cache.join(format!("fakexen-{}.c", std::process::id()));
        let tmp = cache.join(format!("fakexen-{}.so.tmp", std::process::id()));
        fs::write(&src, SHIM_SOURCE).map_err(|e| e.to_string())?;
        run(Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl"))?;
        let _ = fs::remove_file(&src);
        fs::rename(&tmp, &shim).map_err(|e| e.to_string())?;
    }
    Ok(Env { root, shim })
}

/// Downloads, unpacks and builds once per process.
pub fn prepare() -> Result<Env, String> {
    static ENV: OnceLock<Result<Env, String>> = OnceLock::new();
    ENV.get_or_init(prepare_uncached).clone()
}

/// The environment, or `None` after a loud SKIPPED line when
/// `SINGULARITY_ALLOW_SKIP=1`. Without it, an unavailable daemon fails the test.
pub fn env_or_skip() -> Option<Env> {
    match prepare() {
        Ok(env) => Some(env),
        Err(reason) => {
            if std::env::var("SINGULARITY_ALLOW_SKIP").as_deref() == Ok("1") {
                // Straight to fd 2: the test harness captures eprintln! output.
                let _ = writeln!(io::stderr(), "SKIPPED: real xenstored unavailable: {reason}");
                None
            } else {
                panic!("real xenstored unavailable: {reason} (set SINGULARITY_ALLOW_SKIP=1 to skip)");
            }
        }
    }
}

/// A running daemon in its own temporary directory. Killed on drop.
pub struct Daemon {
    kind: Kind,
    env: Env,
    dir: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts a daemon and waits until its socket accepts connections.
    pub fn start(env: &Env, kind: Kind) -> Result<Daemon, String> {
        let dir = std::env::temp_dir().join(format!(
            "realxs-{}-{:?}-{}",
            std::process::id(),
            kind,
            fnv(format!("{:?}", Instant::now()).as_bytes())
        ));
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let socket = match kind {
            Kind::C => dir.join("run/socket"),
            Kind::Ox => dir.join("orun/xenstored/socket"),
        };
        let mut d = Daemon {
            kind,
            env: env.clone(),
            dir,
            socket,
            child: None,
        };
        d.spawn()?;
        Ok(d)
    }

    /// The daemon's Unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// oxenstored's access log (every request, with its connection); the C
    /// daemon here keeps none.
    pub fn access_log(&self) -> Option<PathBuf> {
        (self.kind == Kind::Ox).then(|| self.dir.join("olog/access.log"))
    }

    /// Which daemon this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn spawn(&mut self) -> Result<(), String> {
        let d = &self.dir;
        let io = |e: io::Error| e.to_string();
        let mut cmd = match self.kind {
            Kind::C => {
                let run_dir = d.join("run");
                let _ = fs::remove_dir_all(&run_dir);
                fs::create_dir_all(&run_dir).map_err(io)?;
                let fx = d.join("fx");
                fs::create_dir_all(&fx).map_err(io)?;
                fs::write(fx.join("xsd_port"), b"1\n").map_err(io)?;
                fs::write(fx.join("xsd_kva"), vec![0u8; 4096]).map_err(io)?;
                let mut cmd = Command::new(self.env.bin("xenstored"));
                cmd.arg("-N")
                    .env("FAKEXEN_DIR", &fx)
                    .env("XENSTORED_RUNDIR", &run_dir)
                    .env("XENSTORED_PATH", &self.socket);
                cmd
            }
            Kind::Ox => {
                let orun = d.join("orun");
                let olog = d.join("olog");
                // A stale socket file would fool the readiness check.
                let _ = fs::remove_dir_all(&orun);
                fs::create_dir_all(&orun).map_err(io)?;
                fs::create_dir_all(&olog).map_err(io)?;
                let conf = d.join("ox.conf");
                fs::write(
                    &conf,
                    format!(
                        "pid-file = {}/xenstored.pid\nxenstored-log-file = {}/xenstored.log\n\
                         access-log-file = {}/access.log\npersistent = false\ntest-eagain = false\n",
                        orun.display(),
                        olog.display(),
                        olog.display()
                    ),
                )
                .map_err(io)?;
                let script = format!(
                    "mount --bind '{}' /run && exec '{}' --no-fork --no-domain-init --config-file '{}'",
                    orun.display(),
                    self.env.bin("oxenstored").display(),
                    conf.display()
                );
                let mut cmd = Command::new("unshare");
                cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
                cmd
            }
        };
        cmd.env("LD_LIBRARY_PATH", self.env.libdir())
            .env("LD_PRELOAD", &self.env.shim)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("stderr.log")).map_err(io)?);
        // SAFETY: prctl is async-signal-safe; it only makes the daemon die with the
        // thread that started it, so a crashed test cannot leak daemons.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("spawn {:?}: {e}", self.kind))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
                    return Err(format!("{:?} exited at start ({status}): {log}", self.kind));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{:?} socket {} never came up",
                    self.kind,
                    self.socket.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP: the daemon keeps its connections but answers nothing.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            // SAFETY: signalling our own child process by pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the daemon and starts a fresh one (empty store) on the same socket.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
