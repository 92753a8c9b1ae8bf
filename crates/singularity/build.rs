//! Link settings of the guest agent's executable.
//!
//! The static release build (what the packages ship: `panic = "abort"` in
//! the release profile, `-C target-feature=+crt-static`) unwinds nothing: a
//! panic prints its message and aborts, no thread is cancelled, no C++
//! exception is thrown. The unwind tables that the compiler, the standard
//! library and glibc's static objects carry (`.eh_frame` and its index
//! `.eh_frame_hdr`) would then serve only to walk the stack after the fact:
//! a backtrace under `RUST_BACKTRACE=1`, a debugger's or systemd-coredump's
//! trace of a core dump, `perf --call-graph=dwarf`, which without them show
//! the innermost frame only. That build is linked without them: 461 KiB,
//! 11.6 % of the static executable.
//!
//! A build script is not told the panic strategy, only the profile, so the
//! condition is the release profile and a static C library. A test or bench
//! build of that kind (`cargo test --release` with `+crt-static`), which
//! unwinds, would abort on a panic instead: no test here is built so.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=link/no-unwind-tables.ld");
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let static_libc = features.split(',').any(|f| f == "crt-static");
    if profile == "release" && os == "linux" && static_libc {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/no-unwind-tables.ld");
        // The agent, and the examples that the benchmarks measure beside it.
        // -Xlinker passes the path whole, commas included.
        for kind in ["bins", "examples"] {
            for arg in ["-Xlinker", "-T", "-Xlinker"] {
                println!("cargo::rustc-link-arg-{kind}={arg}");
            }
            println!("cargo::rustc-link-arg-{kind}={}", script.display());
            println!("cargo::rustc-link-arg-{kind}=-Wl,--no-eh-frame-hdr");
        }
    }
}
