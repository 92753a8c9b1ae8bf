//! Integration tests: the real `singularity` binary against temporary roots,
//! the XenStore simulator and real tools.

mod apply;
mod cli_host;
mod daemon;
mod demo;
mod harness;
mod hostile;
mod socket;
mod xen;
mod xenlab;
