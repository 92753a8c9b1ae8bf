//! XenStore in pure Rust: the wire codec ([`wire`]), a client for the xenstored
//! Unix socket and the `/dev/xen/xenbus` device ([`client`]), and an in-process
//! xenstored simulator for tests and demos ([`sim`], cargo feature `sim`, on by
//! default; the guest agent builds without it).
//!
//! The crate has no dependency on any agent: it speaks only XenStore.

#![warn(missing_docs)]

pub mod client;
mod error;
pub mod path;
#[cfg(feature = "sim")]
pub mod sim;
mod sys;
pub mod wire;

pub use client::{Client, Transaction, Watch, WatchEvent, WatchWaker};
pub use error::{Error, Optional, Result};
pub use wire::{Access, ErrorKind, Perm};
