//! The password path: the `keyinit` public key parser, the password cipher
//! and the `/etc/shadow` rewrite, on arbitrary bytes. None may panic.
//!
//! Input layout: the first byte gives the length `k` (mod 48) of a prefix
//! parsed as a peer key; the remaining bytes are used as a `password` value
//! (as text), as raw ciphertext (base64-encoded first, to reach the padding
//! and plaintext checks) and as a shadow file.

#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use singularity::crypto::cipher::{decrypt_password, encrypt_password};
use singularity::crypto::dh::{KeyPair, PeerKey, SharedSecret};
use singularity::shadow::set_password;
use std::sync::OnceLock;

/// The agent's private key and the host's public key from the worked
/// example in the protocol notes (§3.6).
const AGENT_PRIVATE: u128 = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeff;
const HOST_PUBLIC: &str = "128492706489454800633959484585958";
const SHARED: &str = "42212498014643735436438456950707";

/// A valid `$6$` hash, so that `set_password` gets as far as the file.
const HASH: &str =
    "$6$saltsaltsaltsalt$bcXJ8qxwY5sQ4v0ZkzqL8uU0B0aB5dM9p3P0zJY7vNh3y9oKZ6wS1b8Vn0cT2rXq4mF7eG6hL5jD3kA9sW1uQ.";

fn secret() -> &'static SharedSecret {
    static SECRET: OnceLock<SharedSecret> = OnceLock::new();
    SECRET.get_or_init(|| {
        let peer = PeerKey::parse(HOST_PUBLIC).expect("the example key parses");
        let secret = KeyPair::from_private(AGENT_PRIVATE).shared_secret(peer);
        assert_eq!(secret.as_decimal(), SHARED);
        secret
    })
}

/// Decrypts `value`; a success must round-trip through the host's encryption.
fn decrypt(secret: &SharedSecret, value: &str) {
    if let Ok((plain, digest)) = decrypt_password(secret, value) {
        let plain = plain.expose();
        assert!(std::str::from_utf8(plain.as_bytes()).is_ok());
        let again = encrypt_password(secret, &format!("{plain}\n"), digest);
        let (back, _) = decrypt_password(secret, &again).expect("our own ciphertext decrypts");
        assert_eq!(back.expose(), plain);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(first % 48).min(rest.len());
    let (key, rest) = rest.split_at(k);

    // keyinit: any prefix, as nova's string value.
    let key = String::from_utf8_lossy(key);
    if let Ok(peer) = PeerKey::parse(&key) {
        assert_eq!(PeerKey::parse(&peer.value().to_string()), Ok(peer));
        assert_eq!(key.trim_ascii().trim_start_matches('0'), peer.value().to_string());
        // A secret from the fuzzed key must work as well as the fixed one.
        let own = KeyPair::from_private(AGENT_PRIVATE).shared_secret(peer);
        assert!(own.as_decimal().bytes().all(|b| b.is_ascii_digit()));
        decrypt(&own, &STANDARD.encode(rest));
    }

    // password: the value as text, and the bytes as ciphertext.
    decrypt(secret(), &String::from_utf8_lossy(rest));
    decrypt(secret(), &STANDARD.encode(rest));

    // The shadow rewrite keeps every line.
    if let Ok(out) = set_password(rest, "root", HASH, 19_000) {
        let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
        assert_eq!(lines(&out), lines(rest));
        assert!(out.windows(HASH.len()).any(|w| w == HASH.as_bytes()));
    }
});
