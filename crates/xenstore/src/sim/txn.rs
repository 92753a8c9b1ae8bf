//! Transactions: a private snapshot of the tree, the journal of what the
//! transaction touched, and the optimistic commit (C xenstored's generation
//! check: any node read or written by the transaction and changed outside since
//! makes the commit fail with `EAGAIN`). No I/O and no watches here: the commit
//! returns the changes whose events are due.

use super::store::{Change, Journal, Store};

/// An open transaction of one connection.
#[derive(Clone, Debug)]
pub(crate) struct Transaction {
    /// The snapshot the transaction reads and writes.
    pub(crate) store: Store,
    /// What it touched.
    pub(crate) journal: Journal,
    /// Events to fire if it commits, in order.
    pub(crate) changes: Vec<Change>,
    /// The connection's resume generation at start (device emulation: a
    /// transaction that straddles a resume cannot commit).
    pub(crate) generation: u64,
}

impl Transaction {
    /// Starts a transaction on a snapshot of `main`.
    pub(crate) fn start(main: &Store, generation: u64) -> Transaction {
        Transaction {
            store: main.clone(),
            journal: Journal::default(),
            changes: Vec::new(),
            generation,
        }
    }

    /// Whether a node the transaction touched changed in `main` since.
    pub(crate) fn conflicts(&self, main: &Store) -> bool {
        self.journal
            .accessed
            .iter()
            .any(|(path, gen)| main.get(path).map(|n| n.gen) != *gen)
    }

    /// Copies every node the transaction modified into `main` (the caller has
    /// checked [`conflicts`](Self::conflicts)) and returns the changes to fire,
    /// each path reported once.
    pub(crate) fn apply(self, main: &mut Store) -> Vec<Change> {
        for path in &self.journal.modified {
            let node = self.store.get(path).map(|n| (**n).clone());
            main.put(path, node);
        }
        let mut seen = std::collections::HashSet::new();
        self.changes
            .into_iter()
            .filter(|c| seen.insert((c.path.clone(), c.exact)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::store::{Actor, Limits};
    use crate::wire::ErrorKind;

    fn limits() -> Limits {
        Limits {
            node_size_max: 2048,
            value_max: None,
            nodes_per_domain: 1000,
            quota_error: ErrorKind::Nospc,
        }
    }

    #[test]
    fn commit_applies_writes_and_deletes() {
        let mut main = Store::new();
        let mut j = Journal::default();
        main.write(Actor::DOM0, "/a/b", b"1", &limits(), &mut j).unwrap();
        main.write(Actor::DOM0, "/a/c", b"2", &limits(), &mut j).unwrap();
        let mut tx = Transaction::start(&main, 0);
        let c = tx
            .store
            .write(Actor::DOM0, "/a/b", b"x", &limits(), &mut tx.journal)
            .unwrap();
        tx.changes.push(c);
        let cs = tx.store.rm(Actor::DOM0, "/a/c", &mut tx.journal).unwrap();
        tx.changes.extend(cs);
        assert_eq!(main.get("/a/b").unwrap().value, b"1");
        assert!(!tx.conflicts(&main));
        let changes = tx.apply(&mut main);
        assert_eq!(main.get("/a/b").unwrap().value, b"x");
        assert!(main.get("/a/c").is_none());
        assert_eq!(main.get("/a").unwrap().children, vec!["b".to_string()]);
        let paths: Vec<_> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/a/b", "/a/c"]);
    }

    #[test]
    fn outside_change_to_a_read_node_conflicts() {
        let mut main = Store::new();
        let mut j = Journal::default();
        main.write(Actor::DOM0, "/a", b"1", &limits(), &mut j).unwrap();
        let mut tx = Transaction::start(&main, 0);
        tx.store
            .lookup(Actor::DOM0, "/a", super::super::store::Need::Read, &mut tx.journal)
            .unwrap();
        main.write(Actor::DOM0, "/a", b"1", &limits(), &mut j).unwrap();
        assert!(tx.conflicts(&main));
    }

    #[test]
    fn outside_creation_of_a_node_seen_missing_conflicts() {
        let mut main = Store::new();
        let mut j = Journal::default();
        let mut tx = Transaction::start(&main, 0);
        let _ = tx
            .store
            .lookup(Actor::DOM0, "/new", super::super::store::Need::Read, &mut tx.journal);
        assert!(!tx.conflicts(&main));
        main.write(Actor::DOM0, "/new", b"", &limits(), &mut j).unwrap();
        assert!(tx.conflicts(&main));
    }
}
