//! Which configuration format to write, chosen at run time: the OS family
//! from `os-release` gives the candidates, offline checks under the root
//! (binaries, enabled units, existing configuration) pick the one in charge
//! (`network.md` §4). The `network_renderer` setting overrides both.

use super::error::NetError;
use super::model::Nic;
use super::output::{BringUp, Ctx, Rendered};
use super::probe::{networkd_enabled, nm_enabled, Family, Files, OsInfo};
use super::resolvers::Owner;
use crate::root::Root;
use std::fmt;
use std::str::FromStr;

/// Everything the agent knows of one network configuration format. Each
/// renderer module defines one (`RENDERER`); [`Renderer::ALL`] lists them.
pub struct RendererDef {
    /// The configuration name (`network_renderer = …`).
    pub name: &'static str,
    /// Other names `network_renderer` accepts for it.
    pub aliases: &'static [&'static str],
    /// Whole files from the model.
    pub render: fn(&Ctx) -> Result<Rendered, NetError>,
    /// Bring-up of the NICs whose configuration changed (not empty): the
    /// NICs, the system before the change, whether NetworkManager runs.
    pub bringup: fn(&[&Nic], &Files, bool) -> Result<BringUp, NetError>,
    /// Whether its network configuration gets the DNS servers to the
    /// resolver, given who writes `/etc/resolv.conf`.
    pub carries_dns: fn(&Owner) -> bool,
}

/// A network configuration format: a handle on its [`RendererDef`].
#[derive(Clone, Copy)]
pub struct Renderer(&'static RendererDef);

impl Renderer {
    /// Debian/Ubuntu ifupdown: `/etc/network/interfaces` (or `interfaces.d`).
    pub const IFUPDOWN: Renderer = Renderer(&super::ifupdown::RENDERER);
    /// netplan YAML in `/etc/netplan`.
    pub const NETPLAN: Renderer = Renderer(&super::netplan::RENDERER);
    /// RHEL-family `ifcfg-*`, `route-*`, `route6-*`.
    pub const IFCFG: Renderer = Renderer(&super::ifcfg::RENDERER);
    /// NetworkManager keyfiles.
    pub const NM_KEYFILE: Renderer = Renderer(&super::nmkeyfile::RENDERER);
    /// systemd-networkd `.network` files.
    pub const NETWORKD: Renderer = Renderer(&super::networkd::RENDERER);
    /// SUSE wicked `ifcfg-*` and `ifroute-*`.
    pub const SUSE: Renderer = Renderer(&super::suse::RENDERER);
    /// Gentoo netifrc `/etc/conf.d/net`.
    pub const GENTOO: Renderer = Renderer(&super::gentoo::RENDERER);
    /// Alpine ifupdown-ng `/etc/network/interfaces`.
    pub const ALPINE: Renderer = Renderer(&super::alpine::RENDERER);
    /// FreeBSD `/etc/rc.conf`.
    pub const FREEBSD: Renderer = Renderer(&super::freebsd::RENDERER);

    /// Every renderer: the one table `network_renderer`, its documentation
    /// and the tests go by.
    pub const ALL: [Renderer; 9] = [
        Renderer::IFUPDOWN,
        Renderer::NETPLAN,
        Renderer::IFCFG,
        Renderer::NM_KEYFILE,
        Renderer::NETWORKD,
        Renderer::SUSE,
        Renderer::GENTOO,
        Renderer::ALPINE,
        Renderer::FREEBSD,
    ];

    /// The configuration name (`network_renderer = …`).
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Its definition.
    pub fn def(self) -> &'static RendererDef {
        self.0
    }
}

impl PartialEq for Renderer {
    fn eq(&self, other: &Renderer) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Renderer {}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Renderer({})", self.0.name)
    }
}

impl fmt::Display for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A renderer name that names none of [`Renderer::ALL`] (lower-cased).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown network renderer '{0}' (expected one of {names})", names = renderer_names())]
pub struct UnknownRenderer(pub String);

fn renderer_names() -> String {
    let names: Vec<&str> = Renderer::ALL.iter().map(|r| r.name()).collect();
    names.join(", ")
}

impl FromStr for Renderer {
    type Err = UnknownRenderer;

    fn from_str(s: &str) -> Result<Renderer, UnknownRenderer> {
        let s = s.trim().to_ascii_lowercase();
        Renderer::ALL
            .into_iter()
            .find(|r| r.0.name == s || r.0.aliases.contains(&s.as_str()))
            .ok_or(UnknownRenderer(s))
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
        Family::FreeBsd => pick(Renderer::FREEBSD, "FreeBSD rc.conf"),
        Family::Alpine => pick(Renderer::ALPINE, "Alpine uses ifupdown-ng"),
        Family::Gentoo => {
            if has_any(
                files,
                &["/sbin/openrc-run", "/sbin/openrc", "/run/openrc", "/etc/init.d/net.lo"],
            )
            .is_some()
            {
                pick(Renderer::GENTOO, "OpenRC present: netifrc")
            } else if networkd {
                pick(Renderer::NETWORKD, "systemd-networkd enabled")
            } else if nm {
                pick(Renderer::NM_KEYFILE, "NetworkManager enabled")
            } else {
                pick(Renderer::GENTOO, "default for Gentoo")
            }
        }
        Family::Debian => {
            let ubuntu = os.id == "ubuntu" || os.id_like.iter().any(|w| w == "ubuntu");
            match (&netplan, &ifup) {
                (Some(p), _) if netplan_yaml(files) => pick(Renderer::NETPLAN, &format!("{p} and /etc/netplan/*.yaml")),
                (_, Some(i)) if files.exists("/etc/network/interfaces") => {
                    pick(Renderer::IFUPDOWN, &format!("{i} and /etc/network/interfaces"))
                }
                (Some(p), _) => pick(Renderer::NETPLAN, &format!("{p} present")),
                _ if networkd => pick(Renderer::NETWORKD, "systemd-networkd enabled"),
                _ if nm => pick(Renderer::NM_KEYFILE, "NetworkManager enabled"),
                _ if ubuntu && os.major() >= 18 => pick(Renderer::NETPLAN, "default for Ubuntu >= 17.10"),
                _ => pick(Renderer::IFUPDOWN, "default for Debian"),
            }
        }
        Family::RedHat => {
            let keyfile_era = match os.id.as_str() {
                "fedora" => os.major() >= 33,
                "amzn" => false,
                _ => os.major() >= 9,
            };
            if os.id == "amzn" && os.major() >= 2023 && networkd {
                pick(Renderer::NETWORKD, "Amazon Linux 2023 uses systemd-networkd")
            } else if keyfile_era && (nm || !networkd) {
                pick(Renderer::NM_KEYFILE, "EL >= 9 / Fedora >= 33: NetworkManager keyfiles")
            } else if networkd && !nm {
                pick(Renderer::NETWORKD, "systemd-networkd enabled")
            } else {
                pick(Renderer::IFCFG, "ifcfg files in /etc/sysconfig/network-scripts")
            }
        }
        Family::Suse => {
            let wicked = files.exists("/usr/sbin/wicked")
                && (files
                    .read_link("/etc/systemd/system/network.service")
                    .is_some_and(|t| t.contains("wicked"))
                    || !nm);
            if wicked {
                pick(Renderer::SUSE, "wicked is the network service")
            } else if nm {
                pick(Renderer::NM_KEYFILE, "NetworkManager enabled")
            } else {
                pick(Renderer::SUSE, "default for SUSE")
            }
        }
        Family::Arch => {
            if nm && !networkd {
                pick(Renderer::NM_KEYFILE, "NetworkManager enabled")
            } else {
                pick(Renderer::NETWORKD, "systemd-networkd")
            }
        }
        Family::Unknown => {
            if let (Some(p), true) = (&netplan, netplan_yaml(files)) {
                pick(Renderer::NETPLAN, &format!("{p} and /etc/netplan/*.yaml"))
            } else if nm {
                pick(Renderer::NM_KEYFILE, "NetworkManager enabled")
            } else if networkd {
                pick(Renderer::NETWORKD, "systemd-networkd enabled")
            } else {
                pick(Renderer::IFUPDOWN, "unknown OS, no network manager found: ifupdown")
            }
        }
    }
}
