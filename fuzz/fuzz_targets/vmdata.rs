//! nova's `vm-data` values: one `vm-data/networking/<key>` entry and
//! `vm-data/hostname`, on arbitrary bytes. Neither parser may panic, and an
//! accepted host name must be accepted again unchanged.
//!
//! Input layout: the first byte gives the length `k` (mod 32) of the key
//! prefix; the rest is the entry's JSON and, separately, the host name.

#![no_main]

use libfuzzer_sys::fuzz_target;
use singularity::network::vmdata::{parse_entry, parse_hostname};

fn distinct<T: Ord + Clone>(items: &[T]) -> bool {
    let mut sorted = items.to_vec();
    sorted.sort();
    sorted.dedup();
    sorted.len() == items.len()
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let k = usize::from(first % 32).min(rest.len());
    let (key, value) = rest.split_at(k);
    let key = String::from_utf8_lossy(key);
    if let Ok(nic) = parse_entry(&key, value) {
        assert_eq!(nic.key, key);
        assert!(distinct(&nic.ipv4) && distinct(&nic.ipv6), "duplicates kept in {nic:?}");
        assert!(
            distinct(&nic.routes) && distinct(&nic.dns),
            "duplicates kept in {nic:?}"
        );
    }
    if let Ok(name) = parse_hostname(value) {
        assert!(!name.is_empty() && name.len() <= 253);
        assert_eq!(parse_hostname(name.as_bytes()).as_deref(), Ok(name.as_str()));
    }
});
