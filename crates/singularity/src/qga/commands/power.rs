//! `guest-shutdown`.

use crate::qga::{Args, Ctx, QgaError};
use serde_json::Value;

pub fn shutdown(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}
