//! An account's password (root's for nova, any user's for the QEMU guest
//! agent): check and hash the plaintext and plan the `/etc/shadow` update. The plaintext is only borrowed here and never
//! formatted.

use crate::crypto::hash::{hash_password, Scheme};
use crate::functions::Function;
use crate::plan::{Plan, Step};
use crate::secret::Secret;
use std::{fmt, io};

/// The account nova's `password` command sets.
pub const USER: &str = "root";

/// `[password]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordSettings {
    /// Hash scheme for `/etc/shadow`.
    pub scheme: Scheme,
    /// Whether an empty password may be set.
    pub allow_empty: bool,
}

impl Default for PasswordSettings {
    fn default() -> PasswordSettings {
        PasswordSettings {
            scheme: Scheme::Sha512,
            allow_empty: false,
        }
    }
}

/// Why a password is not set. Messages never include the password.
#[derive(Debug)]
pub enum PasswordError {
    /// It holds a NUL byte: nobody could type it, and crypt(3) would cut it there.
    Nul,
    /// It is empty, and `[password] allow_empty` is off.
    Empty,
    /// Hashing failed (no random salt).
    Hash(io::Error),
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::Nul => f.write_str("Password refused: it contains a NUL byte, which cannot be typed"),
            PasswordError::Empty => {
                f.write_str("Password refused: it is empty (allowed only with allow_empty = true in [password])")
            }
            PasswordError::Hash(e) => write!(f, "cannot hash password: {e}"),
        }
    }
}

impl std::error::Error for PasswordError {}

/// Plans setting `user`'s password to `plain`, hashed with `scheme`. A
/// password with a NUL byte is refused, and so is an empty one unless
/// `allow_empty`.
pub fn plan(user: &str, plain: &Secret<String>, scheme: Scheme, allow_empty: bool) -> Result<Plan, PasswordError> {
    if plain.expose().contains('\0') {
        return Err(PasswordError::Nul);
    }
    if plain.expose().is_empty() && !allow_empty {
        return Err(PasswordError::Empty);
    }
    let hash = hash_password(plain.expose(), scheme).map_err(PasswordError::Hash)?;
    Ok(Plan {
        function: Function::Password.into(),
        steps: vec![Step::SetPassword {
            user: user.to_string(),
            hash: Secret::new(hash),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(pw: &str, allow_empty: bool) -> Option<String> {
        plan(USER, &Secret::new(pw.to_string()), Scheme::Sha512, allow_empty)
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn untypable_passwords_are_refused_without_showing_them() {
        let nul = refused("zq\0xj", true).expect("refused");
        assert!(nul.contains("NUL") && !nul.contains("zq"), "{nul}");
        assert!(refused("", false).expect("refused").contains("empty"));
        assert_eq!(refused("", true), None);
        assert_eq!(refused("fine", false), None);
    }

    #[test]
    fn the_plan_names_the_user_and_holds_a_hash_of_the_scheme() {
        let plan = plan("alice", &Secret::new("pw".into()), Scheme::Sha256, false).unwrap();
        match &plan.steps[..] {
            [Step::SetPassword { user, hash }] => {
                assert_eq!(user, "alice");
                assert!(hash.expose().starts_with("$5$"));
            }
            other => panic!("{other:?}"),
        }
    }
}
