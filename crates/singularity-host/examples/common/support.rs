//! What the benchmarks share: percentiles of a series of measurements, and
//! stopping the agent they started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The target of the static binary the packages ship.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds (if needed) the static release binaries of `packages`, one cargo
/// invocation each as scripts/package does (built together, the agent's
/// dependencies would get the tools' features), and returns the agent's,
/// found next to this example's target directory.
pub fn static_agent(packages: &[&str]) -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for package in packages {
        let status = Command::new(&cargo)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .args(["build", "--release", "-p", package, "--bin", package])
            .args(["--target", STATIC_TARGET, "--manifest-path"])
            .arg(&manifest)
            .status()
            .map_err(|e| format!("cannot run cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("static cargo build --release -p {package} failed ({status})"));
        }
    }
    // <target>/<profile>/examples/<example> → <target>/<triple>/release/singularity
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or_else(|| format!("cannot find the target directory from {}", exe.display()))?;
    let bin = target.join(STATIC_TARGET).join("release/singularity");
    if !bin.is_file() {
        return Err(format!("{} missing after cargo build", bin.display()));
    }
    Ok(bin)
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
