//! [`super::plan`] against small temporary roots: errors name their entries
//! and plan nothing, only enabled functions are planned, only changed NICs
//! are brought up, and the renderer is detected from what is installed.

use super::{detect, plan, NetError, NetworkRequest, Renderer};
use crate::functions::Functions;
use crate::plan::Step;
use crate::root::Root;
use std::fs;
use std::path::Path;

const PUBLIC: &str = r#"{"mac":"BC:76:4E:20:75:72","label":"public","gateway":"104.130.4.1",
  "ips":[{"ip":"104.130.4.72","netmask":"255.255.255.0","enabled":"1"}],"dns":["69.20.0.164"]}"#;
const PRIVATE: &str = r#"{"mac":"BC:76:4E:20:6C:5B","label":"private","gateway":null,
  "ips":[{"ip":"10.208.227.239","netmask":"255.255.224.0","enabled":"1"}],
  "routes":[{"route":"10.176.0.0","netmask":"255.240.0.0","gateway":"10.208.224.1"}]}"#;

fn put(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

/// A Debian 12 root with eth0/eth1 and an empty `interfaces.d`.
fn debian() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    put(t.path(), "/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
    put(t.path(), "/sbin/ifup", "");
    put(
        t.path(),
        "/etc/network/interfaces",
        "source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n",
    );
    fs::create_dir_all(t.path().join("etc/network/interfaces.d")).unwrap();
    put(t.path(), "/sys/class/net/eth0/address", "bc:76:4e:20:75:72\n");
    put(t.path(), "/sys/class/net/eth1/address", "bc:76:4e:20:6c:5b\n");
    t
}

fn req(entries: &[(&str, &str)], hostname: Option<&str>) -> NetworkRequest {
    NetworkRequest {
        entries: entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        hostname: hostname.map(|h| h.as_bytes().to_vec()),
    }
}

fn writes(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Write(w) => Some(w.path.clone()),
            _ => None,
        })
        .collect()
}

fn apply(root: &Path, plans: &[crate::plan::Plan]) {
    for step in plans.iter().flat_map(|p| &p.steps) {
        if let Step::Write(w) = step {
            put(root, &w.path, std::str::from_utf8(&w.contents).unwrap());
        }
    }
}

#[test]
fn invalid_data_plans_nothing_and_names_the_entry() {
    let t = debian();
    let root = Root::new(t.path());
    let all = Functions::all();
    let bad = r#"{"ips":[{"ip":"10.0.0.300","netmask":24}]}"#;
    let e = plan(
        &req(&[("BC764E207572", PUBLIC), ("BADBADBADBAD", bad)], None),
        &root,
        &all,
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("vm-data/networking/BADBADBADBAD: ips[0].ip"),
        "{e}"
    );

    let second_gw = PRIVATE.replace(r#""gateway":null"#, r#""gateway":"10.208.224.1""#);
    let e = plan(&req(&[("A", PUBLIC), ("B", &second_gw)], None), &root, &all, None).unwrap_err();
    assert!(
        matches!(&e, NetError::Conflict { keys, .. } if keys == &["A", "B"]),
        "{e}"
    );
    assert!(e.to_string().contains("two IPv4 default gateways"), "{e}");

    let other_dns = PUBLIC.replace("69.20.0.164", "69.20.0.196");
    let e = plan(&req(&[("A", PUBLIC), ("B", &other_dns)], None), &root, &all, None).unwrap_err();
    assert!(e.to_string().contains("both describe interface eth0"), "{e}");
    let same = plan(
        &req(&[("BC764E207572", PUBLIC), ("bc764e207572", PUBLIC)], None),
        &root,
        &all,
        None,
    )
    .unwrap();
    assert_eq!(same.report[0], "skipped entry bc764e207572: same as entry BC764E207572");

    let same_addr = PRIVATE
        .replace("10.208.227.239", "104.130.4.72")
        .replace("255.255.224.0", "255.255.255.0");
    let e = plan(&req(&[("A", PUBLIC), ("B", &same_addr)], None), &root, &all, None).unwrap_err();
    assert!(e.to_string().contains("address 104.130.4.72 is given for both"), "{e}");

    let e = plan(&req(&[("A", PUBLIC)], Some("bad_name")), &root, &all, None).unwrap_err();
    assert!(e.to_string().starts_with("vm-data/hostname"), "{e}");

    let e = plan(&req(&[("EMPTY", "")], None), &root, &all, None).unwrap_err();
    assert_eq!(e.to_string(), "vm-data/networking/EMPTY: empty entry");
}

#[test]
fn only_enabled_functions_are_planned() {
    let t = debian();
    let root = Root::new(t.path());
    let only = Functions::parse("hostname,hosts").unwrap();
    let o = plan(&req(&[("A", PUBLIC)], Some("web")), &root, &only, None).unwrap();
    let functions: Vec<&str> = o.plans.iter().map(|p| p.function.as_ref()).collect();
    assert_eq!(functions, ["hosts", "hostname"]);
    assert!(o.bringup.is_empty());
    assert_eq!(writes(&o.plans[1].steps), ["/etc/hostname"]);
    assert!(matches!(o.plans[1].steps.last(), Some(Step::SetHostname(h)) if h == "web"));

    // Without resolvers, no DNS in the network configuration either.
    let net = Functions::parse("network").unwrap();
    let o = plan(&req(&[("A", PUBLIC)], None), &root, &net, None).unwrap();
    let Step::Write(w) = &o.plans[0].steps[0] else {
        panic!("write first")
    };
    assert!(!String::from_utf8_lossy(&w.contents).contains("dns-nameservers"));
}

#[test]
fn only_changed_nics_come_up_again() {
    let t = debian();
    let root = Root::new(t.path());
    let all = Functions::all();
    let first = plan(&req(&[("A", PUBLIC), ("B", PRIVATE)], Some("web")), &root, &all, None).unwrap();
    assert_eq!(first.bringup.iter().filter(|r| r.program == "ifup").count(), 2);
    apply(t.path(), &first.plans);
    let moved = PRIVATE.replace("10.176.0.0", "10.160.0.0");
    let second = plan(&req(&[("A", PUBLIC), ("B", &moved)], Some("web")), &root, &all, None).unwrap();
    let ups: Vec<&str> = second
        .bringup
        .iter()
        .filter(|r| r.program == "ifup")
        .map(|r| r.args[0].as_str())
        .collect();
    assert_eq!(ups, ["eth1"]);
    assert_eq!(
        writes(&second.plans[0].steps),
        [
            "/etc/network/interfaces.d/50-singularity",
            "/run/singularity/ifupdown-previous.interfaces"
        ]
    );
    assert!(second.hostname.is_none());
}

#[test]
fn missing_nics_are_reported_and_override_wins() {
    let t = debian();
    let root = Root::new(t.path());
    let gone = r#"{"mac":"BC:76:4E:00:00:99","ips":[{"ip":"10.1.0.2","netmask":16}]}"#;
    let o = plan(
        &req(&[("A", PUBLIC), ("BC764E000099", gone)], None),
        &root,
        &Functions::all(),
        Some(Renderer::NETWORKD),
    )
    .unwrap();
    assert_eq!(o.renderer, Renderer::NETWORKD);
    assert_eq!(
        o.report[0],
        "skipped entry BC764E000099: no local interface with MAC bc:76:4e:00:00:99"
    );
    assert_eq!(
        writes(&o.plans[0].steps),
        ["/etc/systemd/network/10-singularity-eth0.network"]
    );

    let none = plan(&req(&[("BC764E000099", gone)], None), &root, &Functions::all(), None).unwrap();
    assert!(none.plans.iter().all(|p| p.steps.is_empty()) && none.bringup.is_empty());
}

#[test]
fn renderer_names_round_trip() {
    for r in Renderer::ALL {
        assert_eq!(r.to_string().parse::<Renderer>(), Ok(r));
    }
    assert_eq!("NetworkManager".parse::<Renderer>(), Ok(Renderer::NM_KEYFILE));
    let err = "netctl".parse::<Renderer>().unwrap_err();
    assert_eq!(err.0, "netctl");
    assert!(err.to_string().contains("expected one of ifupdown, netplan"), "{err}");
}

#[test]
fn detection_follows_what_is_installed() {
    let nm_wants = "/etc/systemd/system/multi-user.target.wants/NetworkManager.service";
    let networkd_wants = "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service";
    let cases: &[(&str, &[&str], Renderer)] = &[
        (
            "ID=ubuntu\nVERSION_ID=22.04",
            &["/usr/sbin/netplan", "/etc/netplan/50-cloud-init.yaml"],
            Renderer::NETPLAN,
        ),
        (
            "ID=ubuntu\nVERSION_ID=16.04",
            &["/sbin/ifup", "/etc/network/interfaces"],
            Renderer::IFUPDOWN,
        ),
        ("ID=debian\nVERSION_ID=12", &[networkd_wants], Renderer::NETWORKD),
        ("ID=rocky\nVERSION_ID=8.9", &[nm_wants], Renderer::IFCFG),
        ("ID=almalinux\nVERSION_ID=9.3", &[nm_wants], Renderer::NM_KEYFILE),
        ("ID=fedora\nVERSION_ID=39", &[], Renderer::NM_KEYFILE),
        ("ID=centos\nVERSION_ID=7", &[], Renderer::IFCFG),
        ("ID=opensuse-tumbleweed", &[nm_wants], Renderer::NM_KEYFILE),
        ("ID=sles\nVERSION_ID=15.5", &["/usr/sbin/wicked"], Renderer::SUSE),
        ("ID=gentoo", &["/sbin/openrc-run"], Renderer::GENTOO),
        ("ID=gentoo", &[networkd_wants], Renderer::NETWORKD),
        ("ID=arch", &[], Renderer::NETWORKD),
        ("ID=alpine", &[], Renderer::ALPINE),
        ("ID=freebsd", &[], Renderer::FREEBSD),
        ("ID=something", &[nm_wants], Renderer::NM_KEYFILE),
    ];
    for (os, present, want) in cases {
        let t = tempfile::tempdir().unwrap();
        put(t.path(), "/etc/os-release", os);
        for p in *present {
            put(t.path(), p, "");
        }
        let (got, why) = detect(&Root::new(t.path()));
        assert_eq!(got, *want, "{os} {present:?}: {why}");
    }
    let t = tempfile::tempdir().unwrap();
    put(t.path(), "/etc/redhat-release", "CentOS release 6.10 (Final)\n");
    assert_eq!(detect(&Root::new(t.path())).0, Renderer::IFCFG, "legacy release file");
}

#[test]
fn interfaces_without_source_get_our_block_in_place() {
    let t = debian();
    let old = "# installer\nauto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n\nauto eth9\niface eth9 inet manual\n";
    put(t.path(), "/etc/network/interfaces", old);
    let root = Root::new(t.path());
    let net = Functions::parse("network").unwrap();
    let first = plan(&req(&[("A", PUBLIC)], None), &root, &net, None).unwrap();
    let Step::Write(w) = &first.plans[0].steps[0] else {
        panic!("write first")
    };
    let text = String::from_utf8_lossy(&w.contents).into_owned();
    assert_eq!(w.path, "/etc/network/interfaces");
    assert!(
        text.starts_with("# installer\nauto lo\niface lo inet loopback\n\n# BEGIN singularity"),
        "{text}"
    );
    assert!(
        text.contains("iface eth0 inet static") && !text.contains("inet dhcp"),
        "{text}"
    );
    assert!(
        text.ends_with("# END singularity\nauto eth9\niface eth9 inet manual\n"),
        "{text}"
    );
    apply(t.path(), &first.plans);
    let again = plan(&req(&[("A", PUBLIC)], None), &root, &net, None).unwrap();
    assert!(again.plans[0].steps.is_empty() && again.bringup.is_empty());
}

#[test]
fn rhel_ifcfg_under_networkmanager_comes_up_with_nmcli() {
    let t = debian();
    put(t.path(), "/etc/os-release", "ID=rocky\nVERSION_ID=8.9\n");
    put(
        t.path(),
        "/etc/systemd/system/multi-user.target.wants/NetworkManager.service",
        "",
    );
    let o = plan(
        &req(&[("A", PUBLIC)], None),
        &Root::new(t.path()),
        &Functions::all(),
        None,
    )
    .unwrap();
    assert_eq!(o.renderer, Renderer::IFCFG);
    let cmds: Vec<String> = o
        .bringup
        .iter()
        .map(|r| format!("{} {}", r.program, r.args.join(" ")))
        .collect();
    assert_eq!(
        cmds,
        [
            "nmcli connection load /etc/sysconfig/network-scripts/ifcfg-eth0",
            "nmcli connection up ifname eth0"
        ]
    );
}

#[test]
fn with_only_stale_entries_hosts_keeps_its_nic_lines() {
    let t = debian();
    let root = Root::new(t.path());
    put(
        t.path(),
        "/etc/hosts",
        "127.0.0.1\tlocalhost\n127.0.1.1\told\t# singularity\n203.0.113.10\told\t# singularity\n",
    );
    put(t.path(), "/etc/hostname", "old\n");
    let gone = r#"{"mac": "BC:76:4E:00:00:99", "ips": [{"ip": "198.51.100.7", "netmask": "255.255.255.0"}]}"#;
    let o = plan(
        &req(&[("BC764E000099", gone)], Some("new")),
        &root,
        &Functions::all(),
        None,
    )
    .unwrap();
    assert!(
        o.report.iter().any(|n| n.contains("network configuration left alone")),
        "{:?}",
        o.report
    );
    let hosts = o
        .plans
        .iter()
        .flat_map(|p| &p.steps)
        .find_map(|s| match s {
            Step::Write(w) if w.path == "/etc/hosts" => Some(String::from_utf8(w.contents.to_vec()).unwrap()),
            _ => None,
        })
        .expect("the new name goes into /etc/hosts");
    assert_eq!(
        hosts,
        "127.0.0.1\tlocalhost\n127.0.1.1\tnew\t# singularity\n203.0.113.10\tnew\t# singularity\n"
    );
}
