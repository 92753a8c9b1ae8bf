//! `guest-get-fsinfo` and `guest-get-disks`: the mounted filesystems and
//! the block devices, with the controller each disk hangs off, as qemu-ga
//! finds them in sysfs.
//!
//! Everything is read under the root (`/proc/self/mountinfo`, `/sys`);
//! statvfs(2) (used and total bytes) is asked only on the live root. The
//! parsers (mountinfo, a sysfs device path to a disk address) are pure.

use super::vcpus::strerror;
use crate::qga::{Args, Ctx, QgaError};
use crate::root::Root;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Mount {
    pub(super) major: u32,
    pub(super) minor: u32,
    pub(super) mountpoint: String,
    pub(super) fstype: String,
    pub(super) source: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts listed in the mountinfo file at `path`, in mount order.
pub(super) fn mounts(path: &Path) -> std::io::Result<Vec<Mount>> {
    std::fs::read_to_string(path).map(|text| parse_mountinfo(&text))
}

/// Parses `/proc/self/mountinfo`; malformed lines are skipped.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (major, minor) = fields.get(2)?.split_once(':')?;
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(Mount {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                mountpoint: unescape(fields.get(4)?),
                fstype: unescape(fields.get(sep + 1)?),
                source: unescape(fields.get(sep + 2)?),
            })
        })
        .collect()
}

/// A PCI address: domain, bus, slot, function (-1 each: none, as qemu-ga).
type Pci = [i64; 4];

/// Where a disk is: its controller and its place on it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Address {
    pci: Pci,
    bus_type: &'static str,
    bus: i64,
    target: i64,
    unit: i64,
}

/// The controller drivers qemu-ga recognises, and the bus each one means
/// (`virtio-pci` is either virtio-blk or virtio-scsi: decided by the path).
const CONTROLLERS: [(&str, &str); 7] = [
    ("ata_piix", "ide"),
    ("sym53c8xx", "scsi"),
    ("virtio-pci", "virtio"),
    ("ahci", "sata"),
    ("nvme", "nvme"),
    ("xhci_hcd", "usb"),
    ("ehci-pci", "usb"),
];

/// `dddd:bb:ss.f` as numbers.
fn pci_of(s: &str) -> Option<Pci> {
    let (domain, rest) = s.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (slot, function) = rest.split_once('.')?;
    let hex = |h: &str| i64::from_str_radix(h, 16).ok().filter(|_| !h.is_empty());
    Some([hex(domain)?, hex(bus)?, hex(slot)?, hex(function)?])
}

/// The numbers of the path's SCSI device component `h:c:t:l`.
fn scsi_of(path: &str) -> Option<[i64; 4]> {
    path.split('/').rev().find_map(|part| {
        let n: Vec<i64> = part.split(':').map_while(|x| x.parse().ok()).collect();
        (n.len() == 4 && part.split(':').count() == 4).then(|| [n[0], n[1], n[2], n[3]])
    })
}

/// The number of the path's `host<N>` component.
fn host_of(path: &str) -> Option<u32> {
    path.split('/')
        .find_map(|p| p.strip_prefix("host").and_then(|n| n.parse().ok()))
}

/// Where the device at `syspath` (a canonical `/sys/devices/…` path) is.
/// `driver` names the driver bound to a device directory; `hosts` lists
/// the SCSI host numbers under a controller's directory, in order.
fn address_of(syspath: &str, driver: &dyn Fn(&str) -> Option<String>, hosts: &dyn Fn(&str) -> Vec<u32>) -> Address {
    let none = Address {
        pci: [-1; 4],
        bus_type: "unknown",
        bus: 0,
        target: 0,
        unit: 0,
    };
    let Some(at) = syspath.find("/devices/pci") else {
        if syspath.contains("/virtio") {
            return Address {
                bus_type: "virtio",
                ..none
            };
        }
        return none;
    };
    // Past the root bus (`pcidddd:bb`), each PCI component in turn: the
    // first bound to a known controller driver is the controller.
    let tail = &syspath[at + "/devices/".len()..];
    let Some(first) = tail.find('/') else {
        return none;
    };
    let mut comp_start = at + "/devices/".len() + first + 1;
    let (pci, dir, kind) = loop {
        let comp_end = syspath[comp_start..]
            .find('/')
            .map_or(syspath.len(), |i| comp_start + i);
        let Some(pci) = pci_of(&syspath[comp_start..comp_end]) else {
            return none;
        };
        let dir = &syspath[..comp_end];
        let known = driver(dir).and_then(|d| CONTROLLERS.iter().find(|(name, _)| *name == d).map(|(n, _)| *n));
        if let Some(name) = known {
            break (pci, dir, name);
        }
        if comp_end >= syspath.len() {
            return none;
        }
        comp_start = comp_end + 1;
    };
    let rest = &syspath[dir.len()..];
    let scsi = scsi_of(rest);
    let index_of_host = || {
        let h = host_of(rest)?;
        hosts(dir).iter().position(|&x| x == h).map(|i| i as i64)
    };
    let found = |bus_type, bus, target, unit| Address {
        pci,
        bus_type,
        bus,
        target,
        unit,
    };
    match kind {
        "virtio-pci" => match scsi {
            Some([_, c, t, l]) if rest.contains("/target") => found("scsi", c, t, l),
            _ if rest.contains("/block/") => found("virtio", 0, 0, 0),
            _ => none,
        },
        "sym53c8xx" => match scsi {
            Some([_, c, t, l]) => found("scsi", c, t, l),
            None => none,
        },
        "ata_piix" => match (index_of_host(), scsi) {
            (Some(bus), Some([_, _, t, _])) => found("ide", bus, 0, t),
            _ => none,
        },
        "ahci" => match index_of_host() {
            Some(unit) => found("sata", 0, 0, unit),
            None => none,
        },
        "nvme" => found("nvme", 0, 0, 0),
        _ => found("usb", 0, 0, 0),
    }
}

/// The JSON of a disk address, with its device node and serial number.
fn address_json(a: &Address, dev: Option<&str>, serial: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert(
        "pci-controller".into(),
        json!({"domain": a.pci[0], "bus": a.pci[1], "slot": a.pci[2], "function": a.pci[3]}),
    );
    m.insert("bus-type".into(), json!(a.bus_type));
    m.insert("bus".into(), json!(a.bus));
    m.insert("target".into(), json!(a.target));
    m.insert("unit".into(), json!(a.unit));
    if let Some(s) = serial {
        m.insert("serial".into(), json!(s));
    }
    if let Some(d) = dev {
        m.insert("dev".into(), json!(d));
    }
    Value::Object(m)
}

/// sysfs under a root: canonical device paths are system paths
/// (`/sys/devices/…`) whatever the root.
struct Sysfs<'a> {
    root: &'a Root,
    base: PathBuf,
}

impl<'a> Sysfs<'a> {
    fn new(root: &'a Root) -> Sysfs<'a> {
        let base = std::fs::canonicalize(root.base()).unwrap_or_else(|_| root.base().into());
        Sysfs { root, base }
    }

    fn path(&self, sys: &str) -> Option<PathBuf> {
        self.root.join(sys).ok()
    }

    /// The system path `sys` leads to once links are followed.
    fn canonical(&self, sys: &str) -> Option<String> {
        let real = std::fs::canonicalize(self.path(sys)?).ok()?;
        let inside = real.strip_prefix(&self.base).ok()?;
        Some(format!("/{}", inside.to_string_lossy()))
    }

    fn read(&self, sys: &str) -> Option<String> {
        std::fs::read_to_string(self.path(sys)?)
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn names(&self, sys: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .path(sys)
            .and_then(|p| std::fs::read_dir(p).ok())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    fn exists(&self, sys: &str) -> bool {
        self.path(sys).is_some_and(|p| p.exists())
    }

    fn driver(&self, dir: &str) -> Option<String> {
        let link = std::fs::read_link(self.path(&format!("{dir}/driver"))?).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// The SCSI host numbers under a controller (`ata*/host*`, `host*`).
    fn hosts(&self, dir: &str) -> Vec<u32> {
        let mut hosts: Vec<u32> = Vec::new();
        for name in self.names(dir) {
            if name.starts_with("ata") {
                let sub = format!("{dir}/{name}");
                hosts.extend(self.names(&sub).iter().filter_map(|n| host_of(n)));
            } else if let Some(h) = host_of(&name) {
                hosts.push(h);
            }
        }
        hosts.sort_unstable();
        hosts
    }

    /// The device node of the device at `syspath` (`DEVNAME` of its uevent).
    fn dev(&self, syspath: &str) -> Option<String> {
        let uevent = self.read(&format!("{syspath}/uevent"))?;
        let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
        Some(format!("/dev/{name}"))
    }

    /// The serial number of a virtio disk (the partition's disk's, for a
    /// partition).
    fn serial(&self, syspath: &str) -> Option<String> {
        let disk = if self.exists(&format!("{syspath}/partition")) {
            syspath.rsplit_once('/')?.0
        } else {
            syspath
        };
        self.read(&format!("{disk}/serial")).filter(|s| !s.is_empty())
    }

    fn address(&self, syspath: &str) -> Address {
        address_of(syspath, &|d| self.driver(d), &|d| self.hosts(d))
    }

    /// The disks under the device at `syspath`: itself, or what it is made
    /// of (a device mapper or md device's `slaves`), recursively.
    fn disks(&self, syspath: &str, out: &mut Vec<Value>, depth: u32) {
        let slaves = self.names(&format!("{syspath}/slaves"));
        if slaves.is_empty() || depth > 8 {
            let dev = self.dev(syspath);
            let serial = self.serial(syspath);
            out.push(address_json(&self.address(syspath), dev.as_deref(), serial.as_deref()));
            return;
        }
        for s in slaves {
            if let Some(p) = self.canonical(&format!("{syspath}/slaves/{s}")) {
                self.disks(&p, out, depth + 1);
            }
        }
    }
}

/// The block device of a mount, as `major:minor`: its own, or for btrfs
/// (whose mounts have major 0) its source device's.
fn device_of(root: &Root, m: &Mount) -> Option<(u32, u32)> {
    if m.major != 0 {
        return Some((m.major, m.minor));
    }
    if m.fstype != "btrfs" {
        return None;
    }
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(root.join(&m.source).ok()?).ok()?;
    let rdev = meta.rdev();
    meta.file_type()
        .is_block_device()
        .then(|| (rustix::fs::major(rdev), rustix::fs::minor(rdev)))
}

/// Used and total bytes of the filesystem at `path` (total as an ordinary
/// user sees it: the root-reserved blocks left out, as df and qemu-ga do).
fn usage(path: &Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(path).ok()?;
    let used = s.f_blocks.saturating_sub(s.f_bfree);
    let frsize = s.f_frsize;
    Some((used * frsize, (used + s.f_bavail) * frsize))
}

/// `guest-get-fsinfo`: `[{name, mountpoint, type, used-bytes?,
/// total-bytes?, disk: [...]}]` for every mount of a block device, the last
/// mounted first (qemu-ga's order).
pub fn fsinfo(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    let root = ctx.root;
    let path = root
        .join("/proc/self/mountinfo")
        .map_err(|e| QgaError::generic(e.to_string()))?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| QgaError::generic(format!("failed to open /proc/self/mountinfo: {}", strerror(&e))))?;
    let sys = Sysfs::new(root);
    let mut out = Vec::new();
    for m in parse_mountinfo(&text).iter().rev() {
        let Some((major, minor)) = device_of(root, m) else {
            continue;
        };
        let Some(syspath) = sys.canonical(&format!("/sys/dev/block/{major}:{minor}")) else {
            continue;
        };
        let name = syspath.rsplit('/').next().unwrap_or_default().to_string();
        let mut fs = Map::new();
        fs.insert("name".into(), json!(name));
        fs.insert("mountpoint".into(), json!(m.mountpoint));
        fs.insert("type".into(), json!(m.fstype));
        if root.is_live() {
            if let Some((used, total)) = usage(Path::new(&m.mountpoint)) {
                fs.insert("used-bytes".into(), json!(used));
                fs.insert("total-bytes".into(), json!(total));
            }
        }
        let mut disks = Vec::new();
        sys.disks(&syspath, &mut disks, 0);
        fs.insert("disk".into(), Value::Array(disks));
        out.push(Value::Object(fs));
    }
    Ok(Value::Array(out))
}

/// `guest-get-disks`: `[{name, partition, dependencies, address?, alias?}]`
/// for every block device of non-zero size, each followed by its
/// partitions.
pub fn disks(ctx: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    let sys = Sysfs::new(ctx.root);
    let mut out = Vec::new();
    for name in sys.names("/sys/block") {
        let dir = format!("/sys/block/{name}");
        if sys.read(&format!("{dir}/size")).is_none_or(|s| s == "0") {
            continue;
        }
        let Some(syspath) = sys.canonical(&dir) else {
            continue;
        };
        let dev = sys.dev(&syspath).unwrap_or_else(|| format!("/dev/{name}"));
        let deps: Vec<String> = sys
            .names(&format!("{syspath}/slaves"))
            .iter()
            .map(|s| format!("/dev/{s}"))
            .collect();
        let mut disk = Map::new();
        disk.insert("name".into(), json!(dev));
        disk.insert("partition".into(), json!(false));
        disk.insert("dependencies".into(), json!(deps));
        if !syspath.starts_with("/sys/devices/virtual/") {
            let serial = sys.serial(&syspath);
            let address = sys.address(&syspath);
            disk.insert("address".into(), address_json(&address, Some(&dev), serial.as_deref()));
        }
        if let Some(alias) = sys.read(&format!("{syspath}/dm/name")).filter(|a| !a.is_empty()) {
            disk.insert("alias".into(), json!(alias));
        }
        out.push(Value::Object(disk));
        for part in sys.names(&syspath) {
            let p = format!("{syspath}/{part}");
            if !part.starts_with(name.as_str()) || !sys.exists(&format!("{p}/partition")) {
                continue;
            }
            let pdev = sys.dev(&p).unwrap_or_else(|| format!("/dev/{part}"));
            out.push(json!({"name": pdev, "partition": true, "dependencies": [dev]}));
        }
    }
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::super::clock::with_ctx;
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
28 27 254:1 / /boot rw,relatime shared:2 - vfat /dev/vda1 rw
29 27 253:0 / /srv/my\\040data rw,relatime shared:1 master:3 - xfs /dev/mapper/vg-root rw
bad line
";

    #[test]
    fn mountinfo_with_optional_fields_and_escapes() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[3],
            Mount {
                major: 253,
                minor: 0,
                mountpoint: "/srv/my data".into(),
                fstype: "xfs".into(),
                source: "/dev/mapper/vg-root".into(),
            }
        );
        assert_eq!((m[0].major, m[0].fstype.as_str()), (0, "proc"));
        assert_eq!(unescape("a\\011b\\134\\12"), "a\tb\\\\12");
    }

    /// The address of `path` with these drivers (by PCI address) and hosts.
    fn addr(path: &str, drivers: &[(&str, &str)], hosts: &[u32]) -> Address {
        let driver = |dir: &str| {
            let last = dir.rsplit('/').next().unwrap_or_default();
            drivers.iter().find(|(a, _)| *a == last).map(|(_, d)| d.to_string())
        };
        address_of(path, &driver, &|_| hosts.to_vec())
    }

    fn at(pci: Pci, bus_type: &'static str, bus: i64, target: i64, unit: i64) -> Address {
        Address {
            pci,
            bus_type,
            bus,
            target,
            unit,
        }
    }

    #[test]
    fn virtio_disks_on_pci_behind_bridges_and_on_mmio() {
        let virtio = [("0000:00:02.0", "virtio-pci")];
        let p = "/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda";
        assert_eq!(addr(p, &virtio, &[]), at([0, 0, 2, 0], "virtio", 0, 0, 0));
        let bridged = [("0000:00:1c.0", "pcieport"), ("0000:01:00.0", "virtio-pci")];
        let p = "/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio3/block/vdb/vdb1";
        assert_eq!(addr(p, &bridged, &[]), at([0, 1, 0, 0], "virtio", 0, 0, 0));
        let p = "/sys/devices/platform/a003e00.virtio_mmio/virtio0/block/vda";
        assert_eq!(addr(p, &[], &[]), at([-1; 4], "virtio", 0, 0, 0));
    }

    #[test]
    fn scsi_ide_sata_and_nvme_controllers() {
        let p = "/sys/devices/pci0001:00/0001:00:05.0/virtio2/host2/target2:0:1/2:0:1:3/block/sda";
        let got = addr(p, &[("0001:00:05.0", "virtio-pci")], &[]);
        assert_eq!(got, at([1, 0, 5, 0], "scsi", 0, 1, 3));
        let p = "/sys/devices/pci0000:00/0000:00:07.0/host0/target0:0:2/0:0:2:0/block/sdb";
        let got = addr(p, &[("0000:00:07.0", "sym53c8xx")], &[]);
        assert_eq!(got, at([0, 0, 7, 0], "scsi", 0, 2, 0));
        let p = "/sys/devices/pci0000:00/0000:00:01.1/ata2/host3/target3:0:1/3:0:1:0/block/sdc";
        let got = addr(p, &[("0000:00:01.1", "ata_piix")], &[2, 3]);
        assert_eq!(got, at([0, 0, 1, 1], "ide", 1, 0, 1), "second channel, slave");
        let p = "/sys/devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdd";
        let got = addr(p, &[("0000:00:1f.2", "ahci")], &[0, 1, 2, 3, 4, 5]);
        assert_eq!(got, at([0, 0, 0x1f, 2], "sata", 0, 0, 2));
        let p = "/sys/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";
        let got = addr(p, &[("0000:00:04.0", "nvme")], &[]);
        assert_eq!(got, at([0, 0, 4, 0], "nvme", 0, 0, 0));
    }

    #[test]
    fn what_is_not_recognised_has_no_controller() {
        let none = at([-1; 4], "unknown", 0, 0, 0);
        assert_eq!(addr("/sys/devices/virtual/block/zram0", &[], &[]), none);
        let p = "/sys/devices/pci0000:00/0000:00:10.0/host0/target0:0:0/0:0:0:0/block/sda";
        assert_eq!(addr(p, &[("0000:00:10.0", "mptspi")], &[]), none);
        assert_eq!(addr("/sys/devices/pci0000:00", &[], &[]), none);
    }

    /// A fake root: vda (virtio, PCI 00:02.0) with partitions vda1 and
    /// vda2, dm-0 made of vda2, an empty loop0, and the mounts above.
    fn fake_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let write = |p: &str, text: &str| {
            let p = r.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        let link = |p: &str, target: &str| {
            let p = r.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
        };
        write("proc/self/mountinfo", MOUNTINFO);
        let pci = "sys/devices/pci0000:00/0000:00:02.0";
        link(&format!("{pci}/driver"), "../../../bus/pci/drivers/virtio-pci");
        let vda = format!("{pci}/virtio1/block/vda");
        write(
            &format!("{vda}/uevent"),
            "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
        );
        write(&format!("{vda}/size"), "536870912\n");
        write(&format!("{vda}/serial"), "SN-1");
        fs::create_dir_all(r.join(&vda).join("slaves")).unwrap();
        for n in 1..=2 {
            write(&format!("{vda}/vda{n}/uevent"), &format!("DEVNAME=vda{n}\n"));
            write(&format!("{vda}/vda{n}/partition"), &format!("{n}\n"));
            link(
                &format!("sys/dev/block/254:{n}"),
                &format!("../../{}/vda{n}", &vda[4..]),
            );
        }
        link("sys/dev/block/254:0", &format!("../../{}", &vda[4..]));
        let dm = "sys/devices/virtual/block/dm-0";
        write(&format!("{dm}/uevent"), "DEVNAME=dm-0\n");
        write(&format!("{dm}/size"), "1000\n");
        write(&format!("{dm}/dm/name"), "vg-root\n");
        link(
            &format!("{dm}/slaves/vda2"),
            &format!("../../../../{}/vda2", &vda[12..]),
        );
        link("sys/dev/block/253:0", "../../devices/virtual/block/dm-0");
        write("sys/devices/virtual/block/loop0/size", "0\n");
        link("sys/block/vda", &format!("../{}", &vda[4..]));
        link("sys/block/dm-0", "../devices/virtual/block/dm-0");
        link("sys/block/loop0", "../devices/virtual/block/loop0");
        dir
    }

    fn virtio_at(dev: &str) -> Value {
        json!({
            "pci-controller": {"domain": 0, "bus": 0, "slot": 2, "function": 0},
            "bus-type": "virtio", "bus": 0, "target": 0, "unit": 0,
            "serial": "SN-1", "dev": dev,
        })
    }

    #[test]
    fn fsinfo_of_a_fake_root_last_mount_first_through_device_mapper() {
        let dir = fake_root();
        let got = with_ctx(&Root::new(dir.path()), |ctx| fsinfo(ctx, &Args::new())).unwrap();
        assert_eq!(
            got,
            json!([
                {"name": "dm-0", "mountpoint": "/srv/my data", "type": "xfs",
                 "disk": [virtio_at("/dev/vda2")]},
                {"name": "vda1", "mountpoint": "/boot", "type": "vfat",
                 "disk": [virtio_at("/dev/vda1")]},
                {"name": "vda", "mountpoint": "/", "type": "ext4",
                 "disk": [virtio_at("/dev/vda")]},
            ])
        );
    }

    #[test]
    fn disks_of_a_fake_root_with_partitions_and_an_alias() {
        let dir = fake_root();
        let got = with_ctx(&Root::new(dir.path()), |ctx| disks(ctx, &Args::new())).unwrap();
        assert_eq!(
            got,
            json!([
                {"name": "/dev/dm-0", "partition": false, "dependencies": ["/dev/vda2"],
                 "alias": "vg-root"},
                {"name": "/dev/vda", "partition": false, "dependencies": [],
                 "address": virtio_at("/dev/vda")},
                {"name": "/dev/vda1", "partition": true, "dependencies": ["/dev/vda"]},
                {"name": "/dev/vda2", "partition": true, "dependencies": ["/dev/vda"]},
            ])
        );
    }

    #[test]
    fn an_empty_root_has_no_disks_and_no_mountinfo() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert_eq!(with_ctx(&root, |ctx| disks(ctx, &Args::new())), Ok(json!([])));
        assert!(with_ctx(&root, |ctx| fsinfo(ctx, &Args::new())).is_err());
    }

    /// Every member libvirt requires, of the types it requires.
    #[test]
    fn the_live_system_answers_what_libvirt_requires() {
        let root = Root::new("/");
        let fs = with_ctx(&root, |ctx| fsinfo(ctx, &Args::new())).unwrap();
        for f in fs.as_array().unwrap() {
            for k in ["name", "mountpoint", "type"] {
                assert!(f[k].is_string(), "{f}");
            }
            assert!(f["used-bytes"].is_u64() && f["total-bytes"].is_u64(), "{f}");
            for d in f["disk"].as_array().unwrap() {
                for k in ["bus", "target", "unit"] {
                    assert!(d[k].is_i64(), "{d}");
                }
                assert!(d["bus-type"].is_string(), "{d}");
                for k in ["domain", "bus", "slot", "function"] {
                    assert!(d["pci-controller"][k].is_i64(), "{d}");
                }
            }
        }
        let disks = with_ctx(&root, |ctx| disks(ctx, &Args::new())).unwrap();
        for d in disks.as_array().unwrap() {
            assert!(d["name"].is_string() && d["partition"].is_boolean(), "{d}");
        }
    }
}
