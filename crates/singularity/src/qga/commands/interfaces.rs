//! `guest-network-get-interfaces`.

use crate::qga::{Args, Ctx, QgaError};
use serde_json::Value;

pub fn network_get_interfaces(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}
