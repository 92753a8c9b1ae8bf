//! The node tree: values, permissions, children, generations and the per-domain
//! node accounting, with the access rules of C xenstored 4.17
//! (`perm_for_conn`, `errno_from_parents`, `construct_node`). No I/O, no
//! watches, no connections: operations return the [`Change`]s that watches must
//! see and record what they touched in a [`Journal`] (for transactions).

pub(crate) use super::access::{rights, Actor, Limits, Need};
use crate::path::parent;
use crate::wire::{Access, ErrorKind, Perm};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Result of a store operation: an error name for the reply.
pub(crate) type XsResult<T> = Result<T, ErrorKind>;

/// C's `sizeof(struct xs_tdb_record_hdr)`: u64 generation + 3 × u32, padded to 8.
const RECORD_HEADER: usize = 24;
/// C's `sizeof(struct xs_permissions)`.
const RECORD_PERM: usize = 8;

/// One node. `perms` is never empty (its first entry is the owner).
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) value: Vec<u8>,
    pub(crate) perms: Vec<Perm>,
    pub(crate) children: Vec<String>,
    pub(crate) gen: u64,
}

impl Node {
    fn owner(&self) -> u32 {
        self.perms.first().map_or(0, |p| p.domid)
    }

    /// C's `calc_node_acc_size`-like record size, checked against the node quota.
    fn acc_size(&self) -> usize {
        RECORD_HEADER
            + RECORD_PERM * self.perms.len()
            + self.value.len()
            + self.children.iter().map(|c| c.len() + 1).sum::<usize>()
    }
}

/// A change that watches may report.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    /// The changed node (or `@introduceDomain`/`@releaseDomain`).
    pub(crate) path: String,
    /// Only watches registered exactly on `path` fire (descendants of a removed
    /// node); otherwise every watch at or above `path`.
    pub(crate) exact: bool,
    /// Permissions that decide who may see the event (the node's, its parent's,
    /// and for SET_PERMS the old ones).
    pub(crate) perms: Vec<Vec<Perm>>,
}

/// Nodes touched by operations: what a transaction read (with the generation it
/// saw, `None` for absent) and which paths it modified.
#[derive(Clone, Debug, Default)]
pub(crate) struct Journal {
    pub(crate) accessed: HashMap<String, Option<u64>>,
    pub(crate) modified: BTreeSet<String>,
}

impl Journal {
    fn saw(&mut self, path: &str, node: Option<&Arc<Node>>) {
        if !self.accessed.contains_key(path) {
            self.accessed.insert(path.to_string(), node.map(|n| n.gen));
        }
    }
}

/// The whole tree, keyed by absolute path. Cheap to clone (nodes are shared).
#[derive(Clone, Debug)]
pub(crate) struct Store {
    nodes: HashMap<String, Arc<Node>>,
    owned: HashMap<u32, usize>,
    gen: u64,
}

impl Store {
    /// A tree with only `/` (owned by dom0, no access for others).
    pub(crate) fn new() -> Store {
        let mut nodes = HashMap::new();
        nodes.insert(
            "/".to_string(),
            Arc::new(Node {
                value: Vec::new(),
                perms: vec![Perm::new(0, Access::None)],
                children: Vec::new(),
                gen: 0,
            }),
        );
        Store {
            nodes,
            owned: HashMap::new(),
            gen: 1,
        }
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Arc<Node>> {
        self.nodes.get(path)
    }

    /// Number of nodes owned by a domain.
    pub(crate) fn owned_by(&self, domid: u32) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    fn next_gen(&mut self) -> u64 {
        self.gen += 1;
        self.gen
    }

    fn count(&mut self, owner: u32, delta: isize) {
        let n = self.owned.entry(owner).or_insert(0);
        *n = n.saturating_add_signed(delta);
    }

    /// Replaces (or removes) a node, keeping the owner counts and bumping its
    /// generation. Children lists are the caller's business.
    pub(crate) fn put(&mut self, path: &str, node: Option<Node>) {
        if let Some(old) = self.nodes.remove(path) {
            self.count(old.owner(), -1);
        }
        if let Some(mut node) = node {
            node.gen = self.next_gen();
            self.count(node.owner(), 1);
            self.nodes.insert(path.to_string(), Arc::new(node));
        }
    }

    /// The nearest existing ancestor of a (missing) path.
    fn nearest_ancestor(&self, path: &str) -> (&String, &Arc<Node>) {
        let mut cur = path;
        while let Some(p) = parent(cur) {
            if let Some(found) = self.nodes.get_key_value(p) {
                return found;
            }
            cur = p;
        }
        // Invariant: "/" always exists (RM refuses it and nothing else removes
        // it), so the loop returns for every absolute path; only a relative
        // path, which callers never pass, could get here.
        self.nodes.get_key_value("/").expect("the root node always exists")
    }

    /// C's `get_node` + `errno_from_parents`: the node if the actor has `need`;
    /// otherwise `EACCES`, or `ENOENT` when it is missing and the nearest
    /// ancestor grants `need` (so a refusal leaks nothing).
    pub(crate) fn lookup(&self, actor: Actor, path: &str, need: Need, j: &mut Journal) -> XsResult<&Arc<Node>> {
        let node = self.nodes.get(path);
        j.saw(path, node);
        match node {
            Some(n) if need.granted(rights(actor, &n.perms)) => Ok(n),
            Some(_) => Err(ErrorKind::Acces),
            None => {
                let (_, anc) = self.nearest_ancestor(path);
                if need.granted(rights(actor, &anc.perms)) {
                    Err(ErrorKind::Noent)
                } else {
                    Err(ErrorKind::Acces)
                }
            }
        }
    }

    fn change(&self, path: &str, node_perms: &[Perm], extra: Option<Vec<Perm>>) -> Change {
        let mut perms = vec![node_perms.to_vec()];
        if let Some(pp) = parent(path).and_then(|p| self.nodes.get(p)) {
            perms.push(pp.perms.clone());
        }
        perms.extend(extra);
        Change {
            path: path.to_string(),
            exact: false,
            perms,
        }
    }

    fn check_size(actor: Actor, node: &Node, limits: &Limits) -> XsResult<()> {
        if !actor.privileged && node.acc_size() >= limits.node_size_max {
            return Err(ErrorKind::Nospc);
        }
        Ok(())
    }

    /// Creates `path` and its missing parents (empty values), C's
    /// `construct_node`: the nearest existing ancestor must grant write, new
    /// nodes inherit its permissions, and an unprivileged creator owns them.
    fn create(&mut self, actor: Actor, path: &str, value: Vec<u8>, limits: &Limits, j: &mut Journal) -> XsResult<()> {
        let mut missing = vec![path.to_string()];
        let mut cur = path;
        while let Some(p) = parent(cur) {
            if self.nodes.contains_key(p) {
                break;
            }
            missing.push(p.to_string());
            cur = p;
        }
        let (anc_path, anc) = self.nearest_ancestor(path);
        let anc_path = anc_path.clone();
        let anc = Arc::clone(anc);
        j.saw(&anc_path, Some(&anc));
        if !rights(actor, &anc.perms).write {
            return Err(ErrorKind::Acces);
        }
        let mut perms = anc.perms.clone();
        if !actor.privileged {
            if let Some(first) = perms.first_mut() {
                first.domid = actor.domid;
            }
            if self.owned_by(actor.domid) + missing.len() > limits.nodes_per_domain {
                return Err(limits.quota_error.clone());
            }
        }
        // Build bottom-up, checking sizes before anything is stored.
        let mut built: Vec<(String, Node)> = Vec::with_capacity(missing.len());
        let mut child: Option<String> = None;
        let mut value = Some(value);
        for p in &missing {
            let node = Node {
                value: if child.is_none() {
                    value.take().unwrap_or_default()
                } else {
                    Vec::new()
                },
                perms: perms.clone(),
                children: child.iter().cloned().collect(),
                gen: 0,
            };
            Self::check_size(actor, &node, limits)?;
            child = p.rsplit('/').next().map(str::to_string);
            built.push((p.clone(), node));
        }
        let mut anc_node = (*anc).clone();
        if let Some(name) = child {
            anc_node.children.push(name);
        }
        Self::check_size(actor, &anc_node, limits)?;
        for (p, node) in built {
            j.saw(&p, None);
            j.modified.insert(p.clone());
            self.put(&p, Some(node));
        }
        j.modified.insert(anc_path.clone());
        self.put(&anc_path, Some(anc_node));
        Ok(())
    }

    /// WRITE: sets the value, creating missing parents.
    pub(crate) fn write(
        &mut self,
        actor: Actor,
        path: &str,
        value: &[u8],
        limits: &Limits,
        j: &mut Journal,
    ) -> XsResult<Change> {
        if limits.value_max.is_some_and(|max| value.len() > max) {
            return Err(ErrorKind::TooBig);
        }
        match self.lookup(actor, path, Need::Write, j) {
            Ok(node) => {
                let mut node = (**node).clone();
                node.value = value.to_vec();
                Self::check_size(actor, &node, limits)?;
                j.modified.insert(path.to_string());
                self.put(path, Some(node));
            }
            Err(ErrorKind::Noent) => self.create(actor, path, value.to_vec(), limits, j)?,
            Err(e) => return Err(e),
        }
        let perms = self.nodes.get(path).map(|n| n.perms.clone()).unwrap_or_default();
        Ok(self.change(path, &perms, None))
    }

    /// MKDIR: creates the node if missing (no change, so no event, otherwise).
    pub(crate) fn mkdir(
        &mut self,
        actor: Actor,
        path: &str,
        limits: &Limits,
        j: &mut Journal,
    ) -> XsResult<Option<Change>> {
        match self.lookup(actor, path, Need::Write, j) {
            Ok(_) => Ok(None),
            Err(ErrorKind::Noent) => {
                self.create(actor, path, Vec::new(), limits, j)?;
                let perms = self.nodes.get(path).map(|n| n.perms.clone()).unwrap_or_default();
                Ok(Some(self.change(path, &perms, None)))
            }
            Err(e) => Err(e),
        }
    }

    /// RM: removes a subtree. A missing node is fine if its parent exists.
    /// Changes come children first (exact), the removed root last.
    pub(crate) fn rm(&mut self, actor: Actor, path: &str, j: &mut Journal) -> XsResult<Vec<Change>> {
        match self.lookup(actor, path, Need::Write, j) {
            Ok(_) => {}
            Err(ErrorKind::Noent) => {
                let par = parent(path).unwrap_or("/");
                return match self.nodes.get(par) {
                    Some(n) => {
                        j.saw(par, Some(n));
                        Ok(Vec::new())
                    }
                    None => {
                        j.saw(par, None);
                        Err(ErrorKind::Noent)
                    }
                };
            }
            Err(e) => return Err(e),
        }
        if path == "/" {
            return Err(ErrorKind::Inval);
        }
        let mut changes = Vec::new();
        self.remove_subtree(path, &mut changes, j);
        if let Some(root) = changes.last_mut() {
            root.exact = false;
        }
        if let Some(par) = parent(path) {
            if let Some(pnode) = self.nodes.get(par) {
                j.saw(par, Some(pnode));
                let mut pnode = (**pnode).clone();
                let name = path.rsplit('/').next().unwrap_or_default();
                pnode.children.retain(|c| c != name);
                j.modified.insert(par.to_string());
                self.put(par, Some(pnode));
            }
        }
        Ok(changes)
    }

    fn remove_subtree(&mut self, path: &str, changes: &mut Vec<Change>, j: &mut Journal) {
        let Some(node) = self.nodes.get(path).cloned() else {
            return;
        };
        j.saw(path, Some(&node));
        for child in &node.children {
            let cpath = if path == "/" {
                format!("/{child}")
            } else {
                format!("{path}/{child}")
            };
            self.remove_subtree(&cpath, changes, j);
        }
        let mut change = self.change(path, &node.perms, None);
        change.exact = true;
        changes.push(change);
        j.modified.insert(path.to_string());
        self.put(path, None);
    }

    /// DIRECTORY: child names.
    pub(crate) fn children(&self, actor: Actor, path: &str, j: &mut Journal) -> XsResult<(Vec<String>, u64)> {
        let node = self.lookup(actor, path, Need::Read, j)?;
        Ok((node.children.clone(), node.gen))
    }

    /// SET_PERMS. Only the owner (or a privileged actor) may; only a privileged
    /// actor may change the owner (`EPERM`).
    pub(crate) fn set_perms(
        &mut self,
        actor: Actor,
        path: &str,
        perms: Vec<Perm>,
        j: &mut Journal,
    ) -> XsResult<Change> {
        let node = self.lookup(actor, path, Need::Write, j)?;
        if !rights(actor, &node.perms).owner {
            return Err(ErrorKind::Acces);
        }
        let old = node.perms.clone();
        if !actor.privileged && perms.first().map(|p| p.domid) != Some(node.owner()) {
            return Err(ErrorKind::Perm);
        }
        let mut node = (**node).clone();
        node.perms = perms;
        j.modified.insert(path.to_string());
        let change = self.change(path, &node.perms, Some(old));
        self.put(path, Some(node));
        Ok(change)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
