//! The `password` payload: AES-128-CBC keyed by OpenSSL's `EVP_BytesToKey`
//! (one round, no salt) from the decimal shared secret, as produced on the
//! host by `openssl aes-128-cbc -A -a -pass pass:<shared> -nosalt`.
//!
//! That command has no `-md`, so the digest is the host OpenSSL's default:
//! MD5 before 1.1.0, SHA-256 from 1.1.0 on. [`decrypt_password`] tries MD5
//! first, then SHA-256, and accepts the first plaintext that has full PKCS#7
//! padding, ends in `\n` and is UTF-8. A wrong key passes all three checks
//! with a probability of roughly 2^-16 per digest.

use crate::crypto::dh::SharedSecret;
use crate::secret::Secret;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use md5::Md5;
use sha2::Sha256;
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

const BLOCK: usize = 16;

/// Standard alphabet with canonical `=` padding, as `openssl -a` writes it
/// and as the old agents' Python `b64decode` required. Stray bits in the
/// last character are refused.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// The `EVP_BytesToKey` digest that produced the key, i.e. the host
/// OpenSSL's default `-md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    /// key = MD5(s), IV = MD5(key ‖ s): OpenSSL before 1.1.0.
    Md5,
    /// key ‖ IV = SHA-256(s): OpenSSL 1.1.0 and later.
    Sha256,
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
        })
    }
}

/// Why a `password` payload was refused. The messages are the old agents'
/// reply texts, lower-cased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherError {
    /// Not base64.
    Base64,
    /// Wrong length, or neither digest gives a valid plaintext (wrong shared
    /// secret, corrupted data).
    Invalid,
}

impl fmt::Display for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CipherError::Base64 => "couldn't decode base64 data",
            CipherError::Invalid => "invalid password data received",
        })
    }
}

impl std::error::Error for CipherError {}

/// An AES-128 key and IV, wiped on drop.
struct KeyIv {
    key: [u8; BLOCK],
    iv: [u8; BLOCK],
}

impl Drop for KeyIv {
    fn drop(&mut self) {
        self.key.zeroize();
        self.iv.zeroize();
    }
}

/// `EVP_BytesToKey(aes-128-cbc, digest, salt = none, count = 1)` of `secret`.
fn derive(secret: &[u8], digest: Digest) -> KeyIv {
    use sha2::Digest as _;
    let mut out = KeyIv {
        key: [0; BLOCK],
        iv: [0; BLOCK],
    };
    match digest {
        Digest::Md5 => {
            let mut d1 = Md5::digest(secret);
            out.key.copy_from_slice(&d1);
            let mut d2 = Md5::new().chain_update(d1).chain_update(secret).finalize();
            out.iv.copy_from_slice(&d2);
            d1.zeroize();
            d2.zeroize();
        }
        Digest::Sha256 => {
            let mut d = Sha256::digest(secret);
            out.key.copy_from_slice(&d[..BLOCK]);
            out.iv.copy_from_slice(&d[BLOCK..]);
            d.zeroize();
        }
    }
    out
}

/// The length of `data` without its PKCS#7 padding, if the padding is
/// complete: a last byte n in 1..=16, no longer than the data, and the last n
/// bytes all equal to n.
fn unpadded_len(data: &[u8]) -> Option<usize> {
    let n = usize::from(*data.last()?);
    if n == 0 || n > BLOCK || n > data.len() {
        return None;
    }
    let body = data.len() - n;
    data[body..].iter().all(|&b| usize::from(b) == n).then_some(body)
}

/// Decrypts `ciphertext` (a non-empty multiple of 16 bytes) with one digest's
/// key and returns the password if the plaintext is acceptable.
fn try_digest(secret: &[u8], ciphertext: &[u8], digest: Digest) -> Option<Secret<String>> {
    let keys = derive(secret, digest);
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let decryptor = cbc::Decryptor::<aes::Aes128>::new(&keys.key.into(), &keys.iv.into());
    let len = decryptor.decrypt_padded_mut::<NoPadding>(&mut buf).ok()?.len();
    let body = unpadded_len(&buf[..len])?;
    // exactly one '\n', the one nova appends; a '\r' before it is kept
    let text_len = body.checked_sub(1)?;
    if buf[text_len] != b'\n' || std::str::from_utf8(&buf[..text_len]).is_err() {
        return None;
    }
    buf.truncate(text_len);
    // take the bytes out of the Zeroizing wrapper; Secret wipes the whole
    // allocation (including the truncated tail) on drop
    let bytes = std::mem::take(&mut *buf);
    match String::from_utf8(bytes) {
        Ok(text) => Some(Secret::new(text)),
        // checked above; wipe anyway rather than panic
        Err(e) => {
            e.into_bytes().zeroize();
            None
        }
    }
}

/// The host side: encrypts `plaintext` exactly as
/// `openssl aes-128-cbc -A -a -nosalt -pass pass:<shared> -md <digest>` does
/// (PKCS#7 padding, one line of standard base64). nova appends the `\n`
/// itself; so must the caller.
pub fn encrypt_password(secret: &SharedSecret, plaintext: &str, digest: Digest) -> String {
    use aes::cipher::BlockEncryptMut;
    let keys = derive(secret.as_decimal().as_bytes(), digest);
    let pad = BLOCK - plaintext.len() % BLOCK;
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + pad));
    buf.extend_from_slice(plaintext.as_bytes());
    buf.extend(std::iter::repeat_n(pad as u8, pad));
    let encryptor = cbc::Encryptor::<aes::Aes128>::new(&keys.key.into(), &keys.iv.into());
    let len = buf.len();
    match encryptor.encrypt_padded_mut::<NoPadding>(&mut buf, len) {
        Ok(ct) => BASE64.encode(ct),
        // The buffer is a whole number of blocks by construction.
        Err(_) => String::new(),
    }
}

/// Decrypts the `password` request's value with the shared secret of the
/// preceding `keyinit`, returning the password (its trailing `\n` removed)
/// and the digest that worked.
///
/// Accepts standard base64 with canonical `=` padding, surrounded by
/// optional ASCII whitespace (e.g. a trailing `\n`); the decoded data must be a
/// non-empty multiple of 16 bytes. Tries MD5, then SHA-256 (see the module
/// docs). Exactly one trailing `\n` is removed: a password ending in `\r`,
/// or in a further `\n`, keeps it. Never panics; the plaintext buffers are
/// wiped.
///
/// # Errors
/// [`CipherError::Base64`] if the value is not base64,
/// [`CipherError::Invalid`] for a bad length or if neither digest yields an
/// acceptable plaintext.
pub fn decrypt_password(secret: &SharedSecret, b64: &str) -> Result<(Secret<String>, Digest), CipherError> {
    let ciphertext = Zeroizing::new(BASE64.decode(b64.trim_ascii()).map_err(|_| CipherError::Base64)?);
    decrypt_bytes(secret.as_decimal().as_bytes(), &ciphertext)
}

fn decrypt_bytes(secret: &[u8], ciphertext: &[u8]) -> Result<(Secret<String>, Digest), CipherError> {
    if ciphertext.is_empty() || ciphertext.len() % BLOCK != 0 {
        return Err(CipherError::Invalid);
    }
    [Digest::Md5, Digest::Sha256]
        .into_iter()
        .find_map(|d| try_digest(secret, ciphertext, d).map(|p| (p, d)))
        .ok_or(CipherError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::dh::{KeyPair, PeerKey};

    const SHARED: &[u8] = b"42212498014643735436438456950707";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02X}")).collect()
    }

    fn shared_3_6() -> SharedSecret {
        KeyPair::from_private(0x00112233445566778899aabbccddeeff)
            .shared_secret(PeerKey::parse("128492706489454800633959484585958").unwrap())
    }

    #[test]
    fn derivations_match_section_3_6() {
        let md5 = derive(SHARED, Digest::Md5);
        assert_eq!(hex(&md5.key), "84D3A6E9E224DA5710DAB5B26A0F91E8");
        assert_eq!(hex(&md5.iv), "D6085EACFAE73900F1B100805E6EB9AC");
        let sha = derive(SHARED, Digest::Sha256);
        assert_eq!(hex(&sha.key), "70F654B5ABBB2F2DAD628EEB85921E23");
        assert_eq!(hex(&sha.iv), "F09F94133FB72D0D7F0D1075F45EBA93");
    }

    #[test]
    fn decrypts_section_3_6_ciphertexts() {
        let s = shared_3_6();
        assert_eq!(s.as_decimal().as_bytes(), SHARED);
        let (pw, d) = decrypt_password(&s, "36SsrRz2csiT8ErOtKBNww==").unwrap();
        assert_eq!((pw.expose().as_str(), d), ("Passw0rd!", Digest::Md5));
        let (pw, d) = decrypt_password(&s, "/DR6DCKJzIDI3IgUIr9L4g==").unwrap();
        assert_eq!((pw.expose().as_str(), d), ("Passw0rd!", Digest::Sha256));
    }

    #[test]
    fn base64_forms() {
        let s = shared_3_6();
        for ok in [
            "36SsrRz2csiT8ErOtKBNww==\n",
            "36SsrRz2csiT8ErOtKBNww==\r\n",
            " 36SsrRz2csiT8ErOtKBNww== ",
        ] {
            let (pw, _) = decrypt_password(&s, ok).unwrap();
            assert_eq!(pw.expose(), "Passw0rd!", "{ok:?}");
        }
        for bad in [
            "36SsrRz2csiT8ErOtKBNww",    // padding missing
            "36SsrRz2csiT8ErOtKBNww=",   // padding short
            "36SsrRz2csiT8ErOtKBNww===", // too much padding
            "36SsrRz2csiT8Er OtKBNww==", // inner space
            "36SsrRz2csiT8ErOtKBNww==\n\n\0",
            "36SsrRz2-csiT8ErOtKBNw==", // URL-safe alphabet
            "36SsrRz2csiT8ErOtKBNwx==", // trailing bits set
        ] {
            assert_eq!(decrypt_password(&s, bad).unwrap_err(), CipherError::Base64, "{bad:?}");
        }
    }

    #[test]
    fn bad_lengths_are_invalid() {
        let s = shared_3_6();
        for input in ["", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAAAAAA=="] {
            // 0, 3, 17 and 19 bytes
            assert_eq!(
                decrypt_password(&s, input).unwrap_err(),
                CipherError::Invalid,
                "{input:?}"
            );
        }
    }

    #[test]
    fn padding_checks() {
        let mut block = *b"Passw0rd!\n\x06\x06\x06\x06\x06\x06";
        assert_eq!(unpadded_len(&block), Some(10));
        block[12] = 5; // mixed pad bytes
        assert_eq!(unpadded_len(&block), None);
        block[15] = 0; // pad 0
        assert_eq!(unpadded_len(&block), None);
        block[15] = 17; // pad 17
        assert_eq!(unpadded_len(&block), None);
        block[15] = 0xff; // bad pad byte
        assert_eq!(unpadded_len(&block), None);
        assert_eq!(unpadded_len(&[16u8; 16]), Some(0));
        assert_eq!(unpadded_len(&[1u8; 1]), Some(0));
        assert_eq!(unpadded_len(&[2u8; 1]), None); // longer than the data
        assert_eq!(unpadded_len(&[]), None);
        let mut two = [0x41u8; 32];
        two[31] = 1;
        assert_eq!(unpadded_len(&two), Some(31));
    }

    /// Encrypts like nova (tests only): PKCS#7 then AES-128-CBC.
    fn encrypt(secret: &[u8], plain: &[u8], digest: Digest) -> Vec<u8> {
        use aes::cipher::BlockEncryptMut;
        let keys = derive(secret, digest);
        let mut buf = plain.to_vec();
        let pad = BLOCK - plain.len() % BLOCK;
        buf.extend(std::iter::repeat_n(pad as u8, pad));
        let len = buf.len();
        cbc::Encryptor::<aes::Aes128>::new(&keys.key.into(), &keys.iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .unwrap();
        buf
    }

    #[test]
    fn plaintext_rules() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"pw\n", Some("pw")),
            (b"\n", Some("")),
            (b"pw\r\n", Some("pw\r")),
            (b"pw\n\n", Some("pw\n")),
            (b"pw", None),       // no '\n'
            (b"p\xffw\n", None), // not UTF-8
            ("пароль\n".as_bytes(), Some("пароль")),
        ];
        for &(plain, want) in cases {
            for digest in [Digest::Md5, Digest::Sha256] {
                let ct = encrypt(SHARED, plain, digest);
                match (decrypt_bytes(SHARED, &ct), want) {
                    (Ok((pw, d)), Some(w)) => assert_eq!((pw.expose().as_str(), d), (w, digest)),
                    (Err(e), None) => assert_eq!(e, CipherError::Invalid),
                    (got, _) => panic!("{plain:?} {digest}: {:?}", got.map(|(_, d)| d)),
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics_and_is_refused() {
        let s = shared_3_6();
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n -_\xc3\xa9";
        let mut decoded = 0;
        for _ in 0..3000 {
            let len = (next() % 90) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let input = String::from_utf8_lossy(&bytes);
            match decrypt_password(&s, &input) {
                Ok(_) => panic!("garbage accepted: {input:?}"),
                Err(CipherError::Invalid) => decoded += 1,
                Err(CipherError::Base64) => {}
            }
        }
        // mostly valid base64 of any length, plus ciphertexts of a valid length
        for len in (0..40).map(|i| i * 16) {
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert!(decrypt_bytes(SHARED, &bytes).is_err());
        }
        assert!(decoded > 0);
    }

    #[test]
    fn messages_are_lowercase_and_secretless() {
        assert_eq!(CipherError::Base64.to_string(), "couldn't decode base64 data");
        assert_eq!(CipherError::Invalid.to_string(), "invalid password data received");
        let s = shared_3_6();
        let (pw, _) = decrypt_password(&s, "36SsrRz2csiT8ErOtKBNww==").unwrap();
        assert_eq!(format!("{pw:?} {pw}"), "*** ***");
    }
}
