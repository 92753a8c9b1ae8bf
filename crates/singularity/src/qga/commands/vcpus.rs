//! `guest-get-vcpus` and `guest-set-vcpus`.

use crate::qga::{Args, Ctx, QgaError};
use serde_json::Value;

pub fn get_vcpus(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn set_vcpus(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}
