//! Unit tests of the tree and its access rules.

use super::*;

const GUEST: Actor = Actor {
    domid: 5,
    privileged: false,
};

fn limits() -> Limits {
    Limits {
        node_size_max: 2048,
        value_max: None,
        nodes_per_domain: 1000,
        quota_error: ErrorKind::Nospc,
    }
}

fn j() -> Journal {
    Journal::default()
}

fn p(s: &str) -> Perm {
    Perm::parse(s).expect("valid perm")
}

/// `/local/domain/5` (`n0 r5`) with `data` (`n0 b5`) and `vm-data` (`n0 r5`).
fn guest_tree() -> Store {
    let mut s = Store::new();
    for (path, perms) in [
        ("/local/domain/5", vec![p("n0"), p("r5")]),
        ("/local/domain/5/data", vec![p("n0"), p("b5")]),
        ("/local/domain/5/vm-data", vec![p("n0"), p("r5")]),
    ] {
        s.write(Actor::DOM0, path, b"", &limits(), &mut j()).unwrap();
        s.set_perms(Actor::DOM0, path, perms, &mut j()).unwrap();
    }
    s
}

#[test]
fn rights_follow_perm_for_conn() {
    let perms = [p("n0"), p("r5")];
    assert!(rights(GUEST, &perms).read);
    assert!(!rights(GUEST, &perms).write);
    let other = Actor {
        domid: 6,
        privileged: false,
    };
    assert!(!rights(other, &perms).read);
    assert!(rights(other, &[p("r0")]).read, "default access");
    assert!(rights(GUEST, &[p("n5")]).owner);
    assert!(rights(Actor::DOM0, &[p("n5")]).write);
}

#[test]
fn write_creates_parents_with_inherited_perms_owned_by_creator() {
    let mut s = guest_tree();
    s.write(GUEST, "/local/domain/5/data/a/b", b"v", &limits(), &mut j())
        .unwrap();
    let a = s.get("/local/domain/5/data/a").unwrap();
    assert_eq!(a.value, b"");
    assert_eq!(a.perms, vec![p("n5"), p("b5")]);
    assert_eq!(s.get("/local/domain/5/data/a/b").unwrap().value, b"v");
    assert_eq!(s.owned_by(5), 2);
    // dom0's nodes inherit the parent's owner.
    s.write(Actor::DOM0, "/local/domain/5/vm-data/x", b"1", &limits(), &mut j())
        .unwrap();
    assert_eq!(
        s.get("/local/domain/5/vm-data/x").unwrap().perms,
        vec![p("n0"), p("r5")]
    );
}

#[test]
fn guest_access_errors() {
    let mut s = guest_tree();
    let w = |s: &mut Store, path: &str| s.write(GUEST, path, b"x", &limits(), &mut j()).err();
    assert_eq!(w(&mut s, "/local/domain/5/vm-data/x"), Some(ErrorKind::Acces));
    assert_eq!(w(&mut s, "/local/domain/5/name"), Some(ErrorKind::Acces));
    assert_eq!(w(&mut s, "/tool/x"), Some(ErrorKind::Acces));
    assert_eq!(w(&mut s, "/local/domain/5/data/ok"), None);
    // A missing node under an unreadable parent is EACCES, not ENOENT.
    let r = |s: &Store, path: &str| s.lookup(GUEST, path, Need::Read, &mut j()).err();
    assert_eq!(r(&s, "/local/domain/6/x"), Some(ErrorKind::Acces));
    assert_eq!(r(&s, "/local/domain/5/nothing"), Some(ErrorKind::Noent));
}

#[test]
fn rm_rules() {
    let mut s = guest_tree();
    s.write(Actor::DOM0, "/a/b/c", b"", &limits(), &mut j()).unwrap();
    assert_eq!(s.rm(Actor::DOM0, "/a/zz", &mut j()).unwrap().len(), 0);
    assert_eq!(s.rm(Actor::DOM0, "/nope/zz", &mut j()).err(), Some(ErrorKind::Noent));
    assert_eq!(s.rm(Actor::DOM0, "/", &mut j()).err(), Some(ErrorKind::Inval));
    let changes = s.rm(Actor::DOM0, "/a/b", &mut j()).unwrap();
    let got: Vec<_> = changes.iter().map(|c| (c.path.as_str(), c.exact)).collect();
    assert_eq!(got, [("/a/b/c", true), ("/a/b", false)]);
    assert!(s.get("/a").unwrap().children.is_empty());
    assert_eq!(
        s.rm(GUEST, "/local/domain/5/vm-data", &mut j()).err(),
        Some(ErrorKind::Acces)
    );
}

#[test]
fn set_perms_rules() {
    let mut s = guest_tree();
    s.write(GUEST, "/local/domain/5/data/mine", b"", &limits(), &mut j())
        .unwrap();
    let path = "/local/domain/5/data/mine";
    assert!(s.set_perms(GUEST, path, vec![p("n5"), p("r0")], &mut j()).is_ok());
    assert_eq!(
        s.set_perms(GUEST, path, vec![p("n0")], &mut j()).err(),
        Some(ErrorKind::Perm),
        "only dom0 may change the owner"
    );
    assert_eq!(
        s.set_perms(GUEST, "/local/domain/5/data", vec![p("n0")], &mut j())
            .err(),
        Some(ErrorKind::Acces),
        "not the owner"
    );
    assert!(s.set_perms(Actor::DOM0, path, vec![p("n0")], &mut j()).is_ok());
    assert_eq!(s.owned_by(5), 0);
}

#[test]
fn node_size_quota_counts_header_perms_value_and_children() {
    let mut s = guest_tree();
    let path = "/local/domain/5/data/v";
    // Node: 24 + 2 perms × 8 = 40 bytes before the value.
    assert!(s.write(GUEST, path, &[b'a'; 2007], &limits(), &mut j()).is_ok());
    assert_eq!(
        s.write(GUEST, path, &[b'a'; 2008], &limits(), &mut j()).err(),
        Some(ErrorKind::Nospc)
    );
    // dom0 is not limited.
    assert!(s.write(Actor::DOM0, path, &[b'a'; 4000], &limits(), &mut j()).is_ok());
}

#[test]
fn nodes_per_domain_quota() {
    let mut s = guest_tree();
    let mut l = limits();
    l.nodes_per_domain = 3;
    l.quota_error = ErrorKind::Quota;
    s.write(GUEST, "/local/domain/5/data/a/b", b"", &l, &mut j()).unwrap();
    s.write(GUEST, "/local/domain/5/data/c", b"", &l, &mut j()).unwrap();
    assert_eq!(
        s.write(GUEST, "/local/domain/5/data/d", b"", &l, &mut j()).err(),
        Some(ErrorKind::Quota)
    );
    s.rm(GUEST, "/local/domain/5/data/c", &mut j()).unwrap();
    assert!(s.write(GUEST, "/local/domain/5/data/d", b"", &l, &mut j()).is_ok());
}

#[test]
fn generations_change_on_child_updates() {
    let mut s = Store::new();
    s.write(Actor::DOM0, "/a", b"", &limits(), &mut j()).unwrap();
    let g = s.get("/a").unwrap().gen;
    s.write(Actor::DOM0, "/a/b", b"", &limits(), &mut j()).unwrap();
    assert_ne!(s.get("/a").unwrap().gen, g);
    let mut jj = j();
    assert!(s.mkdir(Actor::DOM0, "/a", &limits(), &mut jj).unwrap().is_none());
    assert!(jj.modified.is_empty());
}
