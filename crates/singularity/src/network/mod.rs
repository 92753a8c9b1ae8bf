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

/// [`plan`] from vm-data already parsed.
pub fn plan_spec(
    spec: &NetworkSpec,
    root: &Root,
    enabled: &Functions,
    override_renderer: Option<Renderer>,
) -> Result<NetworkOutcome, NetError> {
    let entries = spec.nics.clone();
    let hostname = spec.hostname.clone();

    let mut files = Files::new(root);
    let os = OsInfo::read(&files)?;
    let (renderer, why) = match override_renderer {
        Some(r) => (r, "network_renderer setting".to_string()),
        None => detect::detect_with(&files, &os),
    };
    let net = model::build(entries, &probe::local_nics(&files)?)?;
    let nm = nm_enabled(&files);
    let mut out = NetworkOutcome {
        plans: Vec::new(),
        bringup: Vec::new(),
        hostname: None,
        symlinks: Vec::new(),
        report: net.report.clone(),
        renderer,
        why,
    };
    let dns_on = enabled.contains(Function::Resolvers);

    if enabled.contains(Function::Network) {
        let mut steps = Vec::new();
        if net.nics.is_empty() {
            out.report
                .push("no entry matches a local interface: network configuration left alone".into());
        } else {
            let ctx = Ctx {
                net: &net,
                files: &files,
                dns: dns_on,
            };
            let rendered = (renderer.def().render)(&ctx)?;
            let mut writes = Vec::new();
            let mut changed: BTreeSet<String> = BTreeSet::new();
            for f in &rendered.files {
                let old = files.read(&f.path)?.unwrap_or_default();
                if !write_if_changed(&mut files, &mut writes, &f.path, &f.contents, f.mode)? {
                    continue;
                }
                for part in &f.parts {
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
                let b = (renderer.def().bringup)(&changed, &Files::new(root), nm)?;
                for (path, contents) in &b.writes {
                    write_if_changed(&mut files, &mut writes, path, contents, 0o600)?;
                }
                out.bringup = b.runs;
            }
            steps = writes;
            out.symlinks = rendered.symlinks;
            out.report.extend(rendered.notes);
        }
        out.plans.push(Plan {
            function: Function::Network.into(),
            steps,
        });
    }

    if dns_on {
        let mut steps = Vec::new();
        let carries = enabled.contains(Function::Network) && !net.nics.is_empty();
        let p = resolvers::plan(&files, renderer, &net.dns(), carries)?;
        let mut any = false;
        for (path, contents) in &p.writes {
            any |= write_if_changed(&mut files, &mut steps, path, contents, 0o644)?;
        }
        if any {
            steps.extend(p.runs.into_iter().map(Step::Run));
        }
        out.report.extend(p.notes);
        out.plans.push(Plan {
            function: Function::Resolvers.into(),
            steps,
        });
    }

    let current = hostname::current(&files, os.family)?;
    if enabled.contains(Function::Hosts) {
        let mut steps = Vec::new();
        match hostname.as_deref().or(current.as_deref()) {
            Some(name) => {
                let old = files.read(hosts::PATH)?.unwrap_or_default();
                // With the network configuration left alone (no entry for a
                // local NIC), so are the NIC lines: the host name changes only.
                let addrs: Vec<IpAddr> = if net.nics.is_empty() && !spec.nics.is_empty() {
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
                let add_loopback = os.family != probe::Family::FreeBsd;
                let new = hosts::render(&old, name, current.as_deref(), &addrs, add_loopback);
                write_if_changed(&mut files, &mut steps, hosts::PATH, &new, 0o644)?;
            }
            None => out.report.push("no host name known: /etc/hosts left alone".into()),
        }
        out.plans.push(Plan {
            function: Function::Hosts.into(),
            steps,
        });
    }

    if enabled.contains(Function::Hostname) {
        let mut steps = Vec::new();
        if let Some(name) = &hostname {
            let mut any = false;
            for (path, contents) in hostname::files(&files, os.family, renderer, name)? {
                any |= write_if_changed(&mut files, &mut steps, &path, &contents, 0o644)?;
            }
            let kernel = hostname::kernel_name(name).to_string();
            let live = files.read("/proc/sys/kernel/hostname").ok().flatten();
            if any || live.is_some_and(|l| l.trim() != kernel) {
                steps.push(Step::SetHostname(kernel.clone()));
                out.hostname = Some(kernel);
            }
        }
        out.plans.push(Plan {
            function: Function::Hostname.into(),
            steps,
        });
    }
    Ok(out)
}
