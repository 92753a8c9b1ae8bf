//! labxs: the lab's helper inside dom0 (std only, built with plain rustc as a
//! static binary by tests/xen-lab/lab).
//!
//!   labxs relay PORT SOCKET   Splice a virtio-serial port (the host side is
//!                             a QEMU socket chardev) onto ONE connection to
//!                             xenstored's Unix socket that lives as long as
//!                             dom0. The host multiplexes its clients onto
//!                             that stream (host/xs.py), so the port is
//!                             opened once and never sees a session boundary.
//!   labxs bench DOMID N       N nova-style `version` round trips against the
//!                             agent in DOMID through dom0's own xenstored
//!                             socket: write data/host/<id>, wake on a watch
//!                             on data/guest, read the reply, then remove it
//!                             (nova leaves replies behind; a benchmark must
//!                             not fill the guest's quota). Prints the
//!                             round-trip times in microseconds, sorted, on
//!                             one line ("BENCH t1 t2 ...").

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const XS_READ: u32 = 2;
const XS_WATCH: u32 = 4;
const XS_UNWATCH: u32 = 5;
const XS_WRITE: u32 = 11;
const XS_RM: u32 = 13;
const XS_WATCH_EVENT: u32 = 15;
const XS_ERROR: u32 = 16;
const SOCKET: &str = "/run/xenstored/socket";

fn relay(port: &str, socket: &str) -> io::Result<()> {
    let mut dev = OpenOptions::new().read(true).write(true).open(port)?;
    let mut xs = connect(socket)?;
    let mut xs_out = xs.try_clone()?;
    let mut dev_in = dev.try_clone()?;
    eprintln!("labxs relay: {port} <-> {socket}");
    std::thread::spawn(move || {
        // xenstored -> host. A write to the port blocks while no host client
        // is connected, which only delays the bytes.
        let mut buf = [0u8; 16384];
        loop {
            match xs_out.read(&mut buf) {
                Ok(0) => {
                    eprintln!("labxs relay: xenstored closed the connection");
                    std::process::exit(1);
                }
                Ok(n) => {
                    if let Err(e) = dev_in.write_all(&buf[..n]) {
                        eprintln!("labxs relay: port write: {e}");
                        std::process::exit(1);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("labxs relay: xenstored read: {e}");
                    std::process::exit(1);
                }
            }
        }
    });
    // host -> xenstored. The port reads 0 bytes while no host is connected.
    let mut buf = [0u8; 16384];
    loop {
        match dev.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_millis(20)),
            Ok(n) => xs.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn connect(socket: &str) -> io::Result<UnixStream> {
    let mut tries = 0;
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e) if tries < 50 => {
                tries += 1;
                if tries == 1 {
                    eprintln!("labxs: {socket}: {e}; retrying");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A minimal single-threaded xenstore client: one request at a time, watch
/// events that arrive in between are queued.
struct Xs {
    sock: UnixStream,
    next_id: u32,
    events: VecDeque<(String, String)>,
}

fn nul_fields(payload: &[u8]) -> Vec<String> {
    payload
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

impl Xs {
    fn open(socket: &str) -> io::Result<Xs> {
        Ok(Xs {
            sock: connect(socket)?,
            next_id: 1,
            events: VecDeque::new(),
        })
    }

    fn recv(&mut self) -> io::Result<(u32, u32, Vec<u8>)> {
        let mut hdr = [0u8; 16];
        self.sock.read_exact(&mut hdr)?;
        let word = |i: usize| u32::from_le_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
        let (ty, id, len) = (word(0), word(4), word(12) as usize);
        let mut payload = vec![0u8; len];
        self.sock.read_exact(&mut payload)?;
        Ok((ty, id, payload))
    }

    fn call(&mut self, ty: u32, payload: &[u8]) -> io::Result<Vec<u8>> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = Vec::with_capacity(16 + payload.len());
        for w in [ty, id, 0, payload.len() as u32] {
            msg.extend_from_slice(&w.to_le_bytes());
        }
        msg.extend_from_slice(payload);
        self.sock.write_all(&msg)?;
        loop {
            let (rty, rid, body) = self.recv()?;
            if rty == XS_WATCH_EVENT {
                let f = nul_fields(&body);
                self.events
                    .push_back((f[0].clone(), f.get(1).cloned().unwrap_or_default()));
                continue;
            }
            if rid != id {
                continue;
            }
            if rty == XS_ERROR {
                let e = String::from_utf8_lossy(&body).trim_end_matches('\0').to_string();
                return Err(io::Error::other(e));
            }
            return Ok(body);
        }
    }

    fn next_event(&mut self) -> io::Result<(String, String)> {
        if let Some(e) = self.events.pop_front() {
            return Ok(e);
        }
        loop {
            let (ty, _, body) = self.recv()?;
            if ty == XS_WATCH_EVENT {
                let f = nul_fields(&body);
                return Ok((f[0].clone(), f.get(1).cloned().unwrap_or_default()));
            }
        }
    }
}

fn z(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}

fn bench(domid: &str, n: usize) -> io::Result<()> {
    let mut xs = Xs::open(SOCKET)?;
    xs.sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let home = format!("/local/domain/{domid}");
    let guest = format!("{home}/data/guest");
    let token = format!("labxs-bench-{}", std::process::id());
    xs.call(XS_WATCH, &z(&[&guest, &token]))?;
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 3 {
        let id = format!("bench-{nonce:x}-{i}");
        let reply_path = format!("{guest}/{id}");
        let req = format!("{home}/data/host/{id}");
        let t0 = Instant::now();
        let mut payload = z(&[&req]);
        payload.extend_from_slice(br#"{"name": "version", "value": "agent"}"#);
        xs.call(XS_WRITE, &payload)?;
        loop {
            let (path, tok) = xs.next_event().map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    io::Error::other(format!("no reply to {id} within 10 s"))
                }
                _ => e,
            })?;
            if tok == token && path == reply_path {
                break;
            }
        }
        let reply = xs.call(XS_READ, &z(&[&reply_path]))?;
        let us = t0.elapsed().as_micros();
        xs.call(XS_RM, &z(&[&reply_path]))?;
        if !reply.starts_with(b"{") {
            return Err(io::Error::other(format!(
                "odd reply {}",
                String::from_utf8_lossy(&reply)
            )));
        }
        if i >= 3 {
            times.push(us);
        }
    }
    let _ = xs.call(XS_UNWATCH, &z(&[&guest, &token]));
    times.sort_unstable();
    let list: Vec<String> = times.iter().map(|t| t.to_string()).collect();
    println!("BENCH {}", list.join(" "));
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let result = match arg(1) {
        "relay" => relay(arg(2), if arg(3).is_empty() { SOCKET } else { arg(3) }),
        "bench" => bench(arg(2), arg(3).parse().unwrap_or(50)),
        _ => {
            eprintln!("usage: labxs relay PORT [SOCKET] | labxs bench DOMID N");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("labxs {}: {e}", arg(1));
        std::process::exit(1);
    }
}
