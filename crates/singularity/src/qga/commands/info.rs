//! `guest-get-osinfo`, `guest-get-users`, `guest-get-timezone`,
//! `guest-get-host-name`: read-only facts about the guest.
//!
//! Everything that lives in a file is read under the root. What only the
//! kernel knows (uname(2), host name included) is asked only on the live root;
//! under another root the same facts come from the root's files
//! (`/proc/sys/kernel/*`, `/etc/hostname`). The time zone's offset always
//! comes from its TZif file (not localtime(3)), so a test root has one too.

use super::clock;
use crate::network::shellvars;
use crate::qga::{Args, Ctx, QgaError};
use crate::root::Root;
use serde_json::{json, Map, Value};

/// Reads a file under the root as text, if it is there.
fn read(root: &Root, path: &str) -> Option<String> {
    std::fs::read_to_string(root.join(path).ok()?).ok()
}

/// The kernel's release, version and machine, from uname(2).
fn uname() -> [String; 3] {
    let u = rustix::system::uname();
    [u.release(), u.version(), u.machine()].map(|f| f.to_string_lossy().into_owned())
}

/// The members `guest-get-osinfo` takes from `os-release`.
const OS_RELEASE_KEYS: [(&str, &str); 7] = [
    ("ID", "id"),
    ("NAME", "name"),
    ("PRETTY_NAME", "pretty-name"),
    ("VERSION", "version"),
    ("VERSION_ID", "version-id"),
    ("VARIANT", "variant"),
    ("VARIANT_ID", "variant-id"),
];

/// `guest-get-osinfo`'s object from `os-release` text and the kernel's
/// `[release, version, machine]` (each possibly unknown); what is absent is
/// left out.
fn osinfo_of(os_release: &str, kernel: [Option<String>; 3]) -> Value {
    let mut out = Map::new();
    let [release, version, machine] = kernel;
    for (key, value) in [
        ("kernel-release", release),
        ("kernel-version", version),
        ("machine", machine),
    ] {
        if let Some(v) = value {
            out.insert(key.into(), json!(v));
        }
    }
    for (var, key) in OS_RELEASE_KEYS {
        if let Some(v) = shellvars::get(os_release, var) {
            out.insert(key.into(), json!(v));
        }
    }
    Value::Object(out)
}

/// `guest-get-osinfo`: the kernel (uname(2) on the live root, else
/// `/proc/sys/kernel/{osrelease,version,arch}`) and `/etc/os-release` (else
/// `/usr/lib/os-release`).
pub fn osinfo(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    let root = ctx.root;
    let kernel = if root.is_live() {
        uname().map(Some)
    } else {
        ["osrelease", "version", "arch"]
            .map(|f| read(root, &format!("/proc/sys/kernel/{f}")).map(|s| s.trim().to_string()))
    };
    let os_release = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| read(root, p))
        .unwrap_or_default();
    Ok(osinfo_of(&os_release, kernel))
}

/// `guest-get-host-name`: `{host-name}`, the node name of uname(2) (what
/// gethostname(2) returns) on the live root, else the root's `/etc/hostname`.
pub fn host_name(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    let name = if ctx.root.is_live() {
        rustix::system::uname().nodename().to_string_lossy().into_owned()
    } else {
        read(ctx.root, "/etc/hostname")
            .and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_string))
            .ok_or_else(|| QgaError::generic("no host name in /etc/hostname"))?
    };
    Ok(json!({ "host-name": name }))
}

const ZONEINFO: &str = "/usr/share/zoneinfo/";

/// The zone named by the target of the `/etc/localtime` link, if it points
/// into a `zoneinfo` directory.
fn zone_of_link(target: &str) -> Option<&str> {
    let (_, zone) = target.rsplit_once("zoneinfo/")?;
    (!zone.is_empty()).then_some(zone)
}

/// `guest-get-timezone`: `{zone, offset}` as qemu-ga answers: the local
/// time's abbreviation now (`CET` in winter, `CEST` in summer; glib's
/// name), and its offset in seconds east of UTC. Local time is the TZif
/// file `/etc/localtime` (a link is followed under the root), else the zone
/// named in `/etc/timezone`, else UTC.
pub fn timezone(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Ok(timezone_at(ctx.root, clock::now_secs()))
}

fn timezone_at(root: &Root, now: i64) -> Value {
    let link = root
        .join("/etc/localtime")
        .ok()
        .and_then(|p| std::fs::read_link(p).ok())
        .map(|t| t.to_string_lossy().into_owned());
    let file = match &link {
        Some(target) => match zone_of_link(target) {
            Some(zone) => Some(format!("{ZONEINFO}{zone}")),
            None => target.starts_with('/').then(|| target.clone()),
        },
        None => Some("/etc/localtime".to_string()),
    };
    let named = || {
        let zone = read(root, "/etc/timezone")?.lines().next()?.trim().to_string();
        (!zone.is_empty()).then(|| format!("{ZONEINFO}{zone}"))
    };
    let (offset, zone) = file
        .and_then(|f| clock::local_of(root, &f, now))
        .or_else(|| clock::local_of(root, &named()?, now))
        .unwrap_or((0, "UTC".to_string()));
    json!({ "zone": zone, "offset": offset })
}

/// glibc's `struct utmp` on x86_64 (and every 64-bit Linux but s390x):
/// 384 bytes, `ut_type` at 0, `ut_user` (32 bytes) at 44, `ut_tv` (two
/// 32-bit fields) at 340.
const UTMP_SIZE: usize = 384;
const UT_USER: std::ops::Range<usize> = 44..76;
const UT_TV_SEC: usize = 340;
const UT_TV_USEC: usize = 344;
/// `ut_type` of a user's login session.
const USER_PROCESS: i16 = 7;

fn i32_at(rec: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&rec[at..at + 4]);
    i32::from_ne_bytes(b)
}

/// The logged-in users in a utmp file: each user once, with the earliest
/// login time of their sessions (seconds, with microseconds), in the order
/// they first appear. A trailing partial record is ignored.
fn users_of(utmp: &[u8]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for rec in utmp.chunks_exact(UTMP_SIZE) {
        if i16::from_ne_bytes([rec[0], rec[1]]) != USER_PROCESS {
            continue;
        }
        let raw = &rec[UT_USER];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        if end == 0 {
            continue;
        }
        let user = String::from_utf8_lossy(&raw[..end]).into_owned();
        let at = f64::from(i32_at(rec, UT_TV_SEC)) + f64::from(i32_at(rec, UT_TV_USEC)) / 1e6;
        match out.iter_mut().find(|(u, _)| *u == user) {
            Some((_, t)) => *t = t.min(at),
            None => out.push((user, at)),
        }
    }
    out
}

/// `guest-get-users`: `[{user, login-time}]` from `/var/run/utmp` (else
/// `/run/utmp`); none without one.
pub fn users(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    let utmp = ["/var/run/utmp", "/run/utmp"]
        .iter()
        .find_map(|p| std::fs::read(ctx.root.join(p).ok()?).ok())
        .unwrap_or_default();
    Ok(Value::Array(
        users_of(&utmp)
            .into_iter()
            .map(|(user, t)| json!({ "user": user, "login-time": t }))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::clock::with_ctx;
    use super::*;
    use std::fs;

    const DEBIAN: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
        VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

    fn root_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        dir
    }

    fn run(dir: &tempfile::TempDir, f: crate::qga::Run) -> Result<Value, QgaError> {
        with_ctx(&Root::new(dir.path()), |ctx| f(ctx, &Args::new()))
    }

    #[test]
    fn osinfo_as_qemu_ga_gives_it_here() {
        let kernel = [
            Some("6.18.44".to_string()),
            Some("#1 SMP PREEMPT_DYNAMIC @0".to_string()),
            Some("x86_64".to_string()),
        ];
        assert_eq!(
            osinfo_of(DEBIAN, kernel),
            json!({
                "kernel-release": "6.18.44", "kernel-version": "#1 SMP PREEMPT_DYNAMIC @0",
                "machine": "x86_64", "id": "debian", "name": "Debian GNU/Linux",
                "pretty-name": "Debian GNU/Linux 12 (bookworm)", "version": "12 (bookworm)",
                "version-id": "12",
            })
        );
        let fedora = "NAME=Fedora\nVARIANT=\"Cloud Edition\"\nVARIANT_ID=cloud\n";
        assert_eq!(
            osinfo_of(fedora, [None, None, None]),
            json!({"name": "Fedora", "variant": "Cloud Edition", "variant-id": "cloud"})
        );
    }

    #[test]
    fn osinfo_under_a_root_reads_its_files_and_falls_back_to_usr_lib() {
        let dir = root_with(&[
            ("/usr/lib/os-release", DEBIAN.as_bytes()),
            ("/proc/sys/kernel/osrelease", b"6.1.0-57-amd64\n"),
        ]);
        let got = run(&dir, osinfo).unwrap();
        assert_eq!(got["id"], "debian");
        assert_eq!(got["kernel-release"], "6.1.0-57-amd64");
        assert!(got.get("machine").is_none() && got.get("kernel-version").is_none());
        let dir = root_with(&[]);
        assert_eq!(run(&dir, osinfo).unwrap(), json!({}));
    }

    #[test]
    fn osinfo_of_the_live_system_has_the_kernel() {
        let got = with_ctx(&Root::new("/"), |ctx| osinfo(ctx, &Args::new())).unwrap();
        for key in ["kernel-release", "kernel-version", "machine"] {
            assert!(got[key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
        }
        assert_eq!(got["machine"], std::env::consts::ARCH);
    }

    #[test]
    fn host_name_from_the_root_s_file_or_the_kernel() {
        let dir = root_with(&[("/etc/hostname", b"\nweb-1.example.org\n")]);
        assert_eq!(run(&dir, host_name), Ok(json!({"host-name": "web-1.example.org"})));
        assert!(run(&root_with(&[]), host_name).is_err());
        let live = with_ctx(&Root::new("/"), |ctx| host_name(ctx, &Args::new())).unwrap();
        assert!(live["host-name"].as_str().is_some_and(|s| !s.is_empty()));
    }

    /// A TZif file whose footer is `footer` (no transitions).
    fn tzif(utoff: i32, footer: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..2 {
            out.extend(b"TZif2");
            out.extend([0u8; 15]);
            for n in [0u32, 0, 0, 0, 1, 4] {
                out.extend(n.to_be_bytes());
            }
            out.extend(utoff.to_be_bytes());
            out.extend([0, 0]);
            out.extend(b"XXX\0");
        }
        out.extend(format!("\n{footer}\n").bytes());
        out
    }

    #[test]
    fn timezone_from_the_localtime_link_and_its_zone_file() {
        let paris = tzif(3600, "CET-1CEST,M3.5.0,M10.5.0/3");
        let dir = root_with(&[
            ("/usr/share/zoneinfo/Europe/Paris", &paris),
            ("/etc/timezone", b"Etc/UTC\n"),
        ]);
        std::os::unix::fs::symlink("/usr/share/zoneinfo/Europe/Paris", dir.path().join("etc/localtime")).unwrap();
        let root = Root::new(dir.path());
        // 2026-12-07 and 2026-07-01, midnight UTC.
        assert_eq!(
            timezone_at(&root, 1_796_601_600),
            json!({"zone": "CET", "offset": 3600})
        );
        assert_eq!(
            timezone_at(&root, 1_782_864_000),
            json!({"zone": "CEST", "offset": 7200})
        );
    }

    #[test]
    fn timezone_from_etc_timezone_or_a_copied_localtime() {
        let ny = tzif(-18000, "EST5EDT,M3.2.0,M11.1.0");
        let dir = root_with(&[
            ("/usr/share/zoneinfo/America/New_York", &ny),
            ("/etc/timezone", b"America/New_York\n"),
        ]);
        let root = Root::new(dir.path());
        assert_eq!(
            timezone_at(&root, 1_796_601_600),
            json!({"zone": "EST", "offset": -18000})
        );
        let dir = root_with(&[("/etc/localtime", &tzif(19800, "IST-5:30"))]);
        assert_eq!(
            timezone_at(&Root::new(dir.path()), 0),
            json!({"zone": "IST", "offset": 19800})
        );
        let dir = root_with(&[]);
        assert_eq!(
            timezone_at(&Root::new(dir.path()), 0),
            json!({"zone": "UTC", "offset": 0})
        );
        assert_eq!(zone_of_link("../usr/share/zoneinfo/Etc/UTC"), Some("Etc/UTC"));
        assert_eq!(zone_of_link("/etc/zoneinfo/"), None);
    }

    /// One utmp record.
    fn utmp(ty: i16, user: &str, sec: i32, usec: i32) -> Vec<u8> {
        let mut rec = vec![0u8; UTMP_SIZE];
        rec[0..2].copy_from_slice(&ty.to_ne_bytes());
        rec[8..13].copy_from_slice(b"pts/0");
        rec[UT_USER][..user.len()].copy_from_slice(user.as_bytes());
        rec[76..85].copy_from_slice(b"192.0.2.9");
        rec[UT_TV_SEC..UT_TV_SEC + 4].copy_from_slice(&sec.to_ne_bytes());
        rec[UT_TV_USEC..UT_TV_USEC + 4].copy_from_slice(&usec.to_ne_bytes());
        rec
    }

    #[test]
    fn users_once_each_with_their_earliest_login() {
        const BOOT_TIME: i16 = 2;
        const LOGIN_PROCESS: i16 = 6;
        const DEAD_PROCESS: i16 = 8;
        let mut file = Vec::new();
        file.extend(utmp(BOOT_TIME, "reboot", 100, 0));
        file.extend(utmp(USER_PROCESS, "alice", 2000, 250_000));
        file.extend(utmp(LOGIN_PROCESS, "LOGIN", 1000, 0));
        file.extend(utmp(USER_PROCESS, "root", 1500, 0));
        file.extend(utmp(USER_PROCESS, "alice", 1800, 500_000));
        file.extend(utmp(DEAD_PROCESS, "bob", 900, 0));
        let full = "a-user-name-of-exactly-32-bytes!";
        file.extend(utmp(USER_PROCESS, full, 3000, 1));
        file.extend(&utmp(USER_PROCESS, "partial", 1, 0)[..100]);
        assert_eq!(
            users_of(&file),
            [
                ("alice".to_string(), 1800.5),
                ("root".to_string(), 1500.0),
                (full.to_string(), 3000.000001),
            ]
        );
        let dir = root_with(&[("/run/utmp", &file)]);
        let got = run(&dir, users).unwrap();
        assert_eq!(got[0], json!({"user": "alice", "login-time": 1800.5}));
        assert!(got[1]["login-time"].is_f64());
        assert_eq!(run(&root_with(&[]), users), Ok(json!([])));
    }
}
