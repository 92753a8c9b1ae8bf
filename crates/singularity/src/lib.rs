//! singularity: a guest agent for OpenStack virtual machines on Xen.
//!
//! The code is split as parse → plan → apply:
//! - parsing is pure: the host's JSON ([`protocol`]), the password cipher
//!   ([`crypto`]) and the configuration file ([`config`]) turn bytes into typed
//!   values;
//! - configurators ([`configurators`]) turn a typed request into a
//!   [`plan::Plan`] (files to write, commands to run) without touching the
//!   system;
//! - [`apply`] is the one place that changes the system, always under a root
//!   directory (`--root`, `/` in production).
//!
//! Communicators ([`communicator`]) carry requests from the hypervisor
//! (XenStore) or from a local Unix socket to the [`handler`], which answers
//! every request with a JSON object whose `returncode` and `message` are
//! strings. On KVM, [`qga`] speaks the QEMU guest agent protocol through the
//! same plan and apply layers.

pub mod apply;
pub mod cached;
pub mod cli;
pub mod communicator;
pub mod config;
pub mod configurators;
pub mod crypto;
pub mod daemon;
pub mod effective;
pub mod functions;
pub mod handler;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod network;
pub mod notify;
pub mod passwd;
pub mod plan;
pub mod protocol;
pub mod qga;
pub mod root;
pub mod rundir;
pub mod secret;
pub mod settings;
pub mod shadow;
pub mod signals;
pub mod stdout;
