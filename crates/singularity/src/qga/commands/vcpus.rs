//! `guest-get-vcpus` and `guest-set-vcpus`: the `online` files of
//! `/sys/devices/system/cpu/cpu<N>/`, under the root.
//!
//! `guest-set-vcpus` writes those files in place: sysfs attributes cannot be
//! replaced by a rename, so this is the one write that does not go through
//! the applier (it changes kernel state, not a file, and there is nothing
//! to roll back to but what the host asks next).

use crate::qga::{Args, Ctx, QgaError};
use crate::root::Root;
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::PathBuf;

const CPUS: &str = "/sys/devices/system/cpu";

/// An I/O error as C's strerror words it, as in qemu-ga's messages.
pub(super) fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(at) => s[..at].to_string(),
        None => s,
    }
}

/// One logical processor as `guest-get-vcpus` reports it.
#[derive(Debug, PartialEq, Eq)]
struct Vcpu {
    id: i64,
    online: bool,
    can_offline: bool,
}

/// The path under the root of `cpu<id>/<file>`.
fn cpu_path(root: &Root, id: i64, file: &str) -> Result<PathBuf, QgaError> {
    root.join(&format!("{CPUS}/cpu{id}/{file}"))
        .map_err(|e| QgaError::generic(e.to_string()))
}

/// Whether the `online` file says online (anything but `0`).
fn is_online(text: &str) -> bool {
    text.trim() != "0"
}

/// Reads every `cpu<N>` directory: an `online` file makes the processor
/// one that can go offline; without one (cpu0, usually) it is always online.
fn read_vcpus(root: &Root) -> Result<Vec<Vcpu>, QgaError> {
    let dir = root.join(CPUS).map_err(|e| QgaError::generic(e.to_string()))?;
    let entries =
        std::fs::read_dir(&dir).map_err(|e| QgaError::generic(format!("open(\"{CPUS}\"): {}", strerror(&e))))?;
    let mut ids: Vec<i64> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("cpu")?;
            n.bytes().all(|b| b.is_ascii_digit()).then(|| n.parse().ok())?
        })
        .collect();
    ids.sort_unstable();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let path = cpu_path(root, id, "online")?;
        let vcpu = match std::fs::read_to_string(&path) {
            Ok(text) => Vcpu {
                id,
                online: is_online(&text),
                can_offline: true,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vcpu {
                id,
                online: true,
                can_offline: false,
            },
            Err(e) => {
                return Err(QgaError::generic(format!(
                    "open(\"{CPUS}/cpu{id}/online\"): {}",
                    strerror(&e)
                )))
            }
        };
        out.push(vcpu);
    }
    Ok(out)
}

/// `guest-get-vcpus`: `[{logical-id, online, can-offline}]`, by id.
pub fn get_vcpus(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    let vcpus = read_vcpus(ctx.root)?;
    if vcpus.is_empty() {
        return Err(QgaError::generic("guest reported zero VCPUs"));
    }
    // Highest id first, as qemu-ga lists them.
    Ok(Value::Array(
        vcpus
            .iter()
            .rev()
            .map(|v| json!({"logical-id": v.id, "online": v.online, "can-offline": v.can_offline}))
            .collect(),
    ))
}

/// Brings one processor online or offline, if it is not so already.
fn set_one(root: &Root, id: i64, online: bool) -> Result<(), QgaError> {
    let dir = cpu_path(root, id, "")?;
    if !dir.is_dir() {
        let e = std::fs::read_dir(&dir)
            .err()
            .unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound));
        return Err(QgaError::generic(format!(
            "open(\"{CPUS}/cpu{id}/\"): {}",
            strerror(&e)
        )));
    }
    let path = cpu_path(root, id, "online")?;
    let shown = format!("{CPUS}/cpu{id}/online");
    let now = match std::fs::read_to_string(&path) {
        Ok(text) => is_online(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if online {
                return Ok(());
            }
            return Err(QgaError::generic(format!("logical processor #{id} can't be offlined")));
        }
        Err(e) => return Err(QgaError::generic(format!("open(\"{shown}\"): {}", strerror(&e)))),
    };
    if now == online {
        return Ok(());
    }
    // Truncating, as a shell redirection does: sysfs ignores it, a plain
    // file (a test's) needs it.
    let write = || -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&path)?;
        f.write_all(if online { b"1" } else { b"0" })
    };
    write().map_err(|e| QgaError::generic(format!("write(\"{shown}\"): {}", strerror(&e))))?;
    log::info!(
        "logical processor #{id} brought {}",
        if online { "online" } else { "offline" }
    );
    Ok(())
}

/// `guest-set-vcpus {vcpus: [{logical-id, online}]}`: in order, stopping at
/// the first failure; answers how many were done, or the first failure's
/// error when none was (qemu-ga's rule; an empty list answers 0).
pub fn set_vcpus(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    let list = args.get("vcpus").and_then(Value::as_array);
    let mut done = 0i64;
    for v in list.into_iter().flatten() {
        let id = v.get("logical-id").and_then(Value::as_i64).unwrap_or(-1);
        let online = v.get("online").and_then(Value::as_bool).unwrap_or(true);
        match set_one(ctx.root, id, online) {
            Ok(()) => done += 1,
            Err(e) if done == 0 => return Err(e),
            Err(e) => {
                log::info!("guest-set-vcpus stopped after {done}: {}", e.desc);
                break;
            }
        }
    }
    Ok(json!(done))
}

#[cfg(test)]
mod tests {
    use super::super::clock::with_ctx;
    use super::*;
    use std::fs;

    /// A root with cpu0 (no `online` file) and cpu1..: their `online` text.
    fn cpus(online: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("sys/devices/system/cpu");
        fs::create_dir_all(base.join("cpu0")).unwrap();
        for (i, text) in online.iter().enumerate() {
            let d = base.join(format!("cpu{}", i + 1));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("online"), text).unwrap();
        }
        fs::create_dir_all(base.join("cpufreq")).unwrap();
        fs::write(base.join("online"), "0-2\n").unwrap();
        dir
    }

    fn online_of(dir: &tempfile::TempDir, n: u32) -> String {
        fs::read_to_string(dir.path().join(format!("sys/devices/system/cpu/cpu{n}/online"))).unwrap()
    }

    fn set(dir: &tempfile::TempDir, list: Value) -> Result<Value, QgaError> {
        let mut args = Args::new();
        args.insert("vcpus".into(), list);
        with_ctx(&Root::new(dir.path()), |ctx| set_vcpus(ctx, &args))
    }

    #[test]
    fn lists_every_cpu_highest_id_first_cpu0_fixed_online() {
        let dir = cpus(&["1\n", "0\n"]);
        // cpu10 comes before cpu2 by number, not after it by name.
        let d = dir.path().join("sys/devices/system/cpu/cpu10");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("online"), "1\n").unwrap();
        let got = with_ctx(&Root::new(dir.path()), |ctx| get_vcpus(ctx, &Args::new())).unwrap();
        assert_eq!(
            got,
            json!([
                {"logical-id": 10, "online": true, "can-offline": true},
                {"logical-id": 2, "online": false, "can-offline": true},
                {"logical-id": 1, "online": true, "can-offline": true},
                {"logical-id": 0, "online": true, "can-offline": false},
            ])
        );
    }

    #[test]
    fn no_cpus_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let got = with_ctx(&Root::new(dir.path()), |ctx| get_vcpus(ctx, &Args::new()));
        assert!(got.is_err());
        fs::create_dir_all(dir.path().join(CPUS.trim_start_matches('/'))).unwrap();
        let got = with_ctx(&Root::new(dir.path()), |ctx| get_vcpus(ctx, &Args::new()));
        assert_eq!(got.unwrap_err().desc, "guest reported zero VCPUs");
    }

    #[test]
    fn writes_only_what_changes_and_counts_what_was_done() {
        let dir = cpus(&["1\n", "0\n"]);
        let got = set(
            &dir,
            json!([
                {"logical-id": 1, "online": false},
                {"logical-id": 2, "online": true},
                {"logical-id": 0, "online": true},
            ]),
        );
        assert_eq!(got, Ok(json!(3)));
        assert_eq!(online_of(&dir, 1), "0");
        assert_eq!(online_of(&dir, 2), "1");
        // Already so: not written (the file keeps its newline).
        let got = set(&dir, json!([{"logical-id": 2, "online": true}]));
        assert_eq!(got, Ok(json!(1)));
        assert_eq!(online_of(&dir, 2), "1");
        let got = set(&dir, json!([{"logical-id": 1, "online": false}]));
        assert_eq!(got, Ok(json!(1)));
    }

    #[test]
    fn cpu0_cannot_go_offline_and_stops_the_list() {
        let dir = cpus(&["1\n", "1\n"]);
        let got = set(&dir, json!([{"logical-id": 0, "online": false}]));
        assert_eq!(got.unwrap_err().desc, "logical processor #0 can't be offlined");
        let got = set(
            &dir,
            json!([
                {"logical-id": 1, "online": false},
                {"logical-id": 0, "online": false},
                {"logical-id": 2, "online": false},
            ]),
        );
        assert_eq!(got, Ok(json!(1)), "stopped at the first failure");
        assert_eq!(online_of(&dir, 1), "0");
        assert_eq!(online_of(&dir, 2), "1\n", "after the failure: untouched");
    }

    #[test]
    fn a_cpu_that_does_not_exist_is_qemu_ga_s_open_error() {
        let dir = cpus(&["1\n"]);
        let got = set(&dir, json!([{"logical-id": 99, "online": true}]));
        assert_eq!(
            got.unwrap_err().desc,
            "open(\"/sys/devices/system/cpu/cpu99/\"): No such file or directory"
        );
        let got = set(&dir, json!([{"logical-id": -1, "online": true}]));
        assert_eq!(
            got.unwrap_err().desc,
            "open(\"/sys/devices/system/cpu/cpu-1/\"): No such file or directory"
        );
        assert_eq!(set(&dir, json!([])), Ok(json!(0)));
    }

    #[test]
    fn the_live_system_has_at_least_cpu0() {
        let got = with_ctx(&Root::new("/"), |ctx| get_vcpus(ctx, &Args::new())).unwrap();
        let list = got.as_array().unwrap();
        assert_eq!(list.last().unwrap()["logical-id"], json!(0));
        for v in list {
            assert!(v["online"].is_boolean() && v["can-offline"].is_boolean());
        }
    }
}
