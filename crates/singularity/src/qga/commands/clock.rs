//! `guest-get-time` and `guest-set-time`.

use crate::qga::{Args, Ctx, QgaError};
use serde_json::Value;

pub fn get_time(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn set_time(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}
