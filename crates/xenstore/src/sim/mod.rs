//! An in-process xenstored for tests and demos.
//!
//! [`Simulator`] serves a XenStore tree on Unix sockets:
//!
//! * [`listen_dom0`](Simulator::listen_dom0): the xenstored socket, privileged
//!   (dom0). Real clients work against it: Debian's `xenstore-*` tools through
//!   `XENSTORED_PATH`, `pyxs`, this crate's client.
//! * [`add_guest`](Simulator::add_guest): a stream socket standing for a
//!   domain's own xenstore connection: unprivileged, relative paths resolve to
//!   `/local/domain/<domid>`, permissions and quotas enforced, payloads above
//!   4080 bytes refused with `E2BIG` (a header announcing more than 4096 closes
//!   the connection), and watch events carrying garbage `req_id`/`tx_id` as
//!   they do through the Linux device.
//! * [`add_guest_device`](Simulator::add_guest_device): a `SOCK_SEQPACKET`
//!   socket emulating the domain's `/dev/xen/xenbus`: each packet is one
//!   `write()` (bytes after the first complete message are dropped, partial
//!   messages accumulate), WATCH/UNWATCH handled by "the kernel" (duplicates
//!   allowed, unknown UNWATCH is `OK`), transactions checked per connection,
//!   `RESET_WATCHES` wiping every watch of the domain. The `write()` errnos of
//!   the real device (`EINVAL` over 4096 buffered bytes, `E2BIG` over a 4080-byte
//!   payload) come back as `ERROR` replies instead. Replies and events are sent
//!   one message per packet: read them with a buffer of at least
//!   `HEADER_LEN + READ_PAYLOAD_CAP` bytes.
//!
//! Semantics follow C xenstored 4.17, or oxenstored 4.17 where [`Flavor::Ox`]
//! selects the observed differences (the project's XenStore research notes,
//! §1.11). One deliberate difference: a transaction reads a snapshot taken at
//! `TRANSACTION_START` (C reads the live node the first time), so a node
//! changed outside after the start reads stale and the commit fails with
//! `EAGAIN`, where C might have committed. Clients must retry on `EAGAIN`
//! anyway; the simulator just asks them to a little more often. Test knobs: [`kill_connections`](Simulator::kill_connections),
//! [`fail_next_commits`](Simulator::fail_next_commits),
//! [`simulate_resume`](Simulator::simulate_resume), [`stats`](Simulator::stats).
//!
//! Threads: one accept thread per socket and one thread per connection, all
//! asleep in `poll(2)` when idle; [`shutdown`](Simulator::shutdown) (also run
//! when the last clone is dropped) stops and joins them and unlinks the sockets.

mod access;
mod config;
mod conn;
mod framing;
mod listing;
mod ops;
mod server;
mod session;
mod state;
mod store;
mod txn;
mod watch;

pub use self::config::{Config, Flavor, Stats};
use self::server::Shared;
use self::state::{ConnKind, State};
use self::store::{Actor, Change, Journal, Limits};
use crate::path::{domain_home, resolve};
use crate::wire::{Access, ErrorKind, Perm};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Most permission entries an unprivileged domain may set on a node (C `ACC_NPERM`).
pub(crate) const PERMS_PER_NODE_MAX: usize = 5;

/// Stops the simulator when the last [`Simulator`] clone goes away.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// An in-process xenstored. Cheap to clone; all clones drive the same store.
#[derive(Clone)]
pub struct Simulator {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("flavor", &self.shared().cfg.flavor)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// A simulator with the tree `/tool/xenstored` and dom0's
    /// `/local/domain/0/{name,domid}`, serving nothing yet.
    pub fn new(config: Config) -> Simulator {
        let shared = Arc::new(Shared::new(config));
        let sim = Simulator {
            handle: Arc::new(Handle(shared)),
        };
        sim.write("/tool/xenstored", b"");
        sim.write("/local/domain/0/name", b"Domain-0");
        sim.write("/local/domain/0/domid", b"0");
        sim
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.0
    }

    /// Serves the privileged xenstored socket at `path` (mode 0600). A stale
    /// socket file there (nobody listening) is replaced; a live socket or any
    /// other file is an error (`AddrInUse`). Relative paths resolve to
    /// `/local/domain/0`. The same rules apply to the guest sockets.
    pub fn listen_dom0(&self, path: &Path) -> io::Result<()> {
        self.shared().listen(path, ConnKind::Dom0Socket, 0)
    }

    /// Serves a stream socket at `path` acting as domain `domid`'s xenstore
    /// connection (unprivileged). Creates the domain if it does not exist.
    pub fn add_guest(&self, domid: u32, path: &Path) -> io::Result<()> {
        self.ensure_domain(domid);
        self.shared().listen(path, ConnKind::GuestSocket, domid)
    }

    /// Serves a `SOCK_SEQPACKET` socket at `path` emulating domain `domid`'s
    /// `/dev/xen/xenbus` (see the module docs). Creates the domain if needed.
    pub fn add_guest_device(&self, domid: u32, path: &Path) -> io::Result<()> {
        self.ensure_domain(domid);
        self.shared().listen(path, ConnKind::GuestDevice, domid)
    }

    fn ensure_domain(&self, domid: u32) {
        if self.read(&domain_home(domid)).is_none() {
            self.create_domain(domid, &format!("guest-{domid}"));
        }
    }

    /// Builds `/local/domain/<domid>` as xenopsd does: the home, `name` and
    /// `domid` owned by dom0 and readable by the guest (`n0 r<domid>`), `data/`
    /// writable by the guest (`n0 b<domid>`), `vm-data/` read-only for it.
    /// Fires `@introduceDomain` when the domain is new.
    pub fn create_domain(&self, domid: u32, name: &str) {
        let home = domain_home(domid);
        let ro = vec![Perm::new(0, Access::None), Perm::new(domid, Access::Read)];
        let rw = vec![Perm::new(0, Access::None), Perm::new(domid, Access::Both)];
        let nodes = [
            (home.clone(), None::<Vec<u8>>, &ro),
            (format!("{home}/name"), Some(name.as_bytes().to_vec()), &ro),
            (format!("{home}/domid"), Some(domid.to_string().into_bytes()), &ro),
            (format!("{home}/data"), None, &rw),
            (format!("{home}/vm-data"), None, &ro),
        ];
        let sh = self.shared();
        let mut st = sh.state();
        let mut changes = Vec::new();
        let limits = api_limits();
        for (path, value, perms) in nodes {
            let j = &mut Journal::default();
            let made = match value {
                Some(v) => st.store.write(Actor::DOM0, &path, &v, &limits, j).map(Some),
                None => st.store.mkdir(Actor::DOM0, &path, &limits, j),
            };
            changes.extend(made.ok().flatten());
            changes.extend(st.store.set_perms(Actor::DOM0, &path, perms.clone(), j).ok());
        }
        if st.domains.insert(domid) {
            changes.push(session::special_change(state::SPECIAL_PATHS[0]));
        }
        sh.fire_api(&mut st, &changes);
    }

    /// Removes `/local/domain/<domid>` (so `.../name` disappears, as the host's
    /// reboot detection expects) and fires `@releaseDomain`. Connections of the
    /// domain stay open.
    pub fn destroy_domain(&self, domid: u32) {
        let sh = self.shared();
        let mut st = sh.state();
        let mut changes = st
            .store
            .rm(Actor::DOM0, &domain_home(domid), &mut Journal::default())
            .unwrap_or_default();
        st.domains.remove(&domid);
        changes.push(session::special_change(state::SPECIAL_PATHS[1]));
        sh.fire_api(&mut st, &changes);
    }

    /// Runs a privileged operation on `path` (relative paths resolve to
    /// `/local/domain/0`); invalid paths are reported on stderr and ignored.
    fn api<T>(
        &self,
        path: &str,
        op: impl FnOnce(&mut State, &str) -> Result<(T, Vec<Change>), ErrorKind>,
    ) -> Option<T> {
        let full = match resolve(&domain_home(0), path) {
            Ok(p) if p.starts_with('/') => p,
            _ => {
                eprintln!("xenstore sim: invalid path {path:?} ignored");
                return None;
            }
        };
        let sh = self.shared();
        let mut st = sh.state();
        let (out, changes) = op(&mut st, &full).ok()?;
        sh.fire_api(&mut st, &changes);
        Some(out)
    }

    /// The value at `path`, if the node exists.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.api(path, |st, p| {
            Ok((st.store.get(p).ok_or(ErrorKind::Noent)?.value.clone(), Vec::new()))
        })
    }

    /// Writes `value` at `path` as dom0, creating missing parents; fires watches.
    pub fn write(&self, path: &str, value: &[u8]) {
        let limits = api_limits();
        self.api(path, |st, p| {
            let change = st
                .store
                .write(Actor::DOM0, p, value, &limits, &mut Journal::default())?;
            Ok(((), vec![change]))
        });
    }

    /// Removes `path` and everything below it (if it exists); fires watches.
    pub fn rm(&self, path: &str) {
        self.api(path, |st, p| {
            Ok(((), st.store.rm(Actor::DOM0, p, &mut Journal::default())?))
        });
    }

    /// The child names of `path` (empty if it does not exist).
    pub fn directory(&self, path: &str) -> Vec<String> {
        self.api(path, |st, p| {
            Ok((st.store.get(p).ok_or(ErrorKind::Noent)?.children.clone(), Vec::new()))
        })
        .unwrap_or_default()
    }

    /// Closes every client connection (clients see EOF) and waits until they
    /// are gone; listeners and the tree are kept.
    pub fn kill_connections(&self) {
        self.shared().kill_connections();
    }

    /// Makes the next `n` commits (`TRANSACTION_END` with `T`) fail with `EAGAIN`.
    pub fn fail_next_commits(&self, n: u32) {
        self.shared().state().fail_commits = n;
    }

    /// Emulates a suspend/resume of `domid` for its device connections: open
    /// transactions can no longer commit (`EAGAIN` on `T`), and every watch
    /// fires its initial event again, as after the kernel's re-registration.
    pub fn simulate_resume(&self, domid: u32) {
        let mut st = self.shared().state();
        let ids: Vec<_> = st
            .conns
            .iter()
            .filter(|(_, c)| c.kind == ConnKind::GuestDevice && c.actor.domid == domid)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(c) = st.conns.get_mut(&id) else { continue };
            c.generation += 1;
            let events = c.watches.iter().map(|w| w.initial_event(&c.home)).collect();
            server::push_events(&mut st, id, events);
        }
    }

    /// Stops listening, closes all connections, joins every thread and unlinks
    /// the socket files. Idempotent; also run when the last clone is dropped.
    pub fn shutdown(&self) {
        self.shared().shutdown();
    }

    /// Counters: requests per type, connections, events.
    pub fn stats(&self) -> Stats {
        let st = self.shared().state();
        Stats {
            requests: st.counters.requests.clone(),
            connections: st.conns.len(),
            connections_accepted: st.counters.accepted,
            watch_events: st.counters.events_queued,
            handler_panics: st.counters.handler_panics,
        }
    }
}

/// Dom0 has no quotas.
fn api_limits() -> Limits {
    Limits {
        node_size_max: usize::MAX,
        value_max: None,
        nodes_per_domain: usize::MAX,
        quota_error: ErrorKind::Nospc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulator_is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<Simulator>();
        check::<Config>();
        check::<Stats>();
    }

    #[test]
    fn direct_api_round_trips_and_ignores_bad_paths() {
        let sim = Simulator::new(Config::default());
        sim.write("rel/x", b"1");
        assert_eq!(sim.read("/local/domain/0/rel/x").as_deref(), Some(&b"1"[..]));
        assert_eq!(sim.directory("/local/domain/0/rel"), ["x"]);
        sim.write("/bad path", b"x");
        assert_eq!(sim.read("/bad path"), None);
        sim.rm("/local/domain/0/rel");
        assert_eq!(sim.read("rel/x"), None);
        sim.create_domain(3, "three");
        assert_eq!(sim.read("/local/domain/3/name").as_deref(), Some(&b"three"[..]));
        assert_eq!(sim.directory("/local/domain/3"), ["name", "domid", "data", "vm-data"]);
        sim.destroy_domain(3);
        assert!(sim.directory("/local/domain/3").is_empty());
        assert_eq!(sim.stats().connections, 0);
    }
}
