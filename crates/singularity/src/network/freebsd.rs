//! FreeBSD: our keys in `/etc/rc.conf` (`ifconfig_<if>`, `_ipv6`,
//! `_alias<N>` numbered from 0 without gaps, `defaultrouter`,
//! `ipv6_defaultrouter`, `static_routes`/`route_sg_*` and the IPv6 pair),
//! with the real interface name (`xn0`) and `%<if>` on link-local routers
//! (`rc.d/routing` rejects unscoped `fe80::/10`). Every other line of rc.conf
//! is kept, and other entries of `static_routes` too (the lists are edited in
//! place). An IPv4 alias inside an
//! already configured subnet gets a /32 mask (Handbook). Bring-up:
//! `service netif restart <if>` per changed NIC, then `service routing restart`.

use super::addr::scoped;
use super::detect::RendererDef;
use super::error::NetError;
use super::model::{Nic, NicRoute};
use super::output::{run, BringUp, Ctx, OutFile, Part, Rendered};
use super::resolvers;
use super::shellvars::{get, quote, replace_block, set, var_name};
use std::net::IpAddr;

/// The FreeBSD rc.conf renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "freebsd",
    aliases: &["rc.conf"],
    render,
    bringup: |changed, _, _| Ok(bringup(changed)),
    carries_dns: resolvers::never,
};

/// The file.
pub const PATH: &str = "/etc/rc.conf";
/// Our comment lines start with this.
const MARK: &str = "# singularity: ";
/// Our route names start with this.
const ROUTE_PREFIX: &str = "sg_";

fn ours(key: &str, nics: &[Nic], gw4: bool, gw6: bool) -> bool {
    let per_nic = nics.iter().any(|n| {
        let v = var_name(&n.name);
        [format!("ifconfig_{v}"), format!("ipv6_ifconfig_{v}")].iter().any(|p| {
            key.strip_prefix(p.as_str()).is_some_and(|rest| {
                rest.is_empty()
                    || rest == "_ipv6"
                    || rest == "_aliases"
                    || rest
                        .strip_prefix("_alias")
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
        })
    });
    per_nic
        || (gw4 && key == "defaultrouter")
        || (gw6 && key == "ipv6_defaultrouter")
        || key.strip_prefix("route_").is_some_and(|r| r.starts_with(ROUTE_PREFIX))
        || key
            .strip_prefix("ipv6_route_")
            .is_some_and(|r| r.starts_with(ROUTE_PREFIX))
}

/// The `ifconfig_*` lines for one NIC.
pub fn nic_lines(nic: &Nic) -> Vec<String> {
    let v = var_name(&nic.name);
    let mut out = vec![format!("{MARK}{} from {}", nic.name, nic.origin())];
    let mut alias = 0;
    for (i, a) in nic.ipv4.iter().enumerate() {
        if i == 0 {
            out.push(format!(
                "ifconfig_{v}={}",
                quote(&format!("inet {} netmask {}", a.addr, a.netmask()))
            ));
            continue;
        }
        let same_subnet = nic.ipv4[..i].iter().any(|b| b.contains(a.addr));
        let mask = if same_subnet {
            "255.255.255.255".to_string()
        } else {
            a.netmask().to_string()
        };
        out.push(format!(
            "ifconfig_{v}_alias{alias}={}",
            quote(&format!("inet {} netmask {mask}", a.addr))
        ));
        alias += 1;
    }
    for (i, a) in nic.ipv6.iter().enumerate() {
        let text = quote(&format!("inet6 {} prefixlen {}", a.addr, a.prefix));
        if i == 0 {
            out.push(format!("ifconfig_{v}_ipv6={text}"));
        } else {
            out.push(format!("ifconfig_{v}_alias{alias}={text}"));
            alias += 1;
        }
    }
    out
}

/// The `route add` arguments of a static route.
fn route_args(r: &NicRoute, nic: &str) -> String {
    match r.gateway {
        Some(g) => format!("-net {} {}", r.dest, scoped(g, nic)),
        None => format!("-net {} -interface {nic}", r.dest),
    }
}

/// `/etc/rc.conf` with our keys replaced.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    let old = ctx.files.read(PATH)?.unwrap_or_default();
    let nics = &ctx.net.nics;
    let mut block = Vec::new();
    let mut parts = Vec::new();
    let mut notes = Vec::new();
    // (name, args) per family
    let mut routes: [Vec<(String, String)>; 2] = [Vec::new(), Vec::new()];
    let gw4 = nics.iter().find_map(|n| n.gateway4.map(|g| (n, g)));
    let mut gw6s = nics.iter().filter_map(|n| n.gateway6.map(|g| (n, g)));
    let gw6 = gw6s.next();
    for (n, g) in gw6s {
        notes.push(format!(
            "FreeBSD has one IPv6 default router: {} on {} is not used",
            g.addr, n.name
        ));
    }
    for nic in nics {
        let mut lines = nic_lines(nic);
        if gw4.is_some_and(|(n, _)| n.name == nic.name) {
            lines.extend(gw4.map(|(_, g)| format!("defaultrouter={}", quote(&g.addr.to_string()))));
        }
        if gw6.is_some_and(|(n, _)| n.name == nic.name) {
            lines.extend(
                gw6.map(|(n, g)| format!("ipv6_defaultrouter={}", quote(&scoped(IpAddr::V6(g.addr), &n.name)))),
            );
        }
        let mut pieces: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
        let v = var_name(&nic.name);
        let mut host_routes = Vec::new();
        if let Some(g) = nic.gateway4.filter(|g| g.onlink) {
            host_routes.push(IpAddr::V4(g.addr));
        }
        if let Some(g) = nic.gateway6.filter(|g| g.onlink) {
            host_routes.push(IpAddr::V6(g.addr));
        }
        host_routes.extend(nic.routes.iter().filter(|r| r.onlink).filter_map(|r| r.gateway));
        host_routes.dedup();
        for (i, g) in host_routes.into_iter().enumerate() {
            let fam = usize::from(g.is_ipv6());
            routes[fam].push((
                format!("{ROUTE_PREFIX}{v}_gw{i}"),
                format!("-host {g} -interface {}", nic.name),
            ));
        }
        for (i, r) in nic.routes.iter().enumerate() {
            let fam = usize::from(r.dest.is_v6());
            routes[fam].push((format!("{ROUTE_PREFIX}{v}_{i}"), route_args(r, &nic.name)));
        }
        for (fam, key) in [(0, "route_"), (1, "ipv6_route_")] {
            let mine = routes[fam]
                .iter()
                .filter(|(name, _)| name.starts_with(&format!("{ROUTE_PREFIX}{v}_")));
            pieces.extend(mine.map(|(name, args)| format!("{key}{name}={}\n", quote(args))));
        }
        parts.push(Part {
            nic: nic.name.clone(),
            pieces,
        });
        block.extend(lines);
    }
    // The route lists are shared with the administrator's own routes: they
    // are edited where they are (appended when missing).
    let mut lists = Vec::new();
    for (fam, (list_key, route_key)) in [("static_routes", "route_"), ("ipv6_static_routes", "ipv6_route_")]
        .into_iter()
        .enumerate()
    {
        let old_list = get(&old, list_key);
        let mut names: Vec<String> = old_list
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .filter(|n| !n.starts_with(ROUTE_PREFIX))
            .map(str::to_string)
            .collect();
        names.extend(routes[fam].iter().map(|(name, _)| name.clone()));
        let line = format!("{list_key}={}", quote(&names.join(" ")));
        if old_list.is_some() || !names.is_empty() {
            lists.push((list_key, line));
        }
        for (name, args) in &routes[fam] {
            block.push(format!("{route_key}{name}={}", quote(args)));
        }
    }
    let mut contents = replace_block(
        &old,
        |k| ours(k, nics, gw4.is_some(), gw6.is_some()),
        |l| l.starts_with(MARK),
        &block,
    );
    for (key, line) in lists {
        contents = set(&contents, key, &line);
    }
    Ok(Rendered {
        files: vec![OutFile {
            path: PATH.to_string(),
            contents,
            mode: 0o644,
            parts,
        }],
        symlinks: Vec::new(),
        notes,
    })
}

/// `service netif restart <if>` per changed NIC, then `service routing restart`.
pub fn bringup(changed: &[&Nic]) -> BringUp {
    let mut after: Vec<_> = changed
        .iter()
        .map(|n| run("service", &["netif", "restart", &n.name]))
        .collect();
    if !after.is_empty() {
        after.push(run("service", &["routing", "restart"]));
    }
    BringUp {
        writes: Vec::new(),
        runs: after,
    }
}
