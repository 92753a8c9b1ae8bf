//! Parsing at the edge: one `vm-data/networking/<key>` value (nova's JSON,
//! `protocol.md` §4.3) into a typed [`NicData`], and `vm-data/hostname` into a
//! checked host name. Exactly as lenient as real hosts require (dotted or
//! numeric masks, hex-colon IPv6 route masks, `enabled` as `"1"`/`1`/`"0"`,
//! `null` gateways, `gateway_v6`/`gateway6`/per-address IPv6 gateways, MACs in
//! any form) and strict about everything else. No I/O here.

use super::addr::{v4_prefix, v6_prefix, IpCidr, Ipv4Cidr, Ipv6Cidr, Mac, MaskError, MaskValue};
use super::error::NetError;
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What is wrong with one field of an entry. The caller names the field's
/// place in the entry; the entry's key is added by [`NetError`].
#[derive(Debug, thiserror::Error)]
enum FieldError {
    /// A required field is absent or null.
    #[error("missing")]
    Missing,
    /// A list field holds something else.
    #[error("{field}: expected a list, got {got}")]
    NotList { field: String, got: Value },
    /// An item of an address list is not an object.
    #[error("{field}[{index}]: expected an object, got {got}")]
    NotObject { field: String, index: usize, got: Value },
    /// An address's `enabled` is neither on nor off.
    #[error("{field}[{index}].enabled: expected \"1\" or \"0\", got {got}")]
    Enabled { field: String, index: usize, got: Value },
    /// A string that is not an address of the family wanted.
    #[error("'{0}' is not a valid address")]
    Address(String),
    /// An address field that is not a string.
    #[error("expected a string, got {0}")]
    NotString(Value),
    /// An optional address field that is neither a string nor null.
    #[error("expected a string or null, got {0}")]
    NotStringOrNull(Value),
    /// A numeric mask that is not a whole number.
    #[error("{0} is not a prefix length")]
    Prefix(serde_json::Number),
    /// A mask field that is neither a string nor a number.
    #[error("expected a mask or prefix length, got {0}")]
    NotMask(Value),
    /// The same address twice, with different prefix lengths.
    #[error("{item} repeats {previous} with another prefix length")]
    Repeated { item: String, previous: String },
}

/// What is wrong with one item of `routes`.
#[derive(Debug, thiserror::Error)]
enum RouteError {
    /// The item is not an object.
    #[error("expected an object, got {0}")]
    NotObject(Value),
    /// Its `route` (the destination).
    #[error("route: {0}")]
    Destination(#[source] FieldError),
    /// Its `netmask` field.
    #[error("netmask: {0}")]
    Netmask(#[source] FieldError),
    /// Its `gateway` field.
    #[error("gateway: {0}")]
    Gateway(#[source] FieldError),
    /// Its mask gives no prefix length.
    #[error(transparent)]
    Mask(#[from] MaskError),
    /// The destination is not a network address.
    #[error("{dest} has host bits set (the network is {network}/{})", .dest.prefix())]
    HostBits { dest: IpCidr, network: IpAddr },
    /// The gateway is of the other family.
    #[error("gateway {gateway} is not of the same family as {dest}")]
    Family { gateway: IpAddr, dest: IpCidr },
    /// The gateway cannot be a next hop.
    #[error("gateway {0} is not a usable next hop")]
    Unusable(IpAddr),
}

/// One NIC's configuration as nova sent it, checked and typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicData {
    /// The key under `vm-data/networking` (normally the MAC without colons).
    pub key: String,
    /// The NIC's MAC: the JSON `mac`, else the key.
    pub mac: Mac,
    /// The network label (`public`, `private`), reduced to safe characters.
    pub label: Option<String>,
    /// Enabled IPv4 addresses, in the order given, without duplicates.
    pub ipv4: Vec<Ipv4Cidr>,
    /// The IPv4 default gateway.
    pub gateway4: Option<Ipv4Addr>,
    /// Enabled IPv6 addresses, in the order given, without duplicates.
    pub ipv6: Vec<Ipv6Cidr>,
    /// The IPv6 default gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// Static routes other than default routes, without duplicates.
    pub routes: Vec<Route>,
    /// DNS servers in the order given (nova's order is not meaningful),
    /// without duplicates.
    pub dns: Vec<IpAddr>,
}

/// A static route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// The destination network (host bits clear).
    pub dest: IpCidr,
    /// The next hop; `None` for a route to the link itself.
    pub gateway: Option<IpAddr>,
}

/// Parses one `vm-data/networking/<key>` value.
pub fn parse_entry(key: &str, json: &[u8]) -> Result<NicData, NetError> {
    let err = |detail: String| NetError::entry(key, detail);
    if json.iter().all(u8::is_ascii_whitespace) {
        return Err(err("empty entry".into()));
    }
    let value: Value = serde_json::from_slice(json).map_err(|e| err(format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(err("not a JSON object".into()));
    };
    if obj.is_empty() {
        return Err(err("empty entry".into()));
    }
    let mac = match obj.get("mac") {
        Some(Value::String(s)) => s.parse::<Mac>().map_err(|e| err(format!("mac: {e}")))?,
        None | Some(Value::Null) => key
            .parse::<Mac>()
            .map_err(|_| err("no mac field, and the key is not a MAC address".into()))?,
        Some(other) => return Err(err(format!("mac: expected a string, got {other}"))),
    };
    let label = match obj.get("label") {
        Some(Value::String(s)) => Some(safe_label(s)),
        _ => None,
    };
    if obj.get("ips").is_none() && obj.get("ip6s").is_none() {
        return Err(err("empty entry: neither ips nor ip6s".into()));
    }

    let mut ipv4: Vec<Ipv4Cidr> = Vec::new();
    for (i, ip) in enabled(&obj, "ips")
        .map_err(|e| err(e.to_string()))?
        .into_iter()
        .enumerate()
    {
        let at = |f: &str| format!("ips[{i}].{f}");
        let addr: Ipv4Addr = parse_addr(ip, &["ip", "address"]).map_err(|e| err(format!("{}: {e}", at("ip"))))?;
        let mask = mask_of(ip).map_err(|e| err(format!("{}: {e}", at("netmask"))))?;
        let prefix = v4_prefix(mask).map_err(|e| err(format!("{}: {e}", at("netmask"))))?;
        let cidr = Ipv4Cidr { addr, prefix };
        check_host(IpAddr::V4(addr), prefix).map_err(|e| err(format!("{}: {cidr} {e}", at("ip"))))?;
        push_unique(&mut ipv4, cidr, |c| c.addr).map_err(|e| err(format!("{}: {e}", at("ip"))))?;
    }
    let mut ipv6: Vec<Ipv6Cidr> = Vec::new();
    let mut per_address_gw6 = None;
    for (i, ip) in enabled(&obj, "ip6s")
        .map_err(|e| err(e.to_string()))?
        .into_iter()
        .enumerate()
    {
        let at = |f: &str| format!("ip6s[{i}].{f}");
        let addr: Ipv6Addr = parse_addr(ip, &["ip", "address"]).map_err(|e| err(format!("{}: {e}", at("ip"))))?;
        let mask = mask_of(ip).map_err(|e| err(format!("{}: {e}", at("netmask"))))?;
        let prefix = v6_prefix(mask).map_err(|e| err(format!("{}: {e}", at("netmask"))))?;
        let cidr = Ipv6Cidr { addr, prefix };
        check_host(IpAddr::V6(addr), prefix).map_err(|e| err(format!("{}: {cidr} {e}", at("ip"))))?;
        push_unique(&mut ipv6, cidr, |c| c.addr).map_err(|e| err(format!("{}: {e}", at("ip"))))?;
        if per_address_gw6.is_none() {
            per_address_gw6 =
                optional_addr::<Ipv6Addr>(ip.get("gateway")).map_err(|e| err(format!("{}: {e}", at("gateway"))))?;
        }
    }
    if ipv4.is_empty() && ipv6.is_empty() {
        return Err(err("no enabled address in ips or ip6s".into()));
    }

    let mut gateway4 = optional_addr::<Ipv4Addr>(obj.get("gateway")).map_err(|e| err(format!("gateway: {e}")))?;
    let gateway6 =
        match optional_addr::<Ipv6Addr>(obj.get("gateway_v6")).map_err(|e| err(format!("gateway_v6: {e}")))? {
            Some(g) => Some(g),
            None => optional_addr::<Ipv6Addr>(obj.get("gateway6")).map_err(|e| err(format!("gateway6: {e}")))?,
        }
        .or(per_address_gw6);

    let mut routes: Vec<Route> = Vec::new();
    let mut gateway6 = gateway6;
    for (i, r) in array(&obj, "routes")
        .map_err(|e| err(e.to_string()))?
        .iter()
        .enumerate()
    {
        let route = parse_route(r).map_err(|e| err(format!("routes[{i}]: {e}")))?;
        if !route.dest.is_default() {
            if !routes.contains(&route) {
                routes.push(route);
            }
            continue;
        }
        // A default route in the list is the same thing as a gateway.
        let dup =
            |gw: &dyn std::fmt::Display| err(format!("routes[{i}]: a second default route (the gateway is {gw})"));
        match route.gateway {
            Some(IpAddr::V4(g)) => match gateway4 {
                None => gateway4 = Some(g),
                Some(old) if old == g => {}
                Some(old) => return Err(dup(&old)),
            },
            Some(IpAddr::V6(g)) => match gateway6 {
                None => gateway6 = Some(g),
                Some(old) if old == g => {}
                Some(old) => return Err(dup(&old)),
            },
            None => return Err(err(format!("routes[{i}]: a default route needs a gateway"))),
        }
    }

    if let Some(g) = gateway4 {
        check_gateway(IpAddr::V4(g), ipv4.is_empty(), ipv4.iter().any(|c| c.addr == g))
            .map_err(|e| err(format!("gateway: {g} {e}")))?;
    }
    if let Some(g) = gateway6 {
        check_gateway(IpAddr::V6(g), ipv6.is_empty(), ipv6.iter().any(|c| c.addr == g))
            .map_err(|e| err(format!("IPv6 gateway: {g} {e}")))?;
    }

    // A next hop that is the NIC itself is refused, for routes as for the
    // default gateway.
    let own = |g: IpAddr| match g {
        IpAddr::V4(a) => ipv4.iter().any(|c| c.addr == a),
        IpAddr::V6(a) => ipv6.iter().any(|c| c.addr == a),
    };
    if let Some(r) = routes.iter().find(|r| r.gateway.is_some_and(own)) {
        let g = r.gateway.map(|g| g.to_string()).unwrap_or_default();
        return Err(err(format!(
            "route {} via {g}: the gateway is one of the NIC's own addresses",
            r.dest
        )));
    }

    let mut dns: Vec<IpAddr> = Vec::new();
    let servers: Vec<&Value> = match obj.get("dns") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::String(_)) => vec![v],
        Some(other) => return Err(err(format!("dns: expected a list, got {other}"))),
    };
    for (i, server) in servers.into_iter().enumerate() {
        let ip = match server {
            Value::String(s) => s
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| err(format!("dns[{i}]: '{s}' is not an IP address")))?,
            other => return Err(err(format!("dns[{i}]: expected a string, got {other}"))),
        };
        if !dns.contains(&ip) {
            dns.push(ip);
        }
    }

    Ok(NicData {
        key: key.to_string(),
        mac,
        label,
        ipv4,
        gateway4,
        ipv6,
        gateway6,
        routes,
        dns,
    })
}

/// Labels end up in comments of generated files: keep them on one line and
/// free of shell or YAML syntax.
fn safe_label(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn array<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a [Value], FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(FieldError::NotList {
            field: field.to_string(),
            got: other.clone(),
        }),
    }
}

/// The address objects of `field` whose `enabled` is not off.
fn enabled<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Vec<&'a Map<String, Value>>, FieldError> {
    let mut out = Vec::new();
    for (i, item) in array(obj, field)?.iter().enumerate() {
        let Value::Object(ip) = item else {
            return Err(FieldError::NotObject {
                field: field.to_string(),
                index: i,
                got: item.clone(),
            });
        };
        let on = match ip.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) if n.as_u64() == Some(1) => true,
            Some(Value::Number(n)) if n.as_u64() == Some(0) => false,
            Some(Value::String(s)) if s.trim() == "1" || s.trim().eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.trim() == "0" || s.trim().eq_ignore_ascii_case("false") => false,
            Some(other) => {
                return Err(FieldError::Enabled {
                    field: field.to_string(),
                    index: i,
                    got: other.clone(),
                })
            }
        };
        if on {
            out.push(ip);
        }
    }
    Ok(out)
}

fn parse_addr<A: std::str::FromStr>(ip: &Map<String, Value>, fields: &[&str]) -> Result<A, FieldError> {
    let value = fields.iter().find_map(|f| ip.get(*f)).ok_or(FieldError::Missing)?;
    match value {
        Value::String(s) => s.trim().parse::<A>().map_err(|_| FieldError::Address(s.clone())),
        other => Err(FieldError::NotString(other.clone())),
    }
}

fn mask_of(obj: &Map<String, Value>) -> Result<MaskValue<'_>, FieldError> {
    match obj.get("netmask") {
        Some(Value::String(s)) => Ok(MaskValue::Text(s)),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(MaskValue::Number)
            .ok_or_else(|| FieldError::Prefix(n.clone())),
        None | Some(Value::Null) => Err(FieldError::Missing),
        Some(other) => Err(FieldError::NotMask(other.clone())),
    }
}

/// A gateway field: `null`, absent or `""` mean none.
fn optional_addr<A: std::str::FromStr>(value: Option<&Value>) -> Result<Option<A>, FieldError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<A>()
            .map(Some)
            .map_err(|_| FieldError::Address(s.clone())),
        Some(other) => Err(FieldError::NotStringOrNull(other.clone())),
    }
}

fn parse_route(r: &Value) -> Result<Route, RouteError> {
    let Value::Object(obj) = r else {
        return Err(RouteError::NotObject(r.clone()));
    };
    let dest: IpAddr = parse_addr(obj, &["route"]).map_err(RouteError::Destination)?;
    let mask = mask_of(obj).map_err(RouteError::Netmask)?;
    let gateway = optional_addr::<IpAddr>(obj.get("gateway")).map_err(RouteError::Gateway)?;
    let dest = match dest {
        IpAddr::V4(addr) => IpCidr::V4(Ipv4Cidr {
            addr,
            prefix: v4_prefix(mask)?,
        }),
        IpAddr::V6(addr) => IpCidr::V6(Ipv6Cidr {
            addr,
            prefix: v6_prefix(mask)?,
        }),
    };
    let network = match dest {
        IpCidr::V4(c) => IpAddr::V4(c.network()),
        IpCidr::V6(c) => IpAddr::V6(c.network()),
    };
    if network != dest.addr() {
        return Err(RouteError::HostBits { dest, network });
    }
    if let Some(g) = gateway {
        if g.is_ipv6() != dest.is_v6() {
            return Err(RouteError::Family { gateway: g, dest });
        }
        if g.is_unspecified() || g.is_multicast() || g.is_loopback() {
            return Err(RouteError::Unusable(g));
        }
    }
    Ok(Route { dest, gateway })
}

/// An address that can be configured on a NIC.
fn check_host(ip: IpAddr, prefix: u8) -> Result<(), &'static str> {
    let broadcast = matches!(ip, IpAddr::V4(a) if a.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() || broadcast {
        return Err("is not a host address");
    }
    if prefix == 0 {
        return Err("has a prefix length of 0");
    }
    Ok(())
}

fn check_gateway(g: IpAddr, no_address: bool, is_own: bool) -> Result<(), &'static str> {
    if g.is_unspecified() || g.is_multicast() || g.is_loopback() {
        return Err("is not a usable gateway");
    }
    if no_address {
        return Err("is given, but the entry has no enabled address of that family");
    }
    if is_own {
        return Err("is one of the NIC's own addresses");
    }
    Ok(())
}

/// Adds `item` unless its address is already there with the same prefix;
/// the same address with another prefix is an error.
fn push_unique<T: Copy + PartialEq + std::fmt::Display, A: PartialEq>(
    list: &mut Vec<T>,
    item: T,
    addr: impl Fn(&T) -> A,
) -> Result<(), FieldError> {
    match list.iter().find(|x| addr(x) == addr(&item)) {
        Some(x) if *x == item => Ok(()),
        Some(x) => Err(FieldError::Repeated {
            item: item.to_string(),
            previous: x.to_string(),
        }),
        None => {
            list.push(item);
            Ok(())
        }
    }
}

/// Longest host name (RFC 1123 / RFC 1035 presentation form).
const HOSTNAME_MAX: usize = 253;
/// Longest label.
const LABEL_MAX: usize = 63;

/// Parses `vm-data/hostname`: trims whitespace (and a JSON-style pair of
/// quotes, and the root dot of an absolute name), then checks it is a host
/// name or FQDN: at most 253 characters, labels of 1..=63 letters, digits
/// and hyphens, not starting or ending with a hyphen.
pub fn parse_hostname(raw: &[u8]) -> Result<String, NetError> {
    let text = String::from_utf8_lossy(raw);
    let err = |detail: &str| NetError::Hostname {
        value: text.chars().take(80).collect(),
        detail: detail.to_string(),
    };
    if std::str::from_utf8(raw).is_err() {
        return Err(err("not UTF-8"));
    }
    let mut name = text.trim();
    if name.len() >= 2 && name.starts_with('"') && name.ends_with('"') {
        name = name[1..name.len() - 1].trim();
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(err("empty"));
    }
    if name.len() > HOSTNAME_MAX {
        return Err(err("longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(err("has an empty label"));
        }
        if label.len() > LABEL_MAX {
            return Err(err("has a label longer than 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(err("may only contain letters, digits, hyphens and dots"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(err("has a label that starts or ends with a hyphen"));
        }
    }
    Ok(name.to_string())
}
