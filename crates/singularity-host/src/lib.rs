//! singularity-host: the tools that run outside guests.
//!
//! - [`dom0`]: the host side of the agent protocol, as nova and the os-xenapi
//!   dom0 `agent` plugin implement it (also the tests' faithful host);
//! - [`xenstored`]: the XenStore simulator served on Unix sockets;
//! - [`demo`]: the whole protocol against a simulated Xen host.
//!
//! None of this is in the guest agent: the `singularity` binary builds
//! without this crate and without the XenStore simulator.

pub mod cli;
pub mod demo;
pub mod dom0;
pub mod xenstored;
