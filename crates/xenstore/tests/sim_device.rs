//! The `/dev/xen/xenbus` emulation (packet socket) and the guest-side rules:
//! one message per write, the 4080-byte limit, watches handled by the kernel,
//! transactions tracked per open file, resume and RESET_WATCHES.

mod sim_support;

use sim_support::{nul, Rig, QUIET, WAIT};
use xenstore::wire::{Message, MsgType};

fn read_msg(req: u32, path: &str) -> Vec<u8> {
    Message::new(MsgType::Read, req, 0, nul(path)).encode()
}

#[test]
fn one_message_per_write() {
    let rig = Rig::c();
    let mut dev = rig.device();
    // Two requests in one packet: only the first is processed.
    let mut two = read_msg(1, "domid");
    two.extend(read_msg(2, "name"));
    dev.send_raw(&two);
    let m = dev.recv_timeout(WAIT).unwrap();
    assert_eq!((m.req_id, m.payload.as_slice()), (1, &b"5"[..]));
    assert!(dev.recv_timeout(QUIET).is_none(), "second message dropped");
    // A message split over several writes accumulates.
    let one = read_msg(3, "name");
    for piece in [&one[..3], &one[3..16], &one[16..]] {
        dev.send_raw(piece);
    }
    let m = dev.recv_timeout(WAIT).unwrap();
    assert_eq!((m.req_id, m.payload.as_slice()), (3, &b"guest-5"[..]));
    // A write completing a message drops whatever follows it.
    let mut tail = one[10..].to_vec();
    tail.extend(read_msg(4, "domid"));
    dev.send_raw(&one[..10]);
    dev.send_raw(&tail);
    assert_eq!(dev.recv_timeout(WAIT).unwrap().req_id, 3);
    assert!(dev.recv_timeout(QUIET).is_none());
    assert_eq!(dev.read("domid").unwrap(), b"5");
}

#[test]
fn device_size_limits_answer_like_write_errnos() {
    let rig = Rig::c();
    let mut dev = rig.device();
    let mut p = nul("data/x");
    p.resize(4081, b'a');
    // Declared payload above 4080: E2BIG as soon as the header is in.
    let big = Message::new(MsgType::Write, 9, 0, p.clone()).encode();
    dev.send_raw(&big[..16]);
    let m = dev.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (m.kind, m.req_id, m.payload.as_slice()),
        (MsgType::Error, 9, &b"E2BIG\0"[..])
    );
    // More than 4096 bytes in one write: EINVAL, buffer reset.
    dev.send_raw(&big);
    let m = dev.recv_timeout(WAIT).unwrap();
    assert_eq!((m.req_id, m.payload.as_slice()), (9, &b"EINVAL\0"[..]));
    // Exactly 4080 is fine (a WATCH with a long token: no node quota applies).
    let mut p = nul("data");
    p.resize(4079, b't');
    p.push(0);
    assert_eq!(dev.call(MsgType::Watch, 0, &p), Ok(b"OK\0".to_vec()));
}

#[test]
fn kernel_watches_allow_duplicates_and_carry_garbage_ids() {
    let rig = Rig::c();
    let mut dev = rig.device();
    dev.watch("data", "tok").unwrap();
    dev.watch_no_initial("data", "tok").unwrap();
    assert_eq!(dev.event().unwrap(), ("data".into(), "tok".into()));
    rig.sim.write("/local/domain/5/data/x", b"1");
    let a = dev.event_msg_within(WAIT).unwrap();
    let b = dev.event_msg_within(WAIT).unwrap();
    assert_eq!(a.payload, b"data/x\0tok\0");
    assert_eq!(b.payload, a.payload, "duplicate registration, duplicate event");
    assert!(
        [&a, &b].iter().any(|m| m.req_id != 0 || m.tx_id != 0),
        "event ids are garbage"
    );
    // UNWATCH of an unknown watch is OK; a real one removes one registration.
    assert_eq!(dev.unwatch("nothing", "zz"), Ok(()));
    dev.unwatch("data", "tok").unwrap();
    rig.sim.write("/local/domain/5/data/y", b"1");
    assert_eq!(dev.event().unwrap().0, "data/y");
    dev.no_event();
    // Malformed WATCH payloads are refused by the kernel.
    assert_eq!(dev.call(MsgType::Watch, 0, b"data"), Err("EINVAL".into()));
    assert_eq!(dev.call(MsgType::Watch, 0, b"data\0tok"), Err("EINVAL".into()));
    assert_eq!(dev.call(MsgType::Watch, 0, b"a b\0t\0"), Err("EINVAL".into()));
}

#[test]
fn kernel_transaction_checks() {
    for rig in [Rig::c(), Rig::ox()] {
        let mut dev = rig.device();
        let mut other = rig.device();
        let tx = dev.start();
        dev.write_tx(tx, "data/t", b"1").unwrap();
        // Unknown or foreign transaction ids: ENOENT from the kernel, any flavour.
        assert_eq!(other.read_tx(tx, "data/t"), Err("ENOENT".into()));
        assert_eq!(dev.read_tx(tx + 50, "data/t"), Err("ENOENT".into()));
        for bad in [&b"T"[..], b"T\0\0", b"X\0", b"\0"] {
            assert_eq!(dev.call(MsgType::TransactionEnd, tx, bad), Err("EINVAL".into()));
        }
        dev.end(tx, true).unwrap();
        assert_eq!(dev.read("data/t").unwrap(), b"1");
        assert_eq!(dev.end(tx, true), Err("ENOENT".into()));
    }
}

#[test]
fn resume_fails_open_transactions_and_refires_watches() {
    let rig = Rig::c();
    let mut dev = rig.device();
    let mut sock = rig.guest();
    dev.watch("data", "a").unwrap();
    dev.watch("domid", "b").unwrap();
    sock.watch("data", "s").unwrap();
    let t1 = dev.start();
    let t2 = dev.start();
    dev.write_tx(t1, "data/r", b"1").unwrap();
    rig.sim.simulate_resume(5);
    let mut got = vec![dev.event().unwrap(), dev.event().unwrap()];
    got.sort();
    assert_eq!(got, [("data".into(), "a".into()), ("domid".into(), "b".into())]);
    sock.no_event();
    assert_eq!(dev.end(t1, true), Err("EAGAIN".into()));
    assert_eq!(dev.end(t2, false), Ok(()));
    assert_eq!(dev.read("data/r"), Err("ENOENT".into()));
    let t3 = dev.start();
    dev.write_tx(t3, "data/r", b"2").unwrap();
    assert_eq!(dev.end(t3, true), Ok(()));
}

#[test]
fn reset_watches_through_the_device_wipes_the_whole_domain() {
    let rig = Rig::c();
    let mut dev = rig.device();
    let mut dev2 = rig.device();
    let mut sock = rig.guest();
    let mut dom0 = rig.dom0();
    dev2.watch("data", "k").unwrap();
    sock.watch("data", "s").unwrap();
    dom0.watch("/local/domain/5/data", "d").unwrap();
    let tx = dev2.start();
    dev.call(MsgType::ResetWatches, 0, b"\0").unwrap();
    assert_eq!(rig.sim.stats().requests_of(MsgType::ResetWatches), 1);
    rig.sim.write("/local/domain/5/data/z", b"");
    dev2.no_event();
    sock.no_event();
    assert_eq!(dom0.event().unwrap().0, "/local/domain/5/data/z");
    // The kernel still thinks the transaction is open; xenstored forgot it.
    assert_eq!(dev2.read_tx(tx, "data"), Err("ENOENT".into()));
}

#[test]
fn device_is_unprivileged_with_its_home() {
    let rig = Rig::c();
    let mut dev = rig.device();
    assert_eq!(dev.read("name").unwrap(), b"guest-5");
    assert_eq!(dev.write("vm-data/x", b"1"), Err("EACCES".into()));
    assert_eq!(dev.write("/local/domain/0/x", b"1"), Err("EACCES".into()));
    assert_eq!(dev.call(MsgType::Introduce, 0, b"6\x001\x002\0"), Err("EACCES".into()));
    dev.write("data/guest/1", b"{}").unwrap();
    assert_eq!(rig.sim.read("/local/domain/5/data/guest/1").unwrap(), b"{}");
    // Closing the device drops its watches.
    dev.watch("data", "gone").unwrap();
    drop(dev);
    let mut dev = rig.device();
    rig.sim.write("/local/domain/5/data/q", b"");
    dev.no_event();
}
