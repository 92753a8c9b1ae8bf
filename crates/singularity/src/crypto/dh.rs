//! Diffie-Hellman over nova's group: p = 2^107 − 1 (a Mersenne prime), g = 5.
//!
//! Public keys travel as decimal strings (`keyinit` request and reply). The
//! shared secret is used as the decimal string of `peer^private mod p`, which
//! is the OpenSSL `-pass pass:<…>` that keys the password cipher.
//!
//! The group is tiny; this is a compatibility format, not security. Arithmetic
//! is exact on `u128` with 64-bit limbs and the Mersenne reduction, and the
//! exponentiation runs a fixed number of steps for every exponent.

use crate::secret::Secret;
use std::fmt;
use std::io;
use zeroize::Zeroize;

/// The prime modulus, 2^107 − 1 = 162259276829213363391578010288127.
pub const PRIME: u128 = (1 << 107) - 1;

/// The generator, 5.
pub const GENERATOR: u128 = 5;

/// Why a peer's public key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhError {
    /// Empty, or not only ASCII decimal digits (after trimming whitespace).
    NotANumber,
    /// A number outside 2..=p−2 (0, 1 and p−1 generate trivial subgroups).
    OutOfRange,
}

impl fmt::Display for DhError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DhError::NotANumber => "public key is not a decimal number",
            DhError::OutOfRange => "public key is out of range",
        })
    }
}

impl std::error::Error for DhError {}

/// Fills `buf` from the operating system's random source (getrandom(2) or
/// `/dev/urandom`).
pub(crate) fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    getrandom::getrandom(buf).map_err(|e| match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::other(format!("os random source: {e}")),
    })
}

/// `a · b mod p` for `a, b < p`, exact: the 214-bit product is built from
/// 64-bit limbs and folded with 2^107 ≡ 1 (mod p).
fn mul_mod(a: u128, b: u128) -> u128 {
    const LOW64: u128 = (1 << 64) - 1;
    let (a0, a1) = (a & LOW64, a >> 64);
    let (b0, b1) = (b & LOW64, b >> 64);
    // a1, b1 < 2^43, so mid < 2^108 and hi < 2^87: no step overflows.
    let mid = a0 * b1 + a1 * b0;
    let (lo, carry) = (a0 * b0).overflowing_add(mid << 64);
    let hi = a1 * b1 + (mid >> 64) + u128::from(carry);
    // product = hi·2^128 + lo = top·2^107 + (lo mod 2^107), top < 2^107
    let top = (hi << 21) | (lo >> 107);
    let sum = (lo & PRIME) + top; // < 2^108
    let folded = (sum & PRIME) + (sum >> 107); // ≤ p + 1
    if folded >= PRIME {
        folded - PRIME
    } else {
        folded
    }
}

/// `base^exp mod p` for `base < p`: 128 square-and-multiply steps whatever
/// the exponent, with a branch-free select.
fn pow_mod(base: u128, exp: u128) -> u128 {
    let mut acc: u128 = 1;
    for bit in (0..128).rev() {
        acc = mul_mod(acc, acc);
        let with = mul_mod(acc, base);
        let mask = 0u128.wrapping_sub((exp >> bit) & 1);
        acc = (with & mask) | (acc & !mask);
    }
    acc
}

/// Writes `value` in decimal into a string allocated once at its final size,
/// so no copy of the digits is left behind in a reallocated buffer.
fn to_decimal(mut value: u128) -> String {
    let mut digits = [0u8; 39]; // u128::MAX has 39 digits
    let mut start = digits.len();
    loop {
        start -= 1;
        // value % 10 < 10: the cast cannot truncate
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(digits.len() - start);
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
    digits.zeroize();
    out
}

/// Our side of the exchange: a private exponent (wiped on drop, never
/// printed) and its public key `5^private mod p`.
#[derive(Debug)]
pub struct KeyPair {
    private: Secret<u128>,
    public: u128,
}

impl KeyPair {
    /// Makes a fresh key pair from the OS random source.
    ///
    /// Draws 128 bits, keeps the low 107 and draws again in the (≈2^-105)
    /// case that they fall outside 2..=p−2, so the private key is uniform in
    /// 2..=p−2. That is all the entropy the group can hold: exponents act
    /// modulo the order of 5, which divides p−1 < 2^107. (The old Unix agent
    /// used a raw 128-bit exponent; a longer exponent adds nothing.)
    pub fn generate() -> io::Result<KeyPair> {
        let mut bytes = [0u8; 16];
        let result = loop {
            if let Err(e) = fill_random(&mut bytes) {
                break Err(e);
            }
            let mut candidate = u128::from_le_bytes(bytes) & PRIME;
            if (2..=PRIME - 2).contains(&candidate) {
                let pair = KeyPair::from_private(candidate);
                candidate.zeroize();
                break Ok(pair);
            }
        };
        bytes.zeroize();
        result
    }

    /// Builds a key pair from a given private exponent, used as is (any
    /// `u128`, not reduced). For tests and known-answer vectors; production
    /// code uses [`KeyPair::generate`].
    #[doc(hidden)]
    pub fn from_private(private: u128) -> KeyPair {
        KeyPair {
            public: pow_mod(GENERATOR, private),
            private: Secret::new(private),
        }
    }

    /// Our public key `5^private mod p`, sent to the host as a decimal string
    /// in the `keyinit` reply.
    pub fn public_key(&self) -> u128 {
        self.public
    }

    /// The shared secret `peer^private mod p` as the decimal string that keys
    /// the password cipher.
    pub fn shared_secret(&self, peer: PeerKey) -> SharedSecret {
        let mut value = pow_mod(peer.0, *self.private.expose());
        let decimal = to_decimal(value);
        value.zeroize();
        SharedSecret {
            decimal: Secret::new(decimal),
        }
    }
}

/// The host's public key, checked to be in 2..=p−2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerKey(u128);

impl PeerKey {
    /// Parses the `keyinit` value: ASCII decimal digits, optionally with
    /// leading zeros and surrounded by ASCII whitespace (as Python's `int()`
    /// in the old agents accepts; nova sends plain digits). No sign, no `+`,
    /// no `_`, no inner whitespace. Never panics.
    ///
    /// # Errors
    /// [`DhError::NotANumber`] for anything else, [`DhError::OutOfRange`] for
    /// a number outside 2..=p−2 (however many digits it has).
    pub fn parse(s: &str) -> Result<PeerKey, DhError> {
        let digits = s.trim_ascii();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DhError::NotANumber);
        }
        let mut value: u128 = 0;
        for b in digits.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(b - b'0')))
                .ok_or(DhError::OutOfRange)?;
        }
        if (2..=PRIME - 2).contains(&value) {
            Ok(PeerKey(value))
        } else {
            Err(DhError::OutOfRange)
        }
    }

    /// The key as a number.
    pub fn value(&self) -> u128 {
        self.0
    }
}

/// The shared secret as a decimal string: wiped on drop, `Debug` prints `***`.
#[derive(Debug)]
pub struct SharedSecret {
    decimal: Secret<String>,
}

impl SharedSecret {
    /// The decimal digits, the `pass:` of nova's `openssl` command. Do not
    /// log them.
    pub fn as_decimal(&self) -> &str {
        self.decimal.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // §3.6 of the protocol notes
    const A_PRIV: u128 = 0x0123456789abcdef0123;
    const B_PRIV: u128 = 0x00112233445566778899aabbccddeeff;
    const A_PUB: u128 = 128492706489454800633959484585958;
    const B_PUB: u128 = 10213771857304028832860390748511;
    const SHARED: &str = "42212498014643735436438456950707";

    /// Reference: double-and-add, one bit at a time.
    fn mul_mod_slow(a: u128, b: u128) -> u128 {
        let mut acc = 0u128;
        for bit in (0..107).rev() {
            acc = (acc << 1) % PRIME;
            if (b >> bit) & 1 == 1 {
                acc = (acc + a) % PRIME;
            }
        }
        acc
    }

    #[test]
    fn prime_value() {
        assert_eq!(PRIME, 162259276829213363391578010288127);
    }

    #[test]
    fn worked_example_section_3_6() {
        assert_eq!(A_PRIV, 5373003642731685151011);
        assert_eq!(B_PRIV, 88962710306127702866241727433142015);
        let host = KeyPair::from_private(A_PRIV);
        let agent = KeyPair::from_private(B_PRIV);
        assert_eq!(host.public_key(), A_PUB);
        assert_eq!(agent.public_key(), B_PUB);
        let peer_a = PeerKey::parse(&A_PUB.to_string()).unwrap();
        let peer_b = PeerKey::parse(&B_PUB.to_string()).unwrap();
        assert_eq!(agent.shared_secret(peer_a).as_decimal(), SHARED);
        assert_eq!(host.shared_secret(peer_b).as_decimal(), SHARED);
    }

    #[test]
    fn mul_mod_edge_cases() {
        let p1 = PRIME - 1;
        // (p−1)² = (−1)² = 1
        assert_eq!(mul_mod(p1, p1), 1);
        assert_eq!(mul_mod(p1, 1), p1);
        assert_eq!(mul_mod(p1, 2), PRIME - 2);
        assert_eq!(mul_mod(0, p1), 0);
        assert_eq!(mul_mod(1, 1), 1);
        // 2^106 · 2 = 2^107 ≡ 1
        assert_eq!(mul_mod(1 << 106, 2), 1);
        assert_eq!(mul_mod(1 << 64, 1 << 64), 1 << 21);
        let limb = (1u128 << 64) - 1;
        for &(a, b) in &[(p1, limb), (limb, limb), (p1 / 2, p1 / 3), (p1, 1 << 106)] {
            assert_eq!(mul_mod(a, b), mul_mod_slow(a, b), "{a} * {b}");
        }
    }

    #[test]
    fn mul_mod_matches_reference_on_random_values() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let a = ((u128::from(next()) << 64) | u128::from(next())) % PRIME;
            let b = ((u128::from(next()) << 64) | u128::from(next())) % PRIME;
            assert_eq!(mul_mod(a, b), mul_mod_slow(a, b), "{a} * {b}");
        }
    }

    #[test]
    fn pow_mod_small_cases() {
        assert_eq!(pow_mod(5, 0), 1);
        assert_eq!(pow_mod(5, 1), 5);
        assert_eq!(pow_mod(5, 3), 125);
        assert_eq!(pow_mod(2, 107), 1);
        // Fermat: a^(p−1) = 1
        assert_eq!(pow_mod(5, PRIME - 1), 1);
        assert_eq!(pow_mod(PRIME - 1, 3), PRIME - 1);
        assert_eq!(pow_mod(0, 5), 0);
    }

    #[test]
    fn decimal_formatting() {
        for v in [0, 1, 9, 10, 12345, PRIME, u128::MAX] {
            assert_eq!(to_decimal(v), v.to_string());
        }
    }

    #[test]
    fn peer_key_parse_table() {
        use DhError::*;
        let p = PRIME;
        let table: &[(&str, Result<u128, DhError>)] = &[
            ("", Err(NotANumber)),
            ("   ", Err(NotANumber)),
            ("abc", Err(NotANumber)),
            ("12a", Err(NotANumber)),
            ("-5", Err(NotANumber)),
            ("+5", Err(NotANumber)),
            ("1_000", Err(NotANumber)),
            ("1 2", Err(NotANumber)),
            ("0x10", Err(NotANumber)),
            ("٣", Err(NotANumber)), // non-ASCII digit
            ("0", Err(OutOfRange)),
            ("1", Err(OutOfRange)),
            ("2", Ok(2)),
            ("5", Ok(5)),
            ("162259276829213363391578010288125", Ok(p - 2)),
            ("162259276829213363391578010288126", Err(OutOfRange)), // p−1
            ("162259276829213363391578010288127", Err(OutOfRange)), // p
            ("340282366920938463463374607431768211455", Err(OutOfRange)), // u128::MAX
            ("340282366920938463463374607431768211456", Err(OutOfRange)), // overflow
            ("99999999999999999999999999999999999999999999999999", Err(OutOfRange)),
            ("007", Ok(7)),
            ("000000000000000000000000000000000000000000000000042", Ok(42)),
            (" 128492706489454800633959484585958\n", Ok(A_PUB)),
            ("\t42\r\n", Ok(42)),
        ];
        for (input, want) in table {
            assert_eq!(PeerKey::parse(input).map(|k| k.value()), *want, "{input:?}");
        }
    }

    #[test]
    fn peer_key_parse_garbage_never_panics() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"0123456789 +-\t\nx_\xc3\xa9\xff";
        for _ in 0..5000 {
            let len = (next() % 60) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let s = String::from_utf8_lossy(&bytes);
            match PeerKey::parse(&s) {
                Ok(k) => {
                    assert!((2..=PRIME - 2).contains(&k.value()));
                    assert!(s.trim_ascii().bytes().all(|b| b.is_ascii_digit()));
                }
                Err(DhError::NotANumber) => {
                    assert!(!s.trim_ascii().bytes().all(|b| b.is_ascii_digit()) || s.trim_ascii().is_empty());
                }
                Err(DhError::OutOfRange) => {}
            }
        }
    }

    #[test]
    fn generated_keys_are_in_range_and_agree() {
        let a = KeyPair::generate().unwrap();
        let b = KeyPair::generate().unwrap();
        assert!((2..=PRIME - 2).contains(a.private.expose()));
        assert_ne!(a.private.expose(), b.private.expose());
        let pa = PeerKey::parse(&a.public_key().to_string()).unwrap();
        let pb = PeerKey::parse(&b.public_key().to_string()).unwrap();
        assert_eq!(a.shared_secret(pb).as_decimal(), b.shared_secret(pa).as_decimal());
    }

    #[test]
    fn secrets_never_print() {
        let pair = KeyPair::from_private(B_PRIV);
        let shared = pair.shared_secret(PeerKey::parse("128492706489454800633959484585958").unwrap());
        assert_eq!(format!("{shared:?}"), "SharedSecret { decimal: *** }");
        let shown = format!("{pair:?}");
        assert!(!shown.contains(&B_PRIV.to_string()), "{shown}");
        assert!(!DhError::OutOfRange.to_string().chars().any(|c| c.is_ascii_digit()));
    }
}
