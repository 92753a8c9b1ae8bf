//! crypt(3) password hashes for `/etc/shadow`: SHA-512 (`$6$`) or SHA-256
//! (`$5$`) crypt, with a fresh 16-character salt and the default 5000 rounds.

use crate::crypto::dh::fill_random;
use sha_crypt::{sha256_crypt_b64, sha512_crypt_b64, Sha256Params, Sha512Params};
use std::fmt;
use std::io;
use std::str::FromStr;
use zeroize::Zeroize;

/// Salt length: the maximum SHA-crypt uses.
const SALT_LEN: usize = 16;

/// The crypt(3) salt alphabet, 64 characters.
const CRYPT_ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The crypt(3) scheme of the hash written to `/etc/shadow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// SHA-512 crypt, `$6$`: every current Linux distribution's default.
    #[default]
    Sha512,
    /// SHA-256 crypt, `$5$`.
    Sha256,
}

impl Scheme {
    fn prefix(self) -> &'static str {
        match self {
            Scheme::Sha512 => "$6$",
            Scheme::Sha256 => "$5$",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Sha512 => "sha512",
            Scheme::Sha256 => "sha256",
        })
    }
}

/// A scheme name other than `sha512` or `sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseSchemeError {
    /// Not a known scheme name.
    Unknown,
}

impl fmt::Display for ParseSchemeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown password hash scheme (expected sha512 or sha256)")
    }
}

impl std::error::Error for ParseSchemeError {}

impl FromStr for Scheme {
    type Err = ParseSchemeError;

    /// `sha512` or `sha256`, ASCII case-insensitive.
    fn from_str(s: &str) -> Result<Scheme, ParseSchemeError> {
        if s.eq_ignore_ascii_case("sha512") {
            Ok(Scheme::Sha512)
        } else if s.eq_ignore_ascii_case("sha256") {
            Ok(Scheme::Sha256)
        } else {
            Err(ParseSchemeError::Unknown)
        }
    }
}

/// A random salt of 16 characters from `[./0-9A-Za-z]`: one OS random byte
/// per character, its low 6 bits picking from the 64-character alphabet
/// (uniform, 96 bits in all).
fn random_salt() -> io::Result<String> {
    let mut bytes = [0u8; SALT_LEN];
    fill_random(&mut bytes)?;
    let salt = bytes
        .iter()
        .map(|&b| char::from(CRYPT_ALPHABET[usize::from(b & 63)]))
        .collect();
    bytes.zeroize();
    Ok(salt)
}

/// `$<id>$<salt>$<hash>` for a given salt (at most 16 crypt characters).
fn hash_with_salt(plain: &str, scheme: Scheme, salt: &str) -> io::Result<String> {
    let encoded = match scheme {
        Scheme::Sha512 => sha512_crypt_b64(plain.as_bytes(), salt.as_bytes(), &Sha512Params::default()),
        Scheme::Sha256 => sha256_crypt_b64(plain.as_bytes(), salt.as_bytes(), &Sha256Params::default()),
    }
    .map_err(|_| io::Error::other("password hashing failed"))?;
    Ok(format!("{}{salt}${encoded}", scheme.prefix()))
}

/// Hashes `plain` for `/etc/shadow`: `$6$<salt>$<86 chars>` (SHA-512) or
/// `$5$<salt>$<43 chars>` (SHA-256), with a 16-character salt from the OS
/// random source and the default 5000 rounds, so there is no `rounds=` part.
/// The result verifies with the system's crypt(3) (glibc / libxcrypt).
///
/// The hashing crate's internal buffers are not wiped; the caller should
/// wipe `plain`.
///
/// # Errors
/// If the OS random source fails.
pub fn hash_password(plain: &str, scheme: Scheme) -> io::Result<String> {
    let salt = random_salt()?;
    hash_with_salt(plain, scheme, &salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_from_the_sha_crypt_spec() {
        // Drepper's test vectors, confirmed with glibc crypt(3)
        assert_eq!(
            hash_with_salt("Hello world!", Scheme::Sha512, "saltstring").unwrap(),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
        assert_eq!(
            hash_with_salt("Hello world!", Scheme::Sha256, "saltstring").unwrap(),
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        );
        assert_eq!(
            hash_with_salt("pässwörd", Scheme::Sha512, "./09AZaz./09AZaz").unwrap(),
            "$6$./09AZaz./09AZaz$3weMyhNobKHGTopw4v8hA3AoB3k6N1VyD1wqRyReraIAHY5WyMCM1TiaUKDRZql57/qEsakUFmas2MFIHYkNq."
        );
    }

    #[test]
    fn hash_shape_and_check() {
        for (scheme, prefix, len) in [(Scheme::Sha512, "$6$", 86), (Scheme::Sha256, "$5$", 43)] {
            let h = hash_password("Passw0rd!", scheme).unwrap();
            let rest = h.strip_prefix(prefix).unwrap();
            let (salt, encoded) = rest.split_once('$').unwrap();
            assert_eq!(salt.len(), SALT_LEN, "{h}");
            assert!(salt.bytes().all(|b| CRYPT_ALPHABET.contains(&b)), "{h}");
            assert_eq!(encoded.len(), len, "{h}");
            assert!(!h.contains("rounds="));
            assert!(!h.contains(':') && !h.contains('\n'));
            let check = match scheme {
                Scheme::Sha512 => sha_crypt::sha512_check("Passw0rd!", &h).is_ok(),
                Scheme::Sha256 => sha_crypt::sha256_check("Passw0rd!", &h).is_ok(),
            };
            assert!(check, "{h}");
            assert_ne!(h, hash_password("Passw0rd!", scheme).unwrap(), "salt reused");
        }
    }

    #[test]
    fn salts_use_the_whole_alphabet() {
        let mut seen = [false; 64];
        for _ in 0..64 {
            for b in random_salt().unwrap().bytes() {
                let i = CRYPT_ALPHABET.iter().position(|&c| c == b).unwrap();
                seen[i] = true;
            }
        }
        // 1024 uniform draws miss a given character with probability ~1e-7
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn scheme_names() {
        assert_eq!("sha512".parse(), Ok(Scheme::Sha512));
        assert_eq!("SHA256".parse(), Ok(Scheme::Sha256));
        assert_eq!("md5".parse::<Scheme>(), Err(ParseSchemeError::Unknown));
        assert_eq!("".parse::<Scheme>(), Err(ParseSchemeError::Unknown));
        assert_eq!(" sha512".parse::<Scheme>(), Err(ParseSchemeError::Unknown));
        for s in [Scheme::Sha512, Scheme::Sha256] {
            assert_eq!(s.to_string().parse(), Ok(s));
        }
        assert_eq!(Scheme::default(), Scheme::Sha512);
    }
}
