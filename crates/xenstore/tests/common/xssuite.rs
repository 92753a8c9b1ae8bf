//! The client test suite, written against a `Target` so that the same cases run
//! against the real C xenstored, the real oxenstored and the simulator.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};
use xenstore::wire::MsgType;
use xenstore::{Access, Client, Error, ErrorKind, Perm, WatchEvent};

/// Whose behaviour to expect where the daemons differ (xenstore.md §1.11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// C xenstored.
    C,
    /// oxenstored.
    Ox,
}

/// A daemon to test against.
pub struct Target {
    /// For messages.
    pub name: String,
    /// Unix socket of the daemon.
    pub socket: PathBuf,
    /// Which behaviour to expect.
    pub flavour: Flavour,
    /// Drops every connection and brings the daemon back on the same socket
    /// (a real daemon is killed and started again, empty).
    pub restart: Box<dyn FnMut()>,
    /// Makes the daemon stop answering until `restart` (SIGSTOP), if possible.
    pub freeze: Option<Box<dyn FnMut()>>,
}

pub const T: Duration = Duration::from_secs(5);

impl Target {
    pub fn client(&self) -> Client {
        let c = Client::connect(&self.socket).unwrap_or_else(|e| panic!("{}: connect: {e}", self.name));
        assert!(!c.is_device(), "{}: a daemon socket is a stream", self.name);
        c.set_timeout(Some(Duration::from_secs(10)));
        c
    }
}

fn xs(e: &Error) -> Option<&ErrorKind> {
    e.kind()
}

/// Next event, failing the test on timeout or error.
pub fn next(w: &xenstore::Watch) -> WatchEvent {
    match w.recv_timeout(T) {
        Ok(Some(ev)) => ev,
        other => panic!("watch {}: no event: {other:?}", w.path()),
    }
}

/// Waits for `Changed(path)`, skipping other events (spurious ones are legal).
pub fn wait_changed(w: &xenstore::Watch, path: &str) {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        if let Ok(Some(WatchEvent::Changed(p))) = w.recv_timeout(Duration::from_millis(100)) {
            if p == path {
                return;
            }
        }
    }
    panic!("watch {}: no event for {path}", w.path());
}

/// Drains whatever is queued right now.
pub fn drain(w: &xenstore::Watch) {
    while let Ok(Some(_)) = w.recv_timeout(Duration::from_millis(50)) {}
}

/// Removes `path` (and tolerates a missing parent).
pub fn fresh(c: &Client, path: &str) {
    match c.rm(path) {
        Ok(()) => {}
        Err(e) if e.is_noent() => {}
        Err(e) => panic!("rm {path}: {e}"),
    }
}

pub fn basic_operations(t: &mut Target) {
    let c = t.client();
    fresh(&c, "/suite/basic");
    c.write("/suite/basic/a", "hello").expect("write");
    assert_eq!(c.read("/suite/basic/a").expect("read"), b"hello");
    assert_eq!(c.read_string("/suite/basic/a").expect("read_string"), "hello");
    assert!(c.exists("/suite/basic/a").expect("exists"));
    assert!(!c.exists("/suite/basic/missing").expect("exists missing"));
    assert!(c.read("/suite/basic/missing").expect_err("ENOENT").is_noent());
    c.mkdir("/suite/basic/dir").expect("mkdir");
    c.mkdir("/suite/basic/dir").expect("mkdir again is a no-op");
    assert_eq!(c.read("/suite/basic/dir").expect("empty"), b"");
    let mut kids = c.directory("/suite/basic").expect("directory");
    kids.sort();
    assert_eq!(kids, ["a", "dir"]);
    assert!(c.directory("/suite/basic/a").expect("leaf").is_empty());
    c.rm("/suite/basic/a").expect("rm");
    c.rm("/suite/basic/a").expect("rm of a missing node is fine");
    assert!(c.rm("/suite/nope/a").expect_err("missing parent").is_noent());
    assert_eq!(c.get_domain_path(3).expect("domain path"), "/local/domain/3");
    // Relative paths resolve to dom0's home on a socket.
    c.write("suite-rel/x", "r").expect("relative write");
    assert_eq!(c.read("/local/domain/0/suite-rel/x").expect("abs read"), b"r");
    c.rm("suite-rel").expect("rm relative");
    // Perms round-trip.
    let perms = [Perm::new(0, Access::None), Perm::new(0, Access::Read)];
    c.set_perms("/suite/basic/dir", &perms).expect("set_perms");
    assert_eq!(c.get_perms("/suite/basic/dir").expect("get_perms"), perms);
    // Client-side checks: nothing sent.
    assert!(matches!(c.read("/bad//path"), Err(Error::Path(_))));
    assert!(matches!(
        c.write("/a", vec![b'x'; 4096]),
        Err(Error::TooBig { max: 4096, .. })
    ));
    // Unknown types are refused by the daemon, and the connection survives.
    assert_eq!(
        xs(&c.request(MsgType::Unknown(99), 0, b"x\0").expect_err("ENOSYS")),
        Some(&ErrorKind::Nosys)
    );
    assert_eq!(c.read("/suite/basic/dir").expect("still connected"), b"");
    c.rm("/suite/basic").expect("cleanup");
}

pub fn binary_values(t: &mut Target) {
    let c = t.client();
    for value in [&b"a\0b\xff\xfe"[..], b"x\0", b"\0", b"", b"\xff"] {
        c.write("/suite/bin", value).expect("write");
        assert_eq!(c.read("/suite/bin").expect("read"), value, "{value:?}");
    }
    assert!(matches!(c.read_string("/suite/bin"), Err(Error::Protocol(_))));
    c.rm("/suite/bin").expect("cleanup");
}

pub fn value_limits(t: &mut Target) {
    let c = t.client();
    c.write("/suite/big", vec![b'v'; 2048])
        .expect("2048 bytes are fine everywhere");
    let res = c.write("/suite/big", vec![b'v'; 2049]);
    match t.flavour {
        Flavour::Ox => assert_eq!(xs(&res.expect_err("E2BIG")), Some(&ErrorKind::TooBig)),
        Flavour::C => res.expect("C has no value quota for dom0"),
    }
    // The largest request that fits: path "/suite/big\0" (11 bytes) + value.
    let max = vec![b'w'; 4096 - 11];
    let res = c.write("/suite/big", &max);
    match t.flavour {
        Flavour::Ox => assert!(res.is_err()),
        Flavour::C => {
            res.expect("4096-byte payload");
            assert_eq!(c.read("/suite/big").expect("read back"), max);
        }
    }
    c.rm("/suite/big").expect("cleanup");
}

pub fn large_directory(t: &mut Target) {
    let c = t.client();
    fresh(&c, "/suite/large");
    let names: Vec<String> = (0..150).map(|i| format!("child-with-a-long-name-{i:06}")).collect();
    c.transaction(|tx| {
        for n in &names {
            tx.write(&format!("/suite/large/{n}"), "v")?;
        }
        Ok(())
    })
    .expect("populate");
    let raw = c.request(MsgType::Directory, 0, b"/suite/large\0");
    match t.flavour {
        Flavour::C => assert_eq!(xs(&raw.expect_err("C refuses")), Some(&ErrorKind::TooBig)),
        Flavour::Ox => assert!(raw.expect("ox sends an oversize reply").len() > 4096),
    }
    let mut got = c.directory("/suite/large").expect("directory");
    got.sort();
    assert_eq!(got, names);
    c.rm("/suite/large").expect("cleanup");
}

pub fn watch_initial_event(t: &mut Target) {
    let c = t.client();
    let w = c.watch("/suite/nonexistent/x").expect("watch");
    assert!(w.token().contains(':'), "token {}", w.token());
    assert_eq!(next(&w), WatchEvent::Changed("/suite/nonexistent/x".into()));
    // A relative watch reports relative paths.
    let r = c.watch("suite-relw").expect("relative watch");
    assert_eq!(next(&r), WatchEvent::Changed("suite-relw".into()));
    c.write("suite-relw/x", "1").expect("write");
    wait_changed(&r, "suite-relw/x");
    c.rm("suite-relw").expect("cleanup");
}

pub fn watch_own_write_ordering(t: &mut Target) {
    let c = t.client();
    c.write("/suite/order", "0").expect("write");
    let w = c.watch("/suite/order").expect("watch");
    assert_eq!(next(&w), WatchEvent::Changed("/suite/order".into()));
    drain(&w);
    c.write("/suite/order/x", "1").expect("write");
    match t.flavour {
        // C sends the event before the WRITE reply: it is queued when write returns.
        Flavour::C => assert_eq!(
            w.try_recv().expect("live"),
            Some(WatchEvent::Changed("/suite/order/x".into()))
        ),
        // oxenstored sends it after the reply.
        Flavour::Ox => assert_eq!(next(&w), WatchEvent::Changed("/suite/order/x".into())),
    }
    fresh(&c, "/suite/order");
    wait_changed(&w, "/suite/order");
    // Removing a parent reports the watched path itself.
    c.write("/suite/order/deep/er", "1").expect("write");
    let w2 = c.watch("/suite/order/deep/er").expect("watch");
    drain(&w2);
    c.rm("/suite/order").expect("rm parent");
    wait_changed(&w2, "/suite/order/deep/er");
}

pub fn two_tokens_one_path(t: &mut Target) {
    let c = t.client();
    let a = c.watch("/suite/two").expect("watch a");
    let b = c.watch("/suite/two").expect("watch b");
    assert_ne!(a.token(), b.token());
    drain(&a);
    drain(&b);
    let other = t.client();
    other.write("/suite/two", "x").expect("write");
    wait_changed(&a, "/suite/two");
    wait_changed(&b, "/suite/two");
    // Unwatching one leaves the other.
    a.unwatch().expect("unwatch");
    other.write("/suite/two", "y").expect("write");
    wait_changed(&b, "/suite/two");
    c.rm("/suite/two").expect("cleanup");
}

pub fn duplicate_watch_eexist(t: &mut Target) {
    let c = t.client();
    let payload = b"/suite/dup\0dup-token\0";
    c.request(MsgType::Watch, 0, payload).expect("first watch");
    let err = c.request(MsgType::Watch, 0, payload).expect_err("duplicate");
    assert_eq!(xs(&err), Some(&ErrorKind::Exist));
    c.request(MsgType::Unwatch, 0, payload).expect("unwatch");
    let err = c.request(MsgType::Unwatch, 0, payload).expect_err("unknown watch");
    assert_eq!(xs(&err), Some(&ErrorKind::Noent));
    // Events for the raw token (unknown to the client) were dropped; still alive.
    assert!(!c.exists("/suite/dup").expect("alive"));
}

pub fn transaction_isolation(t: &mut Target) {
    let c = t.client();
    let other = t.client();
    fresh(&c, "/suite/tx");
    c.transaction(|tx| {
        assert!(tx.id() != 0);
        tx.write("/suite/tx/a", "1")?;
        assert_eq!(tx.read("/suite/tx/a")?, b"1");
        assert!(
            !other.exists("/suite/tx/a").expect("outside read"),
            "not visible before commit"
        );
        Ok(())
    })
    .expect("commit");
    assert_eq!(other.read("/suite/tx/a").expect("visible after commit"), b"1");
    // An error in the closure aborts.
    let res: Result<(), Error> = c.transaction(|tx| {
        tx.write("/suite/tx/b", "1")?;
        Err(Error::Protocol("caller gave up".into()))
    });
    assert!(matches!(res, Err(Error::Protocol(_))));
    assert!(!other.exists("/suite/tx/b").expect("read"), "aborted write is gone");
    c.rm("/suite/tx").expect("cleanup");
}

pub fn transaction_conflict_retry(t: &mut Target) {
    let c = t.client();
    let other = t.client();
    c.write("/suite/txc/n", "0").expect("write");
    let mut attempts = 0;
    let out = c
        .transaction(|tx| {
            attempts += 1;
            let n: u32 = tx.read_string("/suite/txc/n")?.parse().unwrap_or(0);
            if attempts == 1 {
                other.write("/suite/txc/n", "10").expect("conflicting write");
            }
            tx.write("/suite/txc/n", (n + 1).to_string())?;
            Ok(n + 1)
        })
        .expect("retried commit");
    assert_eq!(attempts, 2, "EAGAIN re-ran the closure once");
    assert_eq!(out, 11);
    assert_eq!(c.read("/suite/txc/n").expect("read"), b"11");
    c.rm("/suite/txc").expect("cleanup");
}

pub fn transaction_events_and_stale_id(t: &mut Target) {
    let c = t.client();
    c.write("/suite/txe", "0").expect("write");
    let w = c.watch("/suite/txe").expect("watch");
    drain(&w);
    let mut id = 0;
    c.transaction(|tx| {
        id = tx.id();
        tx.write("/suite/txe/x", "1")?;
        assert_eq!(
            w.recv_timeout(Duration::from_millis(200)).expect("live"),
            None,
            "no event before commit"
        );
        // Nesting is refused.
        let nested = c.request(MsgType::TransactionStart, tx.id(), b"\0").expect_err("EBUSY");
        assert_eq!(xs(&nested), Some(&ErrorKind::Busy));
        Ok(())
    })
    .expect("commit");
    wait_changed(&w, "/suite/txe/x");
    // The id is dead after END.
    let stale = c.request(MsgType::Read, id, b"/suite/txe\0").expect_err("stale tx");
    let want = match t.flavour {
        Flavour::C => ErrorKind::Noent,
        Flavour::Ox => ErrorKind::Io,
    };
    assert_eq!(xs(&stale), Some(&want));
    c.rm("/suite/txe").expect("cleanup");
}

pub fn concurrent_requests(t: &mut Target) {
    let c = t.client();
    let w = c.watch("/suite/conc").expect("watch");
    std::thread::scope(|s| {
        for i in 0..8 {
            let c = c.clone();
            s.spawn(move || {
                for j in 0..100 {
                    let p = format!("/suite/conc/{i}/{j}");
                    c.write(&p, format!("{i}-{j}")).expect("write");
                    assert_eq!(c.read(&p).expect("read"), format!("{i}-{j}").as_bytes());
                }
            });
        }
    });
    // Events kept flowing to the watch meanwhile.
    let mut seen = 0;
    while let Ok(Some(_)) = w.try_recv() {
        seen += 1;
    }
    assert!(seen > 0);
    assert_eq!(c.directory("/suite/conc").expect("dir").len(), 8);
    c.rm("/suite/conc").expect("cleanup");
}

pub fn waker_ends_a_wait(t: &mut Target) {
    let c = t.client();
    let w = c.watch("/suite/wake").expect("watch");
    drain(&w);
    let waker = w.waker();
    // From another thread, while the watch waits far longer.
    let started = Instant::now();
    let thread = {
        let waker = waker.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            waker.wake()
        })
    };
    assert_eq!(w.recv_timeout(Duration::from_secs(30)).expect("live"), None);
    assert!(thread.join().unwrap(), "the watch was there to wake");
    assert!(started.elapsed() < Duration::from_secs(30));
    // A wake sent while nobody waits ends the next wait; events still arrive.
    assert!(waker.wake());
    assert_eq!(w.try_recv().expect("live"), None);
    let other = t.client();
    other.write("/suite/wake", "x").expect("write");
    wait_changed(&w, "/suite/wake");
    // Waking a removed watch does nothing.
    w.unwatch().expect("unwatch");
    assert!(!waker.wake());
    fresh(&c, "/suite/wake");
    drop(c);
    assert!(!waker.wake(), "the client is gone");
}

/// A named suite case.
pub type Case = (&'static str, fn(&mut Target));

/// Every case except the restart one, in order.
pub fn run_all(t: &mut Target) {
    let cases: [Case; 13] = [
        ("basic_operations", basic_operations),
        ("binary_values", binary_values),
        ("value_limits", value_limits),
        ("large_directory", large_directory),
        ("watch_initial_event", watch_initial_event),
        ("watch_own_write_ordering", watch_own_write_ordering),
        ("two_tokens_one_path", two_tokens_one_path),
        ("duplicate_watch_eexist", duplicate_watch_eexist),
        ("waker_ends_a_wait", waker_ends_a_wait),
        ("transaction_isolation", transaction_isolation),
        ("transaction_conflict_retry", transaction_conflict_retry),
        ("transaction_events_and_stale_id", transaction_events_and_stale_id),
        ("concurrent_requests", concurrent_requests),
    ];
    for (name, case) in cases {
        eprintln!("[{}] {name}", t.name);
        case(t);
    }
}
