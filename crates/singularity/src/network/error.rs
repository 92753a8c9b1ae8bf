//! Why `resetnetwork` cannot be planned. Every variant names what it failed
//! on (the `vm-data/networking` key, the hostname, the file), so the reply to
//! nova says which entry to fix.

use std::fmt;

/// A network request that cannot be planned. Nothing is written when this is
/// returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetError {
    /// One `vm-data/networking/<key>` entry is unusable.
    Entry {
        /// The key under `vm-data/networking`.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Several entries contradict each other.
    Conflict {
        /// The keys involved.
        keys: Vec<String>,
        /// What the contradiction is.
        detail: String,
    },
    /// `vm-data/hostname` is not a valid host name.
    Hostname {
        /// The value, as received (lossily decoded).
        value: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The managed system could not be inspected.
    Probe {
        /// The system path.
        path: String,
        /// The error.
        detail: String,
    },
}

impl NetError {
    pub(crate) fn entry(key: &str, detail: impl Into<String>) -> NetError {
        NetError::Entry {
            key: key.to_string(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Entry { key, detail } => write!(f, "vm-data/networking/{key}: {detail}"),
            NetError::Conflict { keys, detail } => {
                let names: Vec<String> = keys.iter().map(|k| format!("vm-data/networking/{k}")).collect();
                write!(f, "{}: {detail}", names.join(" and "))
            }
            NetError::Hostname { value, detail } => write!(f, "vm-data/hostname {value:?}: {detail}"),
            NetError::Probe { path, detail } => write!(f, "cannot inspect {path}: {detail}"),
        }
    }
}

impl std::error::Error for NetError {}
