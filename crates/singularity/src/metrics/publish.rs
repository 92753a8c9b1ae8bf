//! Writing key sets to XenStore: only what differs from what was last
//! written, in the order `data/*`, `attr/*`, `control/*`, then
//! `data/updated`; emptied `attr/vif` directories removed; failures reported
//! once.

use super::facts::BALLOON;
use super::UPDATED;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};
use xenstore::{Client, ErrorKind, Optional};

/// Writes key sets, remembering what is in the store.
pub struct Publisher {
    client: Client,
    written: BTreeMap<String, String>,
    /// `control/feature-balloon` was refused (read-only `control`): not
    /// supported here, not tried again until the next full rewrite.
    balloon_refused: bool,
    /// Keys whose last write failed, with the error logged for them.
    failed: BTreeMap<String, String>,
    /// Failures of this change set not logged before: error → keys.
    to_report: BTreeMap<String, Vec<String>>,
}

/// Whether `e` means "not allowed".
fn is_refused(e: &xenstore::Error) -> bool {
    matches!(e.kind(), Some(ErrorKind::Acces | ErrorKind::Rofs))
}

impl Publisher {
    pub fn new(client: Client) -> Publisher {
        Publisher {
            client,
            written: BTreeMap::new(),
            balloon_refused: false,
            failed: BTreeMap::new(),
            to_report: BTreeMap::new(),
        }
    }

    /// Forgets what was written and removes `attr/vif` (addresses of another
    /// life of the domain): the next [`Publisher::publish`] writes everything.
    pub fn reset(&mut self) {
        self.written.clear();
        self.balloon_refused = false;
        if let Err(e) = self.client.rm("attr/vif").optional() {
            log::debug!("cannot remove attr/vif: {e}");
        }
    }

    /// Brings the store to `desired` (without `data/updated`), then writes
    /// `data/updated` if anything was written or removed. Returns whether
    /// anything was.
    pub fn publish(&mut self, desired: &BTreeMap<String, String>) -> bool {
        let mut desired = desired.clone();
        if self.balloon_refused {
            desired.remove(BALLOON);
        }
        let mut done = false;
        for phase in ["data/", "attr/", "control/"] {
            for (key, value) in desired.iter().filter(|(k, _)| k.starts_with(phase)) {
                if self.written.get(key) != Some(value) {
                    let r = self.client.write(key, value);
                    done |= self.settle(key, r.map(|()| Some(value.clone())));
                }
            }
            for path in removals(&self.written, &desired, phase) {
                let r = self.client.rm(&path).optional().map(|_| None);
                if self.settle(&path, r) {
                    done = true;
                    let below = format!("{path}/");
                    self.written.retain(|k, _| k != &path && !k.starts_with(&below));
                }
            }
        }
        if done {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let r = self.client.write(UPDATED, now.to_string());
            self.settle(UPDATED, r.map(|()| None));
        }
        // One line per error, naming its keys: a read-only `attr` is one
        // warning, not one per key.
        for (msg, keys) in std::mem::take(&mut self.to_report) {
            log::warn!("metrics: cannot update {}: {msg}", keys.join(", "));
        }
        done
    }

    /// Records the outcome of one write (`Some(value)`) or removal (`None`);
    /// returns whether it succeeded. Each key's failure is reported once.
    fn settle(&mut self, key: &str, r: xenstore::Result<Option<String>>) -> bool {
        match r {
            Ok(value) => {
                if let Some(v) = value {
                    self.written.insert(key.to_string(), v);
                }
                self.failed.remove(key);
                true
            }
            Err(e) if key == BALLOON && is_refused(&e) => {
                log::debug!("{BALLOON} is read-only here ({e}): ballooning not advertised");
                self.balloon_refused = true;
                false
            }
            Err(e) => {
                let msg = e.to_string();
                if matches!(e, xenstore::Error::Disconnected) {
                    log::debug!("metrics: cannot update {key}: {msg}");
                } else if self.failed.get(key) != Some(&msg) {
                    self.to_report.entry(msg.clone()).or_default().push(key.to_string());
                }
                self.failed.insert(key.to_string(), msg);
                false
            }
        }
    }
}

/// What to remove under `phase`: keys written and no longer wanted, as the
/// highest `attr/vif/<devid>[/<family>]` directory nothing wanted is under.
pub(super) fn removals(
    written: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
    phase: &str,
) -> BTreeSet<String> {
    let wanted_under = |dir: &str| {
        let prefix = format!("{dir}/");
        desired.keys().any(|k| k.starts_with(&prefix))
    };
    let mut out = BTreeSet::new();
    for key in written
        .keys()
        .filter(|k| k.starts_with(phase) && !desired.contains_key(*k))
    {
        let parts: Vec<&str> = key.split('/').collect();
        let mut path = key.clone();
        if parts.len() == 5 && parts[0] == "attr" && parts[1] == "vif" {
            let vif = parts[..3].join("/");
            let fam = parts[..4].join("/");
            if !wanted_under(&vif) {
                path = vif;
            } else if !wanted_under(&fam) {
                path = fam;
            }
        }
        out.insert(path);
    }
    out
}
