//! `resetnetwork`: from nova's `vm-data/networking/*` entries and
//! `vm-data/hostname` to plans for the network configuration, the resolvers,
//! `/etc/hosts` and the host name, plus the bring-up commands, as data.
//!
//! Parse ([`vmdata`]) → match to local NICs and check (`model`) → choose a
//! format ([`detect`]) → render whole files with one pure renderer per format
//! → keep only the files whose contents differ from what is on disk → bring
//! up only the NICs whose configuration changed. This module reads the
//! managed system through [`Root`] and never writes; the applier does.

pub mod addr;
mod alpine;
mod detect;
mod eni;
mod error;
mod freebsd;
mod gentoo;
mod hostname;
mod hosts;
mod ifcfg;
mod ifupdown;
mod model;
mod netplan;
mod networkd;
mod nmkeyfile;
mod output;
#[cfg(test)]
mod plan_tests;
mod probe;
mod resolvers;
pub(crate) mod shellvars;
mod suse;
pub mod vmdata;
#[cfg(test)]
mod vmdata_tests;

pub use detect::{detect, Renderer, RendererDef};

/// The network configurator's settings (`[main] network_renderer`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkSettings {
    /// The renderer to use (`None`: chosen from the system).
    pub renderer: Option<String>,
}
pub use error::NetError;

use crate::functions::{Function, Functions};
use crate::plan::{FileWrite, Plan, Run, Step};
use crate::root::Root;
use model::Nic;
use output::Ctx;
use probe::{nm_enabled, Files, OsInfo};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What the host sent for `resetnetwork`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkRequest {
    /// Every `vm-data/networking/<key>` entry: (key, raw value).
    pub entries: Vec<(String, Vec<u8>)>,
    /// The raw `vm-data/hostname`, if present.
    pub hostname: Option<Vec<u8>>,
}

/// vm-data parsed and checked: what every consumer of it (the network
/// plan, external configurators) reads, parsed once per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    /// One entry per `vm-data/networking/<key>`, in key order.
    pub nics: Vec<vmdata::NicData>,
    /// `vm-data/hostname`, checked.
    pub hostname: Option<String>,
}

impl NetworkRequest {
    /// Parses every entry and the hostname; fails naming the first bad entry.
    pub fn parse(&self) -> Result<NetworkSpec, NetError> {
        Ok(NetworkSpec {
            nics: self
                .entries
                .iter()
                .map(|(key, raw)| vmdata::parse_entry(key, raw))
                .collect::<Result<Vec<_>, _>>()?,
            hostname: self.hostname.as_deref().map(vmdata::parse_hostname).transpose()?,
        })
    }
}

/// What to do for a `resetnetwork`.
#[derive(Debug)]
pub struct NetworkOutcome {
    /// One plan per enabled function, in the order Network, Resolvers, Hosts,
    /// Hostname (empty when nothing changes). Only files whose contents change
    /// are written. The Network plan holds the `Symlink` steps (Gentoo's
    /// `net.<if>`), the Hostname plan the `SetHostname` step, the Resolvers
    /// plan the commands that reload the resolver.
    pub plans: Vec<Plan>,
    /// Commands that bring the changed NICs up, in order, once every plan is
    /// applied. Empty when no NIC's configuration changed.
    pub bringup: Vec<Run>,
    /// The host name the Hostname plan gives the kernel (repeated for the log).
    pub hostname: Option<String>,
    /// The links the Network plan creates (repeated for the log).
    pub symlinks: Vec<(String, String)>,
    /// Notes for the reply and the log (skipped entries, moved routes, …).
    pub report: Vec<String>,
    /// The format used.
    pub renderer: Renderer,
    /// Why that format was chosen.
    pub why: String,
}

/// Adds a write of `contents` to `steps` unless the file already holds it;
/// returns whether it changes.
fn write_if_changed(
    files: &mut Files,
    steps: &mut Vec<Step>,
    path: &str,
    contents: &str,
    mode: u32,
) -> Result<bool, NetError> {
    if files.read(path)?.as_deref() == Some(contents) {
        return Ok(false);
    }
    files.plan(path, contents);
    steps.push(Step::Write(FileWrite::new(path, contents.as_bytes().to_vec(), mode)));
    Ok(true)
}

/// The vm-data of `req`, parsed and checked as for `resetnetwork`, as the
/// JSON `configuration` external configurators get:
/// `{"hostname": NAME or null, "interfaces": [{"key", "mac", "label",
/// "ipv4": ["a.b.c.d/n", ...], "gateway4", "ipv6": [...], "gateway6",
/// "routes": [{"destination", "gateway"}], "dns": [...]}]}`.
pub fn configuration(spec: &NetworkSpec) -> serde_json::Value {
    use serde_json::{json, Value};
    let text = |v: &dyn std::fmt::Display| Value::String(v.to_string());
    let mut interfaces = Vec::new();
    for nic in &spec.nics {
        interfaces.push(json!({
            "key": nic.key,
            "mac": text(&nic.mac),
            "label": nic.label,
            "ipv4": nic.ipv4.iter().map(|a| text(a)).collect::<Vec<_>>(),
            "gateway4": nic.gateway4.map(|g| text(&g)),
            "ipv6": nic.ipv6.iter().map(|a| text(a)).collect::<Vec<_>>(),
            "gateway6": nic.gateway6.map(|g| text(&g)),
            "routes": nic.routes.iter().map(|r| json!({
                "destination": text(&r.dest),
                "gateway": r.gateway.map(|g| text(&g)),
            })).collect::<Vec<_>>(),
            "dns": nic.dns.iter().map(|d| text(d)).collect::<Vec<_>>(),
        }));
    }
    json!({"hostname": spec.hostname, "interfaces": interfaces})
}

/// Plans `resetnetwork` for the system under `root`. Fails, naming the
/// entry, on invalid data; then nothing is planned at all.
pub fn plan(
    req: &NetworkRequest,
    root: &Root,
    enabled: &Functions,
    override_renderer: Option<Renderer>,
) -> Result<NetworkOutcome, NetError> {
    plan_spec(&req.parse()?, root, enabled, override_renderer)
}

/// What every part of `resetnetwork` reads, gathered once per request.
struct Facts<'a> {
    /// The parsed vm-data.
    spec: &'a NetworkSpec,
    /// The managed system.
    root: &'a Root,
    /// Its distribution.
    os: OsInfo,
    /// The network configuration format in use.
    renderer: Renderer,
    /// vm-data's entries matched to the local NICs.
    net: model::Network,
    /// Whether NetworkManager runs the interfaces.
    nm: bool,
    /// The enabled functions.
    enabled: &'a Functions,
}

/// One function's part of `resetnetwork`: its plan's steps. It reads
/// through `files`, which holds what the parts before it planned.
type Part = fn(&Facts<'_>, &mut Files<'_>, &mut NetworkOutcome) -> Result<Vec<Step>, NetError>;

/// The functions `resetnetwork` plans, in order: the resolvers know whether
/// the interfaces' files carry DNS, and `/etc/hosts` takes the addresses
/// the interfaces get.
const PARTS: [(Function, Part); 4] = [
    (Function::Network, plan_interfaces),
    (Function::Resolvers, plan_resolvers),
    (Function::Hosts, plan_hosts),
    (Function::Hostname, plan_hostname),
];

/// [`plan`] from vm-data already parsed.
pub fn plan_spec(
    spec: &NetworkSpec,
    root: &Root,
    enabled: &Functions,
    override_renderer: Option<Renderer>,
) -> Result<NetworkOutcome, NetError> {
    let mut files = Files::new(root);
    let os = OsInfo::read(&files)?;
    let (renderer, why) = match override_renderer {
        Some(r) => (r, "network_renderer setting".to_string()),
        None => detect::detect_with(&files, &os),
    };
    let net = model::build(spec.nics.clone(), &probe::local_nics(&files)?)?;
    let facts = Facts {
        spec,
        root,
        os,
        renderer,
        nm: nm_enabled(&files),
        enabled,
        net,
    };
    let mut out = NetworkOutcome {
        plans: Vec::new(),
        bringup: Vec::new(),
        hostname: None,
        symlinks: Vec::new(),
        report: facts.net.report.clone(),
        renderer,
        why,
    };
    for (function, part) in PARTS {
        if enabled.contains(function) {
            let steps = part(&facts, &mut files, &mut out)?;
            out.plans.push(Plan {
                function: function.into(),
                steps,
            });
        }
    }
    Ok(out)
}

/// `network`: the interfaces' files in the renderer's format, and the
/// bring-up of the interfaces whose configuration changes.
fn plan_interfaces(f: &Facts<'_>, files: &mut Files<'_>, out: &mut NetworkOutcome) -> Result<Vec<Step>, NetError> {
    let net = &f.net;
    if net.nics.is_empty() {
        out.report
            .push("no entry matches a local interface: network configuration left alone".into());
        return Ok(Vec::new());
    }
    let ctx = Ctx {
        net,
        files,
        dns: f.enabled.contains(Function::Resolvers),
    };
    let rendered = (f.renderer.def().render)(&ctx)?;
    let mut writes = Vec::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for file in &rendered.files {
        let old = files.read(&file.path)?.unwrap_or_default();
        if !write_if_changed(files, &mut writes, &file.path, &file.contents, file.mode)? {
            continue;
        }
        for part in &file.parts {
            if part.pieces.is_empty() || part.pieces.iter().any(|p| !old.contains(p.as_str())) {
                changed.insert(part.nic.clone());
            }
        }
    }
    for (link, target) in &rendered.symlinks {
        if let Some(nic) = net.nics.iter().find(|n| link.ends_with(&format!("/net.{}", n.name))) {
            changed.insert(nic.name.clone());
        }
        writes.push(Step::Symlink {
            path: link.clone(),
            target: target.clone(),
        });
    }
    let changed: Vec<&Nic> = net.nics.iter().filter(|n| changed.contains(&n.name)).collect();
    if !changed.is_empty() {
        let b = (f.renderer.def().bringup)(&changed, &Files::new(f.root), f.nm)?;
        for (path, contents) in &b.writes {
            write_if_changed(files, &mut writes, path, contents, 0o600)?;
        }
        out.bringup = b.runs;
    }
    out.symlinks = rendered.symlinks;
    out.report.extend(rendered.notes);
    Ok(writes)
}

/// `resolvers`: `resolv.conf` or the resolver's own configuration, unless
/// the interfaces' files carry the servers.
fn plan_resolvers(f: &Facts<'_>, files: &mut Files<'_>, out: &mut NetworkOutcome) -> Result<Vec<Step>, NetError> {
    let mut steps = Vec::new();
    let carries = f.enabled.contains(Function::Network) && !f.net.nics.is_empty();
    let p = resolvers::plan(files, f.renderer, &f.net.dns(), carries)?;
    let mut any = false;
    for (path, contents) in &p.writes {
        any |= write_if_changed(files, &mut steps, path, contents, 0o644)?;
    }
    if any {
        steps.extend(p.runs.into_iter().map(Step::Run));
    }
    out.report.extend(p.notes);
    Ok(steps)
}

/// `hosts`: the host name's lines in `/etc/hosts`, with the interfaces'
/// first addresses.
fn plan_hosts(f: &Facts<'_>, files: &mut Files<'_>, out: &mut NetworkOutcome) -> Result<Vec<Step>, NetError> {
    let mut steps = Vec::new();
    let current = hostname::current(files, f.os.family)?;
    let Some(name) = f.spec.hostname.as_deref().or(current.as_deref()) else {
        out.report.push("no host name known: /etc/hosts left alone".into());
        return Ok(steps);
    };
    let old = files.read(hosts::PATH)?.unwrap_or_default();
    let net = &f.net;
    // With the network configuration left alone (no entry for a local NIC),
    // so are the NIC lines: the host name changes only.
    let addrs: Vec<IpAddr> = if net.nics.is_empty() && !f.spec.nics.is_empty() {
        hosts::ours(&old)
    } else {
        net.nics
            .iter()
            .flat_map(|n| {
                let v4 = n.ipv4.first().map(|c| IpAddr::V4(c.addr));
                let v6 = n.ipv6.first().map(|c| IpAddr::V6(c.addr));
                v4.into_iter().chain(v6)
            })
            .collect()
    };
    let add_loopback = f.os.family != probe::Family::FreeBsd;
    let new = hosts::render(&old, name, current.as_deref(), &addrs, add_loopback);
    write_if_changed(files, &mut steps, hosts::PATH, &new, 0o644)?;
    Ok(steps)
}

/// `hostname`: the distribution's host name files and the kernel's name.
fn plan_hostname(f: &Facts<'_>, files: &mut Files<'_>, out: &mut NetworkOutcome) -> Result<Vec<Step>, NetError> {
    let mut steps = Vec::new();
    let Some(name) = &f.spec.hostname else {
        return Ok(steps);
    };
    let mut any = false;
    for (path, contents) in hostname::files(files, f.os.family, f.renderer, name)? {
        any |= write_if_changed(files, &mut steps, &path, &contents, 0o644)?;
    }
    let kernel = hostname::kernel_name(name).to_string();
    let live = files.read("/proc/sys/kernel/hostname").ok().flatten();
    if any || live.is_some_and(|l| l.trim() != kernel) {
        steps.push(Step::SetHostname(kernel.clone()));
        out.hostname = Some(kernel);
    }
    Ok(steps)
}
