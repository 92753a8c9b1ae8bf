//! The client suite against Debian 12's real C xenstored and oxenstored 4.17,
//! started without Xen through the fakexen shim (see `common/realxs.rs`).
//!
//! Needs network access to Debian's package archive the first time (the
//! packages are cached outside the checkout). If the daemons cannot be had,
//! the test fails, unless `SINGULARITY_ALLOW_SKIP=1`, where it prints
//! `SKIPPED: real xenstored unavailable: <reason>` and passes.

#[path = "common/realxs.rs"]
mod realxs;
#[path = "common/xslife.rs"]
mod xslife;
#[path = "common/xssuite.rs"]
mod xssuite;

use realxs::{Daemon, Kind};
use std::cell::RefCell;
use std::rc::Rc;
use xssuite::{Flavour, Target};

fn run(kind: Kind) {
    let Some(env) = realxs::env_or_skip() else {
        return;
    };
    let daemon = Daemon::start(&env, kind).unwrap_or_else(|e| panic!("starting {kind:?}: {e}"));
    let socket = daemon.socket().to_path_buf();
    let daemon = Rc::new(RefCell::new(daemon));
    let restart = {
        let d = Rc::clone(&daemon);
        move || d.borrow_mut().restart().unwrap_or_else(|e| panic!("restart: {e}"))
    };
    let freeze = {
        let d = Rc::clone(&daemon);
        move || d.borrow().freeze()
    };
    let mut target = Target {
        name: format!("{kind:?}"),
        socket,
        flavour: match kind {
            Kind::C => Flavour::C,
            Kind::Ox => Flavour::Ox,
        },
        restart: Box::new(restart),
        freeze: Some(Box::new(freeze)),
    };
    xssuite::run_all(&mut target);
    xslife::restart_mid_session(&mut target);
}

#[test]
fn real_c_xenstored() {
    run(Kind::C);
}

#[test]
fn real_oxenstored() {
    run(Kind::Ox);
}
