//! The one error type of the client.

use crate::path::PathError;
use crate::wire::ErrorKind;
use std::{fmt, io};

/// What went wrong with a XenStore operation.
#[derive(Debug)]
pub enum Error {
    /// The daemon answered with an `ERROR` reply (`ENOENT`, `EACCES`, ...).
    Xs(ErrorKind),
    /// The path was refused before anything was sent.
    Path(PathError),
    /// The request would not fit in one message on this transport.
    TooBig {
        /// Payload length of the request.
        len: usize,
        /// Largest payload this transport takes.
        max: usize,
    },
    /// The daemon's reply was longer than this client reads (it was skipped).
    ReplyTooBig {
        /// Payload length of the reply.
        len: usize,
        /// Largest reply payload this client reads.
        max: usize,
    },
    /// The connection went away while the request was pending or being sent.
    Disconnected,
    /// No answer within the client's timeout.
    Timeout,
    /// The daemon sent something this client cannot make sense of.
    Protocol(String),
    /// An operating-system error (connect, device write errno, ...).
    Io(io::Error),
}

impl Error {
    /// The XenStore error name, when the daemon sent one.
    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            Error::Xs(kind) => Some(kind),
            _ => None,
        }
    }

    /// Whether this is the daemon's `ENOENT`.
    pub fn is_noent(&self) -> bool {
        matches!(self, Error::Xs(ErrorKind::Noent))
    }
}

/// Absence as an answer: `Ok(None)` where the daemon said `ENOENT`, for
/// reads, listings and removals where a missing node is not a failure.
pub trait Optional<T> {
    /// `Ok(Some(v))` for `Ok(v)`, `Ok(None)` for `ENOENT`, other errors as they are.
    fn optional(self) -> std::result::Result<Option<T>, Error>;
}

impl<T> Optional<T> for std::result::Result<T, Error> {
    fn optional(self) -> std::result::Result<Option<T>, Error> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_noent() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xs(kind) => write!(f, "xenstore error {kind}"),
            Error::Path(e) => write!(f, "invalid xenstore path: {e}"),
            Error::TooBig { len, max } => {
                write!(f, "request payload of {len} bytes exceeds the transport limit of {max}")
            }
            Error::ReplyTooBig { len, max } => {
                write!(f, "reply payload of {len} bytes exceeds the limit of {max}")
            }
            Error::Disconnected => f.write_str("xenstore connection lost"),
            Error::Timeout => f.write_str("xenstore request timed out"),
            Error::Protocol(what) => write!(f, "xenstore protocol error: {what}"),
            Error::Io(e) => write!(f, "xenstore i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Path(e) => Some(e),
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<PathError> for Error {
    fn from(e: PathError) -> Error {
        Error::Path(e)
    }
}

/// Result alias for client operations.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enoent_is_absence() {
        assert_eq!(Ok::<u8, Error>(7).optional().unwrap(), Some(7));
        assert_eq!(Err::<u8, Error>(Error::Xs(ErrorKind::Noent)).optional().unwrap(), None);
        let other = Err::<u8, Error>(Error::Xs(ErrorKind::Acces)).optional();
        assert!(matches!(other, Err(Error::Xs(ErrorKind::Acces))));
    }
}
