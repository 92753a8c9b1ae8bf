//! Reader/dispatch unit tests against a scripted peer (`common/fakepeer.rs`):
//! framing, routing, req_id handling, limits and payload rules.

#[path = "common/fakepeer.rs"]
mod fakepeer;

use fakepeer::{connect, frame, watch, watch_args, with_peer, Listener};
use std::time::Duration;
use xenstore::wire::MsgType;
use xenstore::{Client, Error, ErrorKind, Watch, WatchEvent};

#[test]
fn reply_and_event_split_at_every_byte_boundary() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let (w, token) = watch(&c, &mut p, "/w");
    let value = b"some value\0with nul";
    let reply_len = fakepeer::frame(MsgType::Read, 0, 0, value).len();
    let event_len = format!("/w/x\0{token}\0").len() + 16;
    for split in 1..(reply_len + event_len) {
        let got = with_peer(
            &mut p,
            || c.read("/a").expect("read"),
            |p| {
                let m = p.recv();
                let mut bytes = frame(MsgType::WatchEvent, 0, 0, format!("/w/x\0{token}\0").as_bytes());
                bytes.extend(frame(MsgType::Read, m.req_id, 0, value));
                p.send_raw(&bytes[..split]);
                std::thread::sleep(Duration::from_millis(1));
                p.send_raw(&bytes[split..]);
            },
        );
        assert_eq!(got, value, "split at {split}");
        assert_eq!(
            w.try_recv().expect("live"),
            Some(WatchEvent::Changed("/w/x".into())),
            "split {split}"
        );
    }
}

#[test]
fn several_messages_in_one_read_out_of_order_with_events() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let (w, token) = watch(&c, &mut p, "/w");
    let (a, b) = with_peer(
        &mut p,
        || {
            std::thread::scope(|s| {
                let ha = s.spawn(|| c.read("/a"));
                let hb = s.spawn(|| c.read("/b"));
                (ha.join().expect("a"), hb.join().expect("b"))
            })
        },
        |p| {
            let m1 = p.recv();
            let m2 = p.recv();
            let answer = |m: &xenstore::wire::Message| {
                let v = if m.payload == b"/a\0" { &b"A"[..] } else { &b"B"[..] };
                frame(MsgType::Read, m.req_id, 0, v)
            };
            let ev = |n: u32| frame(MsgType::WatchEvent, 0, 0, format!("/w/{n}\0{token}\0").as_bytes());
            let mut all = ev(1);
            all.extend(answer(&m2));
            all.extend(ev(2));
            all.extend(answer(&m1));
            all.extend(ev(3));
            p.send_raw(&all);
        },
    );
    assert_eq!(a.expect("a"), b"A");
    assert_eq!(b.expect("b"), b"B");
    for n in 1..=3 {
        let ev = w.recv_timeout(Duration::from_secs(5)).expect("live");
        assert_eq!(ev, Some(WatchEvent::Changed(format!("/w/{n}"))));
    }
}

#[test]
fn device_events_with_garbage_req_id_never_resolve_requests() {
    let l = Listener::seqpacket();
    let (c, mut p) = connect(&l);
    assert!(c.is_device());
    let (w, token) = watch(&c, &mut p, "/w");
    let got = with_peer(
        &mut p,
        || c.read("/a"),
        |p| {
            let m = p.recv();
            // Same req_id as the pending READ, random tx_id: still an event.
            p.event("/w/x", &token, m.req_id, 0xdead_beef);
            p.event("/w/y", "someone-elses-token", m.req_id, 7);
            p.send(MsgType::WatchEvent, m.req_id, 0, b"no-token-at-all");
            std::thread::sleep(Duration::from_millis(50));
            p.reply(&m, b"value");
        },
    );
    assert_eq!(got.expect("read"), b"value");
    assert_eq!(w.try_recv().expect("live"), Some(WatchEvent::Changed("/w/x".into())));
    assert_eq!(w.try_recv().expect("live"), None, "unknown tokens are dropped");
}

#[test]
fn watch_reply_with_req_id_zero_matches_oldest_watch() {
    let l = Listener::seqpacket();
    let (c, mut p) = connect(&l);
    let w = with_peer(
        &mut p,
        || c.watch("/old/kernel"),
        |p| {
            let m = p.recv();
            let (_, tok) = watch_args(&m);
            p.send(MsgType::Watch, 0, 0, b"OK\0");
            p.event("/old/kernel", &tok, 0, 0);
        },
    );
    let w = w.expect("watch with req_id 0 reply");
    assert_eq!(
        w.recv_timeout(Duration::from_secs(5)).expect("live"),
        Some(WatchEvent::Changed("/old/kernel".into()))
    );
}

#[test]
fn unknown_req_ids_and_types_are_dropped() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let got = with_peer(
        &mut p,
        || c.read("/a"),
        |p| {
            let m = p.recv();
            p.send(MsgType::Read, m.req_id.wrapping_add(1000), 0, b"stray");
            p.send(MsgType::Unknown(77), 4242, 0, b"?");
            p.send(MsgType::Error, 999_999, 0, b"EINVAL\0");
            p.reply(&m, b"mine");
        },
    );
    assert_eq!(got.expect("read"), b"mine");
}

#[test]
fn timed_out_request_frees_its_slot_and_late_reply_is_dropped() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    c.set_timeout(Some(Duration::from_millis(100)));
    let mut late = None;
    let res = with_peer(&mut p, || c.read("/slow"), |p| late = Some(p.recv()));
    assert!(matches!(res, Err(Error::Timeout)), "{res:?}");
    let late = late.expect("request seen");
    c.set_timeout(Some(Duration::from_secs(5)));
    let got = with_peer(
        &mut p,
        || c.read("/fast"),
        |p| {
            let m = p.recv();
            p.reply(&late, b"stale");
            p.reply(&m, b"fresh");
        },
    );
    assert_eq!(got.expect("read"), b"fresh");
}

#[test]
fn reply_payload_rules() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    // Zero-length replies; values keep their NULs; errors map by name.
    let (empty, dir, nul, quota, other, mismatch) = with_peer(
        &mut p,
        || {
            (
                c.read("/e"),
                c.directory("/leaf"),
                c.read("/n"),
                c.write("/q", b"a\0b\0"),
                c.mkdir("/o"),
                c.rm("/m"),
            )
        },
        |p| {
            let m = p.recv();
            p.reply(&m, b"");
            let m = p.recv();
            p.reply(&m, b"");
            let m = p.recv();
            p.reply(&m, b"x\0");
            let m = p.recv();
            assert_eq!(m.payload, b"/q\0a\0b\0", "binary value sent as is");
            p.error(&m, "EQUOTA");
            let m = p.recv();
            p.error(&m, "EFUTURE");
            let m = p.recv();
            p.send(MsgType::Read, m.req_id, 0, b"wrong type");
        },
    );
    assert_eq!(empty.expect("empty"), b"");
    assert!(dir.expect("dir").is_empty());
    assert_eq!(nul.expect("nul"), b"x\0");
    assert_eq!(quota.expect_err("quota").kind(), Some(&ErrorKind::Quota));
    assert_eq!(
        other.expect_err("other").kind(),
        Some(&ErrorKind::Other("EFUTURE".into()))
    );
    assert!(matches!(mismatch, Err(Error::Protocol(_))), "{mismatch:?}");
}

#[test]
fn payload_limits_are_checked_before_sending() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    // "/p\0" is 3 bytes.
    let err = c.write("/p", vec![0u8; 4094]).expect_err("too big");
    assert!(matches!(err, Error::TooBig { len: 4097, max: 4096 }), "{err:?}");
    assert!(
        matches!(c.request(MsgType::Read, 0, b""), Err(Error::Protocol(_))),
        "never a zero-length payload"
    );
    assert!(p.try_recv(Duration::from_millis(100)).is_none(), "nothing was sent");
    let ok = with_peer(
        &mut p,
        || c.write("/p", vec![0u8; 4093]),
        |p| {
            let m = p.recv();
            assert_eq!(m.payload.len(), 4096);
            p.reply(&m, b"OK\0");
        },
    );
    ok.expect("4096 fits a socket");

    let l = Listener::seqpacket();
    let (c, mut p) = connect(&l);
    let err = c.write("/p", vec![0u8; 4078]).expect_err("too big for the device");
    assert!(matches!(err, Error::TooBig { len: 4081, max: 4080 }), "{err:?}");
    let ok = with_peer(
        &mut p,
        || c.write("/p", vec![0u8; 4077]),
        |p| {
            let m = p.recv();
            assert_eq!(m.payload.len(), 4080);
            p.reply(&m, b"OK\0");
        },
    );
    ok.expect("4080 fits the device");
}

/// A stream peer answers `DIRECTORY` with `n` names of 11 bytes each.
fn directory_of(n: usize) {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let names: Vec<String> = (0..n).map(|i| format!("name-{i:05}")).collect();
    let got = with_peer(
        &mut p,
        || c.directory("/big"),
        |p| {
            let m = p.recv();
            p.reply(&m, &xenstore::wire::join_nul(&names));
        },
    );
    assert_eq!(got.expect("a big directory"), names);
}

#[test]
fn oversize_replies_are_accepted() {
    // 4,400 bytes: over the 4,096 of the protocol, as oxenstored sends them.
    directory_of(400);
}

#[test]
fn a_stream_reply_longer_than_one_read_is_joined() {
    // 22,000 bytes: over five of the reader's 4,112-byte reads on a stream.
    directory_of(2000);
}

#[test]
fn handles_are_thread_safe_and_open_honours_xenstored_path() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync_clone::<Client>();
    send::<Watch>();
    send::<Error>();

    let l = Listener::stream();
    std::env::set_var("XENSTORED_PATH", l.path());
    let c = Client::open().expect("open via XENSTORED_PATH");
    std::env::remove_var("XENSTORED_PATH");
    let mut p = l.accept();
    assert!(!c.is_device());
    let got = with_peer(
        &mut p,
        || c.get_domain_path(7),
        |p| {
            let m = p.recv();
            assert_eq!((m.kind, m.payload.as_slice()), (MsgType::GetDomainPath, &b"7\0"[..]));
            p.reply(&m, b"/local/domain/7\0");
        },
    );
    assert_eq!(got.expect("domain path"), "/local/domain/7");
}
