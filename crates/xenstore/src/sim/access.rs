//! Who may do what: the actor behind a request, C xenstored's
//! `perm_for_conn` rule, and the limits that apply to unprivileged writers. No
//! tree and no I/O here.

use crate::wire::{ErrorKind, Perm};

/// Who performs an operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Actor {
    pub(crate) domid: u32,
    pub(crate) privileged: bool,
}

impl Actor {
    /// Dom0, or a direct call through the simulator API.
    pub(crate) const DOM0: Actor = Actor {
        domid: 0,
        privileged: true,
    };
}

/// What an actor may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rights {
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) owner: bool,
}

/// C's `perm_for_conn`: privileged and owner get everything, then the first
/// entry naming the domain, then the owner entry's default access.
pub(crate) fn rights(actor: Actor, perms: &[Perm]) -> Rights {
    let Some(first) = perms.first() else {
        return Rights {
            read: actor.privileged,
            write: actor.privileged,
            owner: actor.privileged,
        };
    };
    if actor.privileged || first.domid == actor.domid {
        return Rights {
            read: true,
            write: true,
            owner: true,
        };
    }
    let access = perms[1..]
        .iter()
        .find(|p| p.domid == actor.domid)
        .map_or(first.access, |p| p.access);
    Rights {
        read: access.can_read(),
        write: access.can_write(),
        owner: false,
    }
}

/// Which right an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    Read,
    Write,
}

impl Need {
    pub(crate) fn granted(self, r: Rights) -> bool {
        match self {
            Need::Read => r.read,
            Need::Write => r.write,
        }
    }
}

/// Limits that apply to unprivileged writers (and, for `value_max`, to all).
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) node_size_max: usize,
    pub(crate) value_max: Option<usize>,
    pub(crate) nodes_per_domain: usize,
    pub(crate) quota_error: ErrorKind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Access;

    #[test]
    fn first_matching_entry_wins_over_the_default() {
        let guest = Actor {
            domid: 5,
            privileged: false,
        };
        let perms = [
            Perm::new(0, Access::Read),
            Perm::new(5, Access::None),
            Perm::new(5, Access::Both),
        ];
        assert!(!rights(guest, &perms).read);
        assert!(Need::Read.granted(rights(Actor::DOM0, &perms)));
        assert!(!rights(guest, &[]).read, "no entries: privileged only");
    }
}
