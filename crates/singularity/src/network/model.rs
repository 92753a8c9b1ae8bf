//! The network model every renderer reads: parsed entries matched to local
//! NICs by MAC, checked against each other, with one decision per route about
//! where it goes (`network.md` §0.3): on the NIC whose subnet holds its
//! gateway, else on-link on its own NIC, and either way reported. No I/O here.

use super::addr::{is_link_local, IpCidr, Ipv4Cidr, Ipv6Cidr, Mac};
use super::error::NetError;
use super::probe::LocalNic;
use super::vmdata::NicData;
use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A default gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gateway<A> {
    /// Its address.
    pub addr: A,
    /// Whether it lies outside every subnet of the NIC (needs `onlink`).
    pub onlink: bool,
}

/// A static route on one NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicRoute {
    /// The destination network.
    pub dest: IpCidr,
    /// The next hop, `None` for a route to the link.
    pub gateway: Option<IpAddr>,
    /// Whether the next hop lies outside every subnet of the NIC.
    pub onlink: bool,
}

/// One NIC to configure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    /// The `vm-data/networking` key it came from.
    pub key: String,
    /// The local interface name.
    pub name: String,
    /// Its MAC.
    pub mac: Mac,
    /// nova's network label.
    pub label: Option<String>,
    /// IPv4 addresses.
    pub ipv4: Vec<Ipv4Cidr>,
    /// IPv4 default gateway.
    pub gateway4: Option<Gateway<Ipv4Addr>>,
    /// IPv6 addresses.
    pub ipv6: Vec<Ipv6Cidr>,
    /// IPv6 default gateway.
    pub gateway6: Option<Gateway<Ipv6Addr>>,
    /// Static routes.
    pub routes: Vec<NicRoute>,
    /// DNS servers given with this NIC.
    pub dns: Vec<IpAddr>,
}

impl Nic {
    /// Whether `ip` lies in one of this NIC's subnets.
    pub fn on_subnet(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.ipv4.iter().any(|c| c.contains(a)),
            IpAddr::V6(a) => self.ipv6.iter().any(|c| c.contains(a)),
        }
    }

    /// A one-line description for comments: `vm-data/networking/KEY (label
    /// public)`, with anything but `[A-Za-z0-9_.:@-]` in the key replaced,
    /// so that no key can add a line to a generated file.
    pub fn origin(&self) -> String {
        let key: String = self
            .key
            .chars()
            .take(64)
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.:@-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        match &self.label {
            Some(l) => format!("vm-data/networking/{key} (label {l})"),
            None => format!("vm-data/networking/{key}"),
        }
    }
}

/// Every NIC to configure, in interface-name order, plus notes for the reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    /// The NICs.
    pub nics: Vec<Nic>,
    /// Notes (skipped entries, moved routes).
    pub report: Vec<String>,
}

impl Network {
    /// All DNS servers, NIC by NIC in the order given, without duplicates.
    pub fn dns(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for ip in self.nics.iter().flat_map(|n| n.dns.iter()) {
            if !out.contains(ip) {
                out.push(*ip);
            }
        }
        out
    }

    /// Whether `name` is one of the NICs configured here.
    pub fn manages(&self, name: &str) -> bool {
        self.nics.iter().any(|n| n.name == name)
    }
}

/// Orders `eth2` before `eth10`.
pub fn natural(a: &str, b: &str) -> Ordering {
    let split = |s: &str| {
        let digits = s.len() - s.bytes().rev().take_while(u8::is_ascii_digit).count();
        (s[..digits].to_string(), s[digits..].parse::<u64>().unwrap_or(0))
    };
    split(a).cmp(&split(b)).then_with(|| a.cmp(b))
}

/// Matches entries to local NICs and checks them against each other.
pub fn build(entries: Vec<NicData>, local: &[LocalNic]) -> Result<Network, NetError> {
    let mut net = Network::default();
    for data in entries {
        let mut candidates: Vec<&LocalNic> = local.iter().filter(|l| l.mac == data.mac).collect();
        if candidates.iter().any(|l| l.physical) {
            candidates.retain(|l| l.physical);
        }
        candidates.sort_by(|a, b| natural(&a.name, &b.name));
        let Some(nic) = candidates.first() else {
            net.report.push(format!(
                "skipped entry {}: no local interface with MAC {}",
                data.key, data.mac
            ));
            continue;
        };
        let new = Nic {
            key: data.key,
            name: nic.name.clone(),
            mac: data.mac,
            label: data.label,
            gateway4: data.gateway4.map(|addr| Gateway { addr, onlink: false }),
            gateway6: data.gateway6.map(|addr| Gateway { addr, onlink: false }),
            ipv4: data.ipv4,
            ipv6: data.ipv6,
            routes: data
                .routes
                .iter()
                .map(|r| NicRoute {
                    dest: r.dest,
                    gateway: r.gateway,
                    onlink: false,
                })
                .collect(),
            dns: data.dns,
        };
        if let Some(other) = net.nics.iter().find(|n| n.name == new.name) {
            // The same data under two keys (`BC764E…` and `bc764e…`) is harmless.
            let renamed = Nic {
                key: other.key.clone(),
                ..new.clone()
            };
            if renamed == *other {
                net.report
                    .push(format!("skipped entry {}: same as entry {}", new.key, other.key));
                continue;
            }
            return Err(NetError::Conflict {
                keys: vec![other.key.clone(), new.key.clone()],
                detail: format!("both describe interface {} (MAC {}), differently", new.name, new.mac),
            });
        }
        net.nics.push(new);
    }
    net.nics.sort_by(|a, b| natural(&a.name, &b.name));
    check_conflicts(&net)?;
    place_routes(&mut net);
    Ok(net)
}

fn check_conflicts(net: &Network) -> Result<(), NetError> {
    let with_gw: Vec<&Nic> = net.nics.iter().filter(|n| n.gateway4.is_some()).collect();
    if let [a, b, ..] = with_gw[..] {
        let gw = |n: &Nic| n.gateway4.map(|g| g.addr.to_string()).unwrap_or_default();
        return Err(NetError::Conflict {
            keys: vec![a.key.clone(), b.key.clone()],
            detail: format!(
                "two IPv4 default gateways ({} on {}, {} on {}); only one is possible",
                gw(a),
                a.name,
                gw(b),
                b.name
            ),
        });
    }
    for (i, a) in net.nics.iter().enumerate() {
        for b in &net.nics[i + 1..] {
            let v4 = a
                .ipv4
                .iter()
                .find(|x| b.ipv4.iter().any(|y| y.addr == x.addr))
                .map(|c| IpAddr::V4(c.addr));
            let v6 = a
                .ipv6
                .iter()
                .find(|x| b.ipv6.iter().any(|y| y.addr == x.addr))
                .map(|c| IpAddr::V6(c.addr));
            if let Some(ip) = v4.or(v6) {
                return Err(NetError::Conflict {
                    keys: vec![a.key.clone(), b.key.clone()],
                    detail: format!("address {ip} is given for both {} and {}", a.name, b.name),
                });
            }
        }
    }
    Ok(())
}

/// Gives every route and gateway its place: a route whose gateway is on
/// another NIC's subnet moves there; one whose gateway is on no subnet stays,
/// marked on-link. Link-local IPv6 gateways are always reachable.
fn place_routes(net: &mut Network) {
    let mut moves: Vec<(usize, NicRoute)> = Vec::new();
    for i in 0..net.nics.len() {
        let routes = std::mem::take(&mut net.nics[i].routes);
        let mut kept = Vec::new();
        for mut r in routes {
            let Some(g) = r.gateway else {
                kept.push(r);
                continue;
            };
            if net.nics[i].on_subnet(g) || is_link_local(g) {
                kept.push(r);
            } else if let Some(j) = net.nics.iter().position(|n| n.on_subnet(g)) {
                net.report.push(format!(
                    "route {} via {g} from entry {} is configured on {}, whose subnet holds the gateway",
                    r.dest, net.nics[i].key, net.nics[j].name
                ));
                moves.push((j, r));
            } else {
                net.report.push(format!(
                    "route {} via {g} on {}: the gateway is on no local subnet, so it is configured on-link",
                    r.dest, net.nics[i].name
                ));
                r.onlink = true;
                kept.push(r);
            }
        }
        net.nics[i].routes = kept;
    }
    for (j, r) in moves {
        if !net.nics[j]
            .routes
            .iter()
            .any(|x| x.dest == r.dest && x.gateway == r.gateway)
        {
            net.nics[j].routes.push(r);
        }
    }
    for nic in &mut net.nics {
        let name = nic.name.clone();
        let (off4, off6) = (
            nic.gateway4.is_some_and(|g| !nic.on_subnet(IpAddr::V4(g.addr))),
            nic.gateway6
                .is_some_and(|g| !nic.on_subnet(IpAddr::V6(g.addr)) && !is_link_local(IpAddr::V6(g.addr))),
        );
        if let Some(g) = nic.gateway4.as_mut().filter(|_| off4) {
            g.onlink = true;
            net.report.push(format!(
                "gateway {} on {name} is outside its subnets: configured on-link",
                g.addr
            ));
        }
        if let Some(g) = nic.gateway6.as_mut().filter(|_| off6) {
            g.onlink = true;
            net.report.push(format!(
                "gateway {} on {name} is outside its subnets: configured on-link",
                g.addr
            ));
        }
    }
}
