//! The command table: every QEMU guest agent command this agent knows, its
//! arguments, the function that enables it, and its body. `guest-info`
//! lists exactly these; anything else is `CommandNotFound`.

mod clock;
mod disks;
#[cfg(test)]
mod fixture;
pub mod freeze;
mod info;
mod interfaces;
mod password;
mod power;
mod sshkeys;
mod vcpus;

use super::{Args, CommandDef, Ctx, Param, QgaError, Ty};
use crate::functions::Function;
use serde_json::{json, Value};

/// Every command, in the order `guest-info` lists them.
pub static COMMANDS: &[CommandDef] = &[
    CommandDef {
        name: "guest-sync",
        params: SYNC,
        function: None,
        success_response: true,
        while_frozen: true,
        run: sync,
    },
    CommandDef {
        name: "guest-sync-delimited",
        params: SYNC,
        function: None,
        success_response: true,
        while_frozen: true,
        run: sync,
    },
    CommandDef {
        name: "guest-ping",
        params: &[],
        function: None,
        success_response: true,
        while_frozen: true,
        run: ping,
    },
    CommandDef {
        name: "guest-info",
        params: &[],
        function: None,
        success_response: true,
        while_frozen: true,
        // The request loop answers it: it knows what is enabled.
        run: ping,
    },
    CommandDef {
        name: "guest-set-user-password",
        params: PASSWORD,
        function: Some(Function::Password),
        success_response: true,
        while_frozen: false,
        run: password::set_user_password,
    },
    CommandDef {
        name: "guest-ssh-get-authorized-keys",
        params: SSH_GET,
        function: Some(Function::File),
        success_response: true,
        while_frozen: false,
        run: sshkeys::get,
    },
    CommandDef {
        name: "guest-ssh-add-authorized-keys",
        params: SSH_ADD,
        function: Some(Function::File),
        success_response: true,
        while_frozen: false,
        run: sshkeys::add,
    },
    CommandDef {
        name: "guest-ssh-remove-authorized-keys",
        params: SSH_REMOVE,
        function: Some(Function::File),
        success_response: true,
        while_frozen: false,
        run: sshkeys::remove,
    },
    CommandDef {
        name: "guest-fsfreeze-status",
        params: &[],
        function: Some(Function::Filesystems),
        success_response: true,
        while_frozen: true,
        run: freeze::status,
    },
    CommandDef {
        name: "guest-fsfreeze-freeze",
        params: &[],
        function: Some(Function::Filesystems),
        success_response: true,
        while_frozen: false,
        run: freeze::freeze,
    },
    CommandDef {
        name: "guest-fsfreeze-freeze-list",
        params: FREEZE_LIST,
        function: Some(Function::Filesystems),
        success_response: true,
        while_frozen: false,
        run: freeze::freeze_list,
    },
    CommandDef {
        name: "guest-fsfreeze-thaw",
        params: &[],
        function: Some(Function::Filesystems),
        success_response: true,
        while_frozen: true,
        run: freeze::thaw,
    },
    CommandDef {
        name: "guest-fstrim",
        params: FSTRIM,
        function: Some(Function::Filesystems),
        success_response: true,
        while_frozen: false,
        run: freeze::fstrim,
    },
    CommandDef {
        name: "guest-get-fsinfo",
        params: &[],
        function: Some(Function::Filesystems),
        success_response: true,
        while_frozen: false,
        run: disks::fsinfo,
    },
    CommandDef {
        name: "guest-get-disks",
        params: &[],
        function: Some(Function::Filesystems),
        success_response: true,
        while_frozen: false,
        run: disks::disks,
    },
    CommandDef {
        name: "guest-shutdown",
        params: SHUTDOWN,
        function: Some(Function::Power),
        success_response: false,
        while_frozen: false,
        run: power::shutdown,
    },
    CommandDef {
        name: "guest-get-time",
        params: &[],
        function: Some(Function::Time),
        success_response: true,
        while_frozen: false,
        run: clock::get_time,
    },
    CommandDef {
        name: "guest-set-time",
        params: SET_TIME,
        function: Some(Function::Time),
        success_response: true,
        while_frozen: false,
        run: clock::set_time,
    },
    CommandDef {
        name: "guest-get-timezone",
        params: &[],
        function: Some(Function::Time),
        success_response: true,
        while_frozen: false,
        run: info::timezone,
    },
    CommandDef {
        name: "guest-get-vcpus",
        params: &[],
        function: Some(Function::Vcpus),
        success_response: true,
        while_frozen: false,
        run: vcpus::get_vcpus,
    },
    CommandDef {
        name: "guest-set-vcpus",
        params: SET_VCPUS,
        function: Some(Function::Vcpus),
        success_response: true,
        while_frozen: false,
        run: vcpus::set_vcpus,
    },
    CommandDef {
        name: "guest-get-osinfo",
        params: &[],
        function: Some(Function::Guestinfo),
        success_response: true,
        while_frozen: false,
        run: info::osinfo,
    },
    CommandDef {
        name: "guest-get-users",
        params: &[],
        function: Some(Function::Guestinfo),
        success_response: true,
        while_frozen: false,
        run: info::users,
    },
    CommandDef {
        name: "guest-get-host-name",
        params: &[],
        function: Some(Function::Hostname),
        success_response: true,
        while_frozen: false,
        run: info::host_name,
    },
    CommandDef {
        name: "guest-network-get-interfaces",
        params: &[],
        function: Some(Function::Network),
        success_response: true,
        while_frozen: false,
        run: interfaces::network_get_interfaces,
    },
];

const SYNC: &[Param] = &[Param::required("id", Ty::Int)];

/// `guest-sync`, `guest-sync-delimited`: the id back (the 0xFF before the
/// delimited one's reply is the request loop's).
fn sync(_: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    Ok(args.get("id").cloned().unwrap_or(Value::Null))
}

/// `guest-ping`: an empty object.
fn ping(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Ok(json!({}))
}

const PASSWORD: &[Param] = &[
    Param::required("username", Ty::Str),
    Param::required("password", Ty::Str),
    Param::required("crypted", Ty::Bool),
];

const SSH_GET: &[Param] = &[Param::required("username", Ty::Str)];

const SSH_ADD: &[Param] = &[
    Param::required("username", Ty::Str),
    Param::required("keys", Ty::List(&Ty::Str)),
    Param::optional("reset", Ty::Bool),
];

const SSH_REMOVE: &[Param] = &[
    Param::required("username", Ty::Str),
    Param::required("keys", Ty::List(&Ty::Str)),
];

const FREEZE_LIST: &[Param] = &[Param::optional("mountpoints", Ty::List(&Ty::Str))];

const FSTRIM: &[Param] = &[Param::optional("minimum", Ty::Int)];

const SHUTDOWN: &[Param] = &[Param::optional("mode", Ty::Str)];

const SET_TIME: &[Param] = &[Param::optional("time", Ty::Int)];

const VCPU: &[Param] = &[
    Param::required("logical-id", Ty::Int),
    Param::required("online", Ty::Bool),
    Param::optional("can-offline", Ty::Bool),
];

const SET_VCPUS: &[Param] = &[Param::required("vcpus", Ty::List(&Ty::Struct(VCPU)))];

#[cfg(test)]
mod tests {
    use super::COMMANDS;

    #[test]
    fn exactly_the_commands_that_change_nothing_read_only() {
        let changing: Vec<&str> = COMMANDS.iter().filter(|c| !c.reads_only()).map(|c| c.name).collect();
        assert_eq!(
            changing,
            [
                "guest-set-user-password",
                "guest-ssh-add-authorized-keys",
                "guest-ssh-remove-authorized-keys",
                "guest-fsfreeze-freeze",
                "guest-fsfreeze-freeze-list",
                "guest-fsfreeze-thaw",
                "guest-fstrim",
                "guest-shutdown",
                "guest-set-time",
                "guest-set-vcpus",
            ]
        );
    }
}
