//! Root's password: hash the decrypted plaintext and plan the `/etc/shadow`
//! update. The plaintext is only borrowed here and never formatted.

use crate::crypto::hash::{hash_password, Scheme};
use crate::functions::Function;
use crate::plan::{Plan, Step};
use crate::secret::Secret;
use std::io;

/// The account nova's `password` command sets.
pub const USER: &str = "root";

/// Plans setting root's password to `plain`, hashed with `scheme`.
pub fn plan(plain: &Secret<String>, scheme: Scheme) -> io::Result<Plan> {
    let hash = hash_password(plain.expose(), scheme)?;
    Ok(Plan {
        function: Function::Password.into(),
        steps: vec![Step::SetPassword {
            user: USER.to_string(),
            hash: Secret::new(hash),
        }],
    })
}
