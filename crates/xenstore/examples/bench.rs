//! Client latency and throughput against the in-process simulator and the real
//! C xenstored (Debian 12, Xen 4.17, run without Xen through the test harness's
//! fakexen shim), each compared with a minimal raw-socket loop doing the same
//! requests in the same run.
//!
//! Run: `cargo run --release -p xenstore --example bench [iterations]`.

#[path = "../tests/common/realxs.rs"]
mod realxs;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use xenstore::wire::{Header, Message, MsgType, HEADER_LEN};
use xenstore::Client;

/// Latency samples of one operation.
struct Stats {
    name: String,
    samples: Vec<Duration>,
}

impl Stats {
    fn new(name: &str) -> Stats {
        Stats {
            name: name.to_string(),
            samples: Vec::new(),
        }
    }

    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.samples.push(start.elapsed());
        out
    }

    fn pct(&self, p: f64) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        let idx = ((s.len() as f64 - 1.0) * p).round() as usize;
        s.get(idx).copied().unwrap_or_default()
    }

    fn total(&self) -> Duration {
        self.samples.iter().sum()
    }

    fn ops_per_sec(&self) -> f64 {
        self.samples.len() as f64 / self.total().as_secs_f64().max(1e-9)
    }

    fn print(&self) {
        println!(
            "  {:<28} p50 {:>8.1} us   p99 {:>8.1} us   {:>9.0} ops/s",
            self.name,
            self.pct(0.50).as_secs_f64() * 1e6,
            self.pct(0.99).as_secs_f64() * 1e6,
            self.ops_per_sec()
        );
    }
}

/// The smallest correct client: one blocking request/reply at a time.
struct Raw {
    s: UnixStream,
    req: u32,
}

impl Raw {
    fn call(&mut self, kind: MsgType, payload: &[u8]) -> Vec<u8> {
        self.req += 1;
        let m = Message::new(kind, self.req, 0, payload.to_vec());
        self.s.write_all(&m.encode()).expect("raw write");
        let mut head = [0u8; HEADER_LEN];
        self.s.read_exact(&mut head).expect("raw read");
        let h = Header::decode(&head);
        let mut body = vec![0u8; h.len as usize];
        self.s.read_exact(&mut body).expect("raw read");
        assert_eq!(h.req_id, self.req, "raw reply order");
        body
    }
}

fn bench(label: &str, socket: &Path, iters: usize) {
    println!("{label} ({iters} iterations each)");
    let c = Client::connect(socket).expect("connect");
    c.write("/bench/v", "initial").expect("write");
    let value = b"0123456789abcdef0123456789abcdef";
    for _ in 0..200 {
        c.read("/bench/v").expect("warm-up");
    }

    let mut read = Stats::new("client read");
    let mut write = Stats::new("client write");
    let mut triple = Stats::new("client read+rm+write");
    for i in 0..iters {
        read.time(|| c.read("/bench/v").expect("read"));
        write.time(|| c.write(&format!("/bench/w{}", i % 16), value).expect("write"));
        triple.time(|| {
            c.read("/bench/t").ok();
            c.rm("/bench/t").expect("rm");
            c.write("/bench/t", value).expect("write");
        });
    }

    let mut raw = Raw {
        s: UnixStream::connect(socket).expect("raw connect"),
        req: 0,
    };
    let mut raw_triple = Stats::new("raw socket read+rm+write");
    for _ in 0..200 {
        raw.call(MsgType::Read, b"/bench/v\0");
    }
    let mut wr = b"/bench/r\0".to_vec();
    wr.extend_from_slice(value);
    for _ in 0..iters {
        raw_triple.time(|| {
            raw.call(MsgType::Read, b"/bench/r\0");
            raw.call(MsgType::Rm, b"/bench/r\0");
            raw.call(MsgType::Write, &wr);
        });
    }
    for s in [&read, &write, &triple, &raw_triple] {
        s.print();
    }
    let ratio = triple.pct(0.5).as_secs_f64() / raw_triple.pct(0.5).as_secs_f64().max(1e-12);
    let ratio_tp = raw_triple.ops_per_sec() / triple.ops_per_sec().max(1e-12);
    println!("  client/raw ratio (read+rm+write): p50 {ratio:.2}, throughput {ratio_tp:.2} (target <= 1.5)");
    c.rm("/bench").expect("cleanup");
}

fn main() {
    let iters: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3000);
    let started = Instant::now();
    {
        let dir = std::env::temp_dir().join(format!("xs-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("socket");
        let sim = xenstore::sim::Simulator::new(xenstore::sim::Config::default());
        sim.listen_dom0(&socket).expect("simulator socket");
        bench("simulator (C flavour, in-process)", &socket, iters);
        sim.shutdown();
        let _ = std::fs::remove_dir_all(&dir);
    }
    match realxs::prepare().and_then(|env| realxs::Daemon::start(&env, realxs::Kind::C)) {
        Ok(daemon) => bench("real C xenstored 4.17", daemon.socket(), iters),
        Err(reason) => eprintln!("SKIPPED: real xenstored unavailable: {reason}"),
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
