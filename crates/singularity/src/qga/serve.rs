//! The request loop of the qga communicator.
//!
//! Two threads. The reader owns the port: it finds requests in the bytes
//! (`stream`), checks their members (`request`), and answers `guest-sync`,
//! `guest-sync-delimited`, `guest-ping` and `guest-info` itself, at once,
//! even while a slow command runs (libvirt gives a sync 5 s). Every other
//! command goes to the worker, which checks that it is enabled and its
//! arguments, runs it, and replies. While the worker has something to do,
//! the reader's error replies queue behind it too, so that replies keep the
//! order of the requests; those four wait up to a second for the worker to
//! finish, and overtake it only if it is still busy then (a slow freeze or
//! trim), so that a client's sync is answered in time.
//!
//! The reader also takes the signals: stop (the command in flight
//! finishes, the rest is dropped) and reload (functions and `[qga] allow` /
//! `block` change at once; the port, at the next restart).

use super::port::{Got, Port, Replier};
use super::request::{self, Request};
use super::stream::{Event, Stream};
use super::{commands, CommandDef, Ctx, QgaError, QgaSettings};
use crate::apply::Applier;
use crate::cli::{DaemonArgs, Global};
use crate::crypto::hash::Scheme;
use crate::functions::Functions;
use crate::root::Root;
use crate::settings::{self, Settings};
use crate::{daemon, logging, notify, signals};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Requests queued behind the one running; more are refused, not held.
const QUEUE: usize = 32;
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

    /// Why `def` may not run now, if it may not.
    pub fn refusal(&self, def: &CommandDef, frozen: bool) -> Option<QgaError> {
        if !self.enables(def) {
            Some(QgaError::disabled(def.name, false))
        } else if frozen && !def.while_frozen {
            Some(QgaError::disabled(def.name, true))
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
            password_scheme: s.password_scheme,
            password_allow_empty: s.password_allow_empty,
            run_dir: s.run_dir.clone(),
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

/// What the reader hands the worker, in request order.
enum Job {
    /// A reply decided already (an error), sent when its turn comes.
    Reply(Vec<u8>),
    /// A command to run.
    Run(&'static CommandDef, Request),
    /// New settings (a reload).
    Reconfigure(Box<Worker>),
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
    /// Signalled when the worker finishes a job.
    done: (Mutex<()>, Condvar),
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
        work(&mut worker, job, &replier, &shared, &mut is_frozen);
        let _guard = shared.done.0.lock().unwrap_or_else(PoisonError::into_inner);
        shared.pending.fetch_sub(1, Ordering::SeqCst);
        shared.done.1.notify_all();
    }
}

fn work(worker: &mut Worker, job: Job, replier: &Replier, shared: &Shared, is_frozen: &mut bool) {
    match job {
        Job::Reply(bytes) => send(replier, &bytes),
        Job::Reconfigure(new) => *worker = *new,
        Job::Run(def, request) => {
            let started = Instant::now();
            let result = worker.run(def, &request, is_frozen);
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
                send(replier, &request::reply(&result, request.id.as_ref()));
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
    fn queue(&self, job: Job) {
        let id = match &job {
            Job::Run(_, r) => r.id.clone(),
            _ => None,
        };
        self.shared.pending.fetch_add(1, Ordering::SeqCst);
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.pending.fetch_sub(1, Ordering::SeqCst);
                let busy = QgaError::generic(format!("too many requests pending (at most {QUEUE})"));
                send(&self.replier, &request::reply(&Err(busy), id.as_ref()));
            }
            Err(TrySendError::Disconnected(_)) => log::error!("qga: the worker is gone"),
        }
    }

    /// Sends an error now, or after what the worker has to do.
    fn error(&self, error: QgaError, id: Option<&Value>) {
        let reply = request::reply(&Err(error), id);
        if self.shared.pending.load(Ordering::SeqCst) == 0 {
            send(&self.replier, &reply);
        } else {
            self.queue(Job::Reply(reply));
        }
    }

    fn event(&mut self, event: Event) {
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
        if !IMMEDIATE.contains(&def.name) {
            return self.queue(Job::Run(def, request));
        }
        let result = request::check_arguments(def, &request.arguments).map(|()| match def.name {
            "guest-info" => info(&self.policy, self.shared.frozen.load(Ordering::SeqCst)),
            "guest-ping" => json!({}),
            _ => request.arguments.get("id").cloned().unwrap_or(Value::Null),
        });
        self.shared.wait_idle(ORDER_WAIT);
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
fn open_until_ready(s: &Settings) -> Option<Port> {
    let mut delay = Duration::from_millis(100);
    let mut reported = false;
    loop {
        match Port::open(s.qga.method, s.qga.path.as_deref(), &s.run_dir) {
            Ok(port) => return Some(port),
            Err(e) => {
                if !reported {
                    let at = super::port::describe(s.qga.method, s.qga.path.as_deref(), &s.run_dir);
                    log::error!("qga: cannot open {} port {at}: {e}; retrying", s.qga.method.name());
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

/// Serves the QEMU guest agent protocol until stopped. `connected` runs once
/// the port is open (it drops privileges).
pub fn serve(
    current: Settings,
    global: &Global,
    args: &DaemonArgs,
    connected: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    let Some(mut port) = open_until_ready(&current) else {
        return Ok(());
    };
    signals::set_waker(port.waker());
    connected()?;
    let shared = Arc::new(Shared {
        frozen: AtomicBool::new(commands::freeze::restore(&current.run_dir)),
        pending: AtomicUsize::new(0),
        done: (Mutex::new(()), Condvar::new()),
    });
    let (jobs, queue) = mpsc::sync_channel(QUEUE);
    let replier = port.replier();
    let worker = {
        let (w, r, f) = (Worker::of(&current), replier.clone(), Arc::clone(&shared));
        std::thread::Builder::new()
            .name("qga-worker".into())
            .spawn(move || worker_loop(w, queue, r, f))
            .map_err(|e| format!("cannot start the qga worker: {e}"))?
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
        current.qga.method.name(),
        super::port::describe(current.qga.method, current.qga.path.as_deref(), &current.run_dir),
        current.functions,
        current.root.display()
    );
    notify::send("READY=1");
    // Requests are small; a bigger one takes more reads, not more memory.
    let mut buf = [0u8; 4096];
    while !signals::stop_requested() {
        if signals::take_reload() {
            reload(&current, global, args, &mut reader);
        }
        match port.read(&mut buf, IDLE_WAIT) {
            Ok(Got::Data(n)) => {
                for event in reader.stream.feed(&buf[..n]) {
                    reader.event(event);
                }
            }
            Ok(Got::Woken | Got::Idle) => {}
            Err(e) => {
                log::warn!("qga: {e}");
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
    notify::send("STOPPING=1");
    log::info!("stopping");
    // The command in flight finishes; those queued behind it are dropped.
    drop(reader);
    let _ = worker.join();
    Ok(())
}

fn reload(current: &Settings, global: &Global, args: &DaemonArgs, reader: &mut Reader) {
    notify::send("RELOADING=1");
    match settings::load(global, Some(args)) {
        Ok(new) => {
            for w in &new.warnings {
                log::warn!("{w}");
            }
            if let Err(e) = logging::init(&new.loghandler, new.loglevel) {
                log::error!("{e}");
            }
            reader.policy = Policy::of(&new);
            reader.queue(Job::Reconfigure(Box::new(Worker::of(&new))));
            if new.transport() != current.transport() {
                log::warn!("communicator settings changed: they take effect at the next restart");
            }
            log::info!("configuration reloaded (functions {})", new.functions);
        }
        Err(e) => log::error!("configuration not reloaded, keeping the old one: {e}"),
    }
    notify::send("READY=1");
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
}
