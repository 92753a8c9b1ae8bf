//! The request journal: the requests that cannot simply run again (`keyinit`,
//! `password`: their key exchange lives in memory) taken and not yet
//! answered, kept on disk so that a daemon killed mid-request (SIGKILL, a
//! crash) answers them when it starts again. Every other request stays in
//! `data/host` until answered and is read and run again after a restart,
//! which needs no journal.
//!
//! One file per request, named by the hex of its id and holding the raw
//! request: written (and synced) before the request is handled, deleted once
//! its reply is written and the request removed. Files are private (0600 in a
//! 0700 directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The journal directory below the managed system's root (next to the
/// instance lock, so one daemon per journal).
pub const JOURNAL_DIR: &str = "run/singularity/journal";

/// A journal directory.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
}

/// What a restarted daemon does with a request it had taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Handle it again: doing so twice changes nothing more than once.
    Rerun,
    /// Answer it with an error: the key exchange it belongs to is gone.
    Refuse,
}

/// The reply message for a request that cannot be run again.
pub const RESTARTED: &str = "agent restarted while handling this request";

/// How a request is recovered after a restart: `keyinit` and `password`
/// depend on a key exchange held only in memory (and are the ones
/// journaled); every other command is run again (a journal written by an
/// earlier version may hold any).
pub fn recovery(raw: &[u8]) -> Recovery {
    let name = serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string));
    match name.as_deref() {
        Some("keyinit" | "password") => Recovery::Refuse,
        _ => Recovery::Rerun,
    }
}

fn hex(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(name: &str) -> Option<String> {
    if name.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..name.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

impl Journal {
    /// Opens (creating it if needed) the journal directory `dir`.
    pub fn open(dir: &Path) -> io::Result<Journal> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        Ok(Journal { dir: dir.to_path_buf() })
    }

    /// Records that request `id` (these bytes) was taken. Durable when it
    /// returns.
    pub fn record(&self, id: &str, raw: &[u8]) -> io::Result<()> {
        let name = hex(id);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(raw)?;
        file.sync_all()?;
        fs::rename(&tmp, self.dir.join(name))?;
        File::open(&self.dir)?.sync_all()
    }

    /// Forgets request `id` (answered and removed).
    pub fn forget(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(hex(id))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every request recorded and not forgotten: id and raw bytes, by id.
    pub fn pending(&self) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().and_then(unhex) else {
                continue; // a temporary file of an interrupted record
            };
            out.push((id, fs::read(entry.path())?));
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j")).unwrap();
        j.record("b-2", b"two").unwrap();
        j.record("a/1", b"one").unwrap();
        std::fs::write(dir.path().join("j/.zz.tmp"), b"partial").unwrap();
        let again = Journal::open(&dir.path().join("j")).unwrap();
        assert_eq!(
            again.pending().unwrap(),
            [
                ("a/1".to_string(), b"one".to_vec()),
                ("b-2".to_string(), b"two".to_vec())
            ]
        );
        again.forget("a/1").unwrap();
        again.forget("never").unwrap();
        assert_eq!(again.pending().unwrap().len(), 1);
    }

    #[test]
    fn only_key_exchange_requests_are_refused_after_a_restart() {
        assert_eq!(recovery(br#"{"name":"password","value":"x"}"#), Recovery::Refuse);
        assert_eq!(recovery(br#"{"name":"keyinit","value":"5"}"#), Recovery::Refuse);
        for raw in [
            &br#"{"name":"version","value":""}"#[..],
            br#"{"name":"resetnetwork","value":""}"#,
            br#"{"name":"injectfile","value":"L2V0Yy9tb3RkLGhp"}"#,
            br#"{"name":"kmsactivate","value":""}"#,
            b"\xff not json",
        ] {
            assert_eq!(recovery(raw), Recovery::Rerun);
        }
    }
}
