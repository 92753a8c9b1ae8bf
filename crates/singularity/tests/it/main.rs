//! Integration tests: the real `singularity` binary against temporary roots,
//! the XenStore simulator and real tools.

mod apply;
mod cli_host;
mod daemon;
mod external;
mod harness;
mod hostile;
mod labels;
mod live;
mod race;
mod socket;
#[path = "../common/tools.rs"]
mod tools;
mod xen;
mod xenlab;
