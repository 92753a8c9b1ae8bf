//! `guest-network-get-interfaces`: every interface, `lo` included, with its
//! hardware address, its IP addresses and its counters.
//!
//! On the live root the interfaces and addresses come from getifaddrs(3),
//! in its order (links by index, then IPv4, then IPv6 addresses), and the
//! counters from `/proc/net/dev`. Addresses exist only in the running
//! kernel, so under any other root the list is the root's
//! `/proc/net/dev` names with `/sys/class/net/<name>/address`, and no
//! addresses. As qemu-ga does, an interface gets `statistics` only along
//! with an address, and `ip-addresses` only when it has one.

use crate::qga::{Args, Ctx, QgaError};
use crate::root::Root;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry of the interface walk.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// An interface's link, with its hardware address (empty: none).
    Link { name: String, hw: Vec<u8> },
    /// An address of an interface, with its prefix length.
    Addr { name: String, ip: IpAddr, prefix: u32 },
}

/// An interface's counters, as `/proc/net/dev` has them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stats {
    rx_bytes: u64,
    rx_packets: u64,
    rx_errs: u64,
    rx_dropped: u64,
    tx_bytes: u64,
    tx_packets: u64,
    tx_errs: u64,
    tx_dropped: u64,
}

/// Parses `/proc/net/dev`: the counters of each interface, by name, in the
/// file's order.
fn parse_net_dev(text: &str) -> Vec<(String, Stats)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let n: Vec<u64> = rest.split_whitespace().map_while(|f| f.parse().ok()).collect();
        if n.len() < 16 {
            continue;
        }
        out.push((
            name.trim().to_string(),
            Stats {
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errs: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errs: n[10],
                tx_dropped: n[11],
            },
        ));
    }
    out
}

fn hw_string(hw: &[u8]) -> String {
    hw.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The reply from the walk's entries and the counters: one object per
/// name, in the order names first appear.
fn shape(entries: &[Entry], stats: &BTreeMap<String, Stats>) -> Value {
    let mut out: Vec<Map<String, Value>> = Vec::new();
    let mut find = |name: &str| -> usize {
        match out.iter().position(|i| i["name"] == name) {
            Some(i) => i,
            None => {
                let mut m = Map::new();
                m.insert("name".into(), json!(name));
                out.push(m);
                out.len() - 1
            }
        }
    };
    let mut slots = Vec::with_capacity(entries.len());
    for e in entries {
        let name = match e {
            Entry::Link { name, .. } | Entry::Addr { name, .. } => name,
        };
        slots.push(find(name));
    }
    for (e, i) in entries.iter().zip(slots) {
        let iface = &mut out[i];
        match e {
            Entry::Link { hw, .. } => {
                if !hw.is_empty() {
                    iface.insert("hardware-address".into(), json!(hw_string(hw)));
                }
            }
            Entry::Addr { name, ip, prefix } => {
                let (kind, text) = match ip {
                    IpAddr::V4(a) => ("ipv4", a.to_string()),
                    IpAddr::V6(a) => ("ipv6", a.to_string()),
                };
                let list = iface.entry("ip-addresses").or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.push(json!({
                        "ip-address": text, "ip-address-type": kind, "prefix": prefix,
                    }));
                }
                if let (false, Some(s)) = (iface.contains_key("statistics"), stats.get(name)) {
                    iface.insert(
                        "statistics".into(),
                        json!({
                            "rx-bytes": s.rx_bytes, "rx-packets": s.rx_packets,
                            "rx-errs": s.rx_errs, "rx-dropped": s.rx_dropped,
                            "tx-bytes": s.tx_bytes, "tx-packets": s.tx_packets,
                            "tx-errs": s.tx_errs, "tx-dropped": s.tx_dropped,
                        }),
                    );
                }
            }
        }
    }
    Value::Array(out.into_iter().map(Value::Object).collect())
}

/// The walk of the live system, from getifaddrs(3).
fn walk_live() -> Result<Vec<Entry>, QgaError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid place for the list pointer.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(QgaError::generic(format!(
            "getifaddrs failed: {}",
            super::vcpus::strerror(&e)
        )));
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: getifaddrs gives every node a NUL-terminated name.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }.to_string_lossy().into_owned();
        // SAFETY: `ifa_addr` is non-null and starts with the family.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        match family {
            libc::AF_PACKET => {
                // SAFETY: an AF_PACKET address is a sockaddr_ll.
                let ll = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_ll>() };
                let len = usize::from(ll.sll_halen).min(ll.sll_addr.len());
                out.push(Entry::Link {
                    name,
                    hw: ll.sll_addr[..len].to_vec(),
                });
            }
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in, and so is its mask.
                let ip = unsafe { (*ifa.ifa_addr.cast::<libc::sockaddr_in>()).sin_addr.s_addr };
                let prefix = if ifa.ifa_netmask.is_null() {
                    0
                } else {
                    // SAFETY: as above, for the mask.
                    unsafe { (*ifa.ifa_netmask.cast::<libc::sockaddr_in>()).sin_addr.s_addr }.count_ones()
                };
                out.push(Entry::Addr {
                    name,
                    ip: IpAddr::V4(Ipv4Addr::from(ip.to_ne_bytes())),
                    prefix,
                });
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6, and so is its mask.
                let ip = unsafe { (*ifa.ifa_addr.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr };
                let prefix = if ifa.ifa_netmask.is_null() {
                    0
                } else {
                    // SAFETY: as above, for the mask.
                    let m = unsafe { (*ifa.ifa_netmask.cast::<libc::sockaddr_in6>()).sin6_addr };
                    m.s6_addr.iter().map(|b| b.count_ones()).sum()
                };
                out.push(Entry::Addr {
                    name,
                    ip: IpAddr::V6(Ipv6Addr::from(ip)),
                    prefix,
                });
            }
            _ => {}
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once, after the walk.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Parses `aa:bb:cc:…` (sysfs' `address`).
fn parse_hw(text: &str) -> Vec<u8> {
    let parts: Option<Vec<u8>> = text.trim().split(':').map(|h| u8::from_str_radix(h, 16).ok()).collect();
    parts.unwrap_or_default()
}

/// The walk under a root that is not the live system: links only.
fn walk_root(root: &Root, net_dev: &[(String, Stats)]) -> Vec<Entry> {
    net_dev
        .iter()
        .map(|(name, _)| Entry::Link {
            name: name.clone(),
            hw: root
                .join(&format!("/sys/class/net/{name}/address"))
                .ok()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| parse_hw(&t))
                .unwrap_or_default(),
        })
        .collect()
}

/// `guest-network-get-interfaces`: `[{name, hardware-address?,
/// ip-addresses?: [{ip-address, ip-address-type, prefix}], statistics?}]`.
pub fn network_get_interfaces(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    let net_dev = ctx
        .root
        .join("/proc/net/dev")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| parse_net_dev(&t))
        .unwrap_or_default();
    let entries = if ctx.root.is_live() {
        walk_live()?
    } else {
        walk_root(ctx.root, &net_dev)
    };
    Ok(shape(&entries, &net_dev.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::super::clock::with_ctx;
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    6438      59    0    0    0     0          0         0     6438      59    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 367739360   14193    1    2    0     0          0         0   826292   10135    3    4    0     0       0          0
";

    fn link(name: &str, hw: &[u8]) -> Entry {
        Entry::Link {
            name: name.into(),
            hw: hw.to_vec(),
        }
    }

    fn addr(name: &str, ip: &str, prefix: u32) -> Entry {
        Entry::Addr {
            name: name.into(),
            ip: ip.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn counters_from_proc_net_dev() {
        let s = parse_net_dev(NET_DEV);
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].0, "eth0");
        let eth0 = s[2].1;
        assert_eq!(
            (eth0.rx_bytes, eth0.rx_packets, eth0.rx_errs, eth0.rx_dropped),
            (367739360, 14193, 1, 2)
        );
        assert_eq!(
            (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errs, eth0.tx_dropped),
            (826292, 10135, 3, 4)
        );
    }

    #[test]
    fn shaped_as_qemu_ga_answers_on_this_kind_of_machine() {
        let entries = [
            link("lo", &[0; 6]),
            link("ifb0", &[0x22, 0x79, 0xb6, 0xde, 0xf9, 0xb2]),
            link("eth0", &[0x02, 0xfc, 0, 0, 0, 1]),
            link("wg0", &[]),
            addr("lo", "127.0.0.1", 8),
            addr("eth0", "192.0.2.2", 24),
            addr("lo", "::1", 128),
            addr("eth0", "fd00::2", 64),
            addr("eth0", "fe80::fc:ff:fe00:1", 64),
            addr("wg0", "10.9.0.1", 32),
        ];
        let stats = parse_net_dev(NET_DEV).into_iter().collect();
        let got = shape(&entries, &stats);
        assert_eq!(
            got,
            json!([
                {
                    "name": "lo", "hardware-address": "00:00:00:00:00:00",
                    "ip-addresses": [
                        {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                        {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
                    ],
                    "statistics": {
                        "rx-bytes": 6438, "rx-packets": 59, "rx-errs": 0, "rx-dropped": 0,
                        "tx-bytes": 6438, "tx-packets": 59, "tx-errs": 0, "tx-dropped": 0,
                    },
                },
                // No address: no ip-addresses and no statistics, as qemu-ga.
                {"name": "ifb0", "hardware-address": "22:79:b6:de:f9:b2"},
                {
                    "name": "eth0", "hardware-address": "02:fc:00:00:00:01",
                    "ip-addresses": [
                        {"ip-address": "192.0.2.2", "ip-address-type": "ipv4", "prefix": 24},
                        {"ip-address": "fd00::2", "ip-address-type": "ipv6", "prefix": 64},
                        {"ip-address": "fe80::fc:ff:fe00:1", "ip-address-type": "ipv6", "prefix": 64},
                    ],
                    "statistics": {
                        "rx-bytes": 367739360, "rx-packets": 14193, "rx-errs": 1, "rx-dropped": 2,
                        "tx-bytes": 826292, "tx-packets": 10135, "tx-errs": 3, "tx-dropped": 4,
                    },
                },
                // No hardware address, no counters (not in the fixture).
                {
                    "name": "wg0",
                    "ip-addresses": [{"ip-address": "10.9.0.1", "ip-address-type": "ipv4", "prefix": 32}],
                },
            ])
        );
    }

    #[test]
    fn under_a_test_root_the_links_of_its_files_without_addresses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/net")).unwrap();
        std::fs::write(dir.path().join("proc/net/dev"), NET_DEV).unwrap();
        std::fs::create_dir_all(dir.path().join("sys/class/net/eth0")).unwrap();
        std::fs::write(dir.path().join("sys/class/net/eth0/address"), "02:fc:00:00:00:01\n").unwrap();
        let root = Root::new(dir.path());
        let got = with_ctx(&root, |ctx| network_get_interfaces(ctx, &Args::new())).unwrap();
        assert_eq!(
            got,
            json!([
                {"name": "lo"},
                {"name": "ifb0"},
                {"name": "eth0", "hardware-address": "02:fc:00:00:00:01"},
            ])
        );
        let empty = tempfile::tempdir().unwrap();
        let root = Root::new(empty.path());
        let got = with_ctx(&root, |ctx| network_get_interfaces(ctx, &Args::new()));
        assert_eq!(got, Ok(json!([])));
    }

    #[test]
    fn the_live_loopback() {
        let got = with_ctx(&Root::new("/"), |ctx| network_get_interfaces(ctx, &Args::new())).unwrap();
        let lo = got.as_array().unwrap().iter().find(|i| i["name"] == "lo").expect("lo");
        assert_eq!(lo["hardware-address"], "00:00:00:00:00:00");
        let v4 = json!({"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8});
        assert!(lo["ip-addresses"].as_array().unwrap().contains(&v4), "{lo}");
        assert!(lo["statistics"]["rx-bytes"].is_u64());
    }
}
