//! Read-only look at the managed system through [`Root`]: `os-release`, the
//! NICs in `/sys/class/net`, existing configuration files. [`Files`] also
//! holds the contents planned so far, so that two functions editing the same
//! file (network keys and `hostname=` in FreeBSD's `rc.conf`) build on each
//! other. Nothing here writes.

use super::addr::Mac;
use super::error::NetError;
use crate::root::Root;
use std::collections::BTreeMap;
use std::io::ErrorKind;

/// Broad OS family, from `os-release` `ID` then `ID_LIKE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Debian, Ubuntu and derivatives.
    Debian,
    /// RHEL, CentOS, Rocky, Alma, Oracle, Fedora, Amazon.
    RedHat,
    /// SLES, openSUSE.
    Suse,
    /// Arch and derivatives.
    Arch,
    /// Gentoo.
    Gentoo,
    /// Alpine.
    Alpine,
    /// FreeBSD.
    FreeBsd,
    /// Anything else.
    Unknown,
}

/// What `os-release` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OsInfo {
    /// `ID` (lower case), or a name derived from a legacy release file.
    pub id: String,
    /// `ID_LIKE` words.
    pub id_like: Vec<String>,
    /// `VERSION_ID`.
    pub version_id: String,
    /// The family.
    pub family: Family,
}

impl OsInfo {
    /// Parses `os-release` text (shell-style `KEY=value`, optionally quoted).
    pub fn parse(text: &str) -> OsInfo {
        let mut id = String::new();
        let mut id_like = Vec::new();
        let mut version_id = String::new();
        for line in text.lines() {
            let Some((k, v)) = line.trim().split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "ID" => id = v.to_ascii_lowercase(),
                "ID_LIKE" => id_like = v.split_whitespace().map(|w| w.to_ascii_lowercase()).collect(),
                "VERSION_ID" => version_id = v,
                _ => {}
            }
        }
        let family = std::iter::once(id.as_str())
            .chain(id_like.iter().map(String::as_str))
            .map(family_of)
            .find(|f| *f != Family::Unknown)
            .unwrap_or(Family::Unknown);
        OsInfo {
            id,
            id_like,
            version_id,
            family,
        }
    }

    /// Reads `/etc/os-release`, else `/usr/lib/os-release`, else guesses from
    /// legacy release files.
    pub fn read(files: &Files) -> Result<OsInfo, NetError> {
        for path in ["/etc/os-release", "/usr/lib/os-release"] {
            if let Some(text) = files.read(path)? {
                return Ok(OsInfo::parse(&text));
            }
        }
        let legacy = [
            ("/etc/alpine-release", "alpine"),
            ("/etc/gentoo-release", "gentoo"),
            ("/etc/SuSE-release", "sles"),
            ("/etc/redhat-release", "rhel"),
            ("/etc/debian_version", "debian"),
            ("/bin/freebsd-version", "freebsd"),
        ];
        let id = legacy
            .iter()
            .find(|(p, _)| files.exists(p))
            .map(|(_, id)| *id)
            .unwrap_or("");
        Ok(OsInfo::parse(&format!("ID={id}")))
    }

    /// The major version (`9` for `9.3`), 0 when unknown.
    pub fn major(&self) -> u32 {
        self.version_id
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }
}

fn family_of(id: &str) -> Family {
    match id {
        "debian" | "ubuntu" | "raspbian" | "linuxmint" | "pop" | "devuan" => Family::Debian,
        "rhel" | "centos" | "rocky" | "almalinux" | "ol" | "fedora" | "amzn" | "redhat" | "cloudlinux" => {
            Family::RedHat
        }
        "sles" | "sled" | "suse" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" | "opensuse-microos" => {
            Family::Suse
        }
        "arch" | "manjaro" | "endeavouros" => Family::Arch,
        "gentoo" => Family::Gentoo,
        "alpine" => Family::Alpine,
        "freebsd" => Family::FreeBsd,
        _ => Family::Unknown,
    }
}

/// A NIC found in `/sys/class/net`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNic {
    /// The kernel name (`eth0`, `enX0`, `xn0`).
    pub name: String,
    /// Its current MAC.
    pub mac: Mac,
    /// Whether it is backed by a device (`/sys/class/net/<if>/device`), as
    /// opposed to a VLAN or bridge that shares the MAC.
    pub physical: bool,
}

/// The NICs with an Ethernet MAC, by name. `lo` and NICs without a 6-byte
/// MAC are left out.
pub fn local_nics(files: &Files) -> Result<Vec<LocalNic>, NetError> {
    let mut out = Vec::new();
    for name in files.list("/sys/class/net")? {
        // Names end up in file names and shell-sourced files: only the
        // characters real NIC names use.
        let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b));
        if name == "lo" || !plain {
            continue;
        }
        let dir = format!("/sys/class/net/{name}");
        let Ok(Some(text)) = files.read(&format!("{dir}/address")) else {
            continue;
        };
        let Ok(mac) = text.trim().parse::<Mac>() else { continue };
        if mac.0 == [0; 6] {
            continue;
        }
        let physical = files.exists(&format!("{dir}/device"));
        out.push(LocalNic { name, mac, physical });
    }
    Ok(out)
}

/// The managed system's files as seen so far: what is on disk under the
/// root, with the contents already planned laid over it.
pub struct Files<'a> {
    root: &'a Root,
    planned: BTreeMap<String, String>,
}

impl<'a> Files<'a> {
    /// A view of `root` with nothing planned yet.
    pub fn new(root: &'a Root) -> Files<'a> {
        Files {
            root,
            planned: BTreeMap::new(),
        }
    }

    fn path(&self, path: &str) -> Result<std::path::PathBuf, NetError> {
        self.root.join(path).map_err(|e| NetError::Probe {
            path: path.to_string(),
            detail: e.to_string(),
        })
    }

    /// The contents of a text file (planned or on disk), `None` if absent.
    pub fn read(&self, path: &str) -> Result<Option<String>, NetError> {
        if let Some(text) = self.planned.get(path) {
            return Ok(Some(text.clone()));
        }
        let probe = |detail: String| NetError::Probe {
            path: path.to_string(),
            detail,
        };
        match std::fs::read(self.path(path)?) {
            Ok(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| probe("not UTF-8 text".into())),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(None),
            Err(e) => Err(probe(e.to_string())),
        }
    }

    /// Records planned contents, so later reads see them.
    pub fn plan(&mut self, path: &str, contents: &str) {
        self.planned.insert(path.to_string(), contents.to_string());
    }

    /// Whether something (file, directory, link, even dangling) is at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.planned.contains_key(path) || self.path(path).is_ok_and(|p| p.symlink_metadata().is_ok())
    }

    /// The target of a symbolic link, `None` if `path` is not one.
    pub fn read_link(&self, path: &str) -> Option<String> {
        let p = self.path(path).ok()?;
        std::fs::read_link(p).ok().map(|t| t.to_string_lossy().into_owned())
    }

    /// The names in a directory, sorted; empty if it does not exist.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, NetError> {
        let entries = match std::fs::read_dir(self.path(dir)?) {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => return Ok(Vec::new()),
            Err(e) => {
                return Err(NetError::Probe {
                    path: dir.to_string(),
                    detail: e.to_string(),
                })
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        for planned in self.planned.keys() {
            if let Some(name) = planned.strip_prefix(&prefix).filter(|n| !n.contains('/')) {
                names.push(name.to_string());
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// Whether a systemd unit is enabled for boot (a `*.wants` link under
/// `/etc/systemd/system`).
pub fn unit_enabled(files: &Files, unit: &str) -> bool {
    [
        "multi-user.target.wants",
        "sockets.target.wants",
        "network-online.target.wants",
        "sysinit.target.wants",
    ]
    .iter()
    .any(|w| files.exists(&format!("/etc/systemd/system/{w}/{unit}")))
}

/// Whether NetworkManager is enabled (systemd or OpenRC) or running.
pub fn nm_enabled(files: &Files) -> bool {
    unit_enabled(files, "NetworkManager.service")
        || files.exists("/etc/systemd/system/dbus-org.freedesktop.NetworkManager.service")
        || files.exists("/etc/runlevels/default/NetworkManager")
        || files.exists("/run/NetworkManager/NetworkManager.pid")
}

/// Whether systemd-networkd is enabled or running.
pub fn networkd_enabled(files: &Files) -> bool {
    unit_enabled(files, "systemd-networkd.service")
        || unit_enabled(files, "systemd-networkd.socket")
        || files.list("/run/systemd/netif/links").is_ok_and(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_families() {
        let rocky =
            OsInfo::parse("NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n");
        assert_eq!((rocky.family, rocky.major()), (Family::RedHat, 9));
        let mint = OsInfo::parse("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(mint.family, Family::Debian);
        let odd = OsInfo::parse("ID=somethingnew\nID_LIKE=suse\n");
        assert_eq!(odd.family, Family::Suse);
        assert_eq!(OsInfo::parse("").family, Family::Unknown);
        assert_eq!(OsInfo::parse("ID=freebsd\nVERSION_ID=14.1").major(), 14);
    }
}
