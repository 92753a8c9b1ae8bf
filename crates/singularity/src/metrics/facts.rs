//! What the metrics function reports, as data: the operating system
//! (`os-release`, the kernel release), the agent's version, memory, and the
//! balloon driver, read through [`Root`]; and the key set they make
//! ([`keys`]). Parsing is pure; the readers only read files.

use crate::network::shellvars;
use crate::root::Root;
use std::collections::BTreeMap;
use std::fs;

/// The operating system, from `os-release` and the kernel release.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Os {
    /// `PRETTY_NAME` (else `NAME`).
    pub name: Option<String>,
    /// `ID`.
    pub distro: Option<String>,
    /// The first part of `VERSION_ID`, when it is a number.
    pub major: Option<String>,
    /// The second part of `VERSION_ID`, when it is a number (`04` stays `04`).
    pub minor: Option<String>,
    /// The kernel release (`uname -r`).
    pub uname: Option<String>,
}

/// Memory, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `MemTotal`.
    pub total: Option<u64>,
    /// `MemAvailable`, else `MemFree`.
    pub free: Option<u64>,
}

/// A value fit for XenStore: printable, one line, not empty, at most 1024
/// bytes (oxenstored refuses values over 2048).
fn clean(s: &str) -> Option<String> {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut end = s.len().min(1024);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Some(s[..end].to_string())
}

/// A version part when it is all ASCII digits (at most 9 of them).
fn numeric(part: Option<&str>) -> Option<String> {
    part.filter(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
}

impl Os {
    /// Reads the kernel release and `os-release` text.
    pub fn parse(os_release: &str, osrelease: &str) -> Os {
        let get = |k: &str| shellvars::get(os_release, k).and_then(|v| clean(&v));
        let version = get("VERSION_ID").unwrap_or_default();
        let mut parts = version.split('.');
        Os {
            name: get("PRETTY_NAME").or_else(|| get("NAME")),
            distro: get("ID"),
            major: numeric(parts.next()),
            minor: numeric(parts.next()),
            uname: clean(osrelease),
        }
    }

    /// Reads `/etc/os-release` (else `/usr/lib/os-release`) and
    /// `/proc/sys/kernel/osrelease` under `root`; what is missing stays `None`.
    pub fn read(root: &Root) -> Os {
        let os_release = ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|p| read(root, p))
            .unwrap_or_default();
        Os::parse(
            &os_release,
            &read(root, "/proc/sys/kernel/osrelease").unwrap_or_default(),
        )
    }
}

impl Memory {
    /// Reads `/proc/meminfo` text.
    pub fn parse(meminfo: &str) -> Memory {
        let mut fields: BTreeMap<&str, u64> = BTreeMap::new();
        for line in meminfo.lines() {
            let Some((k, rest)) = line.split_once(':') else {
                continue;
            };
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                fields.insert(k.trim(), n);
            }
        }
        Memory {
            total: fields.get("MemTotal").copied(),
            free: fields.get("MemAvailable").or(fields.get("MemFree")).copied(),
        }
    }

    /// Reads `/proc/meminfo` under `root`.
    pub fn read(root: &Root) -> Memory {
        Memory::parse(&read(root, "/proc/meminfo").unwrap_or_default())
    }
}

/// Whether the kernel has a working balloon driver (its sysfs directory
/// `/sys/devices/system/xen_memory`, under `root`).
pub fn balloon(root: &Root) -> bool {
    root.join("/sys/devices/system/xen_memory").is_ok_and(|p| p.is_dir())
}

fn read(root: &Root, path: &str) -> Option<String> {
    fs::read_to_string(root.join(path).ok()?).ok()
}

/// The agent's version as `attr/PVAddons` wants it: four decimal integers.
pub fn pv_addons() -> [(&'static str, String); 4] {
    [
        ("MajorVersion", env!("CARGO_PKG_VERSION_MAJOR").to_string()),
        ("MinorVersion", env!("CARGO_PKG_VERSION_MINOR").to_string()),
        ("MicroVersion", env!("CARGO_PKG_VERSION_PATCH").to_string()),
        ("BuildVersion", "0".to_string()),
    ]
}

/// Everything known at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub os: Os,
    pub memory: Memory,
    /// Whether to advertise `control/feature-balloon`.
    pub balloon: bool,
    /// `(devid, "ipv4" | "ipv6", index)` → address, in text form.
    pub addresses: BTreeMap<(u32, &'static str, usize), String>,
}

/// The keys (relative to the domain's home) and values `facts` make, without
/// `data/updated`.
pub fn keys(facts: &Facts) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let os = &facts.os;
    for (key, value) in [
        ("os_name", &os.name),
        ("os_distro", &os.distro),
        ("os_majorver", &os.major),
        ("os_minorver", &os.minor),
        ("os_uname", &os.uname),
    ] {
        if let Some(v) = value {
            out.insert(format!("data/{key}"), v.clone());
        }
    }
    if let Some(t) = facts.memory.total {
        out.insert("data/meminfo_total".into(), t.to_string());
    }
    if let Some(f) = facts.memory.free {
        out.insert("data/meminfo_free".into(), f.to_string());
    }
    for (key, value) in pv_addons() {
        out.insert(format!("attr/PVAddons/{key}"), value);
    }
    for ((devid, family, n), addr) in &facts.addresses {
        out.insert(format!("attr/vif/{devid}/{family}/{n}"), addr.clone());
    }
    if facts.balloon {
        out.insert(BALLOON.into(), "1".into());
    }
    out
}

/// The balloon feature key.
pub const BALLOON: &str = "control/feature-balloon";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_gives_name_distro_and_numeric_versions() {
        let os = Os::parse(
            "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nID=ubuntu\nVERSION_ID=\"24.04\"\n",
            "6.8.0-45-generic\n",
        );
        assert_eq!(os.name.as_deref(), Some("Ubuntu 24.04.1 LTS"));
        assert_eq!(os.distro.as_deref(), Some("ubuntu"));
        assert_eq!((os.major.as_deref(), os.minor.as_deref()), (Some("24"), Some("04")));
        assert_eq!(os.uname.as_deref(), Some("6.8.0-45-generic"));
        // Debian 12: no minor; testing/sid: no VERSION_ID; rolling: not numeric.
        let deb = Os::parse(
            "PRETTY_NAME='Debian GNU/Linux 12 (bookworm)'\nID=debian\nVERSION_ID=\"12\"\n",
            "",
        );
        assert_eq!((deb.major.as_deref(), deb.minor), (Some("12"), None));
        assert_eq!(deb.uname, None);
        let sid = Os::parse("PRETTY_NAME=\"Debian GNU/Linux trixie/sid\"\nID=debian\n", "x");
        assert_eq!((sid.major, sid.minor), (None, None));
        let arch = Os::parse("NAME=\"Arch Linux\"\nID=arch\nVERSION_ID=rolling\n", "x");
        assert_eq!((arch.name.as_deref(), arch.major), (Some("Arch Linux"), None));
        let odd = Os::parse("ID=x\nVERSION_ID=9.3a\n", "x");
        assert_eq!((odd.major.as_deref(), odd.minor), (Some("9"), None));
    }

    #[test]
    fn meminfo_prefers_available() {
        let m =
            Memory::parse("MemTotal:        2014044 kB\nMemFree:          106372 kB\nMemAvailable:    1426836 kB\n");
        assert_eq!(
            m,
            Memory {
                total: Some(2014044),
                free: Some(1426836)
            }
        );
        let old = Memory::parse("MemTotal: 1000 kB\nMemFree: 300 kB\n");
        assert_eq!(old.free, Some(300));
        assert_eq!(Memory::parse("junk"), Memory::default());
    }

    #[test]
    fn pv_addons_are_integers() {
        for (key, value) in pv_addons() {
            assert!(value.parse::<u32>().is_ok(), "{key}={value}");
        }
    }

    #[test]
    fn values_are_one_clean_line() {
        assert_eq!(clean(" a\u{7}b \n").as_deref(), Some("ab"));
        assert_eq!(clean(" \n"), None);
        assert_eq!(clean(&"é".repeat(1000)).map(|s| s.len()), Some(1024));
    }
}
