//! Simulator semantics driven by a raw protocol peer: node operations and
//! argument rules, permissions on the guest socket, and watches.

mod sim_support;

use sim_support::{nul, Peer, Rig};
use xenstore::wire::{Message, MsgType};

#[test]
fn node_operations_round_trip() {
    let rig = Rig::c();
    let mut d = rig.dom0();
    d.write("/a/b/c", b"v").unwrap();
    assert_eq!(d.read("/a/b/c").unwrap(), b"v");
    assert_eq!(d.read("/a/b").unwrap(), b"", "parents are created empty");
    assert_eq!(d.dir("/a").unwrap(), ["b"]);
    assert_eq!(d.dir("/a/b/c").unwrap(), Vec::<String>::new(), "leaf");
    // Binary values, embedded and trailing NULs, byte-exact.
    d.write("/bin", b"a\0b\xff\xfe\0").unwrap();
    assert_eq!(d.read("/bin").unwrap(), b"a\0b\xff\xfe\0");
    d.write("/empty", b"").unwrap();
    assert_eq!(d.read("/empty").unwrap(), b"");
    // Relative paths of dom0 resolve to /local/domain/0.
    d.write("rel/x", b"1").unwrap();
    assert_eq!(d.read("/local/domain/0/rel/x").unwrap(), b"1");
    // RM: recursive; missing node fine if the parent exists.
    d.rm("/a/b").unwrap();
    assert_eq!(d.read("/a/b/c"), Err("ENOENT".into()));
    assert_eq!(d.rm("/a/zz"), Ok(()));
    assert_eq!(d.rm("/nope/zz"), Err("ENOENT".into()));
    assert_eq!(d.rm("/"), Err("EINVAL".into()));
    d.mkdir("/m/n").unwrap();
    d.mkdir("/m/n").unwrap();
    assert_eq!(d.read("/m/n").unwrap(), b"");
    assert_eq!(d.call(MsgType::GetDomainPath, 0, b"7\0").unwrap(), b"/local/domain/7\0");
    assert_eq!(
        d.call(MsgType::GetDomainPath, 0, b"abc\0").unwrap(),
        b"/local/domain/0\0"
    );
    // The direct API sees the same tree.
    assert_eq!(rig.sim.read("/bin").unwrap(), b"a\0b\xff\xfe\0");
    assert!(rig.sim.directory("/").contains(&"tool".to_string()));
}

#[test]
fn argument_and_path_errors() {
    for (rig, unterminated) in [(Rig::c(), "ENOENT"), (Rig::ox(), "EINVAL")] {
        let mut d = rig.dom0();
        d.write("/probe/bin", b"x").unwrap();
        assert_eq!(d.call(MsgType::Read, 0, b"/probe/bin"), Err(unterminated.into()));
        assert_eq!(d.call(MsgType::Read, 0, b"\0"), Err("EINVAL".into()));
        assert_eq!(d.call(MsgType::Read, 0, b"/probe/bin\0x\0"), Err(unterminated.into()));
        assert_eq!(d.call(MsgType::Write, 0, b"/no-nul"), Err("EINVAL".into()));
        for bad in ["/a b", "/a/", "/a//b", "/a.b", "/dé"] {
            assert_eq!(d.read(bad), Err("EINVAL".into()), "{bad}");
        }
        assert_eq!(d.read("@releaseDomain"), Err("EINVAL".into()));
        let long = format!("/{}", "a".repeat(2049));
        assert_eq!(d.write(&long, b""), Err("EINVAL".into()));
        let ok = format!("/{}", "a".repeat(1100));
        assert_eq!(d.write(&ok, b""), Ok(()));
        for kind in [
            MsgType::Unknown(99),
            MsgType::Unknown(20),
            MsgType::WatchEvent,
            MsgType::Error,
        ] {
            assert_eq!(d.call(kind, 0, b"x\0"), Err("ENOSYS".into()), "{kind:?}");
        }
        assert_eq!(d.rm("/"), Err("EINVAL".into()));
    }
}

#[test]
fn guest_permissions() {
    let rig = Rig::c();
    let mut g = rig.guest();
    // Relative paths resolve to the guest's home.
    assert_eq!(g.read("domid").unwrap(), b"5");
    assert_eq!(g.read("name").unwrap(), b"guest-5");
    g.write("data/host/x", b"1").unwrap();
    assert_eq!(rig.sim.read("/local/domain/5/data/host/x").unwrap(), b"1");
    assert_eq!(g.write("vm-data/x", b"1"), Err("EACCES".into()));
    assert_eq!(g.write("name", b"evil"), Err("EACCES".into()));
    assert_eq!(g.write("/tool/x", b"1"), Err("EACCES".into()));
    assert_eq!(g.write("/local/domain/6/x", b"1"), Err("EACCES".into()));
    assert_eq!(g.read("/local/domain/0/name"), Err("EACCES".into()));
    assert_eq!(g.read("/local/domain/0/none"), Err("EACCES".into()), "no leak");
    assert_eq!(g.read("data/none"), Err("ENOENT".into()));
    assert_eq!(g.rm("vm-data"), Err("EACCES".into()));
    assert_eq!(g.mkdir("vm-data/d"), Err("EACCES".into()));
    rig.sim.write("/local/domain/5/vm-data/hostname", b"h");
    assert_eq!(g.read("vm-data/hostname").unwrap(), b"h");
    assert_eq!(g.dir("vm-data").unwrap(), ["hostname"]);
    // Nodes a guest creates are its own; others inherit the parent's perms.
    assert_eq!(g.get_perms("data/host").unwrap(), ["n5", "b5"]);
    assert_eq!(g.get_perms("data").unwrap(), ["n0", "b5"]);
    // Only the owner may set perms, only dom0 may change the owner.
    assert_eq!(g.set_perms("data/host", &["n5", "r0"]), Ok(()));
    assert_eq!(g.set_perms("data/host", &["n0"]), Err("EPERM".into()));
    assert_eq!(g.set_perms("data", &["n5"]), Err("EACCES".into()));
    assert_eq!(
        g.set_perms("data/host", &["n5", "r1", "r2", "r3", "r4", "r6"]),
        Err("ENOSPC".into())
    );
    let mut d = rig.dom0();
    assert_eq!(d.set_perms("/local/domain/5/data/host", &["n0"]), Ok(()));
    assert_eq!(g.write("data/host/y", b""), Err("EACCES".into()));
    assert_eq!(d.set_perms("/x-none", &["n0"]), Err("ENOENT".into()));
    d.write("/zz", b"").unwrap();
    assert_eq!(d.set_perms("/zz", &["n9"]), Err("ENOENT".into()), "C: unknown owner");
    assert_eq!(d.set_perms("/zz", &["q1"]), Err("EINVAL".into()));
    // Privileged operations.
    for (kind, payload) in [
        (MsgType::Introduce, &b"9\x001\x002\0"[..]),
        (MsgType::Release, b"5\0"),
        (MsgType::IsDomainIntroduced, b"5\0"),
        (MsgType::Control, b"print\0"),
        (MsgType::Resume, b"5\0"),
        (MsgType::SetTarget, b"5\x006\0"),
    ] {
        assert_eq!(g.call(kind, 0, payload), Err("EACCES".into()), "{kind:?}");
    }
    assert_eq!(d.call(MsgType::IsDomainIntroduced, 0, b"5\0").unwrap(), b"T\0");
    assert_eq!(d.call(MsgType::IsDomainIntroduced, 0, b"8\0").unwrap(), b"F\0");
    // Oxenstored accepts an unknown owner.
    let ox = Rig::ox();
    let mut d = ox.dom0();
    d.write("/zz", b"").unwrap();
    assert_eq!(d.set_perms("/zz", &["n9"]), Ok(()));
}

#[test]
fn watch_basics() {
    let rig = Rig::c();
    let mut w = rig.dom0();
    let mut d = rig.dom0();
    // Initial event even for a missing path.
    w.watch("/nonexistent/x", "t0").unwrap();
    w.watch("/w", "t1").unwrap();
    d.write("/w/a/b", b"1").unwrap();
    assert_eq!(w.event().unwrap(), ("/w/a/b".into(), "t1".into()), "deepest path only");
    w.no_event();
    d.write("/w/a/b", b"1").unwrap();
    assert_eq!(w.event().unwrap(), ("/w/a/b".into(), "t1".into()), "same value fires");
    d.mkdir("/w/a").unwrap();
    w.no_event();
    d.set_perms("/w/a", &["n0", "r5"]).unwrap();
    assert_eq!(w.event().unwrap(), ("/w/a".into(), "t1".into()), "perms change");
    // RM: watches at or above the removed node see it once; descendants only
    // fire watches registered exactly on them.
    w.watch("/w/a/b", "t4").unwrap();
    d.rm("/w").unwrap();
    let mut got = vec![w.event().unwrap(), w.event().unwrap()];
    got.sort();
    assert_eq!(
        got,
        [
            ("/w".to_string(), "t1".to_string()),
            ("/w/a/b".to_string(), "t4".to_string())
        ]
    );
    w.no_event();
    w.unwatch("/w/a/b", "t4").unwrap();
    // Removing a parent of the watched path fires the watched path itself.
    d.write("/p/q/r", b"").unwrap();
    w.watch("/p/q/r", "t2").unwrap();
    d.rm("/p").unwrap();
    assert_eq!(w.event().unwrap(), ("/p/q/r".into(), "t2".into()));
    // Duplicates and unknown unwatch.
    assert_eq!(w.watch_no_initial("/w", "t1"), Err("EEXIST".into()));
    assert_eq!(w.unwatch("/w", "zz"), Err("ENOENT".into()));
    assert_eq!(
        w.call(MsgType::Watch, 0, b"/w\0t\x003\0"),
        Err("EINVAL".into()),
        "no depth argument on 4.17"
    );
    w.unwatch("/w", "t1").unwrap();
    d.write("/w/z", b"").unwrap();
    w.no_event();
    // Relative watches see relative paths.
    w.watch("rel", "t3").unwrap();
    d.write("/local/domain/0/rel/x", b"").unwrap();
    assert_eq!(w.event().unwrap(), ("rel/x".into(), "t3".into()));
    // Two tokens on one path are two watches.
    w.watch("/two", "a").unwrap();
    w.watch("/two", "b").unwrap();
    d.write("/two", b"").unwrap();
    let mut got = vec![w.event().unwrap().1, w.event().unwrap().1];
    got.sort();
    assert_eq!(got, ["a", "b"]);
    // Direct API writes fire watches too.
    rig.sim.write("/two/x", b"");
    assert_eq!(w.event().unwrap().0, "/two/x");
    assert_eq!(w.event().unwrap().0, "/two/x");
}

#[test]
fn watch_event_order_and_token_order_by_flavour() {
    for (rig, event_first, first_token) in [(Rig::c(), true, "a"), (Rig::ox(), false, "b")] {
        let mut w = rig.dom0();
        w.watch("/o", "a").unwrap();
        w.watch("/o", "b").unwrap();
        let req = w.send(MsgType::Write, 0, b"/o\0v");
        let first = w.recv_timeout(sim_support::WAIT).unwrap();
        assert_eq!(first.kind == MsgType::WatchEvent, event_first, "{first:?}");
        if event_first {
            assert_eq!(first.payload, b"/o\0a\0");
            assert_eq!(w.reply_to(req).payload, b"OK\0");
            assert_eq!(w.events.len(), 1);
        } else {
            assert_eq!(first.req_id, req);
        }
        let rest: Vec<Message> = std::iter::from_fn(|| w.event_msg_within(sim_support::QUIET)).collect();
        let mut all: Vec<Message> = Vec::new();
        if event_first {
            all.push(first);
        }
        all.extend(rest);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].payload, format!("/o\0{first_token}\0").as_bytes());
        assert!(
            all.iter().all(|m| m.req_id == 0 && m.tx_id == 0),
            "dom0 events carry zero ids"
        );
    }
}

#[test]
fn events_are_filtered_by_permissions() {
    let rig = Rig::c();
    let mut g = rig.guest();
    g.watch("/", "root").unwrap();
    g.watch("@releaseDomain", "rel").unwrap();
    g.watch("@introduceDomain", "intro").unwrap();
    rig.sim.write("/tool/secret", b"x");
    g.no_event();
    rig.sim.write("/local/domain/5/data/seen", b"x");
    assert_eq!(g.event().unwrap(), ("/local/domain/5/data/seen".into(), "root".into()));
    // Special events go to privileged connections only.
    let mut d = rig.dom0();
    d.watch("@releaseDomain", "rel").unwrap();
    d.watch("@introduceDomain", "intro").unwrap();
    rig.sim.create_domain(7, "seven");
    assert_eq!(d.event().unwrap(), ("@introduceDomain".into(), "intro".into()));
    rig.sim.destroy_domain(7);
    assert_eq!(d.event().unwrap(), ("@releaseDomain".into(), "rel".into()));
    assert!(rig.sim.read("/local/domain/7/name").is_none());
    g.no_event();
    // ...unless dom0 grants the domain read access to the special node.
    d.set_perms("@releaseDomain", &["n0", "r5"]).unwrap();
    assert_eq!(d.get_perms("@releaseDomain").unwrap(), ["n0", "r5"]);
    rig.sim.create_domain(8, "eight");
    rig.sim.destroy_domain(8);
    assert_eq!(g.event().unwrap(), ("@releaseDomain".into(), "rel".into()));
    // INTRODUCE / RELEASE from dom0.
    d.call(MsgType::Introduce, 0, b"9\x001\x002\0").unwrap();
    assert_eq!(d.event().unwrap().0, "@introduceDomain");
    d.call(MsgType::Release, 0, b"9\0").unwrap();
    assert_eq!(d.event().unwrap().0, "@releaseDomain");
    assert_eq!(d.call(MsgType::Release, 0, b"9\0"), Err("ENOENT".into()));
}

#[test]
fn guest_socket_relative_watch_and_garbage_ids() {
    let rig = Rig::c();
    let mut g = rig.guest();
    g.watch_no_initial("data", "tok").unwrap();
    let ev = g.event_msg_within(sim_support::WAIT).unwrap();
    assert_eq!(
        ev.payload,
        nul("data").into_iter().chain(nul("tok")).collect::<Vec<u8>>()
    );
    let mut nonzero = ev.req_id != 0 || ev.tx_id != 0;
    for i in 0..4 {
        rig.sim.write(&format!("/local/domain/5/data/k{i}"), b"");
        let ev = g.event_msg_within(sim_support::WAIT).unwrap();
        assert_eq!(sim_support::strings(&ev.payload)[0], format!("data/k{i}"));
        nonzero |= ev.req_id != 0 || ev.tx_id != 0;
    }
    assert!(nonzero, "guest events carry garbage ids");
}

#[test]
fn unrelated_peers_do_not_see_each_others_watches() {
    let rig = Rig::c();
    let mut a = rig.dom0();
    let mut b: Peer = rig.dom0();
    a.watch("/x", "a").unwrap();
    b.write("/y", b"").unwrap();
    a.no_event();
    b.write("/x", b"").unwrap();
    assert_eq!(a.event().unwrap().0, "/x");
    b.no_event();
}
