//! The QEMU guest agent protocol (QGA), as libvirt, nova's libvirt driver and
//! Proxmox speak it over a virtio-serial port: the `qga` communicator.
//!
//! It is a protocol of its own, not nova's, so it has its own request loop
//! (`serve`), but the same layers: `stream` finds requests in the byte
//! stream (pure), `request` checks them against the command table (pure),
//! `commands` plans and answers them, and whatever changes files goes through
//! the one [`Applier`]. `port` is the only part that knows the transport.
//!
//! There is no `guest-exec` and no `guest-file-*`: the host cannot run a
//! program or read or write an arbitrary file through this agent.

pub mod commands;
pub mod port;
pub mod request;
pub mod serve;
pub mod stream;

use crate::apply::Applier;
use crate::crypto::hash::Scheme;
use crate::functions::Function;
use crate::root::Root;
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

/// The version `guest-info` reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the host is reached (`[qga] method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// A virtio-serial port (a character device).
    VirtioSerial,
    /// A serial port, in raw mode.
    IsaSerial,
    /// A listening Unix socket, one client at a time.
    UnixListen,
    /// A listening vsock socket, one client at a time.
    VsockListen,
}

impl Method {
    /// Every method, by its configuration name.
    pub const ALL: [(&'static str, Method); 4] = [
        ("virtio-serial", Method::VirtioSerial),
        ("isa-serial", Method::IsaSerial),
        ("unix-listen", Method::UnixListen),
        ("vsock-listen", Method::VsockListen),
    ];

    /// The method called `name`.
    pub fn named(name: &str) -> Option<Method> {
        Method::ALL.iter().find(|(n, _)| *n == name).map(|(_, m)| *m)
    }

    /// Its configuration name.
    pub fn name(self) -> &'static str {
        Method::ALL.iter().find(|(_, m)| *m == self).map_or("", |(n, _)| n)
    }
}

/// The name of the virtio-serial port qemu-ga and its clients use.
pub const PORT_NAME: &str = "org.qemu.guest_agent.0";
/// Where udev links the port.
pub const VIRTIO_PATH: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";
/// The serial port of `isa-serial`.
pub const SERIAL_PATH: &str = "/dev/ttyS0";
/// The socket of `unix-listen` in the run-time directory.
pub const SOCKET_NAME: &str = "qga.sock";

/// The `[qga]` settings but the port, which is the transport's
/// ([`Transport::Qga`](crate::communicator::Transport::Qga)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QgaSettings {
    /// The commands that may run (`None`: all).
    pub allow: Option<Vec<String>>,
    /// The commands that may not run.
    pub block: Vec<String>,
    /// The freeze hook, if any.
    pub fsfreeze_hook: Option<PathBuf>,
}

/// An error reply: `{"error": {"class": ..., "desc": ...}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QgaError {
    /// `GenericError` or `CommandNotFound` (the classes qemu-ga uses).
    pub class: &'static str,
    /// What went wrong, for a person.
    pub desc: String,
}

impl QgaError {
    /// A `GenericError`: bad input, a failure, or "not supported".
    pub fn generic(desc: impl Into<String>) -> QgaError {
        QgaError {
            class: "GenericError",
            desc: desc.into(),
        }
    }

    /// qemu-ga's answer for what this system cannot do.
    pub fn unsupported() -> QgaError {
        QgaError::generic("this feature or command is not currently supported")
    }

    /// A command that does not exist.
    pub fn not_found(name: &str) -> QgaError {
        QgaError {
            class: "CommandNotFound",
            desc: format!("The command {name} has not been found"),
        }
    }

    /// A command that exists but may not run (configuration, or frozen).
    pub fn disabled(name: &str, frozen: bool) -> QgaError {
        let why = if frozen { ": the agent is in frozen state" } else { "" };
        QgaError {
            class: "CommandNotFound",
            desc: format!("Command {name} has been disabled{why}"),
        }
    }

    /// The JSON of the reply's `error` member.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "class": self.class, "desc": self.desc })
    }
}

impl fmt::Display for QgaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

impl std::error::Error for QgaError {}

/// The type of an argument, checked before a command runs (as qemu-ga's
/// generated code does, with its messages).
#[derive(Debug)]
pub enum Ty {
    /// A JSON integer that fits in an `i64`.
    Int,
    /// A string.
    Str,
    /// `true` or `false`.
    Bool,
    /// An array of the inner type.
    List(&'static Ty),
    /// An object with these members (and no others).
    Struct(&'static [Param]),
}

/// One argument of a command.
#[derive(Debug)]
pub struct Param {
    /// Its name in `arguments`.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// Whether it must be there.
    pub required: bool,
}

impl Param {
    /// An argument that must be there.
    pub const fn required(name: &'static str, ty: Ty) -> Param {
        Param {
            name,
            ty,
            required: true,
        }
    }

    /// An argument that may be left out.
    pub const fn optional(name: &'static str, ty: Ty) -> Param {
        Param {
            name,
            ty,
            required: false,
        }
    }
}

/// Checked arguments (every member is one of the command's [`Param`]s, of its type).
pub type Args = Map<String, Value>;

/// What a command sees: the system (read through `root`, changed through
/// `applier`, the one writer) and the agent's state.
pub struct Ctx<'a> {
    /// The managed system (`--root`); not `/` in tests. Kernel state (the
    /// clock, freezing, power) is changed only when it is `/`.
    pub root: &'a Root,
    /// Writes files as one change, cached, with rollback.
    pub applier: &'a Applier,
    /// The `[qga]` settings.
    pub settings: &'a QgaSettings,
    /// The crypt(3) scheme for new passwords (`[password] hash`).
    pub password_scheme: Scheme,
    /// Whether an empty password may be set (`[password] allow_empty`).
    pub password_allow_empty: bool,
    /// The run-time directory (`[daemon] run`): where state that outlives a
    /// restart but not a reboot is kept (the frozen marker).
    pub run_dir: &'a Path,
    /// Whether the filesystems are frozen now; the freeze commands keep it true.
    pub frozen: &'a mut bool,
}

/// A command's body: the checked arguments in, the `return` value out.
pub type Run = fn(&mut Ctx<'_>, &Args) -> Result<Value, QgaError>;

/// One command of the table.
pub struct CommandDef {
    /// Its name (`guest-…`).
    pub name: &'static str,
    /// Its arguments, in the order they are checked.
    pub params: &'static [Param],
    /// The function that enables it; `None`: always enabled.
    pub function: Option<Function>,
    /// Whether success is answered (false for `guest-shutdown`: the guest goes away).
    pub success_response: bool,
    /// Whether it may run while the filesystems are frozen.
    pub while_frozen: bool,
    /// Its body (the protocol commands answered by the request loop itself,
    /// `guest-sync` and the like, never reach it).
    pub run: Run,
}

impl fmt::Debug for CommandDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The command called `name`.
impl CommandDef {
    /// Whether the command only reads (the protocol's own commands, and the
    /// `get`/`status` ones): nothing on the system changes.
    pub fn reads_only(&self) -> bool {
        self.function.is_none() || self.name.contains("-get-") || self.name.ends_with("-status")
    }
}

pub fn command(name: &str) -> Option<&'static CommandDef> {
    commands::COMMANDS.iter().find(|c| c.name == name)
}

/// The string argument `name`, if given.
pub fn arg_str<'a>(args: &'a Args, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// The integer argument `name`, if given.
pub fn arg_int(args: &Args, name: &str) -> Option<i64> {
    args.get(name).and_then(Value::as_i64)
}

/// The boolean argument `name`, if given.
pub fn arg_bool(args: &Args, name: &str) -> Option<bool> {
    args.get(name).and_then(Value::as_bool)
}

/// The list-of-strings argument `name`, if given.
pub fn arg_strs<'a>(args: &'a Args, name: &str) -> Option<Vec<&'a str>> {
    args.get(name)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
}
