//! Communicators carry requests to the handler and replies back. Each one hides
//! its transport behind the small [`Communicator`] trait, so a new transport
//! never touches the handlers.

pub mod journal;
mod replies;
pub mod socket;
pub mod xen;

use crate::protocol::Reply;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// One request as received: an opaque id to answer under, and the raw bytes
/// (`Debug` shows their size only: they may carry a ciphertext or a file).
#[derive(Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The id the reply must carry (the XenStore node name for Xen).
    pub id: String,
    /// The request bytes, unparsed.
    pub data: Vec<u8>,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("id", &self.id)
            .field("bytes", &self.data.len())
            .finish()
    }
}

/// Ends a communicator's wait for requests from another thread (the one that
/// handles signals): its current or next [`Communicator::recv`] returns
/// `Ok(None)` early.
#[derive(Clone)]
pub struct Waker(Arc<dyn Fn() + Send + Sync>);

impl Waker {
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Waker {
        Waker(Arc::new(wake))
    }

    pub fn wake(&self) {
        (self.0)()
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waker")
    }
}

/// A transport failure the daemon logs and survives.
#[derive(Debug)]
pub struct CommError(pub String);

impl fmt::Display for CommError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommError {}

/// Where `resetnetwork` finds nova's `vm-data`.
pub trait Metadata {
    /// Every `vm-data/networking/<key>` entry: the key and the raw value.
    fn networking(&mut self) -> Result<Vec<(String, Vec<u8>)>, CommError>;
    /// `vm-data/hostname`, if present.
    fn hostname(&mut self) -> Result<Option<Vec<u8>>, CommError>;
}

/// No metadata at all (tests, tools).
pub struct NoMetadata;

impl Metadata for NoMetadata {
    fn networking(&mut self) -> Result<Vec<(String, Vec<u8>)>, CommError> {
        Ok(Vec::new())
    }

    fn hostname(&mut self) -> Result<Option<Vec<u8>>, CommError> {
        Ok(None)
    }
}

/// How requests arrive and replies leave, and where their metadata is.
pub trait Communicator: Metadata {
    /// Waits up to `timeout` for the next request; `Ok(None)` when none came
    /// (also early, when woken).
    fn recv(&mut self, timeout: Duration) -> Result<Option<Incoming>, CommError>;
    /// A handle that ends the wait of [`Communicator::recv`] from another thread.
    fn waker(&self) -> Waker;
    /// Sends the reply to the request `id`, as one complete message.
    fn reply(&mut self, id: &str, reply: &Reply) -> Result<(), CommError>;
}

/// Checks that `comm`'s waker, used from another thread, ends a long wait.
#[cfg(test)]
pub(crate) fn assert_waker_ends_wait(comm: &mut dyn Communicator) {
    use std::time::Instant;
    let waker = comm.waker();
    let started = Instant::now();
    let wake = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        waker.wake();
    });
    assert!(comm.recv(Duration::from_secs(60)).unwrap().is_none());
    assert!(started.elapsed() < Duration::from_secs(60));
    wake.join().unwrap();
}
