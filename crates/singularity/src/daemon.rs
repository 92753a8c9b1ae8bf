//! The request loop: receive, handle, reply, log; reload on SIGHUP, finish the
//! request in flight and stop on SIGTERM/SIGINT. Requests never stop it.

use crate::apply::Applier;
use crate::cli::{DaemonArgs, Global};
use crate::communicator::directory::DirectoryMetadata;
use crate::communicator::journal::JOURNAL_DIR;
use crate::communicator::{CommError, Communicator, NoMetadata, Transport};
use crate::configurators::external::{self, External};
use crate::functions::Function;
use crate::handler::Agent;
use crate::lifecycle::SetupError;
use crate::root::Root;
use crate::settings::{self, Settings};
use crate::signals::SignalError;
use crate::{logging, metrics, notify, signals};
use std::time::{Duration, Instant};

/// The pause after a communicator error before waiting again.
const ERROR_PAUSE: Duration = Duration::from_millis(250);
/// The longest wait for a request: the loop sleeps until a request or a
/// signal arrives (the signal thread wakes the communicator), so this only
/// bounds one wait.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// The longest an external configurator's `--describe` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Finds the external configurators (at start and on SIGHUP only: no other
/// command runs them) and warns about what was skipped, and about functions
/// named in `functions` that none declares.
fn configurators(s: &Settings) -> Vec<External> {
    let euid = rustix::process::geteuid().as_raw();
    let found = external::discover(
        &s.daemon.configurators,
        euid,
        s.daemon.configurator_timeout.min(DESCRIBE_TIMEOUT),
    );
    for w in &found.warnings {
        log::warn!("{w}");
    }
    let declared: Vec<&str> = found.found.iter().map(|e| e.function.as_str()).collect();
    for name in s.functions.undeclared(&declared) {
        log::warn!("functions: no external configurator declares '{name}' now; its commands answer 404 until one does");
    }
    found.found
}

/// Quiet time after a request before the heap's free pages are handed back.
pub(crate) const TRIM_AFTER: Duration = Duration::from_secs(2);

/// Builds the applier the settings describe.
pub fn applier(s: &Settings) -> Applier {
    let system = &s.system;
    Applier::new(Root::new(&system.root), system.backup, Some(system.cache.clone()))
}

fn connect(s: &Settings) -> Result<Box<dyn Communicator>, CommError> {
    s.transport.connect(&s.system.root.join(JOURNAL_DIR))
}

/// Where `resetnetwork` reads vm-data when the transport has no source of
/// its own: the socket communicator's `[socket] vm_data` directory. XenStore
/// always gives nova's own vm-data.
fn vm_data(s: &Settings) -> Option<DirectoryMetadata> {
    match &s.transport {
        Transport::Socket { .. } => s.socket_vm_data.clone().map(DirectoryMetadata::new),
        _ => None,
    }
}

/// The metrics thread's settings when `s` enables the function, which runs
/// with the xen communicator only. The communicator's settings (which
/// XenStore) stay those the daemon `started` with, as for requests.
fn metrics_config(started: &Settings, s: &Settings) -> Option<metrics::MetricsConfig> {
    let Transport::Xen { xenstore, .. } = &started.transport else {
        return None;
    };
    s.functions.contains(Function::Metrics).then(|| metrics::MetricsConfig {
        xenstore: xenstore.clone(),
        root: s.system.root.clone(),
        memory_interval: s.metrics.memory_interval,
    })
}

/// Reads the configuration again (SIGHUP) and, when it is valid, points
/// the logger at it and hands it to `apply`; an invalid one is logged and
/// the old one kept. Tells systemd what happens.
pub(crate) fn reload(current: &Settings, global: &Global, args: &DaemonArgs, apply: impl FnOnce(&Settings)) {
    notify::send("RELOADING=1");
    match settings::load(global, Some(args)) {
        Ok(new) => {
            for w in &new.source.warnings {
                log::warn!("{w}");
            }
            if let Err(e) = logging::init(&new.log.handler, new.log.level) {
                log::error!("{e}");
            }
            apply(&new);
            if new.transport != current.transport {
                log::warn!("communicator settings changed: they take effect at the next restart");
            }
            log::info!("configuration reloaded (functions {})", new.functions);
        }
        Err(e) => log::error!("configuration not reloaded, keeping the old one: {e}"),
    }
    notify::send("READY=1");
}

/// Connects, retrying until it works or a stop is requested (at boot the
/// xenbus device may appear late).
fn connect_until_ready(s: &Settings) -> Option<Box<dyn Communicator>> {
    retry_until_stopped(|| connect(s))
}

/// Runs `attempt` until it succeeds (its value) or a stop is requested
/// (`None`), waiting 100 ms after the first failure, doubling up to 5 s. The
/// first failure is logged, the rest are not.
pub(crate) fn retry_until_stopped<T, E: std::fmt::Display>(mut attempt: impl FnMut() -> Result<T, E>) -> Option<T> {
    let mut delay = Duration::from_millis(100);
    let mut reported = false;
    loop {
        match attempt() {
            Ok(value) => return Some(value),
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

/// Hands the heap's free pages back to the kernel (glibc keeps them after a
/// burst of requests otherwise): real memory, not a counter.
pub(crate) fn trim_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Why the daemon could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The signal handling could not be set up.
    #[error(transparent)]
    Signals(#[from] SignalError),
    /// The metrics thread could not be started.
    #[error("cannot start metrics: {0}")]
    Metrics(#[source] std::io::Error),
    /// The privileges could not be dropped once connected.
    #[error(transparent)]
    Privileges(#[from] SetupError),
    /// The QEMU guest agent's worker thread could not be started.
    #[error("cannot start the qga worker: {0}")]
    QgaWorker(#[source] std::io::Error),
    /// The QEMU guest agent's request loop was asked to serve another
    /// communicator.
    #[error("the QEMU guest agent request loop serves only communicator = qga")]
    NotQga,
}

/// Serves requests in the foreground until stopped.
/// `connected` runs once the communicator is up (it drops privileges: the
/// xenbus device and the socket's directory need root to open).
pub fn serve(
    current: Settings,
    global: &Global,
    args: &DaemonArgs,
    connected: impl FnOnce() -> Result<(), SetupError>,
) -> Result<(), ServeError> {
    one_arena();
    signals::install()?;
    if matches!(current.transport, Transport::Qga { .. }) {
        return crate::qga::serve::serve(current, global, args, connected);
    }
    let mut agent = Agent::new(current.handler(configurators(&current)), applier(&current));
    let Some(mut comm) = connect_until_ready(&current) else {
        return Ok(());
    };
    signals::set_waker(comm.waker());
    // Before `connected` drops privileges: the xenbus device needs root.
    let mut metrics = metrics::Switch::new(std::sync::Arc::new(signals::stop_requested));
    metrics
        .set(metrics_config(&current, &current))
        .map_err(ServeError::Metrics)?;
    connected()?;
    log::info!(
        "serving requests ({} communicator, functions {}, root {})",
        current.transport.name(),
        current.functions,
        current.system.root.display()
    );
    notify::send("READY=1");
    crate::update::restart::came_back();
    let mut metadata = vm_data(&current);
    // The start-up's freed memory goes back to the kernel now; after a
    // request, the loop wakes once when TRIM_AFTER passes quietly.
    trim_heap();
    let mut trim_due = false;
    while !signals::stop_requested() {
        if signals::take_reload() {
            reload(&current, global, args, |new| {
                agent.reconfigure(new.handler(configurators(new)), applier(new));
                metadata = vm_data(new);
                if let Err(e) = metrics.set(metrics_config(&current, new)) {
                    log::error!("cannot start metrics: {e}");
                }
            });
            // The old configuration's memory goes back once it is quiet.
            trim_due = true;
        }
        let wait = if trim_due { TRIM_AFTER } else { IDLE_WAIT };
        if serve_one(comm.as_mut(), metadata.as_mut(), &mut agent, wait) {
            trim_due = true;
        } else if trim_due {
            trim_heap();
            trim_due = false;
        }
    }
    notify::send("STOPPING=1");
    log::info!("stopping");
    Ok(())
}

/// Waits up to `wait` for one request and answers it; logs one line per
/// request. vm-data comes from the communicator's own source, else from
/// `metadata`. Returns whether a request was handled.
pub fn serve_one(
    comm: &mut dyn Communicator,
    metadata: Option<&mut DirectoryMetadata>,
    agent: &mut Agent,
    wait: Duration,
) -> bool {
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
    let handled = match comm.metadata() {
        Some(m) => agent.handle(&incoming.data, m),
        None => match metadata {
            Some(m) => agent.handle(&incoming.data, m),
            None => agent.handle(&incoming.data, &mut NoMetadata),
        },
    };
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
    if let Some((target, previous)) = agent.take_restart() {
        // Returns only if the new build could not be started.
        let why = crate::update::restart::reexec(&target, &previous);
        log::error!("{why}; putting the previous build back");
        if let Err(e) = std::fs::rename(&previous, &target) {
            log::error!("cannot put {} back as {}: {e}", previous.display(), target.display());
        }
    }
    true
}
