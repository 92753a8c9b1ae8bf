//! Process signals as flags: SIGTERM/SIGINT ask to stop, SIGHUP asks to reload.
//!
//! [`install`] blocks the three signals in the calling thread, which every
//! thread started later inherits, and starts one thread that takes them with
//! `sigwait(2)`: it sets the flags, wakes whoever waits in [`wait_for_stop`]
//! and calls the waker given to [`set_waker`] (the daemon's communicator), so
//! an idle process sleeps without polling and still reacts at once. A blocked
//! mask is inherited across `exec`: commands the agent runs are started with
//! [`unblock_in_children`] so that they can be stopped and reloaded as usual.

use crate::communicator::Waker;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);
static WAKER: Mutex<Option<Waker>> = Mutex::new(None);
static STOPPED: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// The signals this module takes.
fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset only sets bits in it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Why the signals could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// `pthread_sigmask` failed.
    #[error("cannot block signals: {0}")]
    Block(#[source] std::io::Error),
    /// The thread that takes the signals could not be started.
    #[error("cannot start the signal thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Blocks the signals in the calling thread (and the threads it starts).
pub fn block_in_this_thread() -> Result<(), SignalError> {
    let set = signal_set();
    // SAFETY: `set` is initialised; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(SignalError::Block(std::io::Error::from_raw_os_error(rc)));
    }
    Ok(())
}

/// Makes `cmd`'s process start with this module's signals unblocked.
pub fn unblock_in_children(cmd: &mut Command) {
    let set = signal_set();
    // SAFETY: between fork and exec the closure only calls sigprocmask, which
    // is async-signal-safe, on a set prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Blocks the signals and starts the thread that takes them. Call it before
/// any other thread is started, once per process.
pub fn install() -> Result<(), SignalError> {
    block_in_this_thread()?;
    let set = signal_set();
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let mut signal = 0;
            // SAFETY: `set` is initialised and `signal` is a valid out pointer.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                continue;
            }
            record(signal);
        })
        .map(drop)
        .map_err(SignalError::Thread)
}

/// Records one signal and wakes the waiters.
fn record(signal: libc::c_int) {
    if signal == libc::SIGHUP {
        RELOAD.store(true, Ordering::SeqCst);
    } else {
        STOP.store(true, Ordering::SeqCst);
        let (stopped, changed) = &STOPPED;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        changed.notify_all();
    }
    let waker = WAKER.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Wakes `waker` on every signal from now on.
pub fn set_waker(waker: Waker) {
    *WAKER.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Whether a reload was requested since the last call (clears the flag).
pub fn take_reload() -> bool {
    RELOAD.swap(false, Ordering::SeqCst)
}

/// Sleeps until a stop is requested.
pub fn wait_for_stop() {
    let (stopped, changed) = &STOPPED;
    let mut guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
    while !*guard {
        guard = changed.wait(guard).unwrap_or_else(PoisonError::into_inner);
    }
}
