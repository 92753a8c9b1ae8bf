//! Request builders and reply parsers shared by [`Client`](super::Client) and
//! [`Transaction`](super::Transaction): one `Scope` is "this connection, this
//! `tx_id`".

use super::conn::Shared;
use crate::error::{Error, Result};
use crate::path;
use crate::wire::{join_nul, split_nul, ErrorKind, MsgType, Perm};

/// At most this many DIRECTORY_PART restarts (the generation changed under us).
const DIRECTORY_PART_RESTARTS: usize = 16;

/// Requests sent on one connection with one transaction id (0 = none).
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) tx: u32,
}

fn path_payload(p: &str) -> Result<Vec<u8>> {
    path::validate(p)?;
    Ok(join_nul(&[p]))
}

/// The first NUL-terminated string of a reply, as UTF-8.
fn first_string(payload: &[u8]) -> Result<String> {
    let s = payload.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8(s.to_vec()).map_err(|_| Error::Protocol("reply is not UTF-8".into()))
}

/// Child names from a `name\0name\0...` list.
fn names(list: &[u8]) -> Vec<String> {
    split_nul(list)
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

impl Scope<'_> {
    fn call(&self, kind: MsgType, payload: &[u8]) -> Result<Vec<u8>> {
        self.shared.request(kind, self.tx, payload)
    }

    pub(crate) fn read(&self, p: &str) -> Result<Vec<u8>> {
        self.call(MsgType::Read, &path_payload(p)?)
    }

    pub(crate) fn read_string(&self, p: &str) -> Result<String> {
        String::from_utf8(self.read(p)?).map_err(|_| Error::Protocol(format!("value of {p} is not UTF-8")))
    }

    pub(crate) fn exists(&self, p: &str) -> Result<bool> {
        match self.read(p) {
            Ok(_) => Ok(true),
            Err(e) if e.is_noent() => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn write(&self, p: &str, value: &[u8]) -> Result<()> {
        let mut payload = path_payload(p)?;
        payload.extend_from_slice(value);
        self.call(MsgType::Write, &payload).map(|_| ())
    }

    pub(crate) fn mkdir(&self, p: &str) -> Result<()> {
        self.call(MsgType::Mkdir, &path_payload(p)?).map(|_| ())
    }

    pub(crate) fn rm(&self, p: &str) -> Result<()> {
        self.call(MsgType::Rm, &path_payload(p)?).map(|_| ())
    }

    pub(crate) fn directory(&self, p: &str) -> Result<Vec<String>> {
        let payload = path_payload(p)?;
        match self.call(MsgType::Directory, &payload) {
            // oxenstored may send more than 4096 bytes here; the reader accepts it.
            Ok(list) => Ok(names(&list)),
            Err(Error::Xs(ErrorKind::TooBig)) => match self.directory_part(p) {
                Err(Error::Xs(ErrorKind::Nosys)) => Err(Error::Xs(ErrorKind::TooBig)),
                other => other,
            },
            Err(e) => Err(e),
        }
    }

    /// The DIRECTORY_PART loop of libxenstore's `xs_directory_part`: byte offsets
    /// into the concatenated list, restart when the generation count changes, the
    /// last chunk ends with an extra NUL.
    fn directory_part(&self, p: &str) -> Result<Vec<String>> {
        let mut restarts = 0;
        'restart: loop {
            let mut list: Vec<u8> = Vec::new();
            let mut gen: Option<Vec<u8>> = None;
            loop {
                let offset = list.len().to_string();
                let reply = self.call(MsgType::DirectoryPart, &join_nul(&[p, &offset]))?;
                let Some(nul) = reply.iter().position(|&b| b == 0) else {
                    return Err(Error::Protocol("DIRECTORY_PART reply without generation".into()));
                };
                let (this_gen, data) = (&reply[..nul], &reply[nul + 1..]);
                match &gen {
                    Some(g) if g.as_slice() != this_gen => {
                        restarts += 1;
                        if restarts > DIRECTORY_PART_RESTARTS {
                            return Err(Error::Xs(ErrorKind::Again));
                        }
                        continue 'restart;
                    }
                    Some(_) => {}
                    None => gen = Some(this_gen.to_vec()),
                }
                list.extend_from_slice(data);
                let last = data.len() <= 1 || data.ends_with(&[0, 0]);
                if last {
                    return Ok(names(&list));
                }
            }
        }
    }

    pub(crate) fn get_perms(&self, p: &str) -> Result<Vec<Perm>> {
        let reply = self.call(MsgType::GetPerms, &path_payload(p)?)?;
        split_nul(&reply)
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                std::str::from_utf8(s)
                    .ok()
                    .and_then(Perm::parse)
                    .ok_or_else(|| Error::Protocol(format!("bad permission {:?}", String::from_utf8_lossy(s))))
            })
            .collect()
    }

    pub(crate) fn set_perms(&self, p: &str, perms: &[Perm]) -> Result<()> {
        let mut payload = path_payload(p)?;
        let strings: Vec<String> = perms.iter().map(Perm::to_string).collect();
        payload.extend_from_slice(&join_nul(&strings));
        self.call(MsgType::SetPerms, &payload).map(|_| ())
    }

    pub(crate) fn get_domain_path(&self, domid: u32) -> Result<String> {
        first_string(&self.call(MsgType::GetDomainPath, &join_nul(&[domid.to_string()]))?)
    }

    /// TRANSACTION_START with payload `"\0"` (never zero-length).
    pub(crate) fn transaction_start(&self) -> Result<u32> {
        let id = first_string(&self.call(MsgType::TransactionStart, b"\0")?)?;
        match id.parse::<u32>() {
            Ok(n) if n != 0 => Ok(n),
            _ => Err(Error::Protocol(format!("bad transaction id {id:?}"))),
        }
    }

    /// TRANSACTION_END `T\0` (commit) or `F\0` (abort).
    pub(crate) fn transaction_end(&self, commit: bool) -> Result<()> {
        let body: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.call(MsgType::TransactionEnd, body).map(|_| ())
    }
}
