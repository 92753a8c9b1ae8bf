//! Debian/Ubuntu ifupdown (0.8): when `/etc/network/interfaces` sources
//! `interfaces.d`, our stanzas go to `interfaces.d/50-singularity` and the
//! NICs' old stanzas elsewhere are commented out; otherwise our block replaces
//! them inside `/etc/network/interfaces`, keeping `lo` and every other line.
//! One stanza per address (ifupdown 0.8 runs repeated stanzas in order);
//! routes as symmetric `up`/`down` pairs (never `post-down route add`).
//! Bring-up (after the writes): `ifdown` against a snapshot of the old
//! configuration (without `--force` a no-op for a NIC ifupdown did not bring
//! up), a flush of old global addresses, `ifup <if>`.

use super::detect::RendererDef;
use super::eni::{self, Strip, BEGIN, END, INTERFACES};
use super::error::NetError;
use super::model::{Nic, NicRoute};
use super::output::{lines, run, BringUp, Ctx, OutFile, Part, Rendered, HEADER};
use super::probe::Files;
use super::resolvers::Owner;

/// The Debian ifupdown renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "ifupdown",
    aliases: &["eni"],
    render,
    bringup: |changed, disk, _| bringup(changed, disk),
    carries_dns: |owner| *owner == Owner::Resolvconf,
};

/// Names our file may take in `interfaces.d`, in order of preference
/// (`source-directory` only reads names without dots; Ubuntu used `*.cfg`).
pub const CANDIDATES: [&str; 2] = ["50-singularity", "50-singularity.cfg"];

/// A fresh `/etc/network/interfaces` keeps the loopback.
pub const LOOPBACK: &str = "auto lo\niface lo inet loopback";

fn route_cmds(routes: &[&NicRoute], nic: &str) -> Vec<String> {
    let cmd = |r: &NicRoute| {
        let mut c = match r.gateway {
            Some(g) => format!("{} via {g} dev {nic}", r.dest),
            None => format!("{} dev {nic}", r.dest),
        };
        if r.onlink {
            c.push_str(" onlink");
        }
        c
    };
    let mut out: Vec<String> = routes
        .iter()
        .map(|r| format!("    up ip route add {}", cmd(r)))
        .collect();
    out.extend(routes.iter().rev().map(|r| format!("    down ip route del {}", cmd(r))));
    out
}

/// The stanzas for one NIC.
pub fn stanzas(nic: &Nic, dns: bool) -> String {
    let name = &nic.name;
    let mut blocks: Vec<Vec<String>> = Vec::new();
    for (i, a) in nic.ipv4.iter().enumerate() {
        let mut b = vec![format!("iface {name} inet static"), format!("    address {a}")];
        if let (0, Some(g)) = (i, nic.gateway4) {
            b.push(format!("    gateway {}", g.addr));
        }
        blocks.push(b);
    }
    let first_v6 = blocks.len();
    for (i, a) in nic.ipv6.iter().enumerate() {
        let mut b = vec![format!("iface {name} inet6 static"), format!("    address {a}")];
        if let (0, Some(g)) = (i, nic.gateway6) {
            b.push(format!("    gateway {}", g.addr));
        }
        blocks.push(b);
    }
    if dns && !nic.dns.is_empty() {
        let list: Vec<String> = nic.dns.iter().map(ToString::to_string).collect();
        blocks[0].push(format!("    dns-nameservers {}", list.join(" ")));
    }
    let v4: Vec<&NicRoute> = nic.routes.iter().filter(|r| !r.dest.is_v6()).collect();
    let v6: Vec<&NicRoute> = nic.routes.iter().filter(|r| r.dest.is_v6()).collect();
    blocks[0].extend(route_cmds(&v4, name));
    let v6_at = if first_v6 < blocks.len() { first_v6 } else { 0 };
    blocks[v6_at].extend(route_cmds(&v6, name));
    let mut out = format!("# {name}: {}\nauto {name}\n", nic.origin());
    let texts: Vec<String> = blocks.iter().map(|b| b.join("\n")).collect();
    out.push_str(&texts.join("\n\n"));
    out.push('\n');
    out
}

/// Renders with `stanza` (ifupdown or ifupdown-ng syntax), into
/// `interfaces.d` when sourced (`use_dir`), else into the main file.
pub fn render_with(ctx: &Ctx, use_dir: bool, stanza: &dyn Fn(&Nic) -> String) -> Result<Rendered, NetError> {
    let main = ctx.files.read(INTERFACES)?;
    let managed = |n: &str| ctx.net.manages(n);
    let blocks: Vec<(String, String)> = ctx.net.nics.iter().map(|n| (n.name.clone(), stanza(n))).collect();
    let parts = || -> Vec<Part> {
        blocks
            .iter()
            .map(|(nic, text)| Part {
                nic: nic.clone(),
                pieces: vec![text.clone()],
            })
            .collect()
    };
    let body: Vec<String> = blocks.iter().map(|(_, t)| t.trim_end().to_string()).collect();
    let mut out = Rendered::default();
    let sourced = match (&main, use_dir) {
        (Some(text), true) => eni::sources(ctx.files, text, &CANDIDATES)?,
        _ => eni::Sources {
            ours: None,
            others: Vec::new(),
            all: Vec::new(),
        },
    };
    if let Some(ours) = &sourced.ours {
        out.files.push(OutFile {
            path: ours.clone(),
            contents: format!("{HEADER}\n{}\n", body.join("\n\n")),
            mode: 0o644,
            parts: parts(),
        });
        let mut others = vec![INTERFACES.to_string()];
        others.extend(sourced.others.iter().cloned());
        for path in others {
            let Some(text) = ctx.files.read(&path)? else { continue };
            // Our old block (if the system switched layouts) goes away too.
            let deleted = eni::strip(&text, &|_| false, Strip::Delete);
            let s = eni::strip(&(deleted.lines.join("\n") + "\n"), &managed, Strip::Comment(ours));
            if s.nics.is_empty() && deleted.at.is_none() {
                continue;
            }
            out.notes
                .push(format!("{path}: commented out the stanzas of {}", s.nics.join(", ")));
            out.files.push(OutFile {
                path,
                contents: lines(&s.lines),
                mode: 0o644,
                parts: s
                    .nics
                    .iter()
                    .map(|n| Part {
                        nic: n.clone(),
                        pieces: Vec::new(),
                    })
                    .collect(),
            });
        }
        return Ok(out);
    }
    let text = main.unwrap_or_else(|| format!("{LOOPBACK}\n"));
    let s = eni::strip(&text, &managed, Strip::Delete);
    let mut kept = s.lines;
    let mut block = vec![BEGIN.to_string()];
    block.push(body.join("\n\n"));
    block.push(END.to_string());
    let at = match s.at {
        Some(at) => at,
        None => {
            while kept.last().is_some_and(|l| l.trim().is_empty()) {
                kept.pop();
            }
            if !kept.is_empty() {
                kept.push(String::new());
            }
            kept.len()
        }
    };
    kept.splice(at..at, block);
    out.files.push(OutFile {
        path: INTERFACES.to_string(),
        contents: lines(&kept),
        mode: 0o644,
        parts: parts(),
    });
    Ok(out)
}

/// Debian ifupdown.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    render_with(ctx, true, &|n| stanzas(n, ctx.dns))
}

/// Where the configuration as it was before the change is kept, so that
/// `ifdown -i` takes a NIC down the way it was brought up (ending a DHCP
/// client, say) although the real files already hold the new stanzas.
pub const PREVIOUS: &str = "/run/singularity/ifupdown-previous.interfaces";

/// Per changed NIC: `ifdown -i PREVIOUS` (if the old configuration defines
/// it) with `ifdown_opts`, `ip addr flush … scope global` when `flush`, then
/// `ifup`. `disk` is the system before the change.
pub fn bringup_with(changed: &[&Nic], disk: &Files, ifdown_opts: &[&str], flush: bool) -> Result<BringUp, NetError> {
    let mut b = BringUp::default();
    let previous = eni::flatten(disk, &CANDIDATES)?;
    for nic in changed {
        if let Some(old) = previous.as_deref().filter(|t| eni::defines(t, &nic.name)) {
            if b.writes.is_empty() {
                b.writes.push((PREVIOUS.to_string(), old.to_string()));
            }
            let mut args: Vec<&str> = ifdown_opts.to_vec();
            args.extend(["-i", PREVIOUS, &nic.name]);
            b.runs.push(run("ifdown", &args));
        }
        if flush {
            b.runs
                .push(run("ip", &["addr", "flush", "dev", &nic.name, "scope", "global"]));
        }
        b.runs.push(run("ifup", &[&nic.name]));
    }
    Ok(b)
}

/// Debian: `ifdown --ignore-errors -i PREVIOUS <if>`, a flush of the old
/// global addresses (ifupdown keeps addresses it did not add, Ubuntu LP
/// #1584682), `ifup <if>`.
pub fn bringup(changed: &[&Nic], disk: &Files) -> Result<BringUp, NetError> {
    bringup_with(changed, disk, &["--ignore-errors"], true)
}
