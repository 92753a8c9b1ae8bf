//! The password path against the real tools: ciphertexts made by the
//! `openssl` CLI exactly as nova makes them, the host side of the key
//! exchange computed by `python3` as nova computes it, and hashes checked by
//! the system's crypt(3) through `perl`. The programs are run directly,
//! without a shell; the test fails if they are missing.

use singularity::crypto::cipher::{decrypt_password, CipherError, Digest};
use singularity::crypto::dh::{KeyPair, PeerKey, SharedSecret, PRIME};
use singularity::crypto::hash::{hash_password, Scheme};
use std::process::Command;

#[path = "common/tools.rs"]
mod tools;
use tools::{openssl_encrypt, system_crypt};

/// splitmix64: tiny, deterministic, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn u128(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A shared secret from a random private key and a random peer key.
    fn shared(&mut self) -> SharedSecret {
        let peer = 2 + self.u128() % (PRIME - 3);
        let peer = PeerKey::parse(&peer.to_string()).expect("peer key in range");
        KeyPair::from_private(self.u128()).shared_secret(peer)
    }

    /// A password of exactly `bytes` UTF-8 bytes, mixing 1- to 4-byte
    /// characters, or printable ASCII only.
    fn password(&mut self, bytes: usize, ascii_only: bool) -> String {
        const WIDE: [char; 8] = ['é', 'ß', 'Ж', '€', '密', '☃', '🔒', '😀'];
        let mut s = String::new();
        while s.len() < bytes {
            let room = bytes - s.len();
            let wide = WIDE[self.below(WIDE.len())];
            if !ascii_only && self.below(3) == 0 && wide.len_utf8() <= room {
                s.push(wide);
            } else {
                // printable ASCII, space to '~' (quotes, '$', ':', '\\' included)
                s.push(char::from(b' ' + self.below(95) as u8));
            }
        }
        s
    }
}

fn test_passwords(rng: &mut Rng) -> Vec<String> {
    let mut pws: Vec<String> = ["x", "é", "Passw0rd!", "pässwörd", "密码🔒", "a b\"c'd$e:f\\g\r"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for len in [1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 255] {
        pws.push(rng.password(len, true));
        pws.push(rng.password(len, false));
    }
    for _ in 0..12 {
        let len = 1 + rng.below(80);
        pws.push(rng.password(len, false));
    }
    pws
}

#[test]
fn decrypts_openssl_ciphertexts_md5_and_sha256() {
    let mut rng = Rng(0x5eed_0001);
    let mut wrong_tries = 0;
    for pw in test_passwords(&mut rng) {
        let shared = rng.shared();
        for (md, digest) in [("md5", Digest::Md5), ("sha256", Digest::Sha256)] {
            let b64 = openssl_encrypt(shared.as_decimal(), &pw, md);
            // as printed, with nova's strip, and with a stray newline
            for form in [b64.clone(), b64.trim().to_string(), format!("{}\n", b64.trim())] {
                let (got, used) =
                    decrypt_password(&shared, &form).unwrap_or_else(|e| panic!("{md} {} bytes: {e}", pw.len()));
                assert_eq!(got.expose(), &pw, "{md}");
                assert_eq!(used, digest, "{} bytes", pw.len());
            }
            // the same ciphertext under other shared secrets: never accepted
            for _ in 0..5 {
                let wrong = rng.shared();
                assert_ne!(wrong.as_decimal(), shared.as_decimal());
                match decrypt_password(&wrong, &b64) {
                    Err(CipherError::Invalid) => wrong_tries += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                    Ok((_, d)) => panic!("false positive with {d} after {wrong_tries} tries"),
                }
            }
        }
    }
    assert!(wrong_tries >= 200, "{wrong_tries}");
}

#[test]
fn worked_example_through_openssl() {
    let agent = KeyPair::from_private(0x00112233445566778899aabbccddeeff);
    let shared = agent.shared_secret(PeerKey::parse("128492706489454800633959484585958").unwrap());
    assert_eq!(shared.as_decimal(), "42212498014643735436438456950707");
    assert_eq!(
        openssl_encrypt(shared.as_decimal(), "Passw0rd!", "md5").trim(),
        "36SsrRz2csiT8ErOtKBNww=="
    );
    assert_eq!(
        openssl_encrypt(shared.as_decimal(), "Passw0rd!", "sha256").trim(),
        "/DR6DCKJzIDI3IgUIr9L4g=="
    );
}

#[test]
fn generated_keys_interoperate_through_openssl() {
    // both sides from the OS random source, the host side as nova computes it
    let agent = KeyPair::generate().unwrap();
    let host = KeyPair::generate().unwrap();
    let to_host = PeerKey::parse(&agent.public_key().to_string()).unwrap();
    let to_agent = PeerKey::parse(&host.public_key().to_string()).unwrap();
    let host_shared = host.shared_secret(to_host);
    let b64 = openssl_encrypt(host_shared.as_decimal(), "s3cret pw", "sha256");
    let (pw, digest) = decrypt_password(&agent.shared_secret(to_agent), &b64).unwrap();
    assert_eq!((pw.expose().as_str(), digest), ("s3cret pw", Digest::Sha256));
}

/// The host side of the exchange as nova's SimpleDH computes it, in Python:
/// its public key `5^x mod p` and the shared secret `agent^x mod p`.
fn python_host_side(private: u128, agent_public: &str) -> (String, String) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys; p = 2**107 - 1; x = int(sys.argv[1]); a = int(sys.argv[2]); print(pow(5, x, p), pow(a, x, p))",
        ])
        .arg(private.to_string())
        .arg(agent_public)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (is it installed?): {e}"));
    assert!(out.status.success(), "python3 failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut words = text.split_whitespace().map(str::to_string);
    (words.next().unwrap(), words.next().unwrap())
}

#[test]
fn agent_keys_agree_with_an_independent_host_side() {
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..8 {
        let agent = KeyPair::generate().unwrap();
        let (host_public, host_shared) = python_host_side(rng.u128(), &agent.public_key().to_string());
        let shared = agent.shared_secret(PeerKey::parse(&host_public).unwrap());
        assert_eq!(shared.as_decimal(), host_shared);
        let b64 = openssl_encrypt(&host_shared, "s3cret pw", "md5");
        let (pw, digest) = decrypt_password(&shared, &b64).unwrap();
        assert_eq!((pw.expose().as_str(), digest), ("s3cret pw", Digest::Md5));
    }
}

#[test]
fn hashes_verify_with_system_crypt() {
    let mut rng = Rng(0x5eed_0002);
    let mut pws: Vec<String> = ["x", "Passw0rd!", "pässwörd 密码", "a b\"c'd$e:f\\g"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    pws.push(rng.password(255, false));
    pws.push(rng.password(33, true));
    for pw in &pws {
        for (scheme, prefix) in [(Scheme::Sha512, "$6$"), (Scheme::Sha256, "$5$")] {
            let hash = hash_password(pw, scheme).unwrap();
            assert!(hash.starts_with(prefix), "{hash}");
            assert_eq!(system_crypt(pw, &hash), hash, "{scheme}, {} bytes", pw.len());
            let other = format!("{pw}.");
            assert_ne!(system_crypt(&other, &hash), hash);
        }
    }
}

#[test]
fn host_side_encryption_is_byte_identical_to_openssl() {
    use singularity::crypto::cipher::encrypt_password;
    let mut rng = Rng(0x5eed_0003);
    for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 100] {
        let pw: String = (0..len).map(|_| char::from(b'!' + (rng.next() % 90) as u8)).collect();
        let host = KeyPair::generate().unwrap();
        let agent = KeyPair::generate().unwrap();
        let shared = host.shared_secret(PeerKey::parse(&agent.public_key().to_string()).unwrap());
        for (md, digest) in [("md5", Digest::Md5), ("sha256", Digest::Sha256)] {
            let ours = encrypt_password(&shared, &format!("{pw}\n"), digest);
            assert_eq!(
                ours,
                openssl_encrypt(shared.as_decimal(), &pw, md).trim(),
                "len {len} md {md}"
            );
        }
    }
}
