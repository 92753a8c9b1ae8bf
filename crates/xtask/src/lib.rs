//! Project automation for singularity, run as `cargo run -p xtask -- TASK`.
//!
//! - [`dist`] generates what ships beside the binary from the code that
//!   defines it: man pages and shell completions from the clap definition
//!   (`singularity::cli::Cli`, `singularity_host::cli::Cli`), `singularity.conf(5)` and the default
//!   configuration file from `singularity::config::KEYS`. The results are
//!   checked in under `dist/` and a test fails when they go stale.
//! - [`package`] stages the binary and `dist/` as described by the
//!   `[package.metadata.deb]` and `[package.metadata.generate-rpm]` tables of
//!   `crates/singularity/Cargo.toml` and builds a `.deb` with `dpkg-deb` and an
//!   `.rpm` with `rpmbuild`; the same for `crates/singularity-host`.
//! - [`protoman`] writes `singularity-configurators(7)`, the external
//!   configurator protocol.

pub mod confman;
pub mod dist;
pub mod package;
pub mod protoman;
pub mod roff;
