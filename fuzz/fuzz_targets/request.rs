//! Arbitrary bytes as a nova request: the parser, then the whole handler
//! (all functions enabled, changes applied under a scratch root), checking
//! that every reply is exactly the JSON object nova accepts.
//!
//! The input is handled as one request. If it contains NUL bytes, the pieces
//! between them are also handled in order by one agent, so that sequences
//! such as `keyinit` then `password` keep their state. There is no
//! `vm-data`, and commands run on a root other than `/` are only logged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use singularity::apply::Applier;
use singularity::communicator::NoMetadata;
use singularity::handler::{Agent, Handled, Settings, VERSION};
use singularity::protocol::{parse_request, Command, MAX_REQUEST};
use singularity::root::Root;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SHADOW: &str = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n";
const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";

/// The scratch root, created once per process and removed at exit.
fn root_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("singularity-fuzz-request-{}", std::process::id()));
        seed(&dir);
        extern "C" fn cleanup() {
            if let Some(dir) = DIR.get() {
                let _ = fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registers a plain extern "C" function with no arguments;
        // libFuzzer leaves through exit(3), which runs it.
        unsafe { libc::atexit(cleanup) };
        dir
    })
}

/// (Re)creates the scratch root: an `/etc` with `shadow` and `passwd`.
fn seed(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir.join("etc")).expect("create the scratch root");
    fs::write(dir.join("etc/shadow"), SHADOW).expect("write etc/shadow");
    fs::write(dir.join("etc/passwd"), PASSWD).expect("write etc/passwd");
}

fn agent() -> Agent {
    Agent::new(Settings::default(), Applier::new(Root::new(root_dir()), false, None))
}

/// The reply must serialise to exactly `{"returncode": <string>, "message": <string>}`.
fn check_reply(raw: &[u8], handled: &Handled) {
    let reply = &handled.reply;
    let json = reply.to_json();
    let value: Value = serde_json::from_slice(&json).expect("the reply is JSON");
    let Value::Object(map) = value else {
        panic!("the reply is not a JSON object: {value}");
    };
    assert_eq!(map.len(), 2, "the reply has other keys: {map:?}");
    assert_eq!(map.get("returncode"), Some(&Value::String(reply.returncode.clone())));
    assert_eq!(map.get("message"), Some(&Value::String(reply.message.clone())));
    assert!(
        matches!(reply.returncode.as_str(), "0" | "D0" | "404" | "500"),
        "unexpected returncode {:?}",
        reply.returncode
    );
    // The parser and the handler agree.
    match parse_request(raw) {
        Err(_) => {
            assert!(!reply.is_success(), "a malformed request succeeded: {reply:?}");
            assert!(!handled.changed);
        }
        Ok(Command::Version) => {
            assert_eq!((reply.returncode.as_str(), reply.message.as_str()), ("0", VERSION));
        }
        Ok(Command::KeyInit(_)) => {
            assert_eq!(reply.returncode, "D0");
            assert!(!reply.message.is_empty() && reply.message.bytes().all(|b| b.is_ascii_digit()));
        }
        Ok(_) => {}
    }
    if raw.len() > MAX_REQUEST {
        assert_eq!(reply.returncode, "500");
    }
}

/// Handles `raw` and returns whether the scratch root may have changed.
fn handle(agent: &mut Agent, raw: &[u8]) -> bool {
    let handled = agent.handle(raw, &mut NoMetadata);
    check_reply(raw, &handled);
    handled.changed || matches!(handled.command.as_str(), "injectfile" | "file_inject" | "password")
}

fuzz_target!(|data: &[u8]| {
    let mut dirty = handle(&mut agent(), data);
    if data.contains(&0) {
        let mut agent = agent();
        for piece in data.split(|&b| b == 0) {
            dirty |= handle(&mut agent, piece);
        }
    }
    // Every input starts from the same root, so a crash reproduces alone.
    if dirty {
        seed(root_dir());
    }
});
