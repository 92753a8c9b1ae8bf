//! Request handling: one message in, one reply (plus watch events) out, with the
//! argument rules and error names of C xenstored 4.17 or oxenstored 4.17
//! ([`Flavor`]), and in front of them the checks the Linux kernel makes for
//! `/dev/xen/xenbus`. Node operations live here; watches, transactions and
//! domain operations in `session.rs`.

use super::state::{ConnId, ConnKind, State};
use super::store::{Actor, Change, Journal, Limits, Need, Store, XsResult};
use super::watch::{self, Delivery, Fired};
use super::{Config, Flavor};
use crate::path;
use crate::wire::{join_nul, split_nul, ErrorKind, Message, MsgType, Perm, REL_PATH_MAX};

/// The outcome of one request.
#[derive(Debug)]
pub(crate) struct Handled {
    pub(crate) reply: Message,
    /// Events for the requesting connection, to queue after the reply.
    pub(crate) after: Vec<Message>,
    pub(crate) fired: Fired,
}

/// Handles one request from connection `id`.
pub(crate) fn handle(cfg: &Config, st: &mut State, id: ConnId, msg: &Message) -> Handled {
    *st.counters.requests.entry(msg.kind).or_default() += 1;
    let Some(conn) = st.conns.get(&id) else {
        let reply = error_reply(msg, ErrorKind::Io);
        return Handled {
            reply,
            after: Vec::new(),
            fired: Fired::default(),
        };
    };
    let mut cx = Cx {
        cfg,
        kind: conn.kind,
        actor: conn.actor,
        home: conn.home.clone(),
        st,
        id,
        fired: Fired::default(),
        after: Vec::new(),
    };
    let reply = match cx.dispatch(msg) {
        Ok(payload) => Message::new(msg.kind, msg.req_id, msg.tx_id, payload),
        Err(e) => error_reply(msg, e),
    };
    let mut after = std::mem::take(&mut cx.fired.deferred);
    after.append(&mut cx.after);
    Handled {
        reply,
        after,
        fired: cx.fired,
    }
}

/// An `ERROR` reply to `msg`.
pub(crate) fn error_reply(msg: &Message, e: ErrorKind) -> Message {
    Message::new(MsgType::Error, msg.req_id, msg.tx_id, e.to_payload())
}

/// `OK\0`.
pub(crate) fn ok() -> Vec<u8> {
    b"OK\0".to_vec()
}

/// Request context.
pub(crate) struct Cx<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) st: &'a mut State,
    pub(crate) id: ConnId,
    pub(crate) kind: ConnKind,
    pub(crate) actor: Actor,
    pub(crate) home: String,
    pub(crate) fired: Fired,
    pub(crate) after: Vec<Message>,
}

impl Cx<'_> {
    fn dispatch(&mut self, msg: &Message) -> XsResult<Vec<u8>> {
        use MsgType as T;
        let kind = msg.kind;
        if matches!(kind, T::WatchEvent | T::Error | T::Unknown(_))
            || (kind == T::DirectoryPart && self.cfg.flavor == Flavor::Ox)
        {
            return Err(ErrorKind::Nosys);
        }
        if self.kind == ConnKind::GuestDevice {
            if let Some(r) = self.kernel_checks(msg) {
                return r;
            }
        }
        let privileged_only = matches!(
            kind,
            T::Control | T::Introduce | T::Release | T::IsDomainIntroduced | T::Resume | T::SetTarget
        );
        if privileged_only && !self.actor.privileged {
            return Err(ErrorKind::Acces);
        }
        let ignores_tx = privileged_only || matches!(kind, T::Watch | T::Unwatch | T::GetDomainPath | T::ResetWatches);
        if !ignores_tx && msg.tx_id != 0 && !self.has_tx(msg.tx_id) {
            return Err(self.stale_tx());
        }
        let tx = if ignores_tx { 0 } else { msg.tx_id };
        let p = &msg.payload;
        match kind {
            T::Read => self.read(tx, p),
            T::Directory => self.directory(tx, p),
            T::DirectoryPart => self.directory_part(tx, p),
            T::GetPerms => self.get_perms(tx, p),
            T::Write => self.write(tx, p),
            T::Mkdir => self.mkdir(tx, p),
            T::Rm => self.rm(tx, p),
            T::SetPerms => self.set_perms(tx, p),
            T::GetDomainPath => self.get_domain_path(p),
            T::Watch => self.watch(p),
            T::Unwatch => self.unwatch(p),
            T::TransactionStart => self.transaction_start(msg.tx_id),
            T::TransactionEnd => self.transaction_end(msg.tx_id, p),
            T::ResetWatches => self.reset_watches(),
            T::Control | T::Resume | T::SetTarget => Ok(ok()),
            T::Introduce => self.introduce(p),
            T::Release => self.release(p),
            T::IsDomainIntroduced => self.is_introduced(p),
            T::WatchEvent | T::Error | T::Unknown(_) => Err(ErrorKind::Nosys),
        }
    }

    pub(crate) fn has_tx(&self, tx: u32) -> bool {
        self.st.conns.get(&self.id).is_some_and(|c| c.txs.contains_key(&tx))
    }

    /// Error for an unknown or finished transaction id.
    pub(crate) fn stale_tx(&self) -> ErrorKind {
        match (self.kind, self.cfg.flavor) {
            (ConnKind::GuestDevice, _) | (_, Flavor::C) => ErrorKind::Noent,
            (_, Flavor::Ox) => ErrorKind::Io,
        }
    }

    pub(crate) fn quota_error(&self) -> ErrorKind {
        match self.cfg.flavor {
            Flavor::C => ErrorKind::Nospc,
            Flavor::Ox => ErrorKind::Quota,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            node_size_max: self.cfg.node_size_max,
            value_max: self.cfg.value_max,
            nodes_per_domain: self.cfg.nodes_per_domain,
            quota_error: self.quota_error(),
        }
    }

    pub(crate) fn delivery(&self) -> Delivery {
        let ox = self.cfg.flavor == Flavor::Ox;
        Delivery {
            origin: Some(self.id),
            defer_own: ox,
            coalesce: !ox,
            newest_first: ox,
        }
    }

    pub(crate) fn fire(&mut self, changes: &[Change]) {
        let how = self.delivery();
        watch::fire(self.st, changes, how, &mut self.fired);
    }

    /// Runs a node operation on the main tree (events now) or inside the
    /// transaction `tx` (events at commit).
    pub(crate) fn with_store<T>(
        &mut self,
        tx: u32,
        op: impl FnOnce(&mut Store, &mut Journal) -> XsResult<(T, Vec<Change>)>,
    ) -> XsResult<T> {
        if tx == 0 {
            let (out, changes) = op(&mut self.st.store, &mut Journal::default())?;
            self.fire(&changes);
            return Ok(out);
        }
        let stale = self.stale_tx();
        let t = self
            .st
            .conns
            .get_mut(&self.id)
            .and_then(|c| c.txs.get_mut(&tx))
            .ok_or(stale)?;
        let (out, changes) = op(&mut t.store, &mut t.journal)?;
        t.changes.extend(changes);
        Ok(out)
    }

    /// The single NUL-terminated argument of a request. C xenstored answers an
    /// unterminated (or multi-string) argument with `ENOENT`, oxenstored with
    /// `EINVAL`; both refuse an empty payload with `EINVAL`.
    pub(crate) fn one_arg<'p>(&self, payload: &'p [u8]) -> XsResult<&'p [u8]> {
        if payload.is_empty() {
            return Err(ErrorKind::Inval);
        }
        match payload.iter().position(|&b| b == 0) {
            Some(i) if i + 1 == payload.len() => Ok(&payload[..i]),
            _ if self.cfg.flavor == Flavor::C => Err(ErrorKind::Noent),
            _ => Err(ErrorKind::Inval),
        }
    }

    /// Validates a node path and resolves it against the connection's home.
    pub(crate) fn resolve(&self, raw: &[u8]) -> XsResult<String> {
        let s = std::str::from_utf8(raw).map_err(|_| ErrorKind::Inval)?;
        let full = path::resolve(&self.home, s).map_err(|_| ErrorKind::Inval)?;
        if !full.starts_with('/') || below_home_len(&full) > REL_PATH_MAX {
            return Err(ErrorKind::Inval);
        }
        Ok(full)
    }

    pub(crate) fn path_arg(&self, payload: &[u8]) -> XsResult<String> {
        let raw = self.one_arg(payload)?;
        self.resolve(raw)
    }

    fn read(&mut self, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = self.path_arg(p)?;
        let actor = self.actor;
        self.with_store(tx, |s, j| {
            let node = s.lookup(actor, &path, Need::Read, j)?;
            Ok((node.value.clone(), Vec::new()))
        })
    }

    fn get_perms(&mut self, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let raw = self.one_arg(p)?;
        if raw.starts_with(b"@") {
            let name = String::from_utf8_lossy(raw).into_owned();
            let perms = self.st.special_perms.get(&name).ok_or(ErrorKind::Inval)?;
            return Ok(perms_payload(perms));
        }
        let path = self.resolve(raw)?;
        let actor = self.actor;
        self.with_store(tx, |s, j| {
            let node = s.lookup(actor, &path, Need::Read, j)?;
            Ok((perms_payload(&node.perms), Vec::new()))
        })
    }

    fn write(&mut self, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let nul = p.iter().position(|&b| b == 0).ok_or(ErrorKind::Inval)?;
        let path = self.resolve(&p[..nul])?;
        let value = &p[nul + 1..];
        let (actor, limits) = (self.actor, self.limits());
        self.with_store(tx, |s, j| {
            let change = s.write(actor, &path, value, &limits, j)?;
            Ok(((), vec![change]))
        })?;
        Ok(ok())
    }

    fn mkdir(&mut self, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = self.path_arg(p)?;
        let (actor, limits) = (self.actor, self.limits());
        self.with_store(tx, |s, j| {
            let change = s.mkdir(actor, &path, &limits, j)?;
            Ok(((), change.into_iter().collect()))
        })?;
        Ok(ok())
    }

    fn rm(&mut self, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = self.path_arg(p)?;
        let actor = self.actor;
        self.with_store(tx, |s, j| Ok(((), s.rm(actor, &path, j)?)))?;
        Ok(ok())
    }

    fn set_perms(&mut self, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let parts = strings(p).ok_or(ErrorKind::Inval)?;
        let Some((raw_path, raw_perms)) = parts.split_first() else {
            return Err(ErrorKind::Inval);
        };
        if raw_perms.is_empty() {
            return Err(ErrorKind::Inval);
        }
        let perms = raw_perms
            .iter()
            .map(|r| std::str::from_utf8(r).ok().and_then(Perm::parse))
            .collect::<Option<Vec<Perm>>>()
            .ok_or(ErrorKind::Inval)?;
        if !self.actor.privileged && perms.len() > super::PERMS_PER_NODE_MAX {
            return Err(ErrorKind::Nospc);
        }
        if self.cfg.flavor == Flavor::C && !self.st.domains.contains(&perms[0].domid) {
            return Err(ErrorKind::Noent);
        }
        if raw_path.starts_with(b"@") {
            return self.set_special_perms(raw_path, perms);
        }
        let path = self.resolve(raw_path)?;
        let actor = self.actor;
        self.with_store(tx, |s, j| Ok(((), vec![s.set_perms(actor, &path, perms, j)?])))?;
        Ok(ok())
    }

    fn set_special_perms(&mut self, raw: &[u8], perms: Vec<Perm>) -> XsResult<Vec<u8>> {
        let name = String::from_utf8_lossy(raw).into_owned();
        let old = self.st.special_perms.get(&name).ok_or(ErrorKind::Inval)?;
        if !super::store::rights(self.actor, old).owner {
            return Err(ErrorKind::Acces);
        }
        self.st.special_perms.insert(name, perms);
        Ok(ok())
    }

    fn get_domain_path(&mut self, p: &[u8]) -> XsResult<Vec<u8>> {
        let arg = self.one_arg(p).map_err(|_| ErrorKind::Inval)?;
        Ok(format!("{}\0", path::domain_home(atoi(arg))).into_bytes())
    }
}

/// Length C xenstored checks against 2048: the part below
/// `/local/domain/<id>/`, or the whole path elsewhere.
fn below_home_len(full: &str) -> usize {
    if let Some(rest) = full.strip_prefix("/local/domain/") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest.as_bytes().get(digits) == Some(&b'/') {
            return rest.len() - digits - 1;
        }
    }
    full.len()
}

/// The NUL-terminated strings of a payload; `None` if it does not end in NUL.
pub(crate) fn strings(payload: &[u8]) -> Option<Vec<&[u8]>> {
    if payload.last() != Some(&0) {
        return None;
    }
    Some(split_nul(payload))
}

/// C `atoi`: optional leading digits, 0 otherwise; saturates instead of wrapping.
pub(crate) fn atoi(s: &[u8]) -> u32 {
    s.iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u32, |n, d| n.saturating_mul(10).saturating_add(u32::from(d - b'0')))
}

fn perms_payload(perms: &[Perm]) -> Vec<u8> {
    let strs: Vec<String> = perms.iter().map(Perm::to_string).collect();
    join_nul(&strs)
}
