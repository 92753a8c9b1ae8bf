//! `agentupdate`'s untrusted inputs: the request value (`<url>,<md5>`) and
//! the downloaded payload (ELF header and program headers, gzip and tar). None
//! may panic, and a payload accepted as a build is a static ELF executable
//! for this machine.

#![no_main]

use libfuzzer_sys::fuzz_target;
use singularity::protocol::update::shown_url;
use singularity::protocol::UpdateRequest;
use singularity::update::artifact::{check_elf, executable};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(request) = UpdateRequest::parse(&serde_json::Value::String(text.into_owned())) {
        let lower = request.url.to_ascii_lowercase();
        assert!(lower.starts_with("http://") || lower.starts_with("https://"));
        // What logs and replies show has no user information and no query.
        let shown = shown_url(&request.url);
        let rest = shown.split_once("://").map_or(shown.as_str(), |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        assert!(!authority.contains('@') || authority.starts_with("***@"), "{shown}");
        assert!(shown.find('?').is_none_or(|i| &shown[i..] == "?***"), "{shown}");
    }
    if let Ok(exe) = executable(data.to_vec(), 1 << 20) {
        assert_eq!(check_elf(&exe), Ok(()));
        assert!(exe.len() <= 1 << 20 || exe == data);
    }
});
