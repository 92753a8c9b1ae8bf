//! NetworkManager keyfiles: `/etc/NetworkManager/system-connections/
//! singularity-<if>.nmconnection`, mode 0600 (NM ignores group- or
//! world-readable keyfiles), matched by MAC, with a UUID derived from the MAC
//! so that rewrites keep the same connection. Bring-up per changed NIC:
//! `nmcli connection load <file>`, `nmcli connection up id <name>`.

use super::detect::RendererDef;
use super::error::NetError;
use super::model::Nic;
use super::output::{run, BringUp, Ctx, OutFile, Rendered, HEADER};
use super::resolvers;
use md5::{Digest, Md5};
use std::fmt::Write;
use std::net::IpAddr;

/// The NetworkManager keyfiles renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "networkmanager",
    aliases: &["nm", "network-manager", "keyfile"],
    render,
    bringup: |changed, _, _| Ok(bringup(changed)),
    carries_dns: resolvers::always,
};

/// Where NM keeps persistent profiles.
pub const DIR: &str = "/etc/NetworkManager/system-connections";

/// UUID namespace for our profiles (a fixed random UUID).
const NAMESPACE: [u8; 16] = [
    0x5d, 0x2b, 0x8a, 0x5e, 0x1c, 0x0f, 0x4f, 0x6a, 0x9b, 0x3e, 0x62, 0x71, 0x6e, 0x67, 0x75, 0x6c,
];

/// The connection id.
pub fn id(nic: &Nic) -> String {
    format!("singularity-{}", nic.name)
}

/// Path of a NIC's keyfile.
pub fn path(nic: &Nic) -> String {
    format!("{DIR}/{}.nmconnection", id(nic))
}

/// A name-based (version 3, RFC 4122) UUID for the NIC's MAC.
pub fn uuid(nic: &Nic) -> String {
    let mut h = Md5::new();
    h.update(NAMESPACE);
    h.update(nic.mac.plain().as_bytes());
    let mut b: [u8; 16] = h.finalize().into();
    b[6] = (b[6] & 0x0f) | 0x30;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn routes(s: &mut String, nic: &Nic, v6: bool) {
    let list = nic.routes.iter().filter(|r| r.dest.is_v6() == v6);
    for (i, r) in list.enumerate() {
        let n = i + 1;
        match r.gateway {
            Some(g) => {
                let _ = writeln!(s, "route{n}={},{g}", r.dest);
            }
            None => {
                let _ = writeln!(s, "route{n}={}", r.dest);
            }
        }
        if r.onlink {
            let _ = writeln!(s, "route{n}_options=onlink=true");
        }
    }
}

fn dns(s: &mut String, nic: &Nic, v6: bool) {
    let list: Vec<String> = nic
        .dns
        .iter()
        .filter(|d| matches!(d, IpAddr::V6(_)) == v6)
        .map(|d| format!("{d};"))
        .collect();
    if !list.is_empty() {
        let _ = writeln!(s, "dns={}", list.concat());
    }
}

/// The keyfile for one NIC.
pub fn keyfile(nic: &Nic, with_dns: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEADER}\n# {}: {}", nic.name, nic.origin());
    let _ = writeln!(s, "[connection]\nid={}\nuuid={}\ntype=ethernet", id(nic), uuid(nic));
    let _ = writeln!(s, "autoconnect=true\nautoconnect-priority=50\n");
    let _ = writeln!(s, "[ethernet]\nmac-address={}\n", nic.mac.upper());
    let _ = writeln!(s, "[ipv4]");
    if nic.ipv4.is_empty() {
        let _ = writeln!(s, "method=disabled");
    } else {
        let _ = writeln!(s, "method=manual");
        for (i, a) in nic.ipv4.iter().enumerate() {
            let _ = writeln!(s, "address{}={a}", i + 1);
        }
        match nic.gateway4 {
            Some(g) => {
                let _ = writeln!(s, "gateway={}", g.addr);
            }
            None => {
                let _ = writeln!(s, "never-default=true");
            }
        }
        routes(&mut s, nic, false);
        if with_dns {
            dns(&mut s, nic, false);
        }
    }
    let _ = writeln!(s, "\n[ipv6]\naddr-gen-mode=eui64");
    if nic.ipv6.is_empty() {
        let _ = writeln!(s, "method=link-local");
    } else {
        let _ = writeln!(s, "method=manual");
        for (i, a) in nic.ipv6.iter().enumerate() {
            let _ = writeln!(s, "address{}={a}", i + 1);
        }
        match nic.gateway6 {
            Some(g) => {
                let _ = writeln!(s, "gateway={}", g.addr);
            }
            None => {
                let _ = writeln!(s, "never-default=true");
            }
        }
        routes(&mut s, nic, true);
        if with_dns {
            dns(&mut s, nic, true);
        }
    }
    s
}

/// One keyfile per NIC.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    let files = ctx
        .net
        .nics
        .iter()
        .map(|nic| OutFile::for_nic(path(nic), keyfile(nic, ctx.dns), 0o600, nic))
        .collect();
    Ok(Rendered {
        files,
        ..Rendered::default()
    })
}

/// Per changed NIC: load the file, then activate the profile.
pub fn bringup(changed: &[&Nic]) -> BringUp {
    let mut after = Vec::new();
    for nic in changed {
        after.push(run("nmcli", &["connection", "load", &path(nic)]));
        after.push(run("nmcli", &["connection", "up", "id", &id(nic)]));
    }
    BringUp {
        writes: Vec::new(),
        runs: after,
    }
}
