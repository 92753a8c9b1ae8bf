//! Client unit tests against a scripted peer: transactions, the in-flight cap,
//! DIRECTORY_PART, device watch dedupe, disconnect/reconnect and shutdown.

#[path = "common/fakepeer.rs"]
mod fakepeer;

use fakepeer::{connect, watch, watch_args, with_peer, Listener};
use std::time::{Duration, Instant};
use xenstore::wire::{Header, MsgType};
use xenstore::{Error, ErrorKind, WatchEvent};

#[test]
fn transaction_retries_on_eagain_and_aborts_on_error() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let mut runs = 0;
    let res = with_peer(
        &mut p,
        || {
            c.transaction(|tx| {
                runs += 1;
                tx.write("/k", "v")?;
                Ok(tx.id())
            })
        },
        |p| {
            for (id, end) in [(7u32, "EAGAIN"), (8, "")] {
                let m = p.recv();
                assert_eq!(m.kind, MsgType::TransactionStart);
                assert_eq!(m.payload, b"\0", "START carries one NUL");
                assert_eq!(m.tx_id, 0);
                p.reply(&m, format!("{id}\0").as_bytes());
                let m = p.recv();
                assert_eq!((m.kind, m.tx_id), (MsgType::Write, id));
                p.reply(&m, b"OK\0");
                let m = p.recv();
                assert_eq!(
                    (m.kind, m.tx_id, m.payload.as_slice()),
                    (MsgType::TransactionEnd, id, &b"T\0"[..])
                );
                if end.is_empty() {
                    p.reply(&m, b"OK\0");
                } else {
                    p.error(&m, end);
                }
            }
        },
    );
    assert_eq!(res.expect("committed on the second run"), 8);
    assert_eq!(runs, 2);

    let res: Result<(), Error> = with_peer(
        &mut p,
        || c.transaction(|_| Err(Error::Xs(ErrorKind::Acces))),
        |p| {
            let m = p.recv();
            p.reply(&m, b"9\0");
            let m = p.recv();
            assert_eq!(
                (m.kind, m.tx_id, m.payload.as_slice()),
                (MsgType::TransactionEnd, 9, &b"F\0"[..])
            );
            p.reply(&m, b"OK\0");
        },
    );
    assert_eq!(res.expect_err("closure error").kind(), Some(&ErrorKind::Acces));
}

#[test]
fn transaction_retries_are_bounded() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let mut runs = 0;
    let res = with_peer(
        &mut p,
        || {
            c.transaction(|_| {
                runs += 1;
                Ok(())
            })
        },
        |p| {
            while let Some(m) = p.try_recv(Duration::from_millis(500)) {
                match m.kind {
                    MsgType::TransactionStart => p.reply(&m, b"1\0"),
                    _ => p.error(&m, "EAGAIN"),
                }
            }
        },
    );
    assert_eq!(res.expect_err("gave up").kind(), Some(&ErrorKind::Again));
    assert_eq!(runs, 16);
}

#[test]
fn at_most_eight_requests_in_flight_one_message_per_packet() {
    let l = Listener::seqpacket();
    let (c, mut p) = connect(&l);
    let results = with_peer(
        &mut p,
        || {
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..12)
                    .map(|i| {
                        let c = &c;
                        s.spawn(move || c.read(&format!("/r{i}")))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().expect("join")).collect::<Vec<_>>()
            })
        },
        |p| {
            let mut held = Vec::new();
            while let Some(m) = p.try_recv(Duration::from_millis(300)) {
                held.push(m);
            }
            assert_eq!(held.len(), 8, "only 8 in flight");
            let mut answered = 0;
            while answered < 12 {
                let m = if let Some(m) = held.pop() { m } else { p.recv() };
                let path = String::from_utf8_lossy(&m.payload).trim_end_matches('\0').to_string();
                p.reply(&m, path.as_bytes());
                answered += 1;
            }
        },
    );
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.expect("read"), format!("/r{i}").as_bytes());
    }
}

#[test]
fn directory_part_fallback_restarts_when_generation_changes() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let got = with_peer(
        &mut p,
        || c.directory("/big"),
        |p| {
            let m = p.recv();
            assert_eq!(m.kind, MsgType::Directory);
            p.error(&m, "E2BIG");
            // gen 1: first chunk ends mid-name; then the generation changes.
            let m = p.recv();
            assert_eq!(m.payload, b"/big\x000\x00");
            p.reply(&m, b"1\0alpha\0be");
            let m = p.recv();
            assert_eq!(m.payload, b"/big\x008\x00");
            p.reply(&m, b"2\0ta\0\0");
            // Restart from 0 under gen 2.
            let m = p.recv();
            assert_eq!(m.payload, b"/big\x000\x00");
            p.reply(&m, b"2\0alpha\0ga");
            let m = p.recv();
            assert_eq!(m.payload, b"/big\x008\x00");
            p.reply(&m, b"2\0mma\0delta\0\0");
        },
    );
    assert_eq!(got.expect("directory"), ["alpha", "gamma", "delta"]);
    // oxenstored: DIRECTORY_PART is ENOSYS, keep the E2BIG.
    let got = with_peer(
        &mut p,
        || c.directory("/big"),
        |p| {
            let m = p.recv();
            p.error(&m, "E2BIG");
            let m = p.recv();
            p.error(&m, "ENOSYS");
        },
    );
    assert_eq!(got.expect_err("E2BIG").kind(), Some(&ErrorKind::TooBig));
}

#[test]
fn device_dedupes_watches_on_the_same_path() {
    let l = Listener::seqpacket();
    let (c, mut p) = connect(&l);
    // The daemon's initial event for the registration reaches `a` first.
    let (a, token) = watch(&c, &mut p, "/d");
    let b = c.watch("/d").expect("second watch shares the registration");
    assert!(
        p.try_recv(Duration::from_millis(100)).is_none(),
        "no second WATCH on the device"
    );
    assert_eq!(a.token(), b.token());
    assert_eq!(
        b.recv_timeout(Duration::from_secs(1)).expect("live"),
        Some(WatchEvent::Changed("/d".into()))
    );
    p.event("/d/x", &token, 0x4141_4141, 0x4242_4242);
    for w in [&a, &b] {
        assert_eq!(
            w.recv_timeout(Duration::from_secs(1)).expect("live"),
            Some(WatchEvent::Changed("/d/x".into()))
        );
    }
    drop(a);
    assert!(p.try_recv(Duration::from_millis(100)).is_none(), "still one subscriber");
    drop(b);
    let m = p.recv();
    assert_eq!(m.kind, MsgType::Unwatch);
    assert_eq!(watch_args(&m), ("/d".to_string(), token));
}

#[test]
fn disconnect_fails_pending_then_reconnects_and_rewatches() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let mut token = String::new();
    let w = with_peer(
        &mut p,
        || c.watch("/r").expect("watch"),
        |p| {
            let m = p.recv();
            token = watch_args(&m).1;
            p.reply(&m, b"OK\0");
        },
    );
    // A pending read fails with Disconnected when the daemon goes away.
    let dir = l.close();
    let res = std::thread::scope(|s| {
        let h = s.spawn(|| c.read("/a"));
        let _ = p.recv();
        drop(p);
        h.join().expect("client thread")
    });
    assert!(matches!(res, Err(Error::Disconnected)), "{res:?}");
    // While the daemon is down, calls fail fast.
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    assert!(matches!(c.read("/a"), Err(Error::Disconnected)));
    assert!(matches!(c.watch("/other"), Err(Error::Disconnected)));
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(c.reconnect_count(), 0);
    // The daemon comes back on the same path: the watch is re-registered.
    let l = Listener::reopen(dir, false);
    let mut p = l.accept();
    let m = p.recv();
    assert_eq!(m.kind, MsgType::Watch);
    assert_eq!(watch_args(&m), ("/r".to_string(), token.clone()));
    p.reply(&m, b"OK\0");
    p.event("/r", &token, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while seen.len() < 2 && Instant::now() < deadline {
        if let Some(ev) = w.recv_timeout(Duration::from_millis(100)).expect("live") {
            seen.push(ev);
        }
    }
    assert_eq!(seen, [WatchEvent::Reconnected, WatchEvent::Changed("/r".into())]);
    assert_eq!(c.reconnect_count(), 1);
    let got = with_peer(
        &mut p,
        || c.read("/a"),
        |p| {
            let m = p.recv();
            p.reply(&m, b"back");
        },
    );
    assert_eq!(got.expect("read after reconnect"), b"back");
}

#[test]
fn garbage_header_is_a_disconnect_not_a_panic() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let res = with_peer(
        &mut p,
        || c.read("/a"),
        |p| {
            let _ = p.recv();
            let h = Header {
                kind: MsgType::Read,
                req_id: 1,
                tx_id: 0,
                len: u32::MAX,
            };
            p.send_raw(&h.encode());
        },
    );
    assert!(matches!(res, Err(Error::Disconnected)), "{res:?}");
    // It reconnects (the listener is still there).
    let mut p2 = l.accept();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.reconnect_count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = with_peer(
        &mut p2,
        || c.read("/a"),
        |p| {
            let m = p.recv();
            p.reply(&m, b"ok");
        },
    );
    assert_eq!(got.expect("read"), b"ok");
}

#[test]
fn an_oversize_reply_fails_its_request_and_keeps_the_connection() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let res = with_peer(
        &mut p,
        || c.read("/big"),
        |p| {
            let m = p.recv();
            p.reply(&m, &vec![b'x'; 70 * 1024]);
        },
    );
    assert!(matches!(res, Err(Error::ReplyTooBig { len: 71680, .. })), "{res:?}");
    let got = with_peer(
        &mut p,
        || c.read("/a"),
        |p| {
            let m = p.recv();
            p.reply(&m, b"ok");
        },
    );
    assert_eq!(got.expect("read on the same connection"), b"ok");
    assert_eq!(c.reconnect_count(), 0);
}

#[test]
fn dropping_the_last_client_stops_the_reader() {
    let l = Listener::stream();
    let (c, mut p) = connect(&l);
    let w = with_peer(
        &mut p,
        || c.watch("/w").expect("watch"),
        |p| {
            let m = p.recv();
            p.reply(&m, b"OK\0");
        },
    );
    let clone = c.clone();
    drop(c);
    assert!(!p.eof_within(Duration::from_millis(100)), "a clone keeps it open");
    let start = Instant::now();
    drop(clone);
    assert!(start.elapsed() < Duration::from_secs(1), "drop does not hang");
    assert!(
        p.eof_within(Duration::from_secs(2)),
        "connection closed by the reader's exit"
    );
    assert!(matches!(
        w.recv_timeout(Duration::from_secs(1)),
        Err(Error::Disconnected)
    ));
    drop(w); // UNWATCH on a dead client is a no-op
}
