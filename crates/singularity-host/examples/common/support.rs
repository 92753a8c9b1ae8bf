//! What the benchmarks share: percentiles of a series of measurements, and
//! stopping the agent they started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The target of the static binary the packages ship.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Runs `cargo build --release <args>` for the static target, as
/// scripts/package does.
fn cargo_static(args: &[&str]) -> Result<(), String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .arg("build")
        .arg("--release")
        .args(args)
        .args(["--target", STATIC_TARGET, "--manifest-path"])
        .arg(&manifest)
        .status()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !status.success() {
        return Err(format!(
            "static cargo build --release {} failed ({status})",
            args.join(" ")
        ));
    }
    Ok(())
}

/// `<target>/<triple>/release/<path>`, found from this example's own place
/// (`<target>/<profile>/examples/<example>`), once it exists.
fn static_output(path: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or_else(|| format!("cannot find the target directory from {}", exe.display()))?;
    let bin = target.join(STATIC_TARGET).join("release").join(path);
    if !bin.is_file() {
        return Err(format!("{} missing after cargo build", bin.display()));
    }
    Ok(bin)
}

/// Builds (if needed) the static release binaries of `packages`, one cargo
/// invocation each as scripts/package does (built together, the agent's
/// dependencies would get the tools' features), and returns the agent's,
/// found next to this example's target directory.
pub fn static_agent(packages: &[&str]) -> Result<PathBuf, String> {
    for package in packages {
        cargo_static(&["-p", package, "--bin", package])?;
    }
    static_output("singularity")
}

/// The floor under the agent's figures: what programs built with the
/// agent's profile, flags and link step (static, the release profile) cost
/// when they do nothing but what they must. KiB.
pub struct Floor {
    /// Anonymous memory of `floor_idle`, asleep with as many threads as
    /// the idle agent.
    pub idle_anon: Option<u64>,
    /// Its stripped executable: Rust's standard library and static glibc.
    pub idle_exe: Option<u64>,
    /// The stripped executable of `floor_https`: `agentupdate`'s download
    /// alone (ureq, rustls, *ring*, the reading of the system's CA store).
    pub https_exe: Option<u64>,
}

impl Floor {
    /// Builds the singularity crate's `floor_idle` and `floor_https`
    /// examples and measures them; `threads` is the agent's idle thread
    /// count, the main one included, and `anon` reads a process's anonymous
    /// memory as the benchmark reads the agent's.
    pub fn measure(threads: u64, anon: impl Fn(u32) -> Option<u64>) -> Result<Floor, String> {
        cargo_static(&[
            "-p",
            "singularity",
            "--example",
            "floor_idle",
            "--example",
            "floor_https",
        ])?;
        let idle = static_output("examples/floor_idle")?;
        let https = static_output("examples/floor_https")?;
        let mut child = Command::new(&idle)
            .arg(threads.saturating_sub(1).to_string())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", idle.display()))?;
        std::thread::sleep(Duration::from_secs(1));
        let idle_anon = anon(child.id());
        let _ = child.kill();
        let _ = child.wait();
        Ok(Floor {
            idle_anon,
            idle_exe: stripped_kib(&idle),
            https_exe: stripped_kib(&https),
        })
    }
}

/// How many, the median, the 99th percentile and the largest.
#[derive(Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The summary of `values` (nearest-rank percentiles).
pub fn summarize(mut values: Vec<f64>) -> Summary {
    if values.is_empty() {
        return Summary::default();
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let rank = |p: f64| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    Summary {
        n,
        p50: rank(0.50),
        p99: rank(0.99),
        max: values[n - 1],
    }
}

/// Stops `child` with SIGTERM, then SIGKILL if it is still there after 5 s.
pub fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The size of `bin` once stripped (`strip` into a temporary file; the file
/// size itself when `strip` is missing), in KiB.
pub fn stripped_kib(bin: &Path) -> Option<u64> {
    let dir = tempfile::tempdir().ok()?;
    let out = dir.path().join("stripped");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(bin)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let path = if stripped { out.as_path() } else { bin };
    std::fs::metadata(path).ok().map(|m| m.len().div_ceil(1024))
}
