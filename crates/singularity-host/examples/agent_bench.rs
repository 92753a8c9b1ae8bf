//! Benchmark of the release agent over XenStore, as the host sees it.
//!
//! ```text
//! cargo run --release -p singularity-host --example agent_bench
//! ```
//!
//! The example first builds the binary the packages ship, the static release
//! build (`RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p
//! singularity --bin singularity --target x86_64-unknown-linux-gnu`, as
//! `scripts/package` does; a no-op when up to date) and uses it; set
//! `SINGULARITY_BIN` to benchmark another one (e.g. the dynamically linked
//! `target/release/singularity`). `BENCH_ITERATIONS` changes the number of
//! timed requests per command (default 300).
//!
//! Set-up: the XenStore simulator runs in this process with a dom0 socket
//! and guest 7's `/dev/xen/xenbus` emulation; the agent runs as
//! `singularity -f <dir> -H - -l info --root <scratch root> daemon
//! --nodaemonize --communicator xen --pidfile <file>` (`<dir>` holds an empty
//! `singularity.conf`: all defaults) with `XENSTORED_PATH` set to the guest
//! socket. Then the same against Debian 12's real C `xenstored` (and
//! `oxenstored`), started like the xenstore crate's tests do (`realxs.rs`),
//! the agent connected to its socket as dom0.
//!
//! What is measured:
//! - host-observed latency: from the host's `WRITE data/host/<id>` to the
//!   reply in hand. The host waits with a watch on `data/guest` (no polling
//!   interval in the numbers), reads the reply and removes it. `password` is
//!   timed alone (its `keyinit` is not) and includes the `/etc/shadow`
//!   rewrite (SHA-512 crypt, fsync, rename). One more row times
//!   `AgentHost::password` (keyinit + password) as the dom0 plugin does it,
//!   polling every 200 µs;
//! - agent-side handling time, from the agent's own log line per request
//!   (`request <id> command <c> returncode <rc> changed <yes/no> in <ms> ms`,
//!   0.1 ms resolution), matched to the host's requests by id;
//! - what the idle daemon costs the guest (3 s without requests, after
//!   start-up and its first request, and again after all the requests): its
//!   anonymous memory (`RssAnon` of `/proc/<pid>/status`: heap, stacks,
//!   writable data, which nothing else shares) plus the size of its stripped
//!   executable (the most of the binary the page cache can hold for it,
//!   whether or not the daemon maps those pages now). VmRSS and PSS
//!   (`/proc/<pid>/smaps_rollup`) are printed beside it, and VmHWM after the
//!   requests;
//! - the sizes of the stripped guest agent and of the operator tools;
//! - the floor under the idle cost: the singularity crate's `floor_idle`
//!   example, built with the agent's profile, flags and link step and asleep
//!   with as many threads as the idle agent, by its anonymous memory plus its
//!   stripped size; and `floor_https`, `agentupdate`'s download alone, by
//!   its stripped size;
//! - XenStore requests the agent makes in 3 s of idleness, and per request
//!   (simulator only: it counts every request it serves);
//! - idle XenStore requests per hour with the metrics function on and off
//!   (simulator, guest 7 laid out as xenopsd does): the agent runs with
//!   `[metrics] memory_interval = 1` and a `/proc/meminfo` in its root that
//!   this example rewrites each second, with a new free-memory value (the
//!   worst case) and then with the same one; the requests counted over
//!   [`METRICS_TICKS`] readings are scaled to the default 60 s interval.

#[path = "../../xenstore/tests/common/realxs.rs"]
mod realxs;

#[path = "common/support.rs"]
mod support;
use serde_json::{json, Value};
use singularity::crypto::cipher::{encrypt_password, Digest};
use singularity::crypto::dh::{KeyPair, PeerKey};
use singularity_host::dom0::{check_reply, pyjson, uuid4, AgentHost, AgentReply};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::{stripped_kib, summarize, Floor, Summary};
use xenstore::sim::{Config, Simulator};
use xenstore::{Client, Optional, Watch, WatchEvent};

/// The guest's domain id on the simulator.
const DOMID: u32 = 7;
/// Untimed requests before each timed series.
const WARMUP: usize = 20;
/// How long the host waits for one reply.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The password set again and again.
const PASSWORD: &str = "bench-Passw0rd!";
/// Idle period watched for XenStore traffic.
const IDLE: Duration = Duration::from_secs(3);
/// Memory readings watched per metrics measurement.
const METRICS_TICKS: u64 = 5;
/// Default idle window of the CPU measurement, seconds.
const IDLE_CPU_SECS: u64 = 180;
/// How often the CPU measurement gives free memory a new value: more often
/// than the agent's default 60 s reading, so that every reading writes.
const MEMINFO_CHANGE: Duration = Duration::from_secs(20);
/// `functions` without `metrics`.
const FUNCTIONS_NO_METRICS: &str =
    "[main]\nfunctions = network,hosts,hostname,resolvers,password,file,update,version,features\n";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let bin = agent_binary()?;
    let iterations = match std::env::var("BENCH_ITERATIONS") {
        Ok(v) => v
            .parse::<usize>()
            .map_err(|_| format!("BENCH_ITERATIONS={v}: not a number"))?,
        Err(_) => 300,
    };
    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    println!("agent binary: {} ({} KiB)", bin.display(), size / 1024);
    println!(
        "machine: {} CPU(s), load average {}",
        thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(String::from))
            .unwrap_or_else(|| "?".into())
    );
    println!("{iterations} timed requests per command after {WARMUP} untimed ones\n");

    let exe_kib = stripped_kib(&bin);
    let tools = bin.with_file_name("singularity-host");
    println!(
        "stripped sizes: singularity {} KiB; singularity-host {}",
        exe_kib.map_or("n/a".into(), |k| k.to_string()),
        stripped_kib(&tools).map_or_else(
            || format!("n/a ({} not built)", tools.display()),
            |k| format!("{k} KiB")
        )
    );
    let mut results = vec![bench_simulator(&bin, iterations)?];
    match realxs::prepare() {
        Ok(env) => {
            for (kind, label) in [(realxs::Kind::C, "xenstored (C)"), (realxs::Kind::Ox, "oxenstored")] {
                match bench_real(&bin, &env, kind, label, iterations) {
                    Ok(r) => results.push(r),
                    Err(e) => println!("{label}: not measured: {e}\n"),
                }
            }
        }
        Err(e) => println!("real xenstored: not measured: {e}\n"),
    }
    print_report(&results, exe_kib);
    print_floor(&results, exe_kib);
    bench_metrics_idle(&bin)?;
    bench_idle_cpu(&bin)?;
    Ok(())
}

/// Gives guest [`DOMID`] its `attr` directory, as xenopsd does (the
/// simulator makes only `data` the guest's).
fn guest_attr(dom0: &Path) -> Result<(), String> {
    let c = Client::connect(dom0).map_err(|e| e.to_string())?;
    let attr = format!("/local/domain/{DOMID}/attr");
    c.write(&attr, "").map_err(|e| e.to_string())?;
    c.set_perms(&attr, &[xenstore::Perm::new(DOMID, xenstore::Access::None)])
        .map_err(|e| e.to_string())
}

/// Idle XenStore requests per hour, metrics on (free memory changing at every
/// reading, then never) and off.
fn bench_metrics_idle(bin: &Path) -> Result<(), String> {
    let mut line = Vec::new();
    for (label, config, changing) in [
        (
            "metrics on, free memory changing",
            "[metrics]\nmemory_interval = 1\n",
            true,
        ),
        (
            "metrics on, free memory steady",
            "[metrics]\nmemory_interval = 1\n",
            false,
        ),
        ("metrics off", FUNCTIONS_NO_METRICS, false),
    ] {
        let SimStore { dom0, guest, sim, _dir } = SimStore::new()?;
        let mut agent = Agent::spawn_with(bin, &guest, config)?;
        let meminfo = agent.root.join("proc/meminfo");
        std::fs::create_dir_all(agent.root.join("proc")).map_err(|e| e.to_string())?;
        let write = |free: u64| std::fs::write(&meminfo, format!("MemTotal: 2000000 kB\nMemAvailable: {free} kB\n"));
        write(1_000_000).map_err(|e| e.to_string())?;
        let host = WatchHost::new(&dom0, DOMID)?;
        wait_ready(&mut agent, &host)?;
        thread::sleep(Duration::from_millis(1500));
        let before = sim.stats().total_requests();
        for tick in 1..=METRICS_TICKS {
            if changing {
                write(1_000_000 - tick * 4).map_err(|e| e.to_string())?;
            }
            thread::sleep(Duration::from_secs(1));
        }
        let sent = sim.stats().total_requests() - before;
        agent.stop();
        sim.shutdown();
        // One reading a minute at the default interval: 60 an hour.
        line.push(format!("{label}: {}", sent * 60 / METRICS_TICKS));
    }
    println!("\nIdle XenStore requests per hour (simulator; memory read every 60 s):");
    println!("{}", line.join("; "));
    Ok(())
}

/// CPU time a process has used.
#[derive(Clone, Copy)]
struct CpuTime {
    /// `utime + stime` of `/proc/<pid>/stat`, clock ticks, every thread
    /// (living or ended) counted.
    ticks: u64,
    /// The scheduler's run time of the living threads, nanoseconds.
    run_ns: u64,
}

fn cpu_time(pid: u32) -> Result<CpuTime, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The fields after the command name, which may hold spaces and ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("no ')' in /proc/<pid>/stat")?;
    let field = |n: usize| -> Result<u64, String> {
        // rest starts at field 3 (state)
        rest.split_whitespace()
            .nth(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("field {n} of /proc/{pid}/stat"))
    };
    let mut run_ns = 0;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| e.to_string())?;
    for task in tasks.flatten() {
        let line = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        run_ns += line
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(CpuTime {
        ticks: field(14)? + field(15)?,
        run_ns,
    })
}

/// One idle agent of the CPU measurement, with its own simulator.
struct IdleRun {
    label: &'static str,
    agent: Agent,
    _host: WatchHost,
    store: SimStore,
}

fn write_meminfo(root: &Path, free: u64) -> Result<(), String> {
    std::fs::create_dir_all(root.join("proc")).map_err(|e| e.to_string())?;
    std::fs::write(
        root.join("proc/meminfo"),
        format!("MemTotal: 2000000 kB\nMemFree: 500000 kB\nMemAvailable: {free} kB\n"),
    )
    .map_err(|e| e.to_string())
}

fn bench_idle_cpu(bin: &Path) -> Result<(), String> {
    let window = match std::env::var("BENCH_IDLE_SECS") {
        Ok(v) => v
            .parse::<u64>()
            .map_err(|_| format!("BENCH_IDLE_SECS={v}: not a number"))?,
        Err(_) => IDLE_CPU_SECS,
    };
    // SAFETY: sysconf only reads a constant of the system.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    let mut runs = Vec::new();
    for (label, config) in [("metrics on", ""), ("metrics off", FUNCTIONS_NO_METRICS)] {
        let store = SimStore::new()?;
        let mut agent = Agent::spawn_with(bin, &store.guest, config)?;
        write_meminfo(&agent.root, 1_000_000)?;
        let host = WatchHost::new(&store.dom0, DOMID)?;
        wait_ready(&mut agent, &host)?;
        runs.push(IdleRun {
            label,
            agent,
            _host: host,
            store,
        });
    }
    // Past the heap trim 2 s after the last request.
    thread::sleep(Duration::from_secs(3));
    let start = runs
        .iter()
        .map(|r| Ok((cpu_time(r.agent.pid())?, r.store.sim.stats().total_requests())))
        .collect::<Result<Vec<_>, String>>()?;
    let t = Instant::now();
    let mut free = 1_000_000;
    while t.elapsed() < Duration::from_secs(window) {
        thread::sleep(MEMINFO_CHANGE.min(Duration::from_secs(window).saturating_sub(t.elapsed())));
        free -= 4;
        for r in &runs {
            write_meminfo(&r.agent.root, free)?;
        }
    }
    let elapsed = t.elapsed().as_secs_f64();
    let end = runs
        .iter()
        .map(|r| cpu_time(r.agent.pid()))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "\nIdle CPU seconds per day (simulator, every default: free memory read every 60 s and \
         new at each reading; {elapsed:.0} s without requests, scaled to 86,400 s):"
    );
    let day = |secs: f64| secs * 86_400.0 / elapsed;
    for ((r, (a, requests)), b) in runs.iter_mut().zip(&start).zip(&end) {
        let ticks = b.ticks.saturating_sub(a.ticks);
        let run_s = b.run_ns.saturating_sub(a.run_ns) as f64 / 1e9;
        let by_ticks = if ticks == 0 {
            format!("0 ticks of 1/{hz} s (under {:.2} s/day)", day(1.0 / hz as f64))
        } else {
            format!("{ticks} ticks of 1/{hz} s = {:.2} s/day", day(ticks as f64 / hz as f64))
        };
        println!(
            "{}: utime+stime {by_ticks}; scheduler run time {:.3} ms = {:.3} s/day; {} XenStore requests in the window",
            r.label,
            run_s * 1000.0,
            day(run_s),
            r.store.sim.stats().total_requests() - requests
        );
        r.agent.stop();
        r.store.sim.shutdown();
    }
    Ok(())
}

/// The floor under the idle cost: programs built as the agent is that only
/// sleep, or only download as `agentupdate` does.
fn print_floor(results: &[Results], exe_kib: Option<u64>) {
    let Some(start) = results.first().map(|r| r.idle_start) else {
        return;
    };
    let threads = start.threads.unwrap_or(1);
    let rss_anon = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("RssAnon:"))?;
        line.split_whitespace().next()?.parse().ok()
    };
    let floor = match Floor::measure(threads, rss_anon) {
        Ok(floor) => floor,
        Err(e) => {
            println!("floor: not measured: {e}\n");
            return;
        }
    };
    let opt = |v: Option<u64>| v.map_or_else(|| "n/a".into(), |n| n.to_string());
    let sum = |a: Option<u64>, b: Option<u64>| opt(a.zip(b).map(|(a, b)| a + b));
    println!("The floor under the idle cost, KiB (the agent's profile, flags and link step):");
    println!(
        "  a program that only sleeps, {threads} threads: {} anonymous + {} executable = {}",
        opt(floor.idle_anon),
        opt(floor.idle_exe),
        sum(floor.idle_anon, floor.idle_exe)
    );
    println!(
        "  a program that only downloads as agentupdate does: {} executable, before any anonymous memory",
        opt(floor.https_exe)
    );
    for r in results {
        println!(
            "  the agent on {}, idle after start-up: {} anonymous + {} executable = {}",
            r.xenstore,
            opt(r.idle_start.anon_kib),
            opt(exe_kib),
            sum(r.idle_start.anon_kib, exe_kib)
        );
    }
    println!();
}

/// Builds (if needed) and finds the static release agent next to this example's
/// target directory, or takes `SINGULARITY_BIN`.
fn agent_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SINGULARITY_BIN") {
        return Ok(PathBuf::from(bin));
    }
    support::static_agent(&["singularity", "singularity-host"])
}

// ---------------------------------------------------------------------------
// The agent process

/// One log line of the agent: command, returncode, milliseconds.
type LogEntry = (String, String, f64);

struct Agent {
    child: Option<Child>,
    log: Arc<Mutex<HashMap<String, LogEntry>>>,
    other: Arc<Mutex<Vec<String>>>,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

/// `... request <id> command <c> returncode <rc> changed <yes/no> in <ms> ms`
fn parse_log_line(line: &str) -> Option<(String, LogEntry)> {
    let at = line.find("request ")?;
    let t: Vec<&str> = line[at..].split_whitespace().collect();
    if t.len() != 11 || t[2] != "command" || t[4] != "returncode" || t[8] != "in" || t[10] != "ms" {
        return None;
    }
    let ms = t[9].parse().ok()?;
    Some((t[1].to_string(), (t[3].to_string(), t[5].to_string(), ms)))
}

impl Agent {
    fn spawn(bin: &Path, xenstore: &Path) -> Result<Agent, String> {
        // Empty means every default.
        Agent::spawn_with(bin, xenstore, "")
    }

    fn spawn_with(bin: &Path, xenstore: &Path, config: &str) -> Result<Agent, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let conf = dir.path().join("conf");
        let root = dir.path().join("root");
        let io = |e: std::io::Error| e.to_string();
        std::fs::create_dir_all(&conf).map_err(io)?;
        // The agent insists on the file.
        std::fs::write(conf.join("singularity.conf"), config).map_err(io)?;
        std::fs::create_dir_all(root.join("etc")).map_err(io)?;
        std::fs::write(
            root.join("etc/shadow"),
            "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        )
        .map_err(io)?;
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n",
        )
        .map_err(io)?;
        let mut child = Command::new(bin)
            .arg("-f")
            .arg(&conf)
            .args(["-H", "-", "-l", "info", "--root"])
            .arg(&root)
            .args(["daemon", "--nodaemonize", "--communicator", "xen", "--pidfile"])
            .arg(dir.path().join("singularity.pid"))
            .env("XENSTORED_PATH", xenstore)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let log = Arc::new(Mutex::new(HashMap::new()));
        let other = Arc::new(Mutex::new(Vec::new()));
        let (log2, other2) = (Arc::clone(&log), Arc::clone(&other));
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match parse_log_line(&line) {
                    Some((id, entry)) => {
                        log2.lock().unwrap().insert(id, entry);
                    }
                    None => other2.lock().unwrap().push(line),
                }
            }
        });
        Ok(Agent {
            child: Some(child),
            log,
            other,
            root,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// A `/proc/<pid>/status` field in KiB.
    fn status_kib(&self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The memory the process holds now.
    fn memory(&self) -> Memory {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid())).unwrap_or_default();
        let field = |key: &str| {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        };
        Memory {
            anon_kib: self.status_kib("RssAnon"),
            rss_kib: self.status_kib("VmRSS"),
            pss_kib: field("Pss"),
            threads: self.status_kib("Threads"),
        }
    }

    /// The agent-side times of `ids`, waiting for their log lines to arrive.
    fn times(&self, ids: &[String], command: &str) -> Result<Vec<f64>, String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            {
                let log = self.log.lock().unwrap();
                if ids.iter().all(|id| log.contains_key(id)) {
                    let mut out = Vec::with_capacity(ids.len());
                    for id in ids {
                        let (c, rc, ms) = &log[id];
                        if c != command || !matches!(rc.as_str(), "0" | "D0") {
                            return Err(format!("request {id}: logged as {c} with returncode {rc}"));
                        }
                        out.push(*ms);
                    }
                    return Ok(out);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("the agent did not log all {command} requests"));
            }
            thread::sleep(Duration::from_millis(10));
        }
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

// ---------------------------------------------------------------------------
// The host

/// A dom0 host that waits for replies with a watch on `data/guest`.
struct WatchHost {
    client: Client,
    watch: Watch,
    home: String,
}

impl WatchHost {
    fn new(socket: &Path, domid: u32) -> Result<WatchHost, String> {
        let client = Client::connect(socket).map_err(|e| format!("dom0 client: {e}"))?;
        let home = format!("/local/domain/{domid}");
        let watch = client
            .watch(&format!("{home}/data/guest"))
            .map_err(|e| format!("watch: {e}"))?;
        // The initial event.
        while watch
            .recv_timeout(Duration::from_millis(50))
            .map_err(|e| e.to_string())?
            .is_some()
        {}
        Ok(WatchHost { client, watch, home })
    }

    /// Sends `{"name": name, "value": value}`; returns the reply, the
    /// host-observed latency and the request id.
    fn call(&self, name: &str, value: Value) -> Result<(AgentReply, Duration, String), String> {
        let request = pyjson::dumps(&json!({"name": name, "value": value}));
        let id = uuid4().map_err(|e| e.to_string())?;
        let host = format!("{}/data/host/{id}", self.home);
        let guest = format!("{}/data/guest/{id}", self.home);
        let start = Instant::now();
        self.client
            .write(&host, request.as_bytes())
            .map_err(|e| format!("write {host}: {e}"))?;
        let deadline = start + TIMEOUT;
        let raw = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.watch.recv_timeout(left).map_err(|e| e.to_string())? {
                Some(WatchEvent::Changed(path)) if path == guest => {
                    if let Some(raw) = self
                        .client
                        .read(&guest)
                        .optional()
                        .map_err(|e| format!("read {guest}: {e}"))?
                    {
                        break raw;
                    }
                }
                Some(_) => {}
                None => return Err(format!("{name}: no reply within {} s", TIMEOUT.as_secs())),
            }
        };
        let elapsed = start.elapsed();
        // Keep data/guest small (the plugin leaves replies; they would count
        // against the guest's node quota over thousands of requests).
        let _ = self.client.rm(&guest);
        let reply = check_reply(&raw).map_err(|e| e.to_string())?;
        Ok((reply, elapsed, id))
    }
}

// ---------------------------------------------------------------------------
// Measurements

struct Row {
    command: &'static str,
    host_ms: Summary,
    agent_ms: Summary,
}

struct Results {
    xenstore: &'static str,
    rows: Vec<Row>,
    idle_start: Memory,
    hwm_kib: Option<u64>,
    idle_after: Memory,
    requests: usize,
    idle: Idle,
    per_request: Vec<(&'static str, f64)>,
}

/// Times `once` (which returns the host latency and the ids whose agent-side
/// times make up the request) `iterations` times after a warm-up.
fn series(
    agent: &Agent,
    command: &'static str,
    iterations: usize,
    sent: &mut usize,
    mut once: impl FnMut() -> Result<(Duration, Vec<String>), String>,
) -> Result<Row, String> {
    for _ in 0..WARMUP {
        *sent += once()?.1.len();
    }
    let mut host = Vec::with_capacity(iterations);
    let mut agent_ms = Vec::with_capacity(iterations);
    let mut all_ids = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let (d, ids) = once()?;
        host.push(d.as_secs_f64() * 1000.0);
        *sent += ids.len();
        all_ids.push(ids);
    }
    for ids in &all_ids {
        // AgentHost::password sends keyinit + password: the sum of both
        let mut total = 0.0;
        for (i, id) in ids.iter().enumerate() {
            let logged = match (ids.len(), i) {
                (2, 0) => "keyinit",
                (2, _) => "password",
                _ => command,
            };
            total += agent.times(std::slice::from_ref(id), logged)?[0];
        }
        agent_ms.push(total);
    }
    Ok(Row {
        command,
        host_ms: summarize(host),
        agent_ms: summarize(agent_ms),
    })
}

fn expect(reply: &AgentReply, code: &str, what: &str) -> Result<(), String> {
    if reply.returncode == code {
        Ok(())
    } else {
        Err(format!("{what}: returncode {} ({})", reply.returncode, reply.message))
    }
}

/// `keyinit` then `password` through the watch host; only the password is timed.
fn password_once(host: &WatchHost) -> Result<(Duration, Vec<String>), String> {
    let pair = KeyPair::generate().map_err(|e| e.to_string())?;
    let (reply, _, _) = host.call("keyinit", Value::String(pair.public_key().to_string()))?;
    expect(&reply, "D0", "keyinit")?;
    let peer = PeerKey::parse(&reply.message).map_err(|e| format!("keyinit reply: {e}"))?;
    let ciphertext = encrypt_password(&pair.shared_secret(peer), &format!("{PASSWORD}\n"), Digest::Sha256);
    let (reply, d, id) = host.call("password", Value::String(ciphertext))?;
    expect(&reply, "0", "password")?;
    Ok((d, vec![id]))
}

/// The rows, the number of requests sent, and XenStore requests per request.
type Measured = (Vec<Row>, usize, Vec<(&'static str, f64)>);

/// The four series plus `AgentHost::password`, on a running agent.
fn measure(
    agent: &Agent,
    host: &WatchHost,
    plugin: &AgentHost,
    iterations: usize,
    stats: Option<&Simulator>,
) -> Result<Measured, String> {
    let mut sent = 0;
    let mut rows = Vec::new();
    let mut per_request = Vec::new();
    let total = || stats.map(|s| s.stats().total_requests());
    let simple = |name: &'static str, value: Value, code: &'static str| {
        move || -> Result<(Duration, Vec<String>), String> {
            let (reply, d, id) = host.call(name, value.clone())?;
            expect(&reply, code, name)?;
            Ok((d, vec![id]))
        }
    };
    let before = total();
    rows.push(series(
        agent,
        "version",
        iterations,
        &mut sent,
        simple("version", json!("agent"), "0"),
    )?);
    if let (Some(a), Some(b)) = (before, total()) {
        // the host makes 3 of them (write, read, rm)
        per_request.push(("version", (b - a) as f64 / (iterations + WARMUP) as f64 - 3.0));
    }
    rows.push(series(
        agent,
        "features",
        iterations,
        &mut sent,
        simple("features", json!(""), "0"),
    )?);
    let keyinit = move || -> Result<(Duration, Vec<String>), String> {
        let pair = KeyPair::generate().map_err(|e| e.to_string())?;
        let (reply, d, id) = host.call("keyinit", Value::String(pair.public_key().to_string()))?;
        expect(&reply, "D0", "keyinit")?;
        Ok((d, vec![id]))
    };
    rows.push(series(agent, "keyinit", iterations, &mut sent, keyinit)?);
    let before = total();
    rows.push(series(agent, "password", iterations, &mut sent, || {
        password_once(host)
    })?);
    sent += iterations + WARMUP; // the untimed keyinits
    if let (Some(a), Some(b)) = (before, total()) {
        // per keyinit + password pair, minus the host's 6
        per_request.push(("keyinit+password", (b - a) as f64 / (iterations + WARMUP) as f64 - 6.0));
    }
    let plugin_series = || -> Result<(Duration, Vec<String>), String> {
        let start = Instant::now();
        let reply = plugin
            .password(PASSWORD, Digest::Sha256, TIMEOUT)
            .map_err(|e| format!("AgentHost::password: {e}"))?;
        let d = start.elapsed();
        expect(&reply, "0", "AgentHost::password")?;
        let ids: Vec<String> = plugin.take_exchanges().into_iter().map(|x| x.id).collect();
        for id in &ids {
            let _ = plugin
                .client()
                .rm(&format!("/local/domain/{}/data/guest/{id}", plugin.domid()));
        }
        Ok((d, ids))
    };
    let plugin_iterations = iterations.div_ceil(3);
    rows.push(series(
        agent,
        "AgentHost::password",
        plugin_iterations,
        &mut sent,
        plugin_series,
    )?);
    // The shadow file really changed.
    let shadow = std::fs::read_to_string(agent.root.join("etc/shadow")).map_err(|e| e.to_string())?;
    if !shadow.starts_with("root:$6$") {
        return Err(format!("etc/shadow was not rewritten: {shadow}"));
    }
    Ok((rows, sent, per_request))
}

/// Waits until the agent answers (it watches `data/host` once connected).
fn wait_ready(agent: &mut Agent, host: &WatchHost) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let exited = agent.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        let failure = match exited {
            Some(status) => format!("the agent exited ({status})"),
            None => match host.call("version", json!("agent")) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => format!("the agent never answered: {e}"),
                Err(_) => continue,
            },
        };
        thread::sleep(Duration::from_millis(100));
        let log = agent.other.lock().unwrap().join("\n");
        return Err(format!("{failure}; its log:\n{log}"));
    }
}

/// The simulator in this process: a dom0 socket and guest `DOMID`'s
/// `/dev/xen/xenbus` emulation, laid out as xenopsd leaves a domain.
struct SimStore {
    dom0: PathBuf,
    guest: PathBuf,
    sim: Simulator,
    _dir: tempfile::TempDir,
}

impl SimStore {
    fn new() -> Result<SimStore, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dom0 = dir.path().join("dom0.sock");
        let guest = dir.path().join("guest.sock");
        let sim = Simulator::new(Config::default());
        sim.listen_dom0(&dom0).map_err(|e| format!("dom0 socket: {e}"))?;
        sim.add_guest_device(DOMID, &guest)
            .map_err(|e| format!("guest device: {e}"))?;
        guest_attr(&dom0)?;
        Ok(SimStore {
            dom0,
            guest,
            sim,
            _dir: dir,
        })
    }
}

fn bench_simulator(bin: &Path, iterations: usize) -> Result<Results, String> {
    let SimStore { dom0, guest, sim, _dir } = SimStore::new()?;
    let agent = Agent::spawn(bin, &guest)?;
    let host = WatchHost::new(&dom0, DOMID)?;
    let results = bench_agent("simulator", agent, &host, &dom0, DOMID, iterations, Some(&sim));
    sim.shutdown();
    results
}

fn bench_real(
    bin: &Path,
    env: &realxs::Env,
    kind: realxs::Kind,
    label: &'static str,
    iterations: usize,
) -> Result<Results, String> {
    let daemon = realxs::Daemon::start(env, kind)?;
    // The agent connects to the daemon's socket, so it is dom0: its relative
    // paths resolve to /local/domain/0, where the host sends requests too.
    let agent = Agent::spawn(bin, daemon.socket())?;
    let host = WatchHost::new(daemon.socket(), 0)?;
    host.client
        .write("/local/domain/0/name", b"Domain-0")
        .map_err(|e| format!("write name: {e}"))?;
    bench_agent(label, agent, &host, daemon.socket(), 0, iterations, None)
}

/// One XenStore's measurements: the agent idle after start-up, the timed
/// requests (`sim` counts the agent's XenStore requests), then idle again.
fn bench_agent(
    label: &'static str,
    mut agent: Agent,
    host: &WatchHost,
    dom0: &Path,
    domid: u32,
    iterations: usize,
    sim: Option<&Simulator>,
) -> Result<Results, String> {
    wait_ready(&mut agent, host)?;
    thread::sleep(IDLE);
    let idle_start = agent.memory();
    let plugin =
        AgentHost::new(Client::connect(dom0).map_err(|e| e.to_string())?, domid).with_poll(Duration::from_micros(200));
    let (rows, sent, per_request) = measure(&agent, host, &plugin, iterations, sim)?;
    let hwm_kib = agent.status_kib("VmHWM");
    let idle = idle(&agent, sim);
    let idle_after = agent.memory();
    report_agent_noise(&agent);
    agent.stop();
    Ok(Results {
        xenstore: label,
        rows,
        idle_start,
        hwm_kib,
        idle_after,
        requests: sent + 1,
        idle,
        per_request,
    })
}

/// What the process holds, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    /// Anonymous pages: private to the daemon, the guest pays all of them.
    anon_kib: Option<u64>,
    rss_kib: Option<u64>,
    pss_kib: Option<u64>,
    threads: Option<u64>,
}

/// What the agent did in [`IDLE`] without requests.
struct Idle {
    /// XenStore requests served (simulator only: it counts them).
    xs_requests: Option<u64>,
    /// read/write-family system calls of the whole process (`/proc/<pid>/io`).
    io_syscalls: Option<u64>,
    /// Context switches of all its threads: how often it woke up.
    wakeups: Option<u64>,
}

/// Sums `fields` of `/proc/<pid>/io`, or of every thread's `status`.
fn proc_counter(pid: u32, per_thread: bool, fields: &[&str]) -> Option<u64> {
    let files: Vec<PathBuf> = if per_thread {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("status")))
            .collect()
    } else {
        vec![PathBuf::from(format!("/proc/{pid}/io"))]
    };
    let mut sum = 0;
    for file in files {
        let text = std::fs::read_to_string(file).ok()?;
        for line in text.lines() {
            if let Some((key, value)) = line.split_once(':') {
                if fields.contains(&key) {
                    sum += value.trim().parse::<u64>().ok()?;
                }
            }
        }
    }
    Some(sum)
}

/// Watches the agent for [`IDLE`] after the host has gone quiet.
fn idle(agent: &Agent, sim: Option<&Simulator>) -> Idle {
    thread::sleep(Duration::from_millis(500));
    let pid = agent.pid();
    let io = || proc_counter(pid, false, &["syscr", "syscw"]);
    let switches = || proc_counter(pid, true, &["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]);
    let (xs0, io0, sw0) = (sim.map(Simulator::stats), io(), switches());
    thread::sleep(IDLE);
    let (xs1, io1, sw1) = (sim.map(Simulator::stats), io(), switches());
    let xs_requests = match (&xs0, &xs1) {
        (Some(before), Some(after)) => {
            let mut kinds: Vec<String> = after
                .requests
                .iter()
                .filter_map(|(k, n)| {
                    let d = n - before.requests_of(*k);
                    (d > 0).then(|| format!("{k:?}: {d}"))
                })
                .collect();
            if !kinds.is_empty() {
                kinds.sort();
                println!("simulator: requests while idle: {}", kinds.join(", "));
            }
            Some(after.total_requests() - before.total_requests())
        }
        _ => None,
    };
    Idle {
        xs_requests,
        io_syscalls: io0.zip(io1).map(|(a, b)| b - a),
        wakeups: sw0.zip(sw1).map(|(a, b)| b - a),
    }
}

/// Prints agent log lines that are warnings or errors.
fn report_agent_noise(agent: &Agent) {
    let other = agent.other.lock().unwrap();
    let bad: Vec<&String> = other
        .iter()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("warn") || l.contains("error") || l.contains("crit")
        })
        .collect();
    for line in bad.iter().take(10) {
        println!("agent: {line}");
    }
}

// ---------------------------------------------------------------------------
// Report

fn kib(v: Option<u64>) -> String {
    v.map(|k| format!("{:.2} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "n/a".into())
}

fn print_report(results: &[Results], exe_kib: Option<u64>) {
    println!("Latency in ms (host: write of the request to the reply in hand; agent: its log line)");
    println!(
        "{:<14} {:<20} {:>5} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "xenstore", "command", "n", "host p50", "host p99", "host max", "agent p50", "agent p99"
    );
    for r in results {
        for row in &r.rows {
            println!(
                "{:<14} {:<20} {:>5} {:>9.3} {:>9.3} {:>9.3} {:>10.1} {:>10.1}",
                r.xenstore,
                row.command,
                row.host_ms.n,
                row.host_ms.p50,
                row.host_ms.p99,
                row.host_ms.max,
                row.agent_ms.p50,
                row.agent_ms.p99
            );
        }
    }
    println!("(AgentHost::password = keyinit + password as the dom0 plugin sends them, polling every 200 µs)\n");
    println!(
        "Idle cost = anonymous memory + stripped executable ({} KiB), in KiB; VmRSS and PSS beside it",
        exe_kib.map_or("n/a".into(), |k| k.to_string())
    );
    println!(
        "{:<14} {:<26} {:>6} {:>6} {:>6} {:>6}",
        "xenstore", "when", "anon", "cost", "VmRSS", "PSS"
    );
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_else(|| "n/a".into());
    for r in results {
        for (when, m) in [
            ("idle after start-up".to_string(), r.idle_start),
            (format!("idle after {} requests", r.requests), r.idle_after),
        ] {
            println!(
                "{:<14} {:<26} {:>6} {:>6} {:>6} {:>6}",
                r.xenstore,
                when,
                opt(m.anon_kib),
                opt(m.anon_kib.zip(exe_kib).map(|(a, e)| a + e)),
                opt(m.rss_kib),
                opt(m.pss_kib)
            );
        }
    }
    println!();
    println!(
        "Agent process (idle: {} s without requests, after the series)",
        IDLE.as_secs()
    );
    println!(
        "{:<14} {:>22} {:>9} {:>9} {:>8}  xs requests by the agent",
        "xenstore", "VmHWM after requests", "idle xs", "idle I/O", "idle",
    );
    println!(
        "{}{:>9} {:>9} {:>8}  per request",
        " ".repeat(37),
        "requests",
        "syscalls",
        "wakeups"
    );
    for r in results {
        let per: Vec<String> = r.per_request.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
        println!(
            "{:<14} {:>22} {:>9} {:>9} {:>8}  {}",
            r.xenstore,
            format!("{} ({})", kib(r.hwm_kib), r.requests),
            opt(r.idle.xs_requests),
            opt(r.idle.io_syscalls),
            opt(r.idle.wakeups),
            if per.is_empty() { "n/a".into() } else { per.join(", ") }
        );
    }
}
