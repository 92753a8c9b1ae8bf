//! `guest-ssh-*-authorized-keys`.

use crate::qga::{Args, Ctx, QgaError};
use serde_json::Value;

pub fn get(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn add(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn remove(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}
