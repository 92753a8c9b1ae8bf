//! The agent's download for `agentupdate` and nothing else: one GET through
//! [`singularity::update::fetch::get`] (ureq, rustls with *ring*, the
//! system's CA store), printing the body's length. Built as the agent is, its
//! stripped size is the least any executable holding that client can weigh;
//! the benchmarks print it beside the agent's.
//!
//! `floor_https URL`

use singularity::update::fetch::{get, Limits};
use std::time::Duration;

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: floor_https URL");
        std::process::exit(2);
    };
    let limits = Limits {
        max_size: 64 << 20,
        connect: Duration::from_secs(10),
        total: Duration::from_secs(60),
        ca_file: None,
    };
    match get(&url, &limits) {
        Ok(body) => println!("{} bytes", body.len()),
        Err(e) => {
            eprintln!("floor_https: {url}: {e}");
            std::process::exit(1);
        }
    }
}
