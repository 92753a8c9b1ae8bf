//! SUSE (wicked): `ifcfg-<if>` and `ifroute-<if>` in `/etc/sysconfig/network`
//! (`ifcfg(5)`, `ifroute(5)`). Addresses of both families as `IPADDR`,
//! `IPADDR_1`, …; routes as `Destination Gateway Netmask Interface` columns,
//! with `-` for empty; an off-subnet gateway first gets a host route to
//! itself. DNS is global (`NETCONFIG_DNS_STATIC_SERVERS`, resolvers). Keys
//! other tools added are kept. Bring-up: `wicked ifreload <if>`.

use super::detect::RendererDef;
use super::error::NetError;
use super::model::Nic;
use super::output::{run, BringUp, Ctx, OutFile, Rendered, HEADER};
use super::resolvers;
use super::shellvars::foreign;
use std::net::IpAddr;

/// The SUSE wicked renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "suse",
    aliases: &["wicked"],
    render,
    bringup: |changed, _, _| Ok(bringup(changed)),
    carries_dns: resolvers::never,
};

/// The directory.
pub const DIR: &str = "/etc/sysconfig/network";

/// Keys we write; address keys with any suffix (wicked accepts any, and
/// cloud-init writes `IPADDR6`), so no stale address survives.
fn managed(key: &str) -> bool {
    matches!(key, "BOOTPROTO" | "STARTMODE")
        || ["IPADDR", "NETMASK", "PREFIXLEN", "BROADCAST", "LABEL"]
            .iter()
            .any(|p| key.starts_with(p))
}

/// The `ifcfg-<if>` file; `old` is the current one, whose foreign keys stay.
pub fn ifcfg(nic: &Nic, old: Option<&str>) -> String {
    let mut v = vec![
        HEADER.to_string(),
        format!("# {}: {}", nic.name, nic.origin()),
        "BOOTPROTO='static'".to_string(),
        "STARTMODE='auto'".to_string(),
    ];
    let all = nic
        .ipv4
        .iter()
        .map(ToString::to_string)
        .chain(nic.ipv6.iter().map(ToString::to_string));
    for (i, a) in all.enumerate() {
        match i {
            0 => v.push(format!("IPADDR='{a}'")),
            i => v.push(format!("IPADDR_{i}='{a}'")),
        }
    }
    v.extend(foreign(old, managed));
    v.join("\n") + "\n"
}

fn host_route(g: IpAddr, nic: &str) -> String {
    let bits = if g.is_ipv6() { 128 } else { 32 };
    format!("{g}/{bits} - - {nic}")
}

/// The `ifroute-<if>` lines.
pub fn ifroute_lines(nic: &Nic) -> Vec<String> {
    let n = &nic.name;
    let mut out = Vec::new();
    let gateways = [
        nic.gateway4.map(|g| (IpAddr::V4(g.addr), g.onlink)),
        nic.gateway6.map(|g| (IpAddr::V6(g.addr), g.onlink)),
    ];
    for (g, onlink) in gateways.into_iter().flatten() {
        if onlink {
            out.push(host_route(g, n));
        }
        out.push(format!("default {g} - {n}"));
    }
    for r in &nic.routes {
        match r.gateway {
            Some(g) => {
                if r.onlink && !out.contains(&host_route(g, n)) {
                    out.push(host_route(g, n));
                }
                out.push(format!("{} {g} - {n}", r.dest));
            }
            None => out.push(format!("{} - - {n}", r.dest)),
        }
    }
    out
}

/// `ifcfg-` and `ifroute-` files for every NIC.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    let mut out = Rendered::default();
    for nic in &ctx.net.nics {
        let path = format!("{DIR}/ifcfg-{}", nic.name);
        let old = ctx.files.read(&path)?;
        out.files
            .push(OutFile::for_nic(path, ifcfg(nic, old.as_deref()), 0o644, nic));
        let path = format!("{DIR}/ifroute-{}", nic.name);
        out.files
            .extend(OutFile::route_file(ctx, path, ifroute_lines(nic), nic));
    }
    Ok(out)
}

/// `wicked ifreload` per changed NIC.
pub fn bringup(changed: &[&Nic]) -> BringUp {
    BringUp {
        writes: Vec::new(),
        runs: changed.iter().map(|n| run("wicked", &["ifreload", &n.name])).collect(),
    }
}
