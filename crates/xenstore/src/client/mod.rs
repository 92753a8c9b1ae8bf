//! The XenStore client, over the xenstored Unix socket or the xenbus device.
//!
//! One [`Client`] is one connection with one reader thread. Clones share it. The
//! reader routes `WATCH_EVENT`s by token to [`Watch`] handles and replies by
//! `req_id` to the blocked callers; at most 8 requests are in flight. On a socket,
//! a lost connection fails the pending requests with [`Error::Disconnected`],
//! then reconnects with backoff and re-registers every watch, which then reports
//! [`WatchEvent::Reconnected`].

mod conn;
mod ops;
mod reader;
mod transaction;
mod transport;
mod watch;

pub use transaction::Transaction;
pub use watch::{Watch, WatchEvent, WatchWaker};

use crate::error::{Error, Result};
use crate::path;
use crate::wire::{MsgType, Perm};
use conn::Shared;
use ops::Scope;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use transport::Transport;

/// Where [`Client::open`] looks after `$XENSTORED_PATH`.
const DEFAULT_PATHS: [&str; 4] = [
    "/dev/xen/xenbus",
    "/proc/xen/xenbus",
    "/run/xenstored/socket",
    "/var/run/xenstored/socket",
];

static CLIENT_SEQ: AtomicU64 = AtomicU64::new(0);

/// Owns the reader thread; dropped with the last `Client` clone.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.waker.signal();
        let reader = conn::lock(&self.reader).take();
        if let Some(reader) = reader {
            let _ = reader.join();
        }
    }
}

/// A connection to XenStore. Cheap to clone (clones share the connection);
/// `Send + Sync`. Dropping the last clone stops the reader thread.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Handle>,
}

impl Client {
    /// Connects to the first XenStore that answers: `$XENSTORED_PATH`, then
    /// `/dev/xen/xenbus`, `/proc/xen/xenbus`, `/run/xenstored/socket` and
    /// `/var/run/xenstored/socket`.
    pub fn open() -> Result<Client> {
        let mut candidates: Vec<std::path::PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("XENSTORED_PATH") {
            candidates.push(p.into());
        }
        candidates.extend(DEFAULT_PATHS.iter().map(Into::into));
        // Report the most useful failure: a path that exists but refused us
        // (permissions, daemon down) beats "not found".
        let mut found_but_failed = None;
        for candidate in &candidates {
            match Client::connect(candidate) {
                Ok(c) => return Ok(c),
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    found_but_failed.get_or_insert(e);
                }
            }
        }
        Err(found_but_failed.unwrap_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no xenstore found (tried {})", tried.join(", ")),
            ))
        }))
    }

    /// Connects to `path`: a character device (or any non-socket file) is used
    /// with device rules; a Unix socket as `SOCK_STREAM`, or as `SOCK_SEQPACKET`
    /// with device rules if the socket refuses streams (`EPROTOTYPE`).
    pub fn connect(path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref();
        let transport = Transport::open(path)?;
        let prefix = format!(
            "sgl{}.{}",
            std::process::id(),
            CLIENT_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let shared = Arc::new(Shared::new(path.to_path_buf(), transport, prefix)?);
        let for_reader = Arc::clone(&shared);
        let reader = std::thread::Builder::new()
            .name("xenstore-reader".into())
            .spawn(move || reader::run(for_reader))?;
        Ok(Client {
            inner: Arc::new(Handle {
                shared,
                reader: Mutex::new(Some(reader)),
            }),
        })
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            shared: &self.inner.shared,
            tx: 0,
        }
    }

    /// Sets the per-request timeout (`None`: wait forever; default 30 s). A
    /// timed-out request returns [`Error::Timeout`]; its late reply is dropped.
    pub fn set_timeout(&self, t: Option<Duration>) {
        self.inner.shared.set_timeout(t);
    }

    /// Whether device rules apply (`/dev/xen/xenbus`, or a seqpacket emulation).
    pub fn is_device(&self) -> bool {
        self.inner.shared.is_device
    }

    /// How many times the connection was re-established.
    pub fn reconnect_count(&self) -> u64 {
        self.inner.shared.reconnects.load(Ordering::Relaxed)
    }

    /// Sends one raw request and returns the reply payload (an `ERROR` reply
    /// becomes [`Error::Xs`]). Low-level escape hatch for tests and for message
    /// types this API does not wrap; the payload must not be empty.
    pub fn request(&self, kind: MsgType, tx_id: u32, payload: &[u8]) -> Result<Vec<u8>> {
        self.inner.shared.request(kind, tx_id, payload)
    }

    /// Reads a value: raw bytes, exactly as stored (a trailing NUL is kept).
    pub fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.scope().read(path)
    }

    /// Reads a value as UTF-8 (`Error::Protocol` if it is not).
    pub fn read_string(&self, path: &str) -> Result<String> {
        self.scope().read_string(path)
    }

    /// Whether the node exists (a READ; `ENOENT` gives `false`).
    pub fn exists(&self, path: &str) -> Result<bool> {
        self.scope().exists(path)
    }

    /// Writes a value (bytes), creating missing parents.
    pub fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.scope().write(path, value.as_ref())
    }

    /// Creates a node if it is missing (no event if it exists).
    pub fn mkdir(&self, path: &str) -> Result<()> {
        self.scope().mkdir(path)
    }

    /// Removes a node and everything below it. A missing node is fine, but a
    /// missing parent is `ENOENT`, as the daemons answer (see [`Optional`](crate::Optional)).
    pub fn rm(&self, path: &str) -> Result<()> {
        self.scope().rm(path)
    }

    /// Names of the children of a node. Large listings that C xenstored refuses
    /// with `E2BIG` are fetched with DIRECTORY_PART.
    pub fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.scope().directory(path)
    }

    /// Permissions of a node (the first entry is the owner and the default).
    pub fn get_perms(&self, path: &str) -> Result<Vec<Perm>> {
        self.scope().get_perms(path)
    }

    /// Replaces the permissions of a node.
    pub fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<()> {
        self.scope().set_perms(path, perms)
    }

    /// The home path of a domain (`/local/domain/<domid>`).
    pub fn get_domain_path(&self, domid: u32) -> Result<String> {
        self.scope().get_domain_path(domid)
    }

    /// Watches `path` and everything below it. The first event (the daemon's
    /// initial one) arrives right away; see [`WatchEvent`].
    pub fn watch(&self, path: &str) -> Result<Watch> {
        path::validate(path)?;
        watch::watch(&self.inner.shared, path)
    }

    /// Runs `f` in a transaction and commits. On `EAGAIN` (a conflict) the whole
    /// closure runs again, at most 16 times, with a short jittered pause; if `f`
    /// fails the transaction is aborted and its error returned.
    pub fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: FnMut(&Transaction<'_>) -> Result<T>,
    {
        transaction::run(self, f)
    }
}
