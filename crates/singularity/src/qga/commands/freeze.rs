//! `guest-fsfreeze-*` and `guest-fstrim`.

use crate::qga::{Args, Ctx, QgaError};
use serde_json::Value;

pub fn status(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn freeze(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn freeze_list(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn thaw(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

pub fn fstrim(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}

/// Whether the filesystems were left frozen by an earlier run of the agent
/// (its marker in the run-time directory): the request loop starts frozen then.
pub fn restore(_run_dir: &std::path::Path) -> bool {
    false
}
