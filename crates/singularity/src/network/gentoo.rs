//! Gentoo with OpenRC (netifrc): `config_<if>` and `routes_<if>` in
//! `/etc/conf.d/net` (newline-separated lists inside one quoted value), only
//! our NICs' keys replaced, the rest of the file kept. Each NIC needs the
//! service link `/etc/init.d/net.<if>` → `net.lo`, enabled in the default
//! runlevel; these are returned as symlinks to create. DNS goes to
//! `/etc/resolv.conf` (resolvers): netifrc would let every NIC with
//! `dns_servers_<if>` overwrite the whole file. Bring-up:
//! `rc-service net.<if> restart`.

use super::detect::RendererDef;
use super::error::NetError;
use super::model::Nic;
use super::output::{run, BringUp, Ctx, OutFile, Part, Rendered};
use super::resolvers;
use super::shellvars::{quote, replace_block, var_name};

/// The Gentoo netifrc renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "gentoo",
    aliases: &["netifrc"],
    render,
    bringup: |changed, _, _| Ok(bringup(changed)),
    carries_dns: resolvers::never,
};

/// The file.
pub const PATH: &str = "/etc/conf.d/net";
/// Our comment lines start with this.
const MARK: &str = "# singularity: ";

/// Keys of `nic` we own, by name or by netifrc's MAC form.
fn ours(key: &str, nic: &Nic) -> bool {
    ["config_", "routes_", "dns_servers_"].iter().any(|p| {
        key.strip_prefix(p)
            .is_some_and(|rest| rest == var_name(&nic.name) || rest == nic.mac.plain())
    })
}

/// The lines for one NIC.
pub fn block(nic: &Nic) -> Vec<String> {
    let var = var_name(&nic.name);
    let addrs: Vec<String> = nic
        .ipv4
        .iter()
        .map(ToString::to_string)
        .chain(nic.ipv6.iter().map(ToString::to_string))
        .collect();
    let mut out = vec![
        format!("{MARK}{} from {}", nic.name, nic.origin()),
        format!("config_{var}={}", quote(&addrs.join("\n"))),
    ];
    let mut routes = Vec::new();
    let gateways = [
        nic.gateway4.map(|g| (g.addr.to_string(), g.onlink)),
        nic.gateway6.map(|g| (g.addr.to_string(), g.onlink)),
    ];
    for (g, onlink) in gateways.into_iter().flatten() {
        routes.push(if onlink {
            format!("default via {g} onlink")
        } else {
            format!("default via {g}")
        });
    }
    for r in &nic.routes {
        let mut line = match r.gateway {
            Some(g) => format!("{} via {g}", r.dest),
            None => r.dest.to_string(),
        };
        if r.onlink {
            line.push_str(" onlink");
        }
        routes.push(line);
    }
    if !routes.is_empty() {
        out.push(format!("routes_{var}={}", quote(&routes.join("\n"))));
    }
    out
}

/// `/etc/conf.d/net` with our NICs' keys replaced, plus the service links.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    let old = ctx.files.read(PATH)?.unwrap_or_default();
    let nics = &ctx.net.nics;
    let mut lines = Vec::new();
    let mut parts = Vec::new();
    for nic in nics {
        let b = block(nic);
        parts.push(Part {
            nic: nic.name.clone(),
            pieces: vec![b.join("\n") + "\n"],
        });
        lines.extend(b);
    }
    let contents = replace_block(
        &old,
        |k| nics.iter().any(|n| ours(k, n)),
        |l| l.starts_with(MARK),
        &lines,
    );
    let mut symlinks = Vec::new();
    for nic in nics {
        let service = format!("/etc/init.d/net.{}", nic.name);
        if !ctx.files.exists(&service) {
            symlinks.push((service.clone(), "net.lo".to_string()));
        }
        let runlevel = format!("/etc/runlevels/default/net.{}", nic.name);
        if !ctx.files.exists(&runlevel) {
            symlinks.push((runlevel, service));
        }
    }
    Ok(Rendered {
        files: vec![OutFile {
            path: PATH.to_string(),
            contents,
            mode: 0o644,
            parts,
        }],
        symlinks,
        notes: Vec::new(),
    })
}

/// `rc-service net.<if> restart` per changed NIC.
pub fn bringup(changed: &[&Nic]) -> BringUp {
    BringUp {
        writes: Vec::new(),
        runs: changed
            .iter()
            .map(|n| run("rc-service", &[&format!("net.{}", n.name), "restart"]))
            .collect(),
    }
}
