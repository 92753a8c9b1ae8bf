//! The request loop: receive, handle, reply, log; reload on SIGHUP, finish the
//! request in flight and stop on SIGTERM/SIGINT. Requests never stop it.

use crate::apply::Applier;
use crate::cli::{CommunicatorKind, DaemonArgs, Global};
use crate::communicator::journal::JOURNAL_DIR;
use crate::communicator::{socket::SocketCommunicator, xen::XenCommunicator, Communicator};
use crate::functions::Function;
use crate::handler::Agent;
use crate::root::Root;
use crate::settings::{self, Settings};
use crate::{logging, metrics, notify, signals};
use std::time::{Duration, Instant};

/// The pause after a communicator error before waiting again.
const ERROR_PAUSE: Duration = Duration::from_millis(250);
/// The longest wait for a request: the loop sleeps until a request or a
/// signal arrives (the signal thread wakes the communicator), so this only
/// bounds one wait.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Builds the applier the settings describe.
pub fn applier(s: &Settings) -> Applier {
    Applier::new(Root::new(&s.root), s.backup, Some(s.cache.clone()))
}

fn connect(s: &Settings) -> Result<Box<dyn Communicator>, String> {
    match s.communicator {
        CommunicatorKind::Xen => XenCommunicator::connect(s.xenstore.as_deref(), s.rescan_interval)
            .map(|c| c.with_journal(&s.root.join(JOURNAL_DIR)))
            .map(|c| Box::new(c) as Box<dyn Communicator>)
            .map_err(|e| e.to_string()),
        CommunicatorKind::Socket => SocketCommunicator::bind(&s.socket_path, s.socket_vm_data.clone())
            .map(|c| Box::new(c) as Box<dyn Communicator>)
            .map_err(|e| e.to_string()),
    }
}

/// Connects, retrying until it works or a stop is requested (at boot the
/// xenbus device may appear late).
fn connect_until_ready(s: &Settings) -> Option<Box<dyn Communicator>> {
    let mut delay = Duration::from_millis(100);
    let mut reported = false;
    loop {
        match connect(s) {
            Ok(c) => return Some(c),
            Err(e) => {
                if !reported {
                    log::error!("{e}; retrying");
                    reported = true;
                }
            }
        }
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if signals::stop_requested() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One malloc arena for all threads: the signal thread and the
/// communicator's helpers would otherwise each get an arena of their own
/// (64 MiB of address space and a few pages each) for a handful of small
/// allocations.
fn one_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; it runs before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Serves requests in the foreground until stopped.
/// `connected` runs once the communicator is up (it drops privileges: the
/// xenbus device and the socket's directory need root to open).
pub fn serve(
    current: Settings,
    global: &Global,
    args: &DaemonArgs,
    connected: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    one_arena();
    signals::install()?;
    let mut agent = Agent::new(current.handler(), applier(&current));
    let Some(mut comm) = connect_until_ready(&current) else {
        return Ok(());
    };
    signals::set_waker(comm.waker());
    // Before `connected` drops privileges: the xenbus device needs root.
    if current.communicator == CommunicatorKind::Xen && current.functions.contains(Function::Metrics) {
        metrics::start(
            metrics::MetricsConfig::of(&current),
            std::sync::Arc::new(signals::stop_requested),
        )
        .map_err(|e| format!("cannot start metrics: {e}"))?;
    }
    connected()?;
    log::info!(
        "serving requests ({:?} communicator, functions {}, root {})",
        current.communicator,
        current.functions,
        current.root.display()
    );
    notify::send("READY=1");
    while !signals::stop_requested() {
        if signals::take_reload() {
            notify::send("RELOADING=1");
            match settings::load(global, Some(args)) {
                Ok(new) => {
                    for w in &new.warnings {
                        log::warn!("{w}");
                    }
                    if let Err(e) = logging::init(&new.loghandler, new.loglevel) {
                        log::error!("{e}");
                    }
                    agent.reconfigure(new.handler(), applier(&new));
                    log::info!("configuration reloaded (functions {})", new.functions);
                    let transport = |s: &Settings| {
                        (
                            s.communicator,
                            s.xenstore.clone(),
                            s.socket_path.clone(),
                            s.socket_vm_data.clone(),
                        )
                    };
                    if transport(&new) != transport(&current) {
                        log::warn!("communicator settings changed: they take effect at the next restart");
                    }
                }
                Err(e) => log::error!("configuration not reloaded, keeping the old one: {e}"),
            }
            notify::send("READY=1");
        }
        serve_one(comm.as_mut(), &mut agent, IDLE_WAIT);
    }
    notify::send("STOPPING=1");
    log::info!("stopping");
    Ok(())
}

/// Waits up to `wait` for one request and answers it; logs one line per
/// request. Returns whether a request was handled.
pub fn serve_one(comm: &mut dyn Communicator, agent: &mut Agent, wait: Duration) -> bool {
    let incoming = match comm.recv(wait) {
        Ok(Some(incoming)) => incoming,
        Ok(None) => return false,
        Err(e) => {
            log::warn!("{e}");
            std::thread::sleep(ERROR_PAUSE);
            return false;
        }
    };
    let started = Instant::now();
    let handled = agent.handle(&incoming.data, comm);
    let sent = comm.reply(&incoming.id, &handled.reply);
    log::info!(
        "request {} command {} returncode {} changed {} in {:.1} ms",
        incoming.id,
        handled.command,
        handled.reply.returncode,
        if handled.changed { "yes" } else { "no" },
        started.elapsed().as_secs_f64() * 1000.0
    );
    if let Err(e) = sent {
        log::warn!("{e}");
    }
    true
}
