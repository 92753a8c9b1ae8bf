//! vm-data from a directory laid out like XenStore's `vm-data`:
//! `networking/<key>` files and a `hostname` file. The metadata source of a
//! transport that has none of its own (the socket communicator), chosen by
//! configuration (`[socket] vm_data`).

use super::{CommError, Metadata};
use std::path::PathBuf;

/// vm-data read from files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryMetadata {
    dir: PathBuf,
}

impl DirectoryMetadata {
    /// vm-data under `dir`.
    pub fn new(dir: PathBuf) -> DirectoryMetadata {
        DirectoryMetadata { dir }
    }
}

impl Metadata for DirectoryMetadata {
    fn networking(&mut self) -> Result<Vec<(String, Vec<u8>)>, CommError> {
        let dir = self.dir.join("networking");
        let entries = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CommError(format!("cannot list {}: {e}", dir.display()))),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let key = entry.file_name().to_string_lossy().into_owned();
            let value = std::fs::read(entry.path()).map_err(|e| CommError(format!("cannot read {key}: {e}")))?;
            out.push((key, value));
        }
        out.sort();
        Ok(out)
    }

    fn hostname(&mut self) -> Result<Option<Vec<u8>>, CommError> {
        match std::fs::read(self.dir.join("hostname")) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CommError(format!("cannot read hostname: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_in_key_order_and_the_hostname() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = DirectoryMetadata::new(dir.path().to_path_buf());
        assert!(m.networking().unwrap().is_empty() && m.hostname().unwrap().is_none());
        std::fs::create_dir(dir.path().join("networking")).unwrap();
        std::fs::write(dir.path().join("networking/B"), "{}").unwrap();
        std::fs::write(dir.path().join("networking/A"), "[]").unwrap();
        std::fs::write(dir.path().join("hostname"), "web1").unwrap();
        let keys: Vec<String> = m.networking().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["A", "B"]);
        assert_eq!(m.hostname().unwrap().as_deref(), Some(&b"web1"[..]));
    }
}
