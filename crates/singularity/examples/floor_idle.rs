//! The least an idle program costs a guest when it is built as the agent is
//! (Rust's standard library, static glibc, the release profile) and does
//! nothing: it keeps one malloc arena as the daemon does, starts THREADS
//! threads besides the main one (default 2), and all of them sleep until it
//! is killed.
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
    // As the daemon (`daemon::one_arena`): without it each thread that
    // allocates gets an arena of its own.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; no thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    for _ in 0..threads {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(3600));
        });
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
