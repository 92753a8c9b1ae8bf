//! Which configuration format to write, chosen at run time: the OS family
//! from `os-release` gives the candidates, offline checks under the root
//! (binaries, enabled units, existing configuration) pick the one in charge
//! (`network.md` §4). The `network_renderer` setting overrides both.

use super::probe::{networkd_enabled, nm_enabled, Family, Files, OsInfo};
use crate::root::Root;
use std::fmt;
use std::str::FromStr;

/// A network configuration format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Renderer {
    /// Debian/Ubuntu ifupdown: `/etc/network/interfaces` (or `interfaces.d`).
    Ifupdown,
    /// netplan YAML in `/etc/netplan`.
    Netplan,
    /// RHEL-family `ifcfg-*`, `route-*`, `route6-*`.
    Ifcfg,
    /// NetworkManager keyfiles.
    NmKeyfile,
    /// systemd-networkd `.network` files.
    Networkd,
    /// SUSE wicked `ifcfg-*` and `ifroute-*`.
    Suse,
    /// Gentoo netifrc `/etc/conf.d/net`.
    Gentoo,
    /// Alpine ifupdown-ng `/etc/network/interfaces`.
    Alpine,
    /// FreeBSD `/etc/rc.conf`.
    FreeBsd,
}

impl Renderer {
    /// Every renderer.
    pub const ALL: [Renderer; 9] = [
        Renderer::Ifupdown,
        Renderer::Netplan,
        Renderer::Ifcfg,
        Renderer::NmKeyfile,
        Renderer::Networkd,
        Renderer::Suse,
        Renderer::Gentoo,
        Renderer::Alpine,
        Renderer::FreeBsd,
    ];

    /// The configuration name (`network_renderer = …`).
    pub fn name(self) -> &'static str {
        match self {
            Renderer::Ifupdown => "ifupdown",
            Renderer::Netplan => "netplan",
            Renderer::Ifcfg => "ifcfg",
            Renderer::NmKeyfile => "networkmanager",
            Renderer::Networkd => "networkd",
            Renderer::Suse => "suse",
            Renderer::Gentoo => "gentoo",
            Renderer::Alpine => "alpine",
            Renderer::FreeBsd => "freebsd",
        }
    }
}

impl fmt::Display for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Renderer {
    type Err = String;

    fn from_str(s: &str) -> Result<Renderer, String> {
        let s = s.trim().to_ascii_lowercase();
        let alias = match s.as_str() {
            "eni" => "ifupdown",
            "nm" | "network-manager" | "keyfile" => "networkmanager",
            "systemd-networkd" => "networkd",
            "sysconfig" | "rhel" => "ifcfg",
            "wicked" => "suse",
            "netifrc" => "gentoo",
            "ifupdown-ng" => "alpine",
            "rc.conf" => "freebsd",
            other => other,
        };
        Renderer::ALL.into_iter().find(|r| r.name() == alias).ok_or_else(|| {
            let names: Vec<&str> = Renderer::ALL.iter().map(|r| r.name()).collect();
            format!("unknown network renderer '{s}' (expected one of {})", names.join(", "))
        })
    }
}

/// Picks the renderer for the system under `root`, with the reason for the log.
pub fn detect(root: &Root) -> (Renderer, String) {
    let files = Files::new(root);
    let os = OsInfo::read(&files).unwrap_or_else(|_| OsInfo::parse(""));
    detect_with(&files, &os)
}

fn has_any(files: &Files, paths: &[&str]) -> Option<String> {
    paths.iter().find(|p| files.exists(p)).map(|p| p.to_string())
}

fn netplan_yaml(files: &Files) -> bool {
    files
        .list("/etc/netplan")
        .is_ok_and(|l| l.iter().any(|n| n.ends_with(".yaml") || n.ends_with(".yml")))
}

/// [`detect`] on an already-read OS description.
pub(crate) fn detect_with(files: &Files, os: &OsInfo) -> (Renderer, String) {
    let who = match (os.id.as_str(), os.version_id.as_str()) {
        ("", _) => "no os-release".to_string(),
        (id, "") => format!("os-release ID={id}"),
        (id, v) => format!("os-release ID={id} VERSION_ID={v}"),
    };
    let netplan = has_any(files, &["/usr/sbin/netplan", "/sbin/netplan", "/usr/bin/netplan"]);
    let ifup = has_any(files, &["/sbin/ifup", "/usr/sbin/ifup"]);
    let nm = nm_enabled(files);
    let networkd = networkd_enabled(files);
    let pick = |r: Renderer, why: &str| (r, format!("{who}: {why}"));
    match os.family {
        Family::FreeBsd => pick(Renderer::FreeBsd, "FreeBSD rc.conf"),
        Family::Alpine => pick(Renderer::Alpine, "Alpine uses ifupdown-ng"),
        Family::Gentoo => {
            if has_any(
                files,
                &["/sbin/openrc-run", "/sbin/openrc", "/run/openrc", "/etc/init.d/net.lo"],
            )
            .is_some()
            {
                pick(Renderer::Gentoo, "OpenRC present: netifrc")
            } else if networkd {
                pick(Renderer::Networkd, "systemd-networkd enabled")
            } else if nm {
                pick(Renderer::NmKeyfile, "NetworkManager enabled")
            } else {
                pick(Renderer::Gentoo, "default for Gentoo")
            }
        }
        Family::Debian => {
            let ubuntu = os.id == "ubuntu" || os.id_like.iter().any(|w| w == "ubuntu");
            match (&netplan, &ifup) {
                (Some(p), _) if netplan_yaml(files) => pick(Renderer::Netplan, &format!("{p} and /etc/netplan/*.yaml")),
                (_, Some(i)) if files.exists("/etc/network/interfaces") => {
                    pick(Renderer::Ifupdown, &format!("{i} and /etc/network/interfaces"))
                }
                (Some(p), _) => pick(Renderer::Netplan, &format!("{p} present")),
                _ if networkd => pick(Renderer::Networkd, "systemd-networkd enabled"),
                _ if nm => pick(Renderer::NmKeyfile, "NetworkManager enabled"),
                _ if ubuntu && os.major() >= 18 => pick(Renderer::Netplan, "default for Ubuntu >= 17.10"),
                _ => pick(Renderer::Ifupdown, "default for Debian"),
            }
        }
        Family::RedHat => {
            let keyfile_era = match os.id.as_str() {
                "fedora" => os.major() >= 33,
                "amzn" => false,
                _ => os.major() >= 9,
            };
            if os.id == "amzn" && os.major() >= 2023 && networkd {
                pick(Renderer::Networkd, "Amazon Linux 2023 uses systemd-networkd")
            } else if keyfile_era && (nm || !networkd) {
                pick(Renderer::NmKeyfile, "EL >= 9 / Fedora >= 33: NetworkManager keyfiles")
            } else if networkd && !nm {
                pick(Renderer::Networkd, "systemd-networkd enabled")
            } else {
                pick(Renderer::Ifcfg, "ifcfg files in /etc/sysconfig/network-scripts")
            }
        }
        Family::Suse => {
            let wicked = files.exists("/usr/sbin/wicked")
                && (files
                    .read_link("/etc/systemd/system/network.service")
                    .is_some_and(|t| t.contains("wicked"))
                    || !nm);
            if wicked {
                pick(Renderer::Suse, "wicked is the network service")
            } else if nm {
                pick(Renderer::NmKeyfile, "NetworkManager enabled")
            } else {
                pick(Renderer::Suse, "default for SUSE")
            }
        }
        Family::Arch => {
            if nm && !networkd {
                pick(Renderer::NmKeyfile, "NetworkManager enabled")
            } else {
                pick(Renderer::Networkd, "systemd-networkd")
            }
        }
        Family::Unknown => {
            if let (Some(p), true) = (&netplan, netplan_yaml(files)) {
                pick(Renderer::Netplan, &format!("{p} and /etc/netplan/*.yaml"))
            } else if nm {
                pick(Renderer::NmKeyfile, "NetworkManager enabled")
            } else if networkd {
                pick(Renderer::Networkd, "systemd-networkd enabled")
            } else {
                pick(Renderer::Ifupdown, "unknown OS, no network manager found: ifupdown")
            }
        }
    }
}
