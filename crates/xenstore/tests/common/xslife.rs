//! Lifecycle cases of the suite: the daemon goes away mid-session.
#![allow(dead_code)]

use super::xssuite::{drain, wait_changed, Target};
use std::time::{Duration, Instant};
use xenstore::{Error, WatchEvent};

/// Kill and restart the daemon mid-session: a pending call fails with
/// `Disconnected` (no hang), the watch comes back with `Reconnected` and keeps
/// delivering, and later calls work.
pub fn restart_mid_session(t: &mut Target) {
    eprintln!("[{}] restart_mid_session", t.name);
    let c = t.client();
    c.write("/suite/life/a", "1").expect("write");
    let w = c.watch("/suite/life").expect("watch");
    drain(&w);
    let before = c.reconnect_count();

    let pending = t.freeze.as_mut().map(|freeze| {
        freeze();
        let c2 = c.clone();
        let h = std::thread::spawn(move || {
            let start = Instant::now();
            (c2.read("/suite/life/a"), start.elapsed())
        });
        // Let the request reach the (stopped) daemon.
        std::thread::sleep(Duration::from_millis(200));
        h
    });
    (t.restart)();
    if let Some(h) = pending {
        let (res, took) = h.join().expect("reader thread");
        assert!(matches!(res, Err(Error::Disconnected)), "pending call: {res:?}");
        assert!(took < Duration::from_secs(5), "pending call took {took:?}");
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no Reconnected event");
        match w.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(WatchEvent::Reconnected)) => break,
            Ok(_) => {}
            Err(e) => panic!("watch died: {e}"),
        }
    }
    assert!(c.reconnect_count() > before, "reconnect_count did not move");

    c.write("/suite/life/b", "2").expect("write after restart");
    assert_eq!(c.read("/suite/life/b").expect("read after restart"), b"2");
    wait_changed(&w, "/suite/life/b");
    // Another, fresh client works too, and the old watch still follows.
    let other = t.client();
    other.write("/suite/life/c", "3").expect("write");
    wait_changed(&w, "/suite/life/c");
    c.rm("/suite/life").expect("cleanup");
}
