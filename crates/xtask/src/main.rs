//! `cargo run -p xtask -- TASK`: see the usage text below.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use xtask::{dist, package};

const USAGE: &str = "\
usage: cargo run -p xtask -- TASK

tasks:
  dist OUTDIR          write man pages, completions and the default configuration
                       under OUTDIR (`dist dist` refreshes the checked-in copies)
  check-dist DIR       fail if DIR's generated files are stale
  package [--deb] [--rpm] [--arch ARCH] RELEASE_DIR OUTDIR
                       build the .deb and/or .rpm (both without --deb/--rpm) of
                       the guest agent and of the operator tools from
                       RELEASE_DIR/{singularity,singularity-host} and dist/,
                       into OUTDIR";

/// The packages built, each from the workspace package of the same name.
const PACKAGES: &[&str] = &["singularity", "singularity-host"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("dist") => {
            let [_, out] = args else {
                return Err(USAGE.to_string());
            };
            let (written, removed) = dist::write(Path::new(out)).map_err(|e| format!("{out}: {e}"))?;
            for p in &written {
                println!("wrote {}", Path::new(out).join(p).display());
            }
            for p in &removed {
                println!("removed {}", Path::new(out).join(p).display());
            }
            if written.is_empty() && removed.is_empty() {
                println!("{out}: up to date");
            }
            Ok(())
        }
        Some("check-dist") => {
            let [_, dir] = args else {
                return Err(USAGE.to_string());
            };
            let problems = dist::check(Path::new(dir)).map_err(|e| format!("{dir}: {e}"))?;
            if problems.is_empty() {
                println!("{dir}: up to date");
                Ok(())
            } else {
                Err(format!("{}\nrun `{}` to refresh", problems.join("\n"), dist::REFRESH))
            }
        }
        Some("package") => package_task(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    }
}

fn package_task(args: &[String]) -> Result<(), String> {
    let (mut deb, mut rpm) = (false, false);
    let mut arch = std::env::consts::ARCH.to_string();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--deb" => deb = true,
            "--rpm" => rpm = true,
            "--arch" => arch = it.next().ok_or(USAGE)?.clone(),
            _ if a.starts_with('-') => return Err(format!("unknown option {a}\n{USAGE}")),
            _ => positional.push(PathBuf::from(a)),
        }
    }
    let [release_dir, out] = &positional[..] else {
        return Err(USAGE.to_string());
    };
    if !deb && !rpm {
        (deb, rpm) = (true, true);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let epoch = package::source_date_epoch(&workspace)?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for name in PACKAGES {
        let meta = package::read_meta(&workspace, name)?;
        if deb {
            let b = package::build_deb(&meta, release_dir, &arch, epoch, out)?;
            println!("{} {} bytes", b.path.display(), b.size);
        }
        if rpm {
            let b = package::build_rpm(&meta, release_dir, &arch, epoch, out)?;
            println!("{} {} bytes", b.path.display(), b.size);
        }
    }
    Ok(())
}
