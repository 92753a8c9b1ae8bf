//! netplan: one YAML file, `/etc/netplan/90-singularity.yaml` (mode 0600),
//! that sorts after the distro's and cloud-init's files (`00-installer-config`,
//! `01-netcfg`, `50-cloud-init`), so our keys win for the same interface.
//! Default routes are `routes: [{to: default, …}]` (`gateway4` is
//! deprecated). Bring-up: `netplan apply`.

use super::detect::RendererDef;
use super::error::NetError;
use super::model::Nic;
use super::output::{run, BringUp, Ctx, OutFile, Part, Rendered, HEADER};
use super::resolvers;
use std::fmt::Write;

/// The netplan renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "netplan",
    aliases: &[],
    render,
    bringup: |changed, _, _| Ok(bringup(changed)),
    carries_dns: resolvers::through_resolved,
};

/// Our file.
pub const PATH: &str = "/etc/netplan/90-singularity.yaml";

fn route(s: &mut String, to: &str, via: Option<String>, onlink: bool) {
    let _ = writeln!(s, "        - to: {to}");
    match via {
        Some(v) => {
            let _ = writeln!(s, "          via: {v}");
        }
        None => {
            let _ = writeln!(s, "          scope: link");
        }
    }
    if onlink {
        let _ = writeln!(s, "          on-link: true");
    }
}

/// The `ethernets` entry for one NIC.
pub fn nic_block(nic: &Nic, dns: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "    {}:", nic.name);
    let _ = writeln!(s, "      # {}", nic.origin());
    let _ = writeln!(s, "      match:\n        macaddress: \"{}\"", nic.mac);
    let _ = writeln!(s, "      set-name: {}", nic.name);
    let _ = writeln!(s, "      dhcp4: false\n      dhcp6: false\n      accept-ra: false");
    let _ = writeln!(s, "      addresses:");
    for a in nic
        .ipv4
        .iter()
        .map(ToString::to_string)
        .chain(nic.ipv6.iter().map(ToString::to_string))
    {
        let _ = writeln!(s, "        - {a}");
    }
    let has_routes = nic.gateway4.is_some() || nic.gateway6.is_some() || !nic.routes.is_empty();
    if has_routes {
        let _ = writeln!(s, "      routes:");
    }
    if let Some(g) = nic.gateway4 {
        route(&mut s, "default", Some(g.addr.to_string()), g.onlink);
    }
    if let Some(g) = nic.gateway6 {
        route(&mut s, "default", Some(g.addr.to_string()), g.onlink);
    }
    for r in &nic.routes {
        route(&mut s, &r.dest.to_string(), r.gateway.map(|g| g.to_string()), r.onlink);
    }
    if dns && !nic.dns.is_empty() {
        let _ = writeln!(s, "      nameservers:\n        addresses:");
        for d in &nic.dns {
            let _ = writeln!(s, "          - {d}");
        }
    }
    s
}

/// The YAML file for every NIC.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    let mut contents = format!("{HEADER}\nnetwork:\n  version: 2\n  ethernets:\n");
    let mut parts = Vec::new();
    for nic in &ctx.net.nics {
        let block = nic_block(nic, ctx.dns);
        contents.push_str(&block);
        parts.push(Part {
            nic: nic.name.clone(),
            pieces: vec![block],
        });
    }
    let mut notes = Vec::new();
    for name in ctx.files.list("/etc/netplan")? {
        let path = format!("/etc/netplan/{name}");
        if path == PATH || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let text = ctx.files.read(&path)?.unwrap_or_default().to_ascii_lowercase();
        for nic in &ctx.net.nics {
            if text.contains(&format!("{}:", nic.name)) || text.contains(&nic.mac.to_string()) {
                notes.push(format!(
                    "{path} also configures {}; {PATH} overrides its keys",
                    nic.name
                ));
            }
        }
    }
    Ok(Rendered {
        files: vec![OutFile {
            path: PATH.to_string(),
            contents,
            mode: 0o600,
            parts,
        }],
        notes,
        ..Rendered::default()
    })
}

/// One `netplan apply` when anything changed.
pub fn bringup(changed: &[&Nic]) -> BringUp {
    BringUp {
        writes: Vec::new(),
        runs: if changed.is_empty() {
            Vec::new()
        } else {
            vec![run("netplan", &["apply"])]
        },
    }
}
