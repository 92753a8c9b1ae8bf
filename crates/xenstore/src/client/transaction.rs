//! Transactions: a closure re-run on `EAGAIN`, with bounded, jittered retries.

use super::ops::Scope;
use super::Client;
use crate::error::{Error, Result};
use crate::wire::{ErrorKind, Perm};
use std::time::Duration;

/// How many times a transaction closure runs at most.
pub(crate) const MAX_ATTEMPTS: u32 = 16;

/// An open transaction, handed to the closure of [`Client::transaction`]. Every
/// operation carries the transaction id; none is visible to others before commit.
#[derive(Debug)]
pub struct Transaction<'a> {
    client: &'a Client,
    id: u32,
}

impl Transaction<'_> {
    fn scope(&self) -> Scope<'_> {
        Scope {
            shared: &self.client.inner.shared,
            tx: self.id,
        }
    }

    /// The daemon's transaction id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Reads a value (raw bytes, never trimmed).
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.scope().read(path)
    }

    /// Reads a value as UTF-8 (`Error::Protocol` if it is not).
    pub fn read_string(&self, path: &str) -> Result<String> {
        self.scope().read_string(path)
    }

    /// Whether the node exists (`ENOENT` gives `false`).
    pub fn exists(&self, path: &str) -> Result<bool> {
        self.scope().exists(path)
    }

    /// Writes a value, creating missing parents.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.scope().write(path, value.as_ref())
    }

    /// Creates a node if it is missing.
    pub fn mkdir(&self, path: &str) -> Result<()> {
        self.scope().mkdir(path)
    }

    /// Removes a node and everything below it.
    pub fn rm(&self, path: &str) -> Result<()> {
        self.scope().rm(path)
    }

    /// Names of the children of a node.
    pub fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.scope().directory(path)
    }

    /// Permissions of a node (the first entry is the owner).
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>> {
        self.scope().get_perms(path)
    }

    /// Replaces the permissions of a node.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<()> {
        self.scope().set_perms(path, perms)
    }
}

/// A small pseudo-random backoff before retry `attempt` (1-based): 1..=2^attempt ms, capped.
fn backoff(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let span = 1u64 << attempt.min(6);
    Duration::from_millis(1 + u64::from(nanos) % span)
}

pub(crate) fn run<T, F>(client: &Client, mut f: F) -> Result<T>
where
    F: FnMut(&Transaction<'_>) -> Result<T>,
{
    let base = Scope {
        shared: &client.inner.shared,
        tx: 0,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let id = base.transaction_start()?;
        let tx = Transaction { client, id };
        let outcome = match f(&tx) {
            Ok(value) => tx.scope().transaction_end(true).map(|()| value),
            Err(e) => {
                // Abort; the id is dead afterwards whatever the answer.
                let _ = tx.scope().transaction_end(false);
                Err(e)
            }
        };
        match outcome {
            Err(Error::Xs(ErrorKind::Again)) if attempt < MAX_ATTEMPTS => {
                std::thread::sleep(backoff(attempt));
            }
            other => return other,
        }
    }
}
