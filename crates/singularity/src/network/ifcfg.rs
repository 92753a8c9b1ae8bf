//! RHEL, CentOS, Rocky, Alma, Oracle, older Fedora: `ifcfg-<if>`,
//! `route-<if>`, `route6-<if>` in `/etc/sysconfig/network-scripts`, read by
//! initscripts or NetworkManager's `ifcfg-rh` plugin. Addresses numbered
//! from 0 without gaps; a link-local IPv6 gateway carries `%<if>`; keys other
//! tools added (firewalld `ZONE`, `MTU`, NM's `UUID`/`NAME`) are kept.
//! Routes use the `ip route` argument form, the only one for both families.
//! Bring-up: with NetworkManager `nmcli connection load` + `nmcli connection
//! up ifname <if>`, else `ifdown <if>` + `ifup <if>`.

use super::addr::scoped;
use super::detect::RendererDef;
use super::error::NetError;
use super::model::{Nic, NicRoute};
use super::output::{run, BringUp, Ctx, OutFile, Rendered, HEADER};
use super::resolvers;
use super::shellvars::{foreign, quote};
use std::net::IpAddr;

/// The RHEL-family ifcfg renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "ifcfg",
    aliases: &["sysconfig", "rhel"],
    render,
    bringup: |changed, _, nm| Ok(bringup(changed, nm)),
    carries_dns: resolvers::always,
};

/// The directory.
pub const DIR: &str = "/etc/sysconfig/network-scripts";

/// Keys we write (or must not leave behind), with or without a number.
fn managed(key: &str) -> bool {
    let stem = key.trim_end_matches(|c: char| c.is_ascii_digit());
    matches!(
        stem,
        "DEVICE"
            | "HWADDR"
            | "TYPE"
            | "ONBOOT"
            | "BOOTPROTO"
            | "IPADDR"
            | "PREFIX"
            | "NETMASK"
            | "GATEWAY"
            | "DEFROUTE"
            | "IPV6INIT"
            | "IPV6_AUTOCONF"
            | "IPV6ADDR"
            | "IPV6ADDR_SECONDARIES"
            | "IPV6_DEFAULTGW"
            | "IPV6_DEFROUTE"
            | "DHCPV6C"
            | "DNS"
            | "BROADCAST"
            | "NETWORK"
    )
}

/// The `ifcfg-<if>` file; `old` is the current one, whose foreign keys stay.
pub fn ifcfg(nic: &Nic, dns: bool, old: Option<&str>) -> String {
    let n = &nic.name;
    let mut v = vec![
        HEADER.to_string(),
        format!("# {n}: {}", nic.origin()),
        format!("DEVICE={n}"),
        format!("HWADDR={}", nic.mac.upper()),
        "TYPE=Ethernet".into(),
        "ONBOOT=yes".into(),
        "BOOTPROTO=none".into(),
    ];
    for (i, a) in nic.ipv4.iter().enumerate() {
        v.push(format!("IPADDR{i}={}", a.addr));
        v.push(format!("PREFIX{i}={}", a.prefix));
    }
    match nic.gateway4 {
        Some(g) if !g.onlink => v.push(format!("GATEWAY={}", g.addr)),
        _ => {}
    }
    v.push(format!(
        "DEFROUTE={}",
        if nic.gateway4.is_some() { "yes" } else { "no" }
    ));
    if nic.ipv6.is_empty() {
        v.push("IPV6INIT=no".into());
    } else {
        v.push("IPV6INIT=yes".into());
        v.push("IPV6_AUTOCONF=no".into());
        v.push(format!("IPV6ADDR={}", nic.ipv6[0]));
        if nic.ipv6.len() > 1 {
            let rest: Vec<String> = nic.ipv6[1..].iter().map(ToString::to_string).collect();
            v.push(format!("IPV6ADDR_SECONDARIES={}", quote(&rest.join(" "))));
        }
        match nic.gateway6 {
            Some(g) if !g.onlink => v.push(format!("IPV6_DEFAULTGW={}", scoped(IpAddr::V6(g.addr), n))),
            _ => {}
        }
        v.push(format!(
            "IPV6_DEFROUTE={}",
            if nic.gateway6.is_some() { "yes" } else { "no" }
        ));
    }
    if dns {
        for (i, d) in nic.dns.iter().enumerate() {
            v.push(format!("DNS{}={d}", i + 1));
        }
    }
    v.extend(foreign(old, managed));
    v.join("\n") + "\n"
}

fn route_line(r: &NicRoute, nic: &str) -> String {
    let mut s = match r.gateway {
        Some(g) => format!("{} via {g} dev {nic}", r.dest),
        None => format!("{} dev {nic}", r.dest),
    };
    if r.onlink {
        s.push_str(" onlink");
    }
    s
}

/// The `route-<if>` (IPv4) or `route6-<if>` lines, including a default
/// route through an off-subnet gateway (`GATEWAY=` cannot say `onlink`).
pub fn route_lines(nic: &Nic, v6: bool) -> Vec<String> {
    let n = &nic.name;
    let mut out = Vec::new();
    let default = match v6 {
        false => nic.gateway4.filter(|g| g.onlink).map(|g| IpAddr::V4(g.addr)),
        true => nic.gateway6.filter(|g| g.onlink).map(|g| IpAddr::V6(g.addr)),
    };
    if let Some(g) = default {
        out.push(format!("default via {g} dev {n} onlink"));
    }
    out.extend(
        nic.routes
            .iter()
            .filter(|r| r.dest.is_v6() == v6)
            .map(|r| route_line(r, n)),
    );
    out
}

/// `ifcfg-`, `route-` and `route6-` files for every NIC. An emptied route
/// file that exists is rewritten with no routes, so none linger.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    let mut out = Rendered::default();
    for nic in &ctx.net.nics {
        let path = format!("{DIR}/ifcfg-{}", nic.name);
        let old = ctx.files.read(&path)?;
        out.files
            .push(OutFile::for_nic(path, ifcfg(nic, ctx.dns, old.as_deref()), 0o644, nic));
        for (file, v6) in [("route", false), ("route6", true)] {
            let path = format!("{DIR}/{file}-{}", nic.name);
            out.files
                .extend(OutFile::route_file(ctx, path, route_lines(nic, v6), nic));
        }
    }
    Ok(out)
}

/// NetworkManager (`ifcfg-rh`) or initscripts, per changed NIC.
pub fn bringup(changed: &[&Nic], nm: bool) -> BringUp {
    let mut after = Vec::new();
    for nic in changed {
        if nm {
            after.push(run(
                "nmcli",
                &["connection", "load", &format!("{DIR}/ifcfg-{}", nic.name)],
            ));
            after.push(run("nmcli", &["connection", "up", "ifname", &nic.name]));
        } else {
            after.push(run("ifdown", &[&nic.name]));
            after.push(run("ifup", &[&nic.name]));
        }
    }
    BringUp {
        writes: Vec::new(),
        runs: after,
    }
}
