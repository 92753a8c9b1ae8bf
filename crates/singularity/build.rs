//! Link settings of the guest agent's executable.
//!
//! Built with `panic = "abort"`, as the release profile is, nothing in the agent
//! unwinds: a panic prints its message and aborts, no thread is cancelled,
//! no C++ exception is thrown. The unwind tables that the compiler, the
//! standard library and glibc's static objects carry (`.eh_frame` and its
//! index `.eh_frame_hdr`) would then serve only a backtrace printed under
//! `RUST_BACKTRACE=1`, and a debugger's walk of a core dump, for a stripped
//! executable whose frames have no names anyway. Such an executable is linked
//! without them: about 460 KiB, a ninth of the static executable.
//!
//! The debug profile, which unwinds, keeps them.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=link/no-unwind-tables.ld");
    // The release profile aborts on panic (the workspace's Cargo.toml); a
    // build script is not told the profile's panic strategy itself.
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if profile == "release" && os == "linux" {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/no-unwind-tables.ld");
        // The agent, and the examples that the benchmarks measure beside it.
        for kind in ["bins", "examples"] {
            println!("cargo::rustc-link-arg-{kind}=-Wl,-T,{}", script.display());
            println!("cargo::rustc-link-arg-{kind}=-Wl,--no-eh-frame-hdr");
        }
    }
}
