//! The `metrics` function: the guest metrics xapi reads from XenStore (the
//! OS, the agent's version, each vif's addresses, memory, the balloon
//! feature), kept true by one thread with its own XenStore connection.
//!
//! Everything written is remembered, and a change set writes only what
//! differs: `data/*` first, then `attr/*` and `control/feature-balloon`, then
//! `data/updated`. Addresses follow rtnetlink events, free memory is read
//! every `memory_interval`; otherwise the thread sleeps in a XenStore watch
//! on `unique-domain-id` and sends nothing. A new `unique-domain-id` (a
//! clone, a migration) and a reconnection rewrite everything.
//! `control/shutdown` is the kernel's and never touched here.

mod facts;
mod netlink;
mod publish;
mod vifs;

use facts::{Facts, Memory, Os};
use publish::Publisher;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vifs::Slots;
use xenstore::{Client, Optional, WatchEvent, WatchWaker};

use crate::root::Root;

/// The node whose change means "a new domain": rewrite everything.
pub const DOMAIN_ID: &str = "unique-domain-id";
/// Written after each change set.
pub const UPDATED: &str = "data/updated";
/// The default of `[metrics] memory_interval`.
pub const MEMORY_INTERVAL: Duration = Duration::from_secs(60);

/// How long [`start`] waits for the first key set to be written.
const FIRST_PUBLISH_WAIT: Duration = Duration::from_secs(5);

/// What the metrics thread needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The XenStore path (`None`: where the communicator looks by default).
    pub xenstore: Option<String>,
    /// Root of the managed system: `os-release`, the `/proc` files and
    /// `/sys/devices/system/xen_memory` are read below it.
    pub root: PathBuf,
    /// How often free memory is read.
    pub memory_interval: Duration,
}

/// `[metrics]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSettings {
    /// How often free memory is read.
    pub memory_interval: Duration,
}

/// Shared with the netlink thread: "addresses may have changed", and how to
/// wake the metrics thread.
#[derive(Default)]
struct NetSignal {
    /// Addresses may have changed.
    dirty: AtomicBool,
    /// Interfaces may have come or gone: the vifs' MACs are read again.
    links: AtomicBool,
    waker: Mutex<Option<WatchWaker>>,
}

impl NetSignal {
    fn raise(&self, kinds: netlink::Kinds) {
        if kinds.link {
            self.links.store(true, Ordering::Release);
        }
        self.dirty.store(true, Ordering::Release);
        self.waker_wake();
    }

    fn waker_wake(&self) {
        let waker = self.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = waker.as_ref() {
            w.wake();
        }
    }
}

/// Asked whenever the metrics thread wakes: whether to end.
pub type Stop = Arc<dyn Fn() -> bool + Send + Sync>;

/// The running metrics thread.
pub struct Metrics {
    net: Arc<NetSignal>,
    thread: std::thread::JoinHandle<()>,
}

impl Metrics {
    /// Wakes the thread (it then asks its `stop`) and waits for it to end.
    pub fn join(self) {
        self.net.waker_wake();
        let _ = self.thread.join();
    }
}

/// Starts the metrics thread (and its netlink listener). The first XenStore
/// connection is made here, in the caller's thread (it may need privileges
/// the caller drops later); a failure is retried in the metrics thread.
pub fn start(cfg: MetricsConfig, stop: Stop) -> std::io::Result<Metrics> {
    spawn(cfg, listen()?, stop)
}

/// Subscribes to address and link changes and raises the returned signal on
/// each, from a thread of its own that lives as long as the process (its
/// socket cannot be woken to end it). Without rtnetlink the signal is never
/// raised and addresses are read only at full rewrites.
fn listen() -> std::io::Result<Arc<NetSignal>> {
    let net = Arc::new(NetSignal::default());
    match netlink::Changes::subscribe() {
        Ok(changes) => {
            let for_thread = Arc::clone(&net);
            std::thread::Builder::new()
                .name("metrics-netlink".into())
                .spawn(move || loop {
                    match changes.wait() {
                        Ok(kinds) => for_thread.raise(kinds),
                        Err(e) => {
                            log::warn!("metrics: address changes no longer followed: {e}");
                            return;
                        }
                    }
                })?;
        }
        Err(e) => log::warn!("metrics: cannot follow address changes (rtnetlink): {e}"),
    }
    Ok(net)
}

/// Starts the metrics thread on `net`'s changes.
fn spawn(cfg: MetricsConfig, net: Arc<NetSignal>, stop: Stop) -> std::io::Result<Metrics> {
    let first = connect(&cfg)
        .map_err(|e| log::debug!("metrics: cannot connect to xenstore yet: {e}"))
        .ok();
    let for_thread = Arc::clone(&net);
    let (published, first_published) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || run(&cfg, first, &for_thread, &*stop, &published))?;
    // The first key set goes out before the agent says it is ready, unless
    // XenStore is slow to answer.
    let _ = first_published.recv_timeout(FIRST_PUBLISH_WAIT);
    Ok(Metrics { net, thread })
}

/// The metrics function as the daemon runs it: started, stopped or started
/// again with new settings as the configuration says, at start and on each
/// reload. The keys a stopped thread wrote stay in XenStore as they were. The
/// rtnetlink listener, once started, serves each metrics thread in turn.
pub struct Switch {
    /// The daemon's stop.
    stop: Stop,
    net: Option<Arc<NetSignal>>,
    running: Option<Running>,
}

/// A metrics thread of a [`Switch`].
struct Running {
    cfg: MetricsConfig,
    ended: Arc<AtomicBool>,
    metrics: Metrics,
}

impl Switch {
    /// No metrics thread yet; `stop` ends any it starts.
    pub fn new(stop: Stop) -> Switch {
        Switch {
            stop,
            net: None,
            running: None,
        }
    }

    /// Runs the metrics thread with `cfg`, or none with `None`. A thread
    /// with other settings is stopped first (and waited for); the same
    /// settings change nothing.
    pub fn set(&mut self, cfg: Option<MetricsConfig>) -> std::io::Result<()> {
        if self.running.as_ref().map(|r| &r.cfg) == cfg.as_ref() {
            return Ok(());
        }
        if let Some(r) = self.running.take() {
            r.ended.store(true, Ordering::Release);
            r.metrics.join();
            log::info!("metrics: stopped");
        }
        let Some(cfg) = cfg else { return Ok(()) };
        let net = match &self.net {
            Some(net) => Arc::clone(net),
            None => Arc::clone(self.net.insert(listen()?)),
        };
        let ended = Arc::new(AtomicBool::new(false));
        let stop: Stop = {
            let (daemon, ended) = (Arc::clone(&self.stop), Arc::clone(&ended));
            Arc::new(move || ended.load(Ordering::Acquire) || daemon())
        };
        let metrics = spawn(cfg.clone(), net, stop)?;
        self.running = Some(Running { cfg, ended, metrics });
        Ok(())
    }
}

fn connect(cfg: &MetricsConfig) -> xenstore::Result<Client> {
    match &cfg.xenstore {
        Some(p) => Client::connect(p),
        None => Client::open(),
    }
}

fn run(
    cfg: &MetricsConfig,
    mut first: Option<Client>,
    net: &NetSignal,
    stop: &dyn Fn() -> bool,
    published: &std::sync::mpsc::Sender<()>,
) {
    let mut slots = Slots::default();
    let mut delay = Duration::from_millis(100);
    let mut reported = false;
    while !stop() {
        let client = match first.take() {
            Some(c) => Ok(c),
            None => connect(cfg),
        };
        match client.and_then(|c| session(cfg, &c, net, &mut slots, stop, published)) {
            Ok(()) => return,
            Err(e) => {
                if !reported {
                    log::warn!("metrics: {e}; reconnecting");
                    reported = true;
                }
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: a full rewrite, then changes as they come. Returns
/// `Ok` when asked to stop, an error when the connection is gone for good.
fn session(
    cfg: &MetricsConfig,
    client: &Client,
    net: &NetSignal,
    slots: &mut Slots,
    stop: &dyn Fn() -> bool,
    published: &std::sync::mpsc::Sender<()>,
) -> xenstore::Result<()> {
    let watch = client.watch(DOMAIN_ID)?;
    *net.waker.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(watch.waker());
    let root = Root::new(&cfg.root);
    let mut publisher = Publisher::new(client.clone());
    // A failed read is no new id: only a value that differs is.
    let domain_id = || client.read_string(DOMAIN_ID).optional();
    let mut id = domain_id().ok().flatten();
    let mut facts = Facts::default();
    let mut macs = Vec::new();
    let full = |facts: &mut Facts, macs: &mut Vec<(u32, String)>, slots: &mut Slots, publisher: &mut Publisher| {
        net.dirty.store(false, Ordering::Release);
        net.links.store(false, Ordering::Release);
        facts.os = Os::read(&root);
        facts.balloon = facts::balloon(&root);
        facts.memory = Memory::read(&root);
        if let Some(m) = vif_macs(client) {
            *macs = m;
        }
        if let Some(a) = addresses(macs, slots) {
            facts.addresses = a;
        }
        publisher.reset();
        publisher.publish(&facts::keys(facts));
    };
    full(&mut facts, &mut macs, slots, &mut publisher);
    let _ = published.send(());
    log::info!("metrics: published to xenstore");
    let mut next_memory = Instant::now() + cfg.memory_interval;
    while !stop() {
        let wait = next_memory.saturating_duration_since(Instant::now());
        match watch.recv_timeout(wait)? {
            Some(WatchEvent::Reconnected) => {
                log::debug!("metrics: xenstore reconnected, rewriting");
                id = domain_id().ok().flatten();
                full(&mut facts, &mut macs, slots, &mut publisher);
                continue;
            }
            Some(WatchEvent::Changed(_)) => {
                let now = domain_id();
                if let Some(now) = now.ok().filter(|now| *now != id) {
                    log::info!("metrics: new {DOMAIN_ID}, rewriting");
                    id = now;
                    full(&mut facts, &mut macs, slots, &mut publisher);
                    continue;
                }
            }
            None => {}
        }
        let mut changed = false;
        if net.links.swap(false, Ordering::AcqRel) {
            if let Some(m) = vif_macs(client) {
                macs = m;
            }
        }
        if net.dirty.swap(false, Ordering::AcqRel) {
            if let Some(a) = addresses(&macs, slots) {
                facts.addresses = a;
                changed = true;
            }
        }
        if Instant::now() >= next_memory {
            facts.memory = Memory::read(&root);
            next_memory = Instant::now() + cfg.memory_interval;
            changed = true;
        }
        if changed {
            publisher.publish(&facts::keys(&facts));
        }
    }
    Ok(())
}

/// `(devid, mac)` of every vif in XenStore's `device/vif`; `None` when the
/// directory cannot be read now.
fn vif_macs(client: &Client) -> Option<Vec<(u32, String)>> {
    let ids = match client.directory("device/vif").optional() {
        Ok(ids) => ids.unwrap_or_default(),
        Err(e) => {
            log::debug!("metrics: cannot list device/vif: {e}");
            return None;
        }
    };
    let mut out = Vec::new();
    for id in ids {
        let Ok(devid) = id.parse::<u32>() else { continue };
        if let Ok(Some(mac)) = client.read_string(&format!("device/vif/{id}/mac")).optional() {
            out.push((devid, mac));
        }
    }
    Some(out)
}

/// The vifs' addresses with their indices: interfaces from `/sys`,
/// addresses from an rtnetlink dump. `None` when they cannot be listed now
/// (the last ones stay).
fn addresses(vif_macs: &[(u32, String)], slots: &mut Slots) -> Option<BTreeMap<(u32, &'static str, usize), String>> {
    if vif_macs.is_empty() {
        return Some(slots.update(&BTreeMap::new()));
    }
    let addrs = match netlink::dump() {
        Ok(a) => a,
        Err(e) => {
            log::debug!("metrics: cannot list addresses: {e}");
            return None;
        }
    };
    let nics = vifs::nics(Path::new("/sys"));
    Some(slots.update(&vifs::assign(vif_macs, &nics, &addrs)))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
