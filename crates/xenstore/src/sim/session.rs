//! Per-connection session requests: WATCH/UNWATCH, transactions,
//! RESET_WATCHES and the privileged domain operations; plus the checks the Linux
//! kernel applies to `/dev/xen/xenbus` writes before xenstored sees them
//! (`xenbus_write_watch`, `xenbus_write_transaction`).

use super::ops::{atoi, ok, strings, Cx};
use super::state::{ConnKind, SPECIAL_PATHS};
use super::store::{Change, XsResult};
use super::txn::Transaction;
use super::watch::Watch;
use super::Flavor;
use crate::wire::{ErrorKind, Message, MsgType, REL_PATH_MAX};

/// Open transactions any one connection may hold, dom0 included: each one is a
/// snapshot of the tree, so this keeps memory bounded.
const TRANSACTIONS_PER_CONN_MAX: usize = 256;

impl Cx<'_> {
    /// The kernel's own handling of a device write. `Some` when the kernel
    /// answers by itself (or synthesises the reply), `None` to forward.
    pub(crate) fn kernel_checks(&mut self, msg: &Message) -> Option<XsResult<Vec<u8>>> {
        let p = &msg.payload;
        match msg.kind {
            MsgType::Watch => return Some(self.device_watch(p, true)),
            MsgType::Unwatch => return Some(self.device_watch(p, false)),
            MsgType::TransactionStart => return None,
            _ => {}
        }
        if msg.tx_id != 0 && !self.has_tx(msg.tx_id) {
            return Some(Err(ErrorKind::Noent));
        }
        if msg.kind == MsgType::TransactionEnd {
            if p[..] != b"T\0"[..] && p[..] != b"F\0"[..] {
                return Some(Err(ErrorKind::Inval));
            }
            let conn = self.st.conns.get_mut(&self.id)?;
            let stale = conn
                .txs
                .get(&msg.tx_id)
                .is_some_and(|t| t.generation != conn.generation);
            if stale && p[0] == b'T' {
                conn.txs.remove(&msg.tx_id);
                return Some(Err(ErrorKind::Again));
            }
        }
        None
    }

    /// WATCH/UNWATCH on the device: the kernel keeps its own list per open
    /// file, so duplicates register twice and an unknown UNWATCH is `OK`.
    fn device_watch(&mut self, p: &[u8], add: bool) -> XsResult<Vec<u8>> {
        let path_end = p.iter().position(|&b| b == 0).ok_or(ErrorKind::Inval)?;
        let rest = &p[path_end + 1..];
        let token_end = rest.iter().position(|&b| b == 0).ok_or(ErrorKind::Inval)?;
        let (given, token) = (&p[..path_end], &rest[..token_end]);
        if add {
            let w = self.new_watch(given, token)?;
            return self.add_watch(w);
        }
        if let Some(conn) = self.st.conns.get_mut(&self.id) {
            if let Some(i) = conn.watches.iter().position(|w| w.given == given && w.token == token) {
                conn.watches.remove(i);
            }
        }
        Ok(ok())
    }

    fn new_watch(&mut self, given: &[u8], token: &[u8]) -> XsResult<Watch> {
        let (path, relative) = if given.starts_with(b"@") {
            if given.len() > REL_PATH_MAX {
                return Err(ErrorKind::Inval);
            }
            let s = std::str::from_utf8(given).map_err(|_| ErrorKind::Inval)?;
            (s.to_string(), false)
        } else {
            (self.resolve(given)?, !given.starts_with(b"/"))
        };
        self.st.next_watch += 1;
        Ok(Watch {
            id: self.st.next_watch,
            given: given.to_vec(),
            path,
            token: token.to_vec(),
            relative,
        })
    }

    fn add_watch(&mut self, w: Watch) -> XsResult<Vec<u8>> {
        if !self.actor.privileged && self.st.domain_watches(self.actor.domid) >= self.cfg.watches_per_domain {
            return Err(match self.cfg.flavor {
                Flavor::C => ErrorKind::TooBig,
                Flavor::Ox => ErrorKind::Quota,
            });
        }
        self.after.push(w.initial_event(&self.home));
        if let Some(conn) = self.st.conns.get_mut(&self.id) {
            conn.watches.push(w);
        }
        Ok(ok())
    }

    /// Exactly `<path>\0<token>\0`: a third (depth) argument is `EINVAL` on 4.17.
    fn watch_args<'p>(&self, p: &'p [u8]) -> XsResult<(&'p [u8], &'p [u8])> {
        match strings(p).as_deref() {
            Some([path, token]) => Ok((path, token)),
            _ => Err(ErrorKind::Inval),
        }
    }

    pub(crate) fn watch(&mut self, p: &[u8]) -> XsResult<Vec<u8>> {
        let (given, token) = self.watch_args(p)?;
        let w = self.new_watch(given, token)?;
        let dup = self
            .st
            .conns
            .get(&self.id)
            .is_some_and(|c| c.watches.iter().any(|x| x.path == w.path && x.token == w.token));
        if dup {
            return Err(ErrorKind::Exist);
        }
        self.add_watch(w)
    }

    pub(crate) fn unwatch(&mut self, p: &[u8]) -> XsResult<Vec<u8>> {
        let (given, token) = self.watch_args(p)?;
        let w = self.new_watch(given, token)?;
        let conn = self.st.conns.get_mut(&self.id).ok_or(ErrorKind::Noent)?;
        let i = conn
            .watches
            .iter()
            .position(|x| x.path == w.path && x.token == w.token)
            .ok_or(ErrorKind::Noent)?;
        conn.watches.remove(i);
        Ok(ok())
    }

    pub(crate) fn transaction_start(&mut self, tx_id: u32) -> XsResult<Vec<u8>> {
        if tx_id != 0 {
            return Err(ErrorKind::Busy);
        }
        if !self.actor.privileged && self.st.domain_transactions(self.actor.domid) >= self.cfg.transactions_per_domain {
            return Err(self.quota_error());
        }
        let st = &mut *self.st;
        let conn = st.conns.get_mut(&self.id).ok_or(ErrorKind::Io)?;
        if conn.txs.len() >= TRANSACTIONS_PER_CONN_MAX {
            return Err(self.quota_error());
        }
        let mut id = conn.next_tx;
        while id == 0 || conn.txs.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        conn.next_tx = id.wrapping_add(1);
        conn.txs.insert(id, Transaction::start(&st.store, conn.generation));
        Ok(format!("{id}\0").into_bytes())
    }

    pub(crate) fn transaction_end(&mut self, tx_id: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let commit = match p {
            b"T\0" => true,
            b"F\0" => false,
            _ => return Err(ErrorKind::Inval),
        };
        let stale = self.stale_tx();
        let st = &mut *self.st;
        let tx = st
            .conns
            .get_mut(&self.id)
            .and_then(|c| c.txs.remove(&tx_id))
            .ok_or(stale)?;
        if !commit {
            return Ok(ok());
        }
        if st.fail_commits > 0 {
            st.fail_commits -= 1;
            return Err(ErrorKind::Again);
        }
        if tx.conflicts(&st.store) {
            return Err(ErrorKind::Again);
        }
        let changes = tx.apply(&mut st.store);
        self.fire(&changes);
        Ok(ok())
    }

    /// RESET_WATCHES: the connection's watches and transactions; through the
    /// device it reaches xenstored on the domain's single ring connection, so
    /// every connection of the domain loses them.
    pub(crate) fn reset_watches(&mut self) -> XsResult<Vec<u8>> {
        let domid = self.actor.domid;
        let whole_domain = self.kind == ConnKind::GuestDevice;
        for (id, conn) in self.st.conns.iter_mut() {
            if *id == self.id || (whole_domain && conn.actor.domid == domid) {
                conn.reset();
            }
        }
        Ok(ok())
    }

    pub(crate) fn introduce(&mut self, p: &[u8]) -> XsResult<Vec<u8>> {
        let parts = strings(p).ok_or(ErrorKind::Inval)?;
        if parts.len() < 3 {
            return Err(ErrorKind::Inval);
        }
        let domid = atoi(parts[0]);
        if domid == 0 {
            return Err(ErrorKind::Inval);
        }
        self.st.domains.insert(domid);
        self.fire(&[special_change(SPECIAL_PATHS[0])]);
        Ok(ok())
    }

    pub(crate) fn release(&mut self, p: &[u8]) -> XsResult<Vec<u8>> {
        let domid = atoi(self.one_arg(p).map_err(|_| ErrorKind::Inval)?);
        if domid == 0 {
            return Err(ErrorKind::Inval);
        }
        if !self.st.domains.remove(&domid) {
            return Err(ErrorKind::Noent);
        }
        self.fire(&[special_change(SPECIAL_PATHS[1])]);
        Ok(ok())
    }

    pub(crate) fn is_introduced(&mut self, p: &[u8]) -> XsResult<Vec<u8>> {
        let domid = atoi(self.one_arg(p).map_err(|_| ErrorKind::Inval)?);
        let known = self.st.domains.contains(&domid);
        Ok(if known { b"T\0".to_vec() } else { b"F\0".to_vec() })
    }
}

/// A change of a special path (`@introduceDomain` / `@releaseDomain`).
pub(crate) fn special_change(path: &str) -> Change {
    Change {
        path: path.to_string(),
        exact: true,
        perms: Vec::new(),
    }
}
