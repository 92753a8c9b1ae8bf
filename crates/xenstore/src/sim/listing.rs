//! DIRECTORY and DIRECTORY_PART: child lists, the C-only chunked listing
//! (byte offsets into the NUL-joined names, generation prefix, extra final NUL)
//! and the flavours' answers to a list too long for one reply.

use super::ops::{atoi, strings, Cx};
use super::state::SPECIAL_PATHS;
use super::store::XsResult;
use super::Flavor;
use crate::wire::{join_nul, ErrorKind, PAYLOAD_MAX};

impl Cx<'_> {
    pub(crate) fn directory(&mut self, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let path = self.path_arg(p)?;
        let actor = self.actor;
        let (mut names, _) = self.with_store(tx, |s, j| Ok((s.children(actor, &path, j)?, Vec::new())))?;
        if self.cfg.flavor == Flavor::Ox && path == "/" {
            names.extend(SPECIAL_PATHS.iter().map(|s| s.to_string()));
        }
        let payload = join_nul(&names);
        if payload.len() > PAYLOAD_MAX && self.cfg.flavor == Flavor::C {
            return Err(ErrorKind::TooBig);
        }
        Ok(payload)
    }

    /// DIRECTORY_PART (C only): `<gencnt>\0` then the child list from a byte
    /// offset, whole names only after the first, with an extra NUL on the last
    /// chunk.
    pub(crate) fn directory_part(&mut self, tx: u32, p: &[u8]) -> XsResult<Vec<u8>> {
        let parts = strings(p).ok_or(ErrorKind::Inval)?;
        let [raw_path, raw_off] = parts[..] else {
            return Err(ErrorKind::Inval);
        };
        let path = self.resolve(raw_path)?;
        let off = atoi(raw_off) as usize;
        let actor = self.actor;
        let (names, gen) = self.with_store(tx, |s, j| Ok((s.children(actor, &path, j)?, Vec::new())))?;
        let list = join_nul(&names);
        let mut out = format!("{gen}\0").into_bytes();
        if off >= list.len() {
            out.push(0);
            return Ok(out);
        }
        let room = PAYLOAD_MAX - out.len() - 1;
        let mut end = off;
        while end < list.len() {
            let next = list[end..]
                .iter()
                .position(|&b| b == 0)
                .map_or(list.len(), |i| end + i + 1);
            if next - off > room {
                break;
            }
            end = next;
        }
        out.extend_from_slice(&list[off..end]);
        if end == list.len() {
            out.push(0);
        }
        Ok(out)
    }
}
