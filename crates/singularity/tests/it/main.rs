//! Integration tests: the real `singularity` binary against temporary roots,
//! the XenStore simulator and real tools.

mod apply;
mod cli_host;
mod config;
mod daemon;
mod external;
mod faults;
mod harness;
mod hostile;
mod labels;
mod live;
mod metrics;
#[path = "../common/netns.rs"]
mod netns;
mod qga;
mod race;
#[path = "../../../xenstore/tests/common/realxs.rs"]
mod realxs;
mod realxs_agent;
mod rundir;
mod socket;
#[path = "../common/tools.rs"]
mod tools;
mod xen;
mod xenlab;
