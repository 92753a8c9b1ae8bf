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
        let shown = shown_url(&request.url);
        assert!(!shown.contains('@') || shown.contains("***@"));
    }
    if let Ok(exe) = executable(data, 1 << 20) {
        assert_eq!(check_elf(&exe), Ok(()));
        assert!(exe.len() <= 1 << 20 || exe == data);
    }
});
