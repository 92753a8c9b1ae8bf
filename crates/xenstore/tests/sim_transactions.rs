//! Simulator semantics driven by a raw protocol peer: transactions, quotas,
//! DIRECTORY_PART and the payload-size and flavour differences.

mod sim_support;

use sim_support::{nul, strings, Rig, QUIET, WAIT};
use xenstore::sim::Config;
use xenstore::wire::{Message, MsgType};

#[test]
fn transactions_are_isolated_and_fire_at_commit() {
    let rig = Rig::c();
    let mut a = rig.dom0();
    let mut w = rig.dom0();
    a.write("/t/x", b"0").unwrap();
    w.watch("/t", "tok").unwrap();
    let tx = a.start();
    assert_eq!(tx, 1, "ids start at 1 per connection");
    a.write_tx(tx, "/t/x", b"1").unwrap();
    a.write_tx(tx, "/t/new", b"n").unwrap();
    assert_eq!(a.read_tx(tx, "/t/x").unwrap(), b"1", "own writes visible");
    assert_eq!(a.read("/t/x").unwrap(), b"0", "invisible outside");
    assert_eq!(a.read("/t/new"), Err("ENOENT".into()));
    w.no_event();
    a.end(tx, true).unwrap();
    let mut got = vec![w.event().unwrap().0, w.event().unwrap().0];
    got.sort();
    assert_eq!(got, ["/t/new", "/t/x"]);
    assert_eq!(a.read("/t/x").unwrap(), b"1");
    assert_eq!(a.start(), 2);
    // Abort discards everything, no events.
    let tx = 2;
    a.write_tx(tx, "/t/x", b"2").unwrap();
    a.end(tx, false).unwrap();
    assert_eq!(a.read("/t/x").unwrap(), b"1");
    w.no_event();
    // Transactions also hold RM, MKDIR, DIRECTORY, GET/SET_PERMS.
    let tx = a.start();
    a.call(MsgType::Rm, tx, &nul("/t/new")).unwrap();
    a.call(MsgType::Mkdir, tx, &nul("/t/d")).unwrap();
    a.call(MsgType::SetPerms, tx, b"/t/d\0n0\0r5\0").unwrap();
    let dir = a.call(MsgType::Directory, tx, &nul("/t")).unwrap();
    assert_eq!(strings(&dir), ["x", "d"]);
    assert_eq!(a.call(MsgType::GetPerms, tx, &nul("/t/d")).unwrap(), b"n0\0r5\0");
    a.end(tx, true).unwrap();
    assert_eq!(a.dir("/t").unwrap(), ["x", "d"]);
}

#[test]
fn conflicts_and_dead_transactions() {
    for (rig, stale) in [(Rig::c(), "ENOENT"), (Rig::ox(), "EIO")] {
        let mut a = rig.dom0();
        let mut b = rig.dom0();
        a.write("/c/x", b"0").unwrap();
        let tx = a.start();
        a.read_tx(tx, "/c/x").unwrap();
        a.write_tx(tx, "/c/y", b"1").unwrap();
        b.write("/c/x", b"0").unwrap();
        assert_eq!(a.end(tx, true), Err("EAGAIN".into()), "read node changed");
        assert_eq!(a.read("/c/y"), Err("ENOENT".into()));
        assert_eq!(a.read_tx(tx, "/c/x"), Err(stale.into()), "dead after failed END");
        assert_eq!(a.end(tx, true), Err(stale.into()));
        assert_eq!(a.read_tx(999, "/c/x"), Err(stale.into()));
        // The transaction works on a snapshot: reading a node changed since
        // START sees the old state, and the commit then fails.
        let tx = a.start();
        b.write("/c/other", b"o").unwrap();
        assert_eq!(a.read_tx(tx, "/c/other"), Err("ENOENT".into()), "snapshot");
        assert_eq!(a.end(tx, true), Err("EAGAIN".into()));
        // A write-only transaction conflicts with a write to the same node.
        let tx = a.start();
        a.write_tx(tx, "/c/x", b"mine").unwrap();
        b.write("/c/x", b"theirs").unwrap();
        assert_eq!(a.end(tx, true), Err("EAGAIN".into()));
        assert_eq!(a.read("/c/x").unwrap(), b"theirs");
        // Unrelated outside writes do not conflict.
        let tx = a.start();
        a.write_tx(tx, "/c/x", b"mine").unwrap();
        b.write("/elsewhere", b"").unwrap();
        assert_eq!(a.end(tx, true), Ok(()));
        // Nested START and bad END bodies.
        let tx = a.start();
        assert_eq!(a.call(MsgType::TransactionStart, tx, b"\0"), Err("EBUSY".into()));
        // (No zero-length body here: oxenstored would hold it, see below.)
        for bad in [&b"X\0"[..], b"T", b"T\0\0", b"\0"] {
            assert_eq!(a.call(MsgType::TransactionEnd, tx, bad), Err("EINVAL".into()));
        }
        assert_eq!(a.end(tx, false), Ok(()), "EINVAL left it open");
        assert_eq!(a.call(MsgType::TransactionEnd, 0, b"T\0"), Err(stale.into()));
        // Transaction ids are per connection.
        assert_eq!(b.read_tx(tx + 1, "/c/x"), Err(stale.into()));
        // WATCH ignores tx_id.
        assert!(b.call(MsgType::Watch, 77, b"/c\0t\0").is_ok());
    }
}

#[test]
fn fail_next_commits_forces_eagain() {
    let rig = Rig::c();
    let mut a = rig.dom0();
    rig.sim.fail_next_commits(2);
    for expect in [Err("EAGAIN".to_string()), Err("EAGAIN".into()), Ok(())] {
        let tx = a.start();
        a.write_tx(tx, "/f", b"1").unwrap();
        assert_eq!(a.end(tx, true), expect);
    }
    // Aborts do not consume the counter.
    rig.sim.fail_next_commits(1);
    let tx = a.start();
    a.end(tx, false).unwrap();
    let tx = a.start();
    assert_eq!(a.end(tx, true), Err("EAGAIN".into()));
}

#[test]
fn reset_watches_on_a_socket_drops_own_watches_and_transactions() {
    let rig = Rig::c();
    let mut a = rig.dom0();
    let mut other = rig.dom0();
    a.watch("/r", "t").unwrap();
    other.watch("/r", "t").unwrap();
    let tx = a.start();
    a.call(MsgType::ResetWatches, 0, b"\0").unwrap();
    rig.sim.write("/r", b"");
    a.no_event();
    assert_eq!(other.event().unwrap().0, "/r");
    assert_eq!(a.read_tx(tx, "/r"), Err("ENOENT".into()));
}

#[test]
fn guest_quotas() {
    // Transactions: 10 per domain.
    for (rig, quota) in [(Rig::c(), "ENOSPC"), (Rig::ox(), "EQUOTA")] {
        let mut g = rig.guest();
        let ids: Vec<u32> = (0..10).map(|_| g.start()).collect();
        assert_eq!(g.call(MsgType::TransactionStart, 0, b"\0"), Err(quota.into()));
        g.end(ids[0], false).unwrap();
        g.start();
    }
    // dom0 has no domain quota, only a per-connection cap on snapshots.
    let rig = Rig::c();
    let mut d = rig.dom0();
    for _ in 0..256 {
        d.start();
    }
    assert_eq!(d.call(MsgType::TransactionStart, 0, b"\0"), Err("ENOSPC".into()));
    assert!(rig.dom0().start() > 0, "another connection is not affected");
    // Watches: C 128 (E2BIG), ox 100 (EQUOTA); dom0 is not limited.
    for (rig, max, err) in [(Rig::c(), 128, "E2BIG"), (Rig::ox(), 100, "EQUOTA")] {
        let mut g = rig.guest();
        for i in 0..max {
            g.watch(&format!("data/w{i}"), "t").unwrap();
        }
        assert_eq!(g.watch_no_initial("data/over", "t"), Err(err.into()));
        let mut d = rig.dom0();
        for i in 0..max + 5 {
            d.watch(&format!("/w{i}"), "t").unwrap();
        }
    }
    // Nodes per domain.
    for (flavor_cfg, err) in [(Config::default(), "ENOSPC"), (Config::oxenstored_like(), "EQUOTA")] {
        let rig = Rig::new(Config {
            nodes_per_domain: 3,
            ..flavor_cfg
        });
        let mut g = rig.guest();
        g.write("data/a/b", b"").unwrap();
        g.write("data/c", b"").unwrap();
        assert_eq!(g.write("data/d", b""), Err(err.into()));
        g.rm("data/a").unwrap();
        g.write("data/d", b"").unwrap();
    }
}

#[test]
fn value_size_limits() {
    // C: node accounting for unprivileged domains (24 + 8 per perm + value).
    let rig = Rig::c();
    let mut g = rig.guest();
    g.write("data/v", b"").unwrap();
    assert_eq!(g.write("data/v", &[b'a'; 2007]), Ok(()));
    assert_eq!(g.write("data/v", &[b'a'; 2008]), Err("ENOSPC".into()));
    let mut d = rig.dom0();
    assert_eq!(d.write("/big", &[b'a'; 4000]), Ok(()));
    // A directory whose child names grow too big refuses new children.
    let mut n = 0;
    let err = loop {
        match g.write(&format!("data/guest/{:036}", n), b"{}") {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, "ENOSPC");
    assert!((50..60).contains(&n), "{n} children fitted");
    // oxenstored: 2048 bytes for everyone, E2BIG.
    let rig = Rig::ox();
    let mut d = rig.dom0();
    assert_eq!(d.write("/v", &[b'a'; 2048]), Ok(()));
    assert_eq!(d.write("/v", &[b'a'; 2049]), Err("E2BIG".into()));
    let mut g = rig.guest();
    assert_eq!(g.write("data/v", &[b'a'; 2049]), Err("E2BIG".into()));
    for n in 0..100 {
        g.write(&format!("data/guest/{:036}", n), b"{}").unwrap();
    }
}

fn big_dir(rig: &Rig) -> Vec<String> {
    let names: Vec<String> = (0..150).map(|i| format!("child-{i:03}-{}", "x".repeat(20))).collect();
    for n in &names {
        rig.sim.write(&format!("/big/{n}"), b"");
    }
    names
}

#[test]
fn large_directories() {
    let rig = Rig::c();
    let names = big_dir(&rig);
    let mut d = rig.dom0();
    assert_eq!(d.dir("/big"), Err("E2BIG".into()));
    // DIRECTORY_PART: byte offsets, generation prefix, extra NUL at the end.
    let mut list = Vec::new();
    let mut gen = None;
    loop {
        let req = format!("/big\0{}\0", list.len());
        let part = d.call(MsgType::DirectoryPart, 0, req.as_bytes()).unwrap();
        assert!(part.len() <= 4096);
        let nul_at = part.iter().position(|&b| b == 0).unwrap();
        let g = String::from_utf8(part[..nul_at].to_vec()).unwrap();
        assert!(gen.is_none() || gen.as_ref() == Some(&g), "stable generation");
        gen = Some(g);
        let chunk = &part[nul_at + 1..];
        if chunk.ends_with(b"\0\0") || chunk == b"\0" {
            list.extend_from_slice(&chunk[..chunk.len() - 1]);
            break;
        }
        list.extend_from_slice(chunk);
    }
    assert_eq!(strings(&list), names);
    // An offset in the middle of a name starts there; past the end is empty.
    let part = d.call(MsgType::DirectoryPart, 0, b"/big\x005\0").unwrap();
    assert!(strings(&part)[1].starts_with("-000-"), "{:?}", &strings(&part)[..2]);
    let part = d.call(MsgType::DirectoryPart, 0, b"/big\x0099999\0").unwrap();
    assert!(part.ends_with(b"\0\0") && strings(&part).len() == 2);
    // The generation changes with the children.
    rig.sim.write("/big/zzz", b"");
    let again = d.call(MsgType::DirectoryPart, 0, b"/big\x000\0").unwrap();
    assert_ne!(strings(&again)[0], gen.unwrap());
    assert_eq!(d.call(MsgType::DirectoryPart, 0, b"/big\0"), Err("EINVAL".into()));

    // oxenstored: oversize DIRECTORY reply, no DIRECTORY_PART, specials in /.
    let rig = Rig::ox();
    let names = big_dir(&rig);
    let mut d = rig.dom0();
    let got = d.call(MsgType::Directory, 0, &nul("/big")).unwrap();
    assert!(got.len() > 4096);
    assert_eq!(strings(&got), names);
    assert_eq!(d.call(MsgType::DirectoryPart, 0, b"/big\x000\0"), Err("ENOSYS".into()));
    let root = d.dir("/").unwrap();
    assert!(root.contains(&"@introduceDomain".to_string()) && root.contains(&"@releaseDomain".to_string()));
}

fn oversize_write() -> Vec<u8> {
    let mut p = nul("/o");
    p.extend(vec![b'a'; 4097 - p.len()]);
    Message::new(MsgType::Write, 42, 0, p).encode()
}

#[test]
fn oversize_payloads() {
    // C closes the connection; others are unaffected.
    let rig = Rig::c();
    let mut bad = rig.dom0();
    let mut good = rig.dom0();
    bad.send_raw(&oversize_write());
    assert!(bad.closed_within(WAIT));
    assert_eq!(good.write("/still", b"ok"), Ok(()));
    // ox answers E2BIG and keeps going.
    let rig = Rig::ox();
    let mut d = rig.dom0();
    d.send_raw(&oversize_write());
    let m = d.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (m.kind, m.req_id, m.payload.as_slice()),
        (MsgType::Error, 42, &b"E2BIG\0"[..])
    );
    assert_eq!(d.write("/still", b"ok"), Ok(()));
    // A guest socket (a ring) takes at most 4080 bytes.
    for rig in [Rig::c(), Rig::ox()] {
        let mut g = rig.guest();
        let mut p = nul("data/x");
        p.resize(4081, b'a');
        assert_eq!(g.call(MsgType::Write, 0, &p), Err("E2BIG".into()));
        assert_eq!(g.write("data/x", b"ok"), Ok(()));
    }
}

#[test]
fn oxenstored_holds_zero_length_requests() {
    let rig = Rig::ox();
    let mut d = rig.dom0();
    let req = d.send(MsgType::TransactionStart, 0, b"");
    assert!(d.recv_timeout(QUIET).is_none(), "not processed yet");
    let next = d.send(MsgType::Read, 0, &nul("/tool/xenstored"));
    assert_eq!(d.reply_to(req).payload, b"1\0");
    assert_eq!(d.reply_to(next).payload, b"");
    // C processes them at once.
    let rig = Rig::c();
    let mut d = rig.dom0();
    assert_eq!(d.call(MsgType::TransactionStart, 0, b""), Ok(b"1\0".to_vec()));
    assert_eq!(d.call(MsgType::Read, 0, b""), Err("EINVAL".into()));
}
