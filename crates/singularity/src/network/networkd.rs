//! systemd-networkd: one `.network` file per NIC, matched by MAC, in
//! `/etc/systemd/network/10-singularity-<if>.network` (networkd uses the
//! lexically first matching file, so ours sorts before distro defaults).
//! Bring-up: `networkctl reload`, then `networkctl reconfigure <if>`.

use super::detect::RendererDef;
use super::error::NetError;
use super::model::Nic;
use super::output::{run, BringUp, Ctx, OutFile, Rendered, HEADER};
use super::resolvers;
use std::fmt::Write;

/// The systemd-networkd renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "networkd",
    aliases: &["systemd-networkd"],
    render,
    bringup: |changed, _, _| Ok(bringup(changed)),
    carries_dns: resolvers::through_resolved,
};

/// The directory networkd reads first among the writable ones.
pub const DIR: &str = "/etc/systemd/network";

/// Path of a NIC's `.network` file.
pub fn path(nic: &Nic) -> String {
    format!("{DIR}/10-singularity-{}.network", nic.name)
}

/// The `.network` file for one NIC.
pub fn network_file(nic: &Nic, dns: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEADER}\n# {}: {}", nic.name, nic.origin());
    let _ = writeln!(s, "[Match]\nMACAddress={}\n", nic.mac);
    let _ = writeln!(s, "[Network]\nIPv6AcceptRA=no");
    if dns {
        for d in &nic.dns {
            let _ = writeln!(s, "DNS={d}");
        }
    }
    for a in &nic.ipv4 {
        let _ = writeln!(s, "\n[Address]\nAddress={a}");
    }
    for a in &nic.ipv6 {
        let _ = writeln!(s, "\n[Address]\nAddress={a}");
    }
    let gateways = [
        nic.gateway4.map(|g| (g.addr.to_string(), g.onlink)),
        nic.gateway6.map(|g| (g.addr.to_string(), g.onlink)),
    ];
    for (gw, onlink) in gateways.into_iter().flatten() {
        let _ = writeln!(s, "\n[Route]\nGateway={gw}");
        if onlink {
            let _ = writeln!(s, "GatewayOnLink=yes");
        }
    }
    for r in &nic.routes {
        let _ = writeln!(s, "\n[Route]\nDestination={}", r.dest);
        match r.gateway {
            Some(g) => {
                let _ = writeln!(s, "Gateway={g}");
                if r.onlink {
                    let _ = writeln!(s, "GatewayOnLink=yes");
                }
            }
            None => {
                let _ = writeln!(s, "Scope=link");
            }
        }
    }
    s
}

/// One `.network` file per NIC.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    let files = ctx
        .net
        .nics
        .iter()
        .map(|nic| OutFile::for_nic(path(nic), network_file(nic, ctx.dns), 0o644, nic))
        .collect();
    Ok(Rendered {
        files,
        ..Rendered::default()
    })
}

/// `networkctl reload` once, then `networkctl reconfigure` per changed NIC.
pub fn bringup(changed: &[&Nic]) -> BringUp {
    let mut after = vec![run("networkctl", &["reload"])];
    after.extend(changed.iter().map(|n| run("networkctl", &["reconfigure", &n.name])));
    BringUp {
        writes: Vec::new(),
        runs: after,
    }
}
