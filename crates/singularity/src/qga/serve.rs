//! The request loop of the qga communicator.
//!
//! Two threads. The reader owns the port: it finds requests in the bytes
//! (`stream`), checks their members (`request`), and answers `guest-sync`,
//! `guest-sync-delimited`, `guest-ping` and `guest-info` itself, at once,
//! even while a slow command runs (libvirt gives a sync 5 s). Every other
//! command goes to the worker, which checks that it is enabled and its
//! arguments, runs it, and replies. While the worker has something to do,
//! the reader's error replies, `guest-ping` and `guest-info` queue behind
//! it too, so that replies keep the order of the requests. A sync waits up
//! to a second for the worker to finish, and overtakes it only if it is
//! still busy then (a slow freeze or trim), so that a client's sync is
//! answered in time; the replies of the requests before it are then dropped
//! (their commands still run), since a client that resynchronises has given
//! up on them and takes what follows the sync's reply as fresh.
//!
//! The reader also takes the signals: stop (the command in flight
//! finishes, the rest is dropped, and frozen filesystems are thawed, so
//! that nothing stays frozen without an agent) and reload (functions and
//! `[qga] allow` / `block` change at once, or after the thaw while frozen;
//! the port, at the next restart).

use super::port::{Got, Port, Replier};
use super::request::{self, Request};
use super::stream::{Event, Stream};
use super::{commands, CommandDef, Ctx, Method, QgaError, QgaSettings};
use crate::apply::Applier;
use crate::cli::{DaemonArgs, Global};
use crate::communicator::Transport;
use crate::crypto::hash::Scheme;
use crate::daemon::ServeError;
use crate::functions::Functions;
use crate::lifecycle::SetupError;
use crate::root::Root;
use crate::settings::Settings;
use crate::{daemon, notify, signals};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Requests queued behind the one running; more are refused, not held.
const QUEUE: usize = 32;
/// The bytes of the requests queued; more are refused, not held (a parsed
/// request takes several times its size).
const QUEUE_BYTES: usize = 4 << 20;
/// The longest wait for the port (the loop sleeps until bytes or a signal).
const IDLE_WAIT: Duration = Duration::from_secs(3600);
/// How long an immediate reply waits for the worker to finish first.
const ORDER_WAIT: Duration = Duration::from_secs(1);
/// The commands the reader answers itself.
const IMMEDIATE: [&str; 4] = ["guest-sync", "guest-sync-delimited", "guest-ping", "guest-info"];

/// What may run: the functions, and `[qga] allow` and `block`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The enabled functions.
    pub functions: Functions,
    /// The commands allowed (`None`: all).
    pub allow: Option<Vec<String>>,
    /// The commands blocked.
    pub block: Vec<String>,
}

impl Policy {
    /// The policy the settings give.
    pub fn of(s: &Settings) -> Policy {
        Policy {
            functions: s.functions.clone(),
            allow: s.qga.allow.clone(),
            block: s.qga.block.clone(),
        }
    }

    /// Whether `def` may run (frozen state aside).
    pub fn enables(&self, def: &CommandDef) -> bool {
        let Some(function) = def.function else {
            return true;
        };
        let name = def.name.to_string();
        self.functions.contains(function)
            && self.allow.as_ref().is_none_or(|a| a.contains(&name))
            && !self.block.contains(&name)
    }

    /// Why `def` may not run now, if it may not. While frozen exactly the
    /// commands that run then are enabled, whatever the policy: a thaw is
    /// always possible.
    pub fn refusal(&self, def: &CommandDef, frozen: bool) -> Option<QgaError> {
        if frozen {
            (!def.while_frozen).then(|| QgaError::disabled(def.name, true))
        } else if !self.enables(def) {
            Some(QgaError::disabled(def.name, false))
        } else {
            None
        }
    }
}

/// `guest-info`'s return value.
pub fn info(policy: &Policy, frozen: bool) -> Value {
    let supported: Vec<Value> = commands::COMMANDS
        .iter()
        .map(|def| {
            json!({
                "name": def.name,
                "enabled": policy.refusal(def, frozen).is_none(),
                "success-response": def.success_response,
            })
        })
        .collect();
    json!({ "version": super::VERSION, "supported_commands": supported })
}

/// What the worker needs to run commands.
pub struct Worker {
    /// The one writer.
    pub applier: Applier,
    /// `[qga]`.
    pub qga: QgaSettings,
    /// `[password] hash`.
    pub password_scheme: Scheme,
    /// `[password] allow_empty`.
    pub password_allow_empty: bool,
    /// `[daemon] run`.
    pub run_dir: PathBuf,
    /// What may run.
    pub policy: Policy,
}

impl Worker {
    /// The worker the settings describe.
    pub fn of(s: &Settings) -> Worker {
        Worker {
            applier: daemon::applier(s),
            qga: s.qga.clone(),
            password_scheme: s.password.scheme,
            password_allow_empty: s.password.allow_empty,
            run_dir: s.daemon.run_dir.clone(),
            policy: Policy::of(s),
        }
    }

    /// Runs one request whose command exists; `None` when nothing is
    /// answered (a command without a success response that succeeded).
    pub fn run(&self, def: &CommandDef, request: &Request, frozen: &mut bool) -> Option<Result<Value, QgaError>> {
        if let Some(refused) = self.policy.refusal(def, *frozen) {
            return Some(Err(refused));
        }
        if let Err(e) = request::check_arguments(def, &request.arguments) {
            return Some(Err(e));
        }
        let root: &Root = self.applier.root();
        let mut ctx = Ctx {
            root,
            applier: &self.applier,
            settings: &self.qga,
            password_scheme: self.password_scheme,
            password_allow_empty: self.password_allow_empty,
            run_dir: &self.run_dir,
            frozen,
        };
        let result = (def.run)(&mut ctx, &request.arguments);
        match result {
            Ok(_) if !def.success_response => None,
            other => Some(other),
        }
    }
}

/// What the reader hands the worker, in request order, each with the sync
/// epoch it was received in (its reply is sent only in that epoch).
enum Job {
    /// A reply decided already (an error), sent when its turn comes.
    Reply(Vec<u8>, u64),
    /// A command to run, and the size of its request.
    Run(&'static CommandDef, Request, u64, usize),
}

fn send(replier: &Replier, bytes: &[u8]) {
    if let Err(e) = replier.send(bytes) {
        log::warn!("qga: reply not sent: {e}");
    }
}

/// What the reader and the worker share.
struct Shared {
    /// Whether the filesystems are frozen (the worker's to change).
    frozen: AtomicBool,
    /// Jobs queued or running.
    pending: AtomicUsize,
    /// The bytes of the requests queued or running.
    pending_bytes: AtomicUsize,
    /// Signalled when the worker finishes a job.
    done: (Mutex<()>, Condvar),
    /// Counts the syncs that overtook the worker: replies of jobs from an
    /// earlier epoch are dropped.
    epoch: AtomicU64,
    /// Settings for the worker to take before its next job (a reload).
    next_worker: Mutex<Option<Box<Worker>>>,
    /// Set at a stop: queued commands are dropped.
    stopping: AtomicBool,
}

impl Shared {
    /// Waits up to `limit` for the worker to have nothing left to do.
    fn wait_idle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut guard = self.done.0.lock().unwrap_or_else(PoisonError::into_inner);
        while self.pending.load(Ordering::SeqCst) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            guard = self
                .done
                .1
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn worker_loop(mut worker: Worker, jobs: Receiver<Job>, replier: Replier, shared: Arc<Shared>) {
    let mut is_frozen = shared.frozen.load(Ordering::SeqCst);
    for job in jobs {
        if let Some(new) = shared.next_worker.lock().unwrap_or_else(PoisonError::into_inner).take() {
            worker = *new;
        }
        let size = match &job {
            Job::Run(_, _, _, size) => *size,
            Job::Reply(..) => 0,
        };
        if !shared.stopping.load(Ordering::SeqCst) {
            work(&worker, job, &replier, &shared, &mut is_frozen);
        }
        let _guard = shared.done.0.lock().unwrap_or_else(PoisonError::into_inner);
        shared.pending_bytes.fetch_sub(size, Ordering::SeqCst);
        shared.pending.fetch_sub(1, Ordering::SeqCst);
        shared.done.1.notify_all();
    }
    if is_frozen {
        // Stopping while frozen: thaw first, so that nothing stays frozen
        // without an agent to thaw it (qemu-ga 7.2 ignores SIGTERM then).
        let thaw = Request {
            execute: "guest-fsfreeze-thaw".into(),
            arguments: Default::default(),
            id: None,
        };
        if let Some(def) = super::command(&thaw.execute) {
            let result = worker.run(def, &thaw, &mut is_frozen);
            log::info!(
                "qga: stopping while frozen: thawed ({:?})",
                result.map(|r| r.map_err(|e| e.desc))
            );
        }
    }
}

/// Sends `bytes` unless a sync overtook the request they answer.
fn send_in(replier: &Replier, shared: &Shared, epoch: u64, bytes: &[u8]) {
    if epoch == shared.epoch.load(Ordering::SeqCst) {
        send(replier, bytes);
    } else {
        log::debug!("qga: a reply dropped: the host resynchronised after its request");
    }
}

fn work(worker: &Worker, job: Job, replier: &Replier, shared: &Shared, is_frozen: &mut bool) {
    match job {
        Job::Reply(bytes, epoch) => send_in(replier, shared, epoch, &bytes),
        Job::Run(def, request, epoch, _) => {
            let started = Instant::now();
            let result = if def.name == "guest-info" {
                Some(Ok(info(&worker.policy, *is_frozen)))
            } else {
                worker.run(def, &request, is_frozen)
            };
            shared.frozen.store(*is_frozen, Ordering::SeqCst);
            let outcome = match &result {
                None | Some(Ok(_)) => "ok".to_string(),
                Some(Err(e)) => e.class.to_string(),
            };
            // Hosts poll the read-only commands (Proxmox, libvirt's
            // guestinfo): those are logged at debug level unless they fail.
            let level = if def.reads_only() && outcome == "ok" {
                log::Level::Debug
            } else {
                log::Level::Info
            };
            log::log!(
                level,
                "qga: {} {outcome} in {:.1} ms",
                def.name,
                started.elapsed().as_secs_f64() * 1000.0
            );
            if let Some(result) = result {
                send_in(replier, shared, epoch, &request::reply(&result, request.id.as_ref()));
            }
        }
    }
}

/// The reader's side: turns stream events into immediate replies or jobs.
struct Reader {
    stream: Stream,
    replier: Replier,
    jobs: SyncSender<Job>,
    policy: Policy,
    shared: Arc<Shared>,
}

impl Reader {
    fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::SeqCst)
    }

    fn queue(&self, job: Job) {
        let (id, size) = match &job {
            Job::Run(_, r, _, size) => (r.id.clone(), *size),
            Job::Reply(..) => (None, 0),
        };
        let busy = |why: String| request::reply(&Err(QgaError::generic(why)), id.as_ref());
        let queued = self.shared.pending_bytes.load(Ordering::SeqCst);
        if size > 0 && queued > 0 && queued + size > QUEUE_BYTES {
            let full = format!("too many requests pending (at most {} MiB)", QUEUE_BYTES >> 20);
            return self.error_bytes(busy(full));
        }
        self.shared.pending_bytes.fetch_add(size, Ordering::SeqCst);
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.pending_bytes.fetch_sub(size, Ordering::SeqCst);
                self.shared.pending.fetch_sub(1, Ordering::SeqCst);
                // Not queued: it goes now, before replies still queued.
                send(
                    &self.replier,
                    &busy(format!("too many requests pending (at most {QUEUE})")),
                );
            }
            Err(TrySendError::Disconnected(_)) => log::error!("qga: the worker is gone"),
        }
    }

    /// Sends an error now, or after what the worker has to do.
    fn error(&self, error: QgaError, id: Option<&Value>) {
        self.error_bytes(request::reply(&Err(error), id));
    }

    fn error_bytes(&self, reply: Vec<u8>) {
        if self.shared.pending.load(Ordering::SeqCst) == 0 {
            send(&self.replier, &reply);
        } else {
            self.queue(Job::Reply(reply, self.epoch()));
        }
    }

    fn event(&mut self, event: Event) {
        let size = match &event {
            Event::Value(bytes) => bytes.len().max(1),
            Event::Error(_) => 0,
        };
        let bytes = match event {
            Event::Error(desc) => return self.error(QgaError::generic(desc), None),
            Event::Value(bytes) => bytes,
        };
        let request = match request::parse(&bytes) {
            Ok(r) => r,
            Err(refused) => return self.error(refused.error, refused.id.as_ref()),
        };
        let Some(def) = super::command(&request.execute) else {
            return self.error(QgaError::not_found(&request.execute), request.id.as_ref());
        };
        let is_sync = def.name.starts_with("guest-sync");
        if !IMMEDIATE.contains(&def.name) || (!is_sync && self.shared.pending.load(Ordering::SeqCst) > 0) {
            return self.queue(Job::Run(def, request, self.epoch(), size));
        }
        let result = request::check_arguments(def, &request.arguments).map(|()| match def.name {
            "guest-info" => info(&self.policy, self.shared.frozen.load(Ordering::SeqCst)),
            "guest-ping" => json!({}),
            _ => request.arguments.get("id").cloned().unwrap_or(Value::Null),
        });
        if is_sync {
            self.shared.wait_idle(ORDER_WAIT);
            if self.shared.pending.load(Ordering::SeqCst) > 0 {
                // Overtaking: what was asked before is given up on.
                self.shared.epoch.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut line = Vec::new();
        if def.name == "guest-sync-delimited" && result.is_ok() {
            line.push(0xFF);
        }
        line.extend(request::reply(&result, request.id.as_ref()));
        send(&self.replier, &line);
    }
}

/// Opens the port, retrying until it exists or a stop is asked (a virtio
/// port may appear after the agent starts).
fn open_until_ready(method: Method, path: Option<&str>, run_dir: &Path) -> Option<Port> {
    daemon::retry_until_stopped(|| {
        Port::open(method, path, run_dir).map_err(|e| {
            let at = super::port::describe(method, path, run_dir);
            format!("qga: cannot open {} port {at}: {e}", method.name())
        })
    })
}

/// Serves the QEMU guest agent protocol until stopped. `connected` runs once
/// the port is open (it drops privileges).
pub fn serve(
    current: Settings,
    global: &Global,
    args: &DaemonArgs,
    connected: impl FnOnce() -> Result<(), SetupError>,
) -> Result<(), ServeError> {
    let Transport::Qga { method, path } = current.transport.clone() else {
        return Err(ServeError::NotQga);
    };
    let run_dir = current.daemon.run_dir.clone();
    // Before anything logs: left frozen, the agent must not write logs.
    let frozen = commands::freeze::restore(&run_dir);
    let Some(mut port) = open_until_ready(method, path.as_deref(), &run_dir) else {
        return Ok(());
    };
    signals::set_waker(port.waker());
    connected()?;
    let shared = Arc::new(Shared {
        frozen: AtomicBool::new(frozen),
        pending: AtomicUsize::new(0),
        pending_bytes: AtomicUsize::new(0),
        done: (Mutex::new(()), Condvar::new()),
        epoch: AtomicU64::new(0),
        next_worker: Mutex::new(None),
        stopping: AtomicBool::new(false),
    });
    let (jobs, queue) = mpsc::sync_channel(QUEUE);
    let replier = port.replier();
    let worker = {
        let (w, r, f) = (Worker::of(&current), replier.clone(), Arc::clone(&shared));
        std::thread::Builder::new()
            .name("qga-worker".into())
            .spawn(move || worker_loop(w, queue, r, f))
            .map_err(ServeError::QgaWorker)?
    };
    let mut reader = Reader {
        stream: Stream::new(),
        replier,
        jobs,
        policy: Policy::of(&current),
        shared,
    };
    log::info!(
        "serving the QEMU guest agent protocol ({} {}, functions {}, root {})",
        method.name(),
        super::port::describe(method, path.as_deref(), &run_dir),
        current.functions,
        current.system.root.display()
    );
    notify::send("READY=1");
    // An update's watcher (see `update::resume`) learns that this build serves.
    crate::update::restart::came_back();
    // Requests are small; a bigger one takes more reads, not more memory.
    let mut buf = [0u8; 4096];
    let mut reload_asked = false;
    // The start-up's freed memory goes back to the kernel now, a burst's
    // once TRIM_AFTER has passed quietly after it (as in the Xen loop).
    daemon::trim_heap();
    let mut trim_due = false;
    let mut failing = false;
    while !signals::stop_requested() {
        reload_asked |= signals::take_reload();
        // While frozen a reload waits for the thaw: it would log, and it
        // could disable the thaw.
        if reload_asked && !reader.shared.frozen.load(Ordering::SeqCst) {
            reload(&current, global, args, &mut reader);
            reload_asked = false;
            // The old configuration's memory goes back once it is quiet.
            trim_due = true;
        }
        let wait = if trim_due { daemon::TRIM_AFTER } else { IDLE_WAIT };
        match port.read(&mut buf, wait) {
            Ok(Got::Data(n)) => {
                for event in reader.stream.feed(&buf[..n]) {
                    reader.event(event);
                }
                trim_due = true;
            }
            Ok(Got::Idle) if trim_due => {
                daemon::trim_heap();
                trim_due = false;
            }
            Ok(Got::Woken | Got::Idle) => {}
            Err(e) => {
                // A device that fails (a virtio port unplugged) is opened
                // again until it is back; the failure is logged once.
                if !failing {
                    log::warn!("qga: {e}; opening the port again until it works");
                    failing = true;
                }
                std::thread::sleep(Duration::from_millis(250));
                let _ = port.reopen(method, path.as_deref(), &run_dir);
                continue;
            }
        }
        if failing {
            log::info!("qga: the port works again");
            failing = false;
        }
    }
    notify::send("STOPPING=1");
    log::info!("stopping");
    // The command in flight finishes; those queued behind it are dropped.
    reader.shared.stopping.store(true, Ordering::SeqCst);
    drop(reader);
    let _ = worker.join();
    Ok(())
}

fn reload(current: &Settings, global: &Global, args: &DaemonArgs, reader: &mut Reader) {
    daemon::reload(current, global, args, |new| {
        reader.policy = Policy::of(new);
        *reader.shared.next_worker.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(Worker::of(new)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(functions: &str, allow: Option<&[&str]>, block: &[&str]) -> Policy {
        Policy {
            functions: Functions::parse(functions).unwrap(),
            allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            block: block.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn enabled(info: &Value) -> Vec<String> {
        info["supported_commands"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["enabled"] == json!(true))
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn info_lists_every_command_and_enables_what_the_policy_allows() {
        let all = info(&policy("all", None, &[]), false);
        assert_eq!(
            all["supported_commands"].as_array().unwrap().len(),
            commands::COMMANDS.len()
        );
        assert_eq!(enabled(&all).len(), commands::COMMANDS.len());
        let shutdown = all["supported_commands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "guest-shutdown")
            .unwrap();
        assert_eq!(shutdown["success-response"], json!(false));

        let pw = enabled(&info(&policy("password", None, &[]), false));
        assert_eq!(
            pw,
            [
                "guest-sync",
                "guest-sync-delimited",
                "guest-ping",
                "guest-info",
                "guest-set-user-password"
            ]
        );
        let blocked = enabled(&info(&policy("all", None, &["guest-shutdown"]), false));
        assert!(!blocked.contains(&"guest-shutdown".to_string()) && blocked.contains(&"guest-get-time".to_string()));
        let allowed = enabled(&info(&policy("all", Some(&["guest-get-time"]), &[]), false));
        assert_eq!(allowed.last().map(String::as_str), Some("guest-get-time"));
        assert_eq!(allowed.len(), 5);

        // Frozen: only what qemu-ga allows then.
        let frozen = enabled(&info(&policy("all", None, &[]), true));
        assert_eq!(
            frozen,
            [
                "guest-sync",
                "guest-sync-delimited",
                "guest-ping",
                "guest-info",
                "guest-fsfreeze-status",
                "guest-fsfreeze-thaw"
            ]
        );
    }

    #[test]
    fn refusals_say_disabled_and_why() {
        let def = super::super::command("guest-shutdown").unwrap();
        let p = policy("password", None, &[]);
        assert_eq!(
            p.refusal(def, false).unwrap().desc,
            "Command guest-shutdown has been disabled"
        );
        let all = policy("all", None, &[]);
        assert_eq!(all.refusal(def, false), None);
        let frozen = all.refusal(def, true).unwrap();
        assert_eq!(frozen.class, "CommandNotFound");
        assert_eq!(
            frozen.desc,
            "Command guest-shutdown has been disabled: the agent is in frozen state"
        );
    }

    #[test]
    fn while_frozen_a_thaw_is_possible_whatever_the_policy() {
        let thaw = crate::qga::command("guest-fsfreeze-thaw").unwrap();
        let blocked = policy("all", None, &["guest-fsfreeze-thaw"]);
        assert!(blocked.refusal(thaw, false).is_some());
        assert!(blocked.refusal(thaw, true).is_none());
        let no_filesystems = policy("password", None, &[]);
        assert!(no_filesystems.refusal(thaw, true).is_none());
        let status = crate::qga::command("guest-fsfreeze-status").unwrap();
        assert!(no_filesystems.refusal(status, true).is_none());
    }
}
