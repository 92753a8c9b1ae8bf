//! Benchmark of the qga communicator beside Debian's real qemu-ga.
//!
//! ```text
//! cargo run --release -p singularity-host --example qga_bench [-- --pings 5000 --requests 1000]
//! ```
//!
//! The example first builds the agent the packages ship, the static release
//! binary (`RUSTFLAGS='-C target-feature=+crt-static' cargo build --release
//! -p singularity --bin singularity --target x86_64-unknown-linux-gnu`, as
//! `scripts/package` does; a no-op when up to date); `--singularity PATH`
//! (or `SINGULARITY_BIN`) benchmarks another one. Then, in one run, it starts
//! both agents, each on its own Unix socket:
//! - `qemu-ga -m unix-listen -p <dir>/qemu-ga.sock -t <dir>/state -l <log>
//!   -b guest-exec,…,guest-file-*` (Debian's `qemu-guest-agent`; the commands
//!   that run programs or open any file are blocked, as in the tests, since
//!   it runs on this machine's live root);
//! - `singularity -f <conf> -H <log> -l info --root / daemon --nodaemonize`
//!   with `communicator = qga`, `[qga] method = unix-listen`,
//!   `path = <dir>/singularity.sock`, on this machine's live root as a guest
//!   runs it, with `[qga] allow` limited to the read-only commands measured;
//!   and a second one on a scratch root (accounts, `/etc/shadow`) for
//!   `guest-set-user-password`, which is not sent to the live one.
//!
//! What is measured:
//! - round trips over one connection per agent, one request at a time: the
//!   time from the write of `{"execute":"guest-ping"}` (or `guest-info`,
//!   `guest-get-osinfo`) to its whole reply line read. Each series starts
//!   with untimed requests, and the two agents take turns in blocks of
//!   [`BLOCK`] requests, so that load on the machine falls on both;
//! - `guest-sync` behind another command: `{"execute":C}` and a
//!   `guest-sync` in one write; the time to each reply. With `guest-get-osinfo`
//!   for both agents, and with `guest-set-user-password` (of the scratch
//!   root's `/etc/shadow`, by the second singularity) for singularity only,
//!   as qemu-ga would change this machine's password;
//! - idle memory, after start-up and again `--idle` seconds after the last
//!   request: private anonymous memory (`Anonymous` of
//!   `/proc/<pid>/smaps_rollup`: heap, stacks, written data, which no other
//!   process shares), the stripped executable (the most of the program the
//!   page cache can hold for it), and for qemu-ga each shared library it maps
//!   with its file size; VmRSS, PSS and `Private_Dirty` beside them;
//! - the floor under singularity's figures: the singularity crate's
//!   `floor_idle` example, built with the agent's profile, flags and link
//!   step and asleep with as many threads as singularity idles with, by
//!   its anonymous memory and stripped size; and the stripped size of
//!   `floor_https`, `agentupdate`'s download alone.
//!
//! Numbers only: nothing here fails on a time.

#[path = "common/support.rs"]
mod support;
use base64::Engine;
use clap::Parser;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use support::{stripped_kib, summarize, Floor, Summary};

/// Requests one agent gets before the other takes its turn.
const BLOCK: usize = 250;
/// How long a reply may take before the run fails.
const TIMEOUT: Duration = Duration::from_secs(10);
/// qemu-ga's commands that run programs or open any file.
const QEMU_GA_BLOCKED: &str = "guest-exec,guest-exec-status,guest-file-open,guest-file-close,\
                               guest-file-read,guest-file-write,guest-file-seek,guest-file-flush";
/// What the singularity on this machine may run: nothing that changes it.
const LIVE_ALLOW: &str = "allow = guest-sync,guest-sync-delimited,guest-ping,guest-info,guest-get-osinfo\n";

/// The password `guest-set-user-password` sets in the scratch root.
const PASSWORD: &str = "bench-Passw0rd!";

/// Round trips of the QEMU guest agent protocol, and idle memory, of
/// singularity's qga communicator and Debian's qemu-ga side by side.
#[derive(Parser)]
struct Args {
    /// guest-ping round trips timed per agent
    #[arg(long, default_value_t = 5000)]
    pings: usize,
    /// guest-info and guest-get-osinfo round trips timed per agent, each
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// (command, guest-sync) pairs timed per agent and command
    #[arg(long, default_value_t = 300)]
    pairs: usize,
    /// untimed requests before each series
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// seconds without requests before the idle memory is read
    #[arg(long, default_value_t = 3)]
    idle: u64,
    /// the singularity binary [default: the static release build, built now;
    /// or $SINGULARITY_BIN]
    #[arg(long)]
    singularity: Option<PathBuf>,
    /// Debian's qemu-ga (package qemu-guest-agent)
    #[arg(long, default_value = "/usr/sbin/qemu-ga")]
    qemu_ga: PathBuf,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qga_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let bin = match args
        .singularity
        .clone()
        .or_else(|| std::env::var_os("SINGULARITY_BIN").map(PathBuf::from))
    {
        Some(bin) => bin,
        None => static_agent()?,
    };
    if !args.qemu_ga.is_file() {
        return Err(format!(
            "{} missing: apt-get install qemu-guest-agent",
            args.qemu_ga.display()
        ));
    }
    let mut agents = [Agent::qemu_ga(&args.qemu_ga)?, Agent::singularity(&bin, true)?];
    for agent in &mut agents {
        agent.wait_ready()?;
    }
    let mut scratch = Agent::singularity(&bin, false)?;
    scratch.wait_ready()?;
    let mut conns = [agents[0].connect()?, agents[1].connect()?];
    thread::sleep(Duration::from_secs(args.idle));
    let started = agents.each(|a| memory(a.pid()));

    let versions = conns.try_each(|c| {
        let (_, reply, _) = c.call(br#"{"execute":"guest-info"}"#)?;
        Ok(reply["return"]["version"].as_str().unwrap_or("?").to_string())
    })?;
    println!("qemu-ga {} ({})", versions[0], args.qemu_ga.display());
    println!("singularity {} ({})", versions[1], bin.display());
    println!(
        "machine: {} CPU(s), load average {}",
        thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(String::from))
            .unwrap_or_else(|| "?".into())
    );
    println!(
        "one connection per agent, one request at a time; {} untimed requests before each series\n",
        args.warmup
    );

    let mut rows = Vec::new();
    for (command, n) in [
        ("guest-ping", args.pings),
        ("guest-info", args.requests),
        ("guest-get-osinfo", args.requests),
    ] {
        rows.push(round_trips(&mut conns, command, n, args.warmup)?);
    }
    print_round_trips(&rows);

    let mut pairs = Vec::new();
    let osinfo = br#"{"execute":"guest-get-osinfo"}"#.to_vec();
    for (i, conn) in conns.iter_mut().enumerate() {
        let p = sync_pairs(conn, &osinfo, args.pairs, args.warmup)?;
        pairs.push((agents[i].name, "guest-get-osinfo", p));
    }
    let password = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    let set_password = json!({"execute": "guest-set-user-password",
        "arguments": {"username": "root", "password": password, "crypted": false}});
    let p = sync_pairs(
        &mut scratch.connect()?,
        set_password.to_string().as_bytes(),
        args.pairs,
        0,
    )?;
    scratch.stop();
    pairs.push((agents[1].name, "guest-set-user-password", p));
    print_sync_pairs(&pairs);

    thread::sleep(Duration::from_secs(args.idle));
    let idle = agents.each(|a| memory(a.pid()));
    let exe = agents.each(|a| stripped_kib(&a.exe));
    let libraries = libraries(agents[0].pid(), &agents[0].exe);
    print_memory(args.idle, &started, &idle, &exe, &libraries);
    print_targets(&rows, &idle, &exe, &libraries);
    for agent in &mut agents {
        agent.stop();
    }
    Ok(())
}

/// Builds (if needed) and finds the static release agent next to this
/// example's target directory.
fn static_agent() -> Result<PathBuf, String> {
    support::static_agent(&["singularity"])
}

// ---------------------------------------------------------------------------
// The two agents

/// Applies a closure to both agents' values, qemu-ga's first.
trait Each<T> {
    fn each<U>(&self, f: impl FnMut(&T) -> U) -> [U; 2];
    fn try_each<U>(&mut self, f: impl FnMut(&mut T) -> Result<U, String>) -> Result<[U; 2], String>;
}

impl<T> Each<T> for [T; 2] {
    fn each<U>(&self, mut f: impl FnMut(&T) -> U) -> [U; 2] {
        [f(&self[0]), f(&self[1])]
    }

    fn try_each<U>(&mut self, mut f: impl FnMut(&mut T) -> Result<U, String>) -> Result<[U; 2], String> {
        let a = f(&mut self[0])?;
        Ok([a, f(&mut self[1])?])
    }
}

/// A running agent on a Unix socket; stopped on drop.
struct Agent {
    name: &'static str,
    child: Option<Child>,
    exe: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

/// `command`, set to get SIGTERM when this process ends, even without its
/// `Drop` (an abort, a signal).
fn with_parent(mut command: Command) -> Command {
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe,
    // between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command
}

impl Agent {
    fn qemu_ga(exe: &Path) -> Result<Agent, String> {
        let dir = tempfile::tempdir().map_err(io)?;
        let socket = dir.path().join("qemu-ga.sock");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).map_err(io)?;
        let log = dir.path().join("qemu-ga.log");
        let child = with_parent(Command::new(exe))
            .args(["-m", "unix-listen", "-p"])
            .arg(&socket)
            .arg("-t")
            .arg(&state)
            .args(["-b", QEMU_GA_BLOCKED, "-l"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        Ok(Agent {
            name: "qemu-ga",
            child: Some(child),
            exe: exe.to_path_buf(),
            socket,
            log,
            _dir: dir,
        })
    }

    /// singularity on this machine (`live`: `--root /`, only the read-only
    /// commands allowed, as a guest would run it) or on a scratch root.
    fn singularity(exe: &Path, live: bool) -> Result<Agent, String> {
        let dir = tempfile::tempdir().map_err(io)?;
        let socket = dir.path().join("singularity.sock");
        let log = dir.path().join("singularity.log");
        let conf = dir.path().join("conf");
        std::fs::create_dir(&conf).map_err(io)?;
        std::fs::write(
            conf.join("singularity.conf"),
            format!(
                "[main]\ncommunicator = qga\n[qga]\nmethod = unix-listen\npath = {}\n{}",
                socket.display(),
                if live { LIVE_ALLOW } else { "" }
            ),
        )
        .map_err(io)?;
        let root = if live {
            PathBuf::from("/")
        } else {
            let root = dir.path().join("root");
            scratch_root(&root)?;
            root
        };
        let child = with_parent(Command::new(exe))
            .arg("-f")
            .arg(&conf)
            .arg("-H")
            .arg(&log)
            .args(["-l", "info", "--root"])
            .arg(&root)
            .args(["daemon", "--nodaemonize", "--pidfile"])
            .arg(dir.path().join("pid"))
            .arg("--run")
            .arg(dir.path().join("run"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        Ok(Agent {
            name: "singularity",
            child: Some(child),
            exe: exe.to_path_buf(),
            socket,
            log,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Waits until the socket takes a connection.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("{} exited ({status}); its log:\n{log}", self.name));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(format!("{} never listened on {}", self.name, self.socket.display()))
    }

    fn connect(&self) -> Result<Conn, String> {
        let stream = UnixStream::connect(&self.socket).map_err(|e| format!("{}: connect: {e}", self.name))?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        let reader = BufReader::with_capacity(1 << 16, stream.try_clone().map_err(io)?);
        Ok(Conn {
            name: self.name,
            writer: stream,
            reader,
        })
    }

    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            support::stop(child);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The scratch root: accounts for the password, and this machine's
/// `os-release` and kernel names, which singularity reads from files under
/// a root other than `/`.
fn scratch_root(root: &Path) -> Result<(), String> {
    let kernel = root.join("proc/sys/kernel");
    std::fs::create_dir_all(&kernel).map_err(io)?;
    std::fs::create_dir_all(root.join("etc")).map_err(io)?;
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
    )
    .map_err(io)?;
    std::fs::write(
        root.join("etc/shadow"),
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
    )
    .map_err(io)?;
    let os_release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    std::fs::write(root.join("etc/os-release"), os_release).map_err(io)?;
    for name in ["osrelease", "version", "arch"] {
        let value = std::fs::read_to_string(Path::new("/proc/sys/kernel").join(name))
            .unwrap_or_else(|_| format!("{}\n", std::env::consts::ARCH));
        std::fs::write(kernel.join(name), value).map_err(io)?;
    }
    Ok(())
}

/// One connection to an agent.
struct Conn {
    name: &'static str,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    fn send(&mut self, request: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(request)
            .map_err(|e| format!("{}: write: {e}", self.name))
    }

    /// The next reply line, `\n` included.
    fn line(&mut self, buf: &mut Vec<u8>) -> Result<(), String> {
        buf.clear();
        match self.reader.read_until(b'\n', buf) {
            Ok(_) if buf.last() == Some(&b'\n') => Ok(()),
            Ok(_) => Err(format!("{}: the connection closed", self.name)),
            Err(e) => Err(format!("{}: read: {e}", self.name)),
        }
    }

    /// One request and its reply line: the time between, the reply, and
    /// the line's size in bytes.
    fn call(&mut self, request: &[u8]) -> Result<(Duration, Value, usize), String> {
        let mut buf = Vec::with_capacity(8192);
        let start = Instant::now();
        self.send(request)?;
        self.line(&mut buf)?;
        let elapsed = start.elapsed();
        Ok((elapsed, self.parse(&buf)?, buf.len()))
    }

    fn parse(&self, line: &[u8]) -> Result<Value, String> {
        serde_json::from_slice(line).map_err(|e| {
            format!(
                "{}: not a JSON line ({e}): {}",
                self.name,
                String::from_utf8_lossy(line)
            )
        })
    }
}

// ---------------------------------------------------------------------------
// Measurements

/// One command's round trips, qemu-ga's and singularity's.
struct Row {
    command: &'static str,
    us: [Summary; 2],
    /// The size of the last reply line, bytes.
    reply_bytes: [usize; 2],
    /// Whether the two agents' last replies were the same JSON value.
    same: bool,
}

/// `n` timed round trips of `command` per agent, after `warmup` untimed ones,
/// the agents taking turns every [`BLOCK`] requests.
fn round_trips(conns: &mut [Conn; 2], command: &'static str, n: usize, warmup: usize) -> Result<Row, String> {
    let request = format!(r#"{{"execute":"{command}"}}"#);
    let mut last = [(Value::Null, 0), (Value::Null, 0)];
    for (i, conn) in conns.iter_mut().enumerate() {
        for _ in 0..warmup {
            let (_, reply, bytes) = conn.call(request.as_bytes())?;
            last[i] = (reply, bytes);
        }
    }
    let mut times: [Vec<f64>; 2] = [Vec::with_capacity(n), Vec::with_capacity(n)];
    let mut done = 0;
    while done < n {
        let block = BLOCK.min(n - done);
        for (i, conn) in conns.iter_mut().enumerate() {
            for _ in 0..block {
                let (d, reply, bytes) = conn.call(request.as_bytes())?;
                if reply.get("return").is_none() {
                    return Err(format!("{}: {command}: {reply}", conn.name));
                }
                times[i].push(d.as_secs_f64() * 1e6);
                last[i] = (reply, bytes);
            }
        }
        done += block;
    }
    let [a, b] = times;
    Ok(Row {
        command,
        us: [summarize(a), summarize(b)],
        reply_bytes: last.each(|(_, bytes)| *bytes),
        same: last[0].0 == last[1].0,
    })
}

/// Time to the command's reply and to the sync's, microseconds.
struct Pairs {
    command_us: Summary,
    sync_us: Summary,
}

/// `n` timed writes of `command` followed by a `guest-sync` (both in one
/// write), after `warmup` untimed ones.
fn sync_pairs(conn: &mut Conn, command: &[u8], n: usize, warmup: usize) -> Result<Pairs, String> {
    let mut buf = Vec::with_capacity(8192);
    let mut command_us = Vec::with_capacity(n);
    let mut sync_us = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let id = 1_000_000 + i as i64;
        let mut request = command.to_vec();
        request.extend(format!(r#"{{"execute":"guest-sync","arguments":{{"id":{id}}}}}"#).bytes());
        let start = Instant::now();
        conn.send(&request)?;
        let mut command_at = None;
        let mut sync_at = None;
        while command_at.is_none() || sync_at.is_none() {
            conn.line(&mut buf)?;
            let at = start.elapsed().as_secs_f64() * 1e6;
            let reply = conn.parse(&buf)?;
            if reply == json!({"return": id}) {
                sync_at = Some(at);
            } else if reply.get("return").is_some() {
                command_at = Some(at);
            } else {
                return Err(format!("{}: {}: {reply}", conn.name, String::from_utf8_lossy(command)));
            }
        }
        if i >= warmup {
            command_us.extend(command_at);
            sync_us.extend(sync_at);
        }
    }
    Ok(Pairs {
        command_us: summarize(command_us),
        sync_us: summarize(sync_us),
    })
}

/// What a process holds, KiB.
#[derive(Clone, Copy, Default)]
struct Memory {
    anon: Option<u64>,
    private_dirty: Option<u64>,
    rss: Option<u64>,
    pss: Option<u64>,
    threads: Option<u64>,
}

/// The value of `key:` in a `/proc` file of `key: value [kB]` lines.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn memory(pid: u32) -> Memory {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    Memory {
        anon: field(&rollup, "Anonymous"),
        private_dirty: field(&rollup, "Private_Dirty"),
        rss: field(&status, "VmRSS"),
        pss: field(&rollup, "Pss"),
        threads: field(&status, "Threads"),
    }
}

/// A file a process maps, other than its executable.
struct Mapped {
    path: String,
    file_kib: u64,
    rss_kib: u64,
    /// The C library's own files (libc, libm, the dynamic loader), which
    /// nearly every program of the guest maps too.
    glibc: bool,
    /// A shared library (not locale or other data).
    library: bool,
}

/// The files `pid` maps, with their resident size in it (`/proc/<pid>/smaps`).
fn libraries(pid: u32, exe: &Path) -> Vec<Mapped> {
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut out: Vec<Mapped> = Vec::new();
    let mut current: Option<usize> = None;
    for line in smaps.lines() {
        if line.starts_with("Rss:") {
            if let (Some(i), Some(kib)) = (current, field(line, "Rss")) {
                out[i].rss_kib += kib;
            }
            continue;
        }
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if !first.contains('-') || first.ends_with(':') {
            continue;
        }
        // A mapping: address perms offset dev inode [path]
        let path = words.skip(4).collect::<Vec<_>>().join(" ");
        current = None;
        if !path.starts_with('/') || Path::new(&path) == exe {
            continue;
        }
        current = Some(match out.iter().position(|m| m.path == path) {
            Some(i) => i,
            None => {
                let name = path.rsplit('/').next().unwrap_or("");
                out.push(Mapped {
                    file_kib: std::fs::metadata(&path).map(|m| m.len().div_ceil(1024)).unwrap_or(0),
                    rss_kib: 0,
                    glibc: ["libc.so", "libm.so", "ld-linux"].iter().any(|p| name.starts_with(p)),
                    library: name.contains(".so"),
                    path,
                });
                out.len() - 1
            }
        });
    }
    out
}

// ---------------------------------------------------------------------------
// Report

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".into(), |n| n.to_string())
}

fn print_round_trips(rows: &[Row]) {
    println!("Round trip, µs: the write of {{\"execute\":C}} to its whole reply line read");
    println!(
        "{:<18} {:<12} {:>6} {:>8} {:>8} {:>8} {:>9}",
        "command", "agent", "n", "p50", "p99", "max", "reply B"
    );
    for row in rows {
        for (i, agent) in ["qemu-ga", "singularity"].iter().enumerate() {
            let s = row.us[i];
            println!(
                "{:<18} {:<12} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>9}",
                if i == 0 { row.command } else { "" },
                agent,
                s.n,
                s.p50,
                s.p99,
                s.max,
                row.reply_bytes[i]
            );
        }
        if row.command == "guest-get-osinfo" {
            println!(
                "{:<18} (the two replies are {})",
                "",
                if row.same { "the same JSON value" } else { "different" }
            );
        }
    }
    println!();
}

fn print_sync_pairs(pairs: &[(&str, &str, Pairs)]) {
    println!("guest-sync behind another command (both in one write), µs from the write to each reply");
    println!(
        "{:<12} {:<24} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "agent", "command", "n", "cmd p50", "cmd p99", "sync p50", "sync p99", "sync max"
    );
    for (agent, command, p) in pairs {
        println!(
            "{:<12} {:<24} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            agent,
            command,
            p.sync_us.n,
            p.command_us.p50,
            p.command_us.p99,
            p.sync_us.p50,
            p.sync_us.p99,
            p.sync_us.max
        );
    }
    println!("(guest-set-user-password rewrites the scratch root's /etc/shadow; not sent to qemu-ga, which would change this machine's)\n");
}

/// The KiB of qemu-ga's libraries outside the C library.
fn own_libraries_kib(libs: &[Mapped]) -> u64 {
    libs.iter().filter(|m| m.library && !m.glibc).map(|m| m.file_kib).sum()
}

fn print_memory(idle: u64, started: &[Memory; 2], after: &[Memory; 2], exe: &[Option<u64>; 2], libs: &[Mapped]) {
    println!("Idle memory, KiB: after start-up, and {idle} s after the last request");
    println!("{:<46} {:>12} {:>12}", "", "qemu-ga", "singularity");
    let line = |label: &str, v: [Option<u64>; 2]| println!("{label:<46} {:>12} {:>12}", opt(v[0]), opt(v[1]));
    line(
        "private anonymous (Anonymous), after start-up",
        started.each(|m| m.anon),
    );
    line("private anonymous (Anonymous), idle", after.each(|m| m.anon));
    line("stripped executable", *exe);
    let own = own_libraries_kib(libs);
    line("shared libraries other than glibc (files)", [Some(own), Some(0)]);
    let cost = [0, 1].map(|i| after[i].anon.zip(exe[i]).map(|(a, e)| a + e));
    line("anonymous + executable", cost);
    line(
        "anonymous + executable + libraries",
        [cost[0].map(|c| c + own), cost[1]],
    );
    line("VmRSS, idle", after.each(|m| m.rss));
    line("PSS, idle", after.each(|m| m.pss));
    line("Private_Dirty, idle", after.each(|m| m.private_dirty));
    line("threads", after.each(|m| m.threads));
    println!(
        "anonymous: heap, stacks and written data (smaps_rollup Anonymous), which no other process shares;\n\
         executable: the stripped file, the most of its code the page cache can hold for it;\n\
         libraries: the files of the shared libraries qemu-ga maps, glibc's left out (nearly every program maps them);\n\
         VmRSS: every resident page, shared ones whole; PSS: each resident page divided by the processes mapping it;\n\
         Private_Dirty: written pages no other process maps (a file's too while its page cache is unwritten,\n\
         e.g. a binary just linked). Both agents hold one idle connection."
    );
    println!("\nFiles qemu-ga maps besides its executable (singularity is static: none)");
    println!("{:<56} {:>9} {:>9}  counted", "file", "file KiB", "RSS KiB");
    for m in libs {
        let counted = match (m.library, m.glibc) {
            (false, _) => "no: data, not code",
            (true, true) => "no: glibc, mapped by nearly every program",
            (true, false) => "yes",
        };
        println!("{:<56} {:>9} {:>9}  {counted}", m.path, m.file_kib, m.rss_kib);
    }
    println!();
}

fn print_targets(rows: &[Row], after: &[Memory; 2], exe: &[Option<u64>; 2], libs: &[Mapped]) {
    println!("Targets: faster, and at most a tenth of qemu-ga's idle private memory");
    let mut faster = true;
    for row in rows {
        let [q, s] = row.us;
        let holds = s.p50 < q.p50 && s.p99 < q.p99;
        faster &= holds;
        println!(
            "{:<18} singularity/qemu-ga: p50 {:.2}, p99 {:.2} ({})",
            row.command,
            s.p50 / q.p50,
            s.p99 / q.p99,
            if holds { "faster" } else { "not faster" }
        );
    }
    println!("faster (lower p50 and p99 for every command): {}", yes_no(faster));
    let ratio = |s: Option<u64>, q: Option<u64>| s.zip(q).filter(|(_, q)| *q > 0).map(|(s, q)| s as f64 / q as f64);
    let anon = ratio(after[1].anon, after[0].anon);
    let cost = |i: usize| after[i].anon.zip(exe[i]).map(|(a, e)| a + e);
    let with_code = ratio(cost(1), cost(0).map(|c| c + own_libraries_kib(libs)));
    for (label, r) in [
        ("private anonymous memory", anon),
        ("anonymous + executable (+ qemu-ga's libraries)", with_code),
    ] {
        println!(
            "{label}: singularity/qemu-ga {} (at most 0.10: {})",
            r.map_or("n/a".into(), |r| format!("{r:.2}")),
            r.map_or("n/a", |r| yes_no(r <= 0.10))
        );
    }
    // What no program built as the agent can go below: the standard
    // library's and static glibc's own pages, asleep with as many threads.
    let threads = after[1].threads.unwrap_or(1);
    match Floor::measure(threads, |pid| memory(pid).anon) {
        Ok(floor) => println!(
            "floor, with singularity's profile, flags and link step: a program that only sleeps, {threads} threads: {} KiB anonymous \
             (floor/qemu-ga {}), {} KiB executable; one that only downloads as agentupdate does: {} KiB executable",
            opt(floor.idle_anon),
            ratio(floor.idle_anon, after[0].anon).map_or("n/a".into(), |r| format!("{r:.2}")),
            opt(floor.idle_exe),
            opt(floor.https_exe)
        ),
        Err(e) => println!("floor: not measured: {e}"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
