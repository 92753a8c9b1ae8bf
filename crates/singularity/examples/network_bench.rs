//! `resetnetwork` planning cost: parse four vm-data entries and plan every
//! function (network, resolvers, hosts, hostname) for a Debian guest root
//! with four NICs, reading os-release, `/sys/class/net` and the existing
//! files each time, as the agent does. Prints µs per request and the peak
//! resident set size (VmHWM). Targets: ≤ 5 ms, ≤ 4 MiB.
//!
//! `cargo run --release -p singularity --example network_bench [ITERATIONS]`

use singularity::functions::Functions;
use singularity::network::{plan, NetworkRequest};
use singularity::root::Root;
use std::fs;
use std::path::Path;
use std::time::Instant;

fn put(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(p, text).expect("write");
}

fn entry(i: u8) -> String {
    format!(
        r#"{{"label": "net{i}", "mac": "BC:76:4E:20:75:{i:02X}", "broadcast": "10.{i}.255.255",
        "gateway": {gw}, "gateway_v6": "fe80::def",
        "ips": [{{"ip": "10.{i}.0.10", "netmask": "255.255.0.0", "enabled": "1", "gateway": null}},
                {{"ip": "10.{i}.0.11", "netmask": "255.255.0.0", "enabled": "1", "gateway": null}}],
        "ip6s": [{{"ip": "2001:db8:{i}::10", "netmask": 64, "enabled": "1", "gateway": "fe80::def"}}],
        "routes": [{{"route": "172.{i}.0.0", "netmask": "255.255.0.0", "gateway": "10.{i}.0.1"}},
                   {{"route": "2001:db8:{i}0::", "netmask": "ffff:ffff:ffff::", "gateway": "2001:db8:{i}::1"}}],
        "dns": ["10.{i}.0.53", "10.0.0.53"]}}"#,
        gw = if i == 0 {
            "\"10.0.0.1\"".to_string()
        } else {
            "null".to_string()
        }
    )
}

fn vm_hwm_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let iterations: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path();
    put(base, "/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
    put(base, "/sbin/ifup", "");
    put(
        base,
        "/etc/network/interfaces",
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n",
    );
    put(base, "/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n");
    put(base, "/etc/hostname", "debian\n");
    put(base, "/etc/resolv.conf", "nameserver 10.0.0.2\n");
    fs::create_dir_all(base.join("etc/network/interfaces.d")).expect("mkdir");
    for i in 0..4u8 {
        put(
            base,
            &format!("/sys/class/net/eth{i}/address"),
            &format!("bc:76:4e:20:75:{i:02x}\n"),
        );
    }
    let req = NetworkRequest {
        entries: (0..4u8)
            .map(|i| (format!("BC764E2075{i:02X}"), entry(i).into_bytes()))
            .collect(),
        hostname: Some(b"bench.example.com".to_vec()),
    };
    let root = Root::new(base);
    let functions = Functions::all();
    let first = plan(&req, &root, &functions, None).expect("plan");
    let files: usize = first.plans.iter().map(|p| p.steps.len()).sum();
    let start = Instant::now();
    for _ in 0..iterations {
        let out = plan(&req, &root, &functions, None).expect("plan");
        std::hint::black_box(out);
    }
    let per_op = start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    let hwm = vm_hwm_kib();
    println!(
        "network plan, 4 NICs ({} renderer, {files} steps, {} bring-up commands):",
        first.renderer,
        first.bringup.len()
    );
    println!("  {per_op:.1} µs/op over {iterations} iterations (target ≤ 5000 µs)");
    println!(
        "  peak RSS (VmHWM) {hwm} KiB = {:.2} MiB (target ≤ 4 MiB)",
        hwm as f64 / 1024.0
    );
}
