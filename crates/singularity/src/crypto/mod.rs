//! The nova password exchange: Diffie-Hellman over nova's toy group
//! ([`dh`]), the AES-128-CBC cipher keyed by OpenSSL's `EVP_BytesToKey`
//! ([`cipher`]) and the crypt(3) hash written to `/etc/shadow` ([`hash`]).
//! Pure computation; randomness comes from the OS.

pub mod cipher;
pub mod dh;
pub mod hash;
