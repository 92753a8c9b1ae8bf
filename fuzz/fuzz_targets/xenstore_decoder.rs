//! The XenStore frame decoder on an arbitrary byte stream, fed in arbitrary
//! chunks, plus the path, permission and error-name parsers on the payloads.
//!
//! Input layout: byte 0 picks the decoder's payload cap, bytes 1..5 seed
//! the chunk sizes, the rest is the stream. The chunked decode must give
//! exactly the messages (and the oversize error) of a one-shot decode, and
//! every message must re-encode to the bytes it was decoded from.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore::path;
use xenstore::wire::{
    split_nul, Decoder, ErrorKind, Message, Oversize, DEVICE_PAYLOAD_MAX, HEADER_LEN, PAYLOAD_MAX, READ_PAYLOAD_CAP,
};
use xenstore::Perm;

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    messages: Vec<Message>,
    error: Option<Oversize>,
    /// Bytes left over at the end (not compared after an error: feeding stops there).
    pending: Option<usize>,
}

/// Drains `decoder`; returns false once it reported an error.
fn drain(decoder: &mut Decoder, out: &mut Decoded) -> bool {
    loop {
        match decoder.next_message() {
            Ok(Some(message)) => out.messages.push(message),
            Ok(None) => return true,
            Err(e) => {
                out.error = Some(e);
                return false;
            }
        }
    }
}

fn decode<'a>(cap: usize, chunks: impl Iterator<Item = &'a [u8]>) -> Decoded {
    let mut decoder = Decoder::new(cap);
    let mut out = Decoded {
        messages: Vec::new(),
        error: None,
        pending: None,
    };
    for chunk in chunks {
        decoder.feed(chunk);
        if !drain(&mut decoder, &mut out) {
            break;
        }
    }
    if out.error.is_none() {
        out.pending = Some(decoder.pending());
    }
    out
}

/// Chunk lengths 0..=40 from a xorshift generator (zero-length feeds included).
fn chunked(stream: &[u8], mut state: u32) -> Vec<&[u8]> {
    state |= 1;
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 41) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    chunks
}

fn check_path(bytes: &[u8]) {
    let Ok(p) = std::str::from_utf8(bytes) else {
        return;
    };
    let valid = path::validate(p).is_ok();
    match path::resolve("/local/domain/7", p) {
        Ok(full) => {
            assert!(valid);
            assert!(full.starts_with('/') || full.starts_with('@'));
            if full.starts_with('/') {
                // Walking up ends at "/" and every step is an ancestor.
                let mut at = full.as_str();
                while let Some(up) = path::parent(at) {
                    assert!(up.len() < at.len());
                    assert!(path::is_at_or_below(at, up));
                    at = up;
                }
                assert_eq!(at, "/");
            }
        }
        // Only a relative path can become too long by resolving it.
        Err(_) => assert!(!valid || !(p.starts_with('/') || p.starts_with('@'))),
    }
    if let Some(perm) = Perm::parse(p) {
        assert_eq!(Perm::parse(&perm.to_string()), Some(perm));
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let cap = match data[0] % 4 {
        0 => PAYLOAD_MAX,
        1 => DEVICE_PAYLOAD_MAX,
        2 => READ_PAYLOAD_CAP,
        _ => usize::from(data[0] >> 2),
    };
    let seed = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
    let stream = &data[5..];

    let whole = decode(cap, std::iter::once(stream));
    let pieces = decode(cap, chunked(stream, seed).into_iter());
    assert_eq!(whole, pieces);
    let bytes = decode(cap, stream.chunks(1));
    assert_eq!(whole, bytes);

    // Messages re-encode to the stream they came from.
    let mut offset = 0;
    for message in &whole.messages {
        assert!(message.payload.len() <= cap);
        let encoded = message.encode();
        assert_eq!(encoded.len(), HEADER_LEN + message.payload.len());
        assert_eq!(&stream[offset..offset + encoded.len()], &encoded[..]);
        offset += encoded.len();
        let parts = split_nul(&message.payload);
        for part in &parts {
            check_path(part);
        }
        let error = ErrorKind::from_payload(&message.payload);
        assert_eq!(ErrorKind::from_name(error.name()), error);
    }
    if let Some(pending) = whole.pending {
        assert_eq!(offset + pending, stream.len());
    }
    check_path(stream);
});
