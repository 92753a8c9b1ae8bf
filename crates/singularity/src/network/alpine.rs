//! Alpine (ifupdown-ng): `/etc/network/interfaces` in ifupdown-ng's native
//! form, one stanza per NIC with several `address` and `gateway` lines. The
//! file is edited like Debian's (other stanzas kept). ifupdown-ng has no DNS
//! executor, so DNS goes to `/etc/resolv.conf` (resolvers). Bring-up: as
//! for Debian, without the address flush (BusyBox `ip`).

use super::detect::RendererDef;
use super::error::NetError;
use super::ifupdown::{bringup_with, render_with};
use super::model::Nic;
use super::output::{BringUp, Ctx, Rendered};
use super::probe::Files;
use super::resolvers;

/// The Alpine ifupdown-ng renderer: its row in the renderer table.
pub const RENDERER: RendererDef = RendererDef {
    name: "alpine",
    aliases: &["ifupdown-ng"],
    render,
    bringup: |changed, disk, _| bringup(changed, disk),
    carries_dns: resolvers::never,
};

/// The stanza for one NIC.
pub fn stanza(nic: &Nic) -> String {
    let name = &nic.name;
    let mut s = format!("# {name}: {}\nauto {name}\niface {name}\n", nic.origin());
    for a in nic
        .ipv4
        .iter()
        .map(ToString::to_string)
        .chain(nic.ipv6.iter().map(ToString::to_string))
    {
        s.push_str(&format!("    address {a}\n"));
    }
    let mut up = Vec::new();
    let gateways = [
        nic.gateway4.map(|g| (g.addr.to_string(), g.onlink)),
        nic.gateway6.map(|g| (g.addr.to_string(), g.onlink)),
    ];
    for (g, onlink) in gateways.into_iter().flatten() {
        if onlink {
            up.push(format!("default via {g} dev {name} onlink"));
        } else {
            s.push_str(&format!("    gateway {g}\n"));
        }
    }
    for r in &nic.routes {
        let mut c = match r.gateway {
            Some(g) => format!("{} via {g} dev {name}", r.dest),
            None => format!("{} dev {name}", r.dest),
        };
        if r.onlink {
            c.push_str(" onlink");
        }
        up.push(c);
    }
    for c in &up {
        s.push_str(&format!("    up ip route add {c}\n"));
    }
    for c in up.iter().rev() {
        s.push_str(&format!("    down ip route del {c}\n"));
    }
    s
}

/// `/etc/network/interfaces` in ifupdown-ng form.
pub fn render(ctx: &Ctx) -> Result<Rendered, NetError> {
    render_with(ctx, true, &stanza)
}

/// Per changed NIC: `ifdown -i <snapshot of the old configuration>` if it
/// defined the NIC, then `ifup`.
pub fn bringup(changed: &[&Nic], disk: &Files) -> Result<BringUp, NetError> {
    bringup_with(changed, disk, &[], false)
}
