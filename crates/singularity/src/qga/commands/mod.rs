//! The command table: every QEMU guest agent command this agent knows, its
//! arguments, the function that enables it, and its body. `guest-info`
//! lists exactly these; anything else is `CommandNotFound`.

use super::{Args, CommandDef, Ctx, Param, QgaError, Ty};
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
];

const SYNC: &[Param] = &[Param {
    name: "id",
    ty: Ty::Int,
    required: true,
}];

/// `guest-sync`, `guest-sync-delimited`: the id back (the 0xFF before the
/// delimited one's reply is the request loop's).
fn sync(_: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    Ok(args.get("id").cloned().unwrap_or(Value::Null))
}

/// `guest-ping`: an empty object.
fn ping(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Ok(json!({}))
}
