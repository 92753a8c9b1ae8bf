//! `guest-get-fsinfo` and `guest-get-disks`.

use crate::qga::{Args, Ctx, QgaError};
use serde_json::Value;

pub fn fsinfo(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn disks(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}
