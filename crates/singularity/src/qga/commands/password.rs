//! `guest-set-user-password`.

use crate::qga::{Args, Ctx, QgaError};
use serde_json::Value;

pub fn set_user_password(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
    Err(QgaError::unsupported())
}
