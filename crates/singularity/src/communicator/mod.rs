//! Communicators carry requests to the handler and replies back. Each one hides
//! its transport behind the small [`Communicator`] trait, so a new transport
//! never touches the handlers.

pub mod directory;
pub mod journal;
mod replies;
pub mod socket;
pub mod xen;

use crate::protocol::Reply;
use std::fmt;
use std::path::{Path, PathBuf};
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

/// How requests arrive and replies leave.
pub trait Communicator {
    /// Waits up to `timeout` for the next request; `Ok(None)` when none came
    /// (also early, when woken).
    fn recv(&mut self, timeout: Duration) -> Result<Option<Incoming>, CommError>;
    /// A handle that ends the wait of [`Communicator::recv`] from another thread.
    fn waker(&self) -> Waker;
    /// Sends the reply to the request `id`, as one complete message.
    fn reply(&mut self, id: &str, reply: &Reply) -> Result<(), CommError>;
    /// The transport's own source of vm-data, if it has one (XenStore's
    /// `vm-data`).
    fn metadata(&mut self) -> Option<&mut dyn Metadata> {
        None
    }
}

/// A transport and its settings: what `communicator` names. Adding one is a
/// file with its [`Communicator`] and a variant here (with its arms below).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// XenStore: requests from the hypervisor.
    Xen {
        /// XenStore socket or device; `None` tries the usual places.
        xenstore: Option<String>,
        /// How often `data/host` is listed without a watch event.
        rescan_interval: Duration,
    },
    /// A local Unix socket, one JSON request per line.
    Socket {
        /// The socket.
        path: PathBuf,
    },
    /// The QEMU guest agent protocol (libvirt, Proxmox): a protocol of its
    /// own with its own request loop, `qga::serve`.
    Qga {
        /// How the host is reached.
        method: crate::qga::Method,
        /// The port: a device or socket path, or `cid:port` for vsock; `None`
        /// is the method's default.
        path: Option<String>,
    },
}

impl Transport {
    /// The names `communicator` and `--communicator` accept.
    pub const NAMES: [&'static str; 3] = ["xen", "socket", "qga"];

    /// Its name in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Xen { .. } => "xen",
            Transport::Socket { .. } => "socket",
            Transport::Qga { .. } => "qga",
        }
    }

    /// Opens it. `journal` is where a transport that can lose a request in
    /// flight keeps its request journal.
    pub fn connect(&self, journal: &Path) -> Result<Box<dyn Communicator>, CommError> {
        Ok(match self {
            Transport::Xen {
                xenstore,
                rescan_interval,
            } => Box::new(xen::XenCommunicator::connect(xenstore.as_deref(), *rescan_interval)?.with_journal(journal)),
            Transport::Socket { path } => Box::new(socket::SocketCommunicator::bind(path)?),
            Transport::Qga { .. } => {
                return Err(CommError(
                    "the qga communicator speaks its own protocol: qga::serve runs it".into(),
                ))
            }
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transport is named in `NAMES` and documented under
    /// `communicator`: one added to the enum only fails here.
    #[test]
    fn every_transport_is_named_and_documented() {
        let all = [
            Transport::Xen {
                xenstore: None,
                rescan_interval: Duration::from_secs(60),
            },
            Transport::Socket {
                path: PathBuf::from("/run/s"),
            },
            Transport::Qga {
                method: crate::qga::Method::VirtioSerial,
                path: None,
            },
        ];
        let names: Vec<&str> = all.iter().map(Transport::name).collect();
        assert_eq!(names, Transport::NAMES);
        let accepts = crate::config::key_def("main", "communicator").unwrap().accepts;
        for name in Transport::NAMES {
            assert!(accepts.contains(name), "{name} undocumented: {accepts}");
        }
    }

    #[test]
    fn transports_compare_by_kind_and_settings() {
        let xen = |s| Transport::Xen {
            xenstore: None,
            rescan_interval: Duration::from_secs(s),
        };
        assert_eq!(xen(60), xen(60));
        assert_ne!(xen(60), xen(5));
        assert_ne!(
            xen(60),
            Transport::Socket {
                path: PathBuf::from("/x")
            }
        );
    }
}
