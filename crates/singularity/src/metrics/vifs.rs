//! Which interface addresses belong to which Xen vif, and the stable index
//! each address keeps under `attr/vif/<devid>/ipv{4,6}/<n>`.
//!
//! An interface belongs to vif `<devid>` when its `device/nodename` in sysfs
//! is `device/vif/<devid>`, or, without one, when its MAC is the one in
//! XenStore's `device/vif/<devid>/mac` (so a bridge, bond or VLAN carrying the
//! vif's MAC reports its addresses for it too). Interface names are never
//! looked at. No I/O in [`assign`] and [`Slots`].

use super::netlink::IfAddr;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::path::Path;

/// At most this many addresses per family and vif are published: the
/// domain's XenStore quota is shared with everything else.
pub const MAX_PER_FAMILY: usize = 32;

/// One network interface as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub index: u32,
    /// Lower-case `aa:bb:…`.
    pub mac: String,
    /// The vif it is, from `device/nodename` (`device/vif/<devid>`).
    pub nodename_vif: Option<u32>,
    /// Whether `device/nodename` exists (then the MAC is not used).
    pub has_nodename: bool,
}

/// The interfaces under `sysfs/class/net` (`/sys` in production).
pub fn nics(sysfs: &Path) -> Vec<Nic> {
    let Ok(entries) = fs::read_dir(sysfs.join("class/net")) else {
        return Vec::new();
    };
    let read = |p: &Path| fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(index) = read(&dir.join("ifindex")).and_then(|s| s.parse().ok()) else {
            continue;
        };
        let mac = read(&dir.join("address")).unwrap_or_default().to_ascii_lowercase();
        let nodename = read(&dir.join("device/nodename"));
        out.push(Nic {
            index,
            mac,
            nodename_vif: nodename.as_deref().and_then(vif_of_nodename),
            has_nodename: nodename.is_some(),
        });
    }
    out
}

/// `device/vif/<devid>` (possibly absolute) → `<devid>`.
fn vif_of_nodename(nodename: &str) -> Option<u32> {
    let (_, rest) = nodename.rsplit_once("device/vif/")?;
    rest.parse().ok()
}

/// The addresses of each vif: `vif_macs` is `(devid, mac)` from XenStore.
pub fn assign(vif_macs: &[(u32, String)], nics: &[Nic], addrs: &[IfAddr]) -> BTreeMap<u32, BTreeSet<IpAddr>> {
    let mut of_index: BTreeMap<u32, u32> = BTreeMap::new();
    for nic in nics {
        let devid = if nic.has_nodename {
            nic.nodename_vif
        } else {
            vif_macs
                .iter()
                .find(|(_, mac)| !nic.mac.is_empty() && mac.trim().eq_ignore_ascii_case(&nic.mac))
                .map(|(d, _)| *d)
        };
        if let Some(d) = devid.filter(|d| vif_macs.iter().any(|(v, _)| v == d)) {
            of_index.insert(nic.index, d);
        }
    }
    let mut out: BTreeMap<u32, BTreeSet<IpAddr>> = vif_macs.iter().map(|(d, _)| (*d, BTreeSet::new())).collect();
    for a in addrs {
        if let Some(d) = of_index.get(&a.index) {
            out.entry(*d).or_default().insert(a.addr);
        }
    }
    out
}

/// The family directory name of an address.
pub fn family(addr: &IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "ipv4",
        IpAddr::V6(_) => "ipv6",
    }
}

/// Stable indices: an address keeps its index while it exists; a new one
/// takes the lowest free index of its vif and family.
#[derive(Debug, Default)]
pub struct Slots {
    slots: BTreeMap<(u32, &'static str), Vec<Option<IpAddr>>>,
}

impl Slots {
    /// Takes the current addresses of every vif; returns
    /// `(devid, family, index)` → address text.
    pub fn update(
        &mut self,
        current: &BTreeMap<u32, BTreeSet<IpAddr>>,
    ) -> BTreeMap<(u32, &'static str, usize), String> {
        for ((devid, _), slots) in self.slots.iter_mut() {
            let now = current.get(devid);
            for slot in slots.iter_mut() {
                if slot.is_some_and(|a| !now.is_some_and(|set| set.contains(&a))) {
                    *slot = None;
                }
            }
        }
        for (devid, set) in current {
            for addr in set {
                let slots = self.slots.entry((*devid, family(addr))).or_default();
                if slots.contains(&Some(*addr)) {
                    continue;
                }
                if let Some(free) = slots.iter_mut().find(|s| s.is_none()) {
                    *free = Some(*addr);
                } else if slots.len() < MAX_PER_FAMILY {
                    slots.push(Some(*addr));
                }
            }
        }
        let mut out = BTreeMap::new();
        self.slots.retain(|_, slots| {
            while slots.last() == Some(&None) {
                slots.pop();
            }
            !slots.is_empty()
        });
        for ((devid, fam), slots) in &self.slots {
            for (n, slot) in slots.iter().enumerate() {
                if let Some(a) = slot {
                    out.insert((*devid, *fam, n), a.to_string());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn addresses_keep_their_index_and_gaps_are_reused() {
        let mut slots = Slots::default();
        let first = slots.update(&BTreeMap::from([(0, set(&["10.0.0.2", "10.0.0.1", "fe80::1"]))]));
        assert_eq!(first.len(), 3);
        let idx = |m: &BTreeMap<(u32, &str, usize), String>, a: &str| {
            m.iter().find(|(_, v)| v.as_str() == a).map(|(k, _)| k.2)
        };
        let one = idx(&first, "10.0.0.1").unwrap();
        let two = idx(&first, "10.0.0.2").unwrap();
        // 10.0.0.1 goes: 10.0.0.2 keeps its index; a new address takes the gap.
        let second = slots.update(&BTreeMap::from([(0, set(&["10.0.0.2", "fe80::1"]))]));
        assert_eq!(idx(&second, "10.0.0.2"), Some(two));
        assert_eq!(idx(&second, "10.0.0.1"), None);
        let third = slots.update(&BTreeMap::from([(0, set(&["10.0.0.2", "10.0.0.3", "fe80::1"]))]));
        assert_eq!(idx(&third, "10.0.0.3"), Some(one));
        assert_eq!(idx(&third, "fe80::1"), Some(0));
        assert!(slots.update(&BTreeMap::new()).is_empty());
        let many: Vec<String> = (0..40).map(|i| format!("10.1.0.{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(slots.update(&BTreeMap::from([(1, set(&many))])).len(), MAX_PER_FAMILY);
    }

    #[test]
    fn nics_match_by_nodename_then_mac_never_by_name() {
        let nic = |index, mac: &str, nodename: Option<&str>| Nic {
            index,
            mac: mac.into(),
            nodename_vif: nodename.and_then(vif_of_nodename),
            has_nodename: nodename.is_some(),
        };
        let nics = [
            nic(2, "00:16:3e:00:00:01", Some("device/vif/1")),
            nic(3, "00:16:3e:00:00:00", None),
            nic(4, "02:00:00:00:00:09", None),
            // Another Xen device: its nodename wins over a matching MAC.
            nic(5, "00:16:3e:00:00:00", Some("device/vbd/51712")),
        ];
        let vifs = [
            (0, "00:16:3E:00:00:00".to_string()),
            (1, "ff:ff:ff:ff:ff:ff".to_string()),
        ];
        let addrs: Vec<IfAddr> = [(2, "10.0.1.5"), (3, "10.0.0.5"), (4, "192.168.9.9"), (5, "10.9.9.9")]
            .iter()
            .map(|(i, a)| IfAddr {
                index: *i,
                addr: a.parse().unwrap(),
            })
            .collect();
        let got = assign(&vifs, &nics, &addrs);
        assert_eq!(got[&0], set(&["10.0.0.5"]));
        assert_eq!(got[&1], set(&["10.0.1.5"]));
        assert_eq!(vif_of_nodename("/local/domain/3/device/vif/12"), Some(12));
    }
}
