//! Communicators carry requests to the handler and replies back. Each one hides
//! its transport behind the small [`Communicator`] trait, so a new transport
//! never touches the handlers.

pub mod socket;
pub mod xen;

use crate::protocol::Reply;
use std::fmt;
use std::time::Duration;

/// One request as received: an opaque id to answer under, and the raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The id the reply must carry (the XenStore node name for Xen).
    pub id: String,
    /// The request bytes, unparsed.
    pub data: Vec<u8>,
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

/// How requests arrive and replies leave.
pub trait Communicator {
    /// Waits up to `timeout` for the next request; `Ok(None)` when none came.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Incoming>, CommError>;
    /// Sends the reply to the request `id`, as one complete message.
    fn reply(&mut self, id: &str, reply: &Reply) -> Result<(), CommError>;
}
