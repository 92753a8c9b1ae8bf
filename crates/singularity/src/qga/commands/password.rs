//! `guest-set-user-password`: any account's password, as nova's
//! `set_admin_password` sets it through libvirt (`crypted` false, the
//! plaintext in base64), or a crypt(3) hash stored as given (`crypted`
//! true). The input is checked in qemu-ga's order and with its messages;
//! the change is the same `/etc/shadow` update as nova's `password`
//! command (the applier's shadow writer, under `/etc/.pwd.lock`, with its
//! backup and rollback). The password never reaches a message or a log.

use super::sshkeys::account;
use crate::configurators::password;
use crate::functions::Function;
use crate::plan::{Plan, Step};
use crate::qga::{arg_bool, arg_str, Args, Ctx, QgaError};
use crate::secret::Secret;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// qemu-ga's base64: the standard alphabet, `=` and line breaks, padding
/// optional.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The bytes of the `password` argument.
fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, QgaError> {
    let invalid = || QgaError::generic("Base64 data contains invalid characters");
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n');
    if !text.bytes().all(allowed) {
        return Err(invalid());
    }
    let joined: Zeroizing<Vec<u8>> = Zeroizing::new(text.bytes().filter(|b| *b != b'\n').collect());
    LENIENT.decode(&joined[..]).map(Zeroizing::new).map_err(|_| invalid())
}

/// Whether `hash` can be stored as a crypt(3) hash: not empty, no field
/// separator, no blank or control character.
fn plausible_hash(hash: &str) -> bool {
    !hash.is_empty()
        && !hash
            .bytes()
            .any(|b| b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// `guest-set-user-password`: `{}` once the account's shadow entry holds
/// the new hash.
pub fn set_user_password(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    let user = arg_str(args, "username").unwrap_or_default();
    let raw = decode(arg_str(args, "password").unwrap_or_default())?;
    if raw.contains(&b'\n') {
        return Err(QgaError::generic("forbidden characters in raw password"));
    }
    if user.contains(['\n', ':']) {
        return Err(QgaError::generic("forbidden characters in username"));
    }
    let text =
        Secret::new(String::from_utf8(raw.to_vec()).map_err(|_| QgaError::generic("the password is not UTF-8 text"))?);
    account(ctx.root, user)?;
    let plan = if arg_bool(args, "crypted").unwrap_or(false) {
        if !plausible_hash(text.expose()) {
            return Err(QgaError::generic(
                "the crypted password is not a crypt(3) hash: it is empty or holds ':', a blank or a control character",
            ));
        }
        Plan {
            function: Function::Password.into(),
            steps: vec![Step::SetPassword {
                user: user.to_string(),
                hash: Secret::new(text.expose().clone()),
            }],
        }
    } else {
        password::plan(user, &text, ctx.password_scheme, ctx.password_allow_empty)
            .map_err(|e| QgaError::generic(e.to_string()))?
    };
    ctx.applier.apply(&plan).map_err(|e| QgaError::generic(e.to_string()))?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{args, System};
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn set(system: &mut System, user: &str, password: &str, crypted: bool) -> Result<Value, QgaError> {
        let a = args(json!({"username": user, "password": password, "crypted": crypted}));
        set_user_password(&mut system.ctx(), &a)
    }

    fn shadow_hash(system: &System, user: &str) -> String {
        let shadow = system.read("/etc/shadow");
        let line = shadow.lines().find(|l| l.starts_with(&format!("{user}:"))).unwrap();
        line.split(':').nth(1).unwrap().to_string()
    }

    #[test]
    fn a_plaintext_is_hashed_with_the_configured_scheme() {
        let mut system = System::new();
        assert_eq!(
            set(&mut system, "alice", &STANDARD.encode("s3cret pw"), false),
            Ok(json!({}))
        );
        let hash = shadow_hash(&system, "alice");
        assert!(hash.starts_with("$6$"), "{hash}");
        assert!(
            sha_crypt::sha512_check("s3cret pw", &hash).is_ok(),
            "the hash is of the decoded password"
        );
        assert_eq!(shadow_hash(&system, "root"), "*", "others untouched");
    }

    #[test]
    fn a_crypted_hash_is_stored_as_given() {
        let mut system = System::new();
        let hash = "$6$abcdefgh$0123456789";
        assert_eq!(set(&mut system, "root", &STANDARD.encode(hash), true), Ok(json!({})));
        assert_eq!(shadow_hash(&system, "root"), hash);
        for bad in ["", "$6$a:b", "$6$a b", "$6$a\tb"] {
            let err = set(&mut system, "root", &STANDARD.encode(bad), true).unwrap_err();
            assert!(err.desc.contains("not a crypt(3) hash"), "{bad:?}: {}", err.desc);
        }
        assert_eq!(shadow_hash(&system, "root"), hash);
    }

    #[test]
    fn qemu_gas_checks_in_qemu_gas_order() {
        let mut system = System::new();
        let cases = [
            ("alice", "!!!", "Base64 data contains invalid characters"),
            ("alice", "Zm9v YmFy", "Base64 data contains invalid characters"),
            ("a:b", "Zm9vCmJhcg==", "forbidden characters in raw password"),
            ("a:b", "Zm9v", "forbidden characters in username"),
            ("a\nb", "Zm9v", "forbidden characters in username"),
            ("nobody", "Zm9v", "failed to lookup user 'nobody': no such user"),
            ("", "Zm9v", "failed to lookup user '': no such user"),
        ];
        for (user, password, want) in cases {
            let err = set(&mut system, user, password, false).unwrap_err();
            assert_eq!(
                (err.class, err.desc.as_str()),
                ("GenericError", want),
                "{user:?} {password:?}"
            );
        }
        assert_eq!(shadow_hash(&system, "alice"), "!", "nothing changed");
    }

    #[test]
    fn base64_as_lenient_as_qemu_gas() {
        assert_eq!(&decode("Zm9v\n").unwrap()[..], b"foo");
        assert_eq!(&decode("Zm9vYg").unwrap()[..], b"foob");
        assert_eq!(&decode("").unwrap()[..], b"");
        assert!(decode("Zm9v\r\n").is_err());
    }

    #[test]
    fn empty_and_nul_passwords_follow_the_password_settings() {
        let mut system = System::new();
        let err = set(&mut system, "alice", "", false).unwrap_err();
        assert!(err.desc.contains("empty"), "{}", err.desc);
        let err = set(&mut system, "alice", &STANDARD.encode("a\0b"), false).unwrap_err();
        assert!(err.desc.contains("NUL") && !err.desc.contains("a\0b"), "{}", err.desc);
        assert_eq!(shadow_hash(&system, "alice"), "!");
    }

    #[test]
    fn a_user_without_a_shadow_entry_changes_nothing() {
        let mut system = System::new();
        system.write(
            "/etc/passwd",
            "root:x:0:0::/root:/bin/sh\nbob:x:5:5::/home/bob:/bin/sh\n",
        );
        let before = system.read("/etc/shadow");
        let err = set(&mut system, "bob", "Zm9v", false).unwrap_err();
        assert!(err.desc.contains("no such user in the shadow file"), "{}", err.desc);
        assert_eq!(system.read("/etc/shadow"), before);
    }
}
