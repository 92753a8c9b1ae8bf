//! The least an idle program costs a guest when it is built as the agent is
//! (Rust's standard library, static glibc, the release profile) and does
//! nothing: it starts THREADS threads besides the main one (default 2, as
//! many as the idle daemon has), and all of them sleep until it is killed.
//!
//! The benchmarks build it beside the agent and print its anonymous memory
//! and stripped size as the floor under the agent's own figures.
//!
//! `floor_idle [THREADS]`

use std::time::Duration;

fn main() {
    let threads = match std::env::args().nth(1).map(|n| n.parse::<usize>()) {
        None => 2,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("floor_idle: THREADS: {e}");
            std::process::exit(2);
        }
    };
    for _ in 0..threads {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(3600));
        });
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
