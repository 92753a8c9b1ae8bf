//! Communicators carry requests to the handler and replies back. Each one hides
//! its transport behind the small [`Communicator`] trait, so a new transport
//! never touches the handlers.

mod replies;
pub mod socket;
pub mod xen;

use crate::protocol::Reply;
use std::fmt;
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
    /// Waits up to `timeout` for the next request; `Ok(None)` when none came.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Incoming>, CommError>;
    /// Sends the reply to the request `id`, as one complete message.
    fn reply(&mut self, id: &str, reply: &Reply) -> Result<(), CommError>;
}
