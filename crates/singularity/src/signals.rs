//! Process signals as flags: SIGTERM/SIGINT ask to stop, SIGHUP asks to reload.
//! The handlers only store to atomics (async-signal-safe); the main loop polls.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

fn set(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: sigaction is a plain C struct (all-zero is valid); the handler only
    // touches atomics, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(signal, &action, std::ptr::null_mut());
    }
}

/// Installs the handlers.
pub fn install() {
    set(libc::SIGTERM, on_stop);
    set(libc::SIGINT, on_stop);
    set(libc::SIGHUP, on_reload);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Whether a reload was requested since the last call (clears the flag).
pub fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}
