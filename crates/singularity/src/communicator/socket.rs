//! The socket communicator, for machines without a hypervisor and for tests: a
//! Unix stream socket that takes one JSON request per line and answers one
//! JSON reply per line, in order, on the same connection.

use super::{CommError, Communicator, Incoming, Waker};
use crate::protocol::{Reply, MAX_REQUEST};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

/// Requests over a local Unix socket.
pub struct SocketCommunicator {
    path: PathBuf,
    requests: Receiver<Arrival>,
    /// For wakers: a clone of the senders the connections use.
    wake: Sender<Arrival>,
    waiting: HashMap<String, UnixStream>,
}

/// What the connection threads (and wakers) send the communicator.
enum Arrival {
    /// A request and the connection to answer on.
    Request(Incoming, UnixStream),
    Wake,
}

impl SocketCommunicator {
    /// Listens on `path` (mode 0600, replacing a stale socket file).
    pub fn bind(path: &Path) -> Result<SocketCommunicator, CommError> {
        let err = |what: &str, e: std::io::Error| CommError(format!("{what} {}: {e}", path.display()));
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() {
                std::fs::remove_file(path).map_err(|e| err("cannot remove stale socket", e))?;
            }
        }
        let listener = UnixListener::bind(path).map_err(|e| err("cannot listen on", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| err("cannot restrict", e))?;
        let (tx, rx) = mpsc::channel();
        let wake = tx.clone();
        thread::Builder::new()
            .name("socket-accept".into())
            .spawn(move || accept_loop(listener, tx))
            .map_err(|e| err("cannot start listener for", e))?;
        Ok(SocketCommunicator {
            path: path.to_path_buf(),
            requests: rx,
            wake,
            waiting: HashMap::new(),
        })
    }
}

impl Drop for SocketCommunicator {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: UnixListener, tx: Sender<Arrival>) {
    let mut next_conn = 0u64;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        next_conn += 1;
        let conn = next_conn;
        let tx = tx.clone();
        let spawned = thread::Builder::new()
            .name("socket-conn".into())
            .spawn(move || read_loop(conn, stream, tx));
        if spawned.is_err() {
            log::warn!("cannot start a thread for a socket connection");
        }
    }
}

/// Reads lines from one connection. A line longer than a request may be is
/// passed on truncated (the handler answers that it is too large) and the
/// rest of it is skipped without being buffered.
fn read_loop(conn: u64, stream: UnixStream, tx: Sender<Arrival>) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let limit = MAX_REQUEST as u64 + 2;
    let mut seq = 0u64;
    loop {
        let mut line = Vec::new();
        match (&mut reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') && line.len() as u64 >= limit && reader.skip_until(b'\n').is_err() {
            return;
        }
        while matches!(line.last(), Some(b'\n') | Some(b'\r')) {
            line.pop();
        }
        if line.is_empty() {
            continue;
        }
        let Ok(writer) = stream.try_clone() else { return };
        seq += 1;
        let incoming = Incoming {
            id: format!("{conn}-{seq}"),
            data: line,
        };
        if tx.send(Arrival::Request(incoming, writer)).is_err() {
            return;
        }
    }
}

impl Communicator for SocketCommunicator {
    fn recv(&mut self, timeout: Duration) -> Result<Option<Incoming>, CommError> {
        match self.requests.recv_timeout(timeout) {
            Ok(Arrival::Request(incoming, writer)) => {
                self.waiting.insert(incoming.id.clone(), writer);
                Ok(Some(incoming))
            }
            Ok(Arrival::Wake) | Err(RecvTimeoutError::Timeout) => Ok(None),
            // Not reached while `self.wake` holds a sender.
            Err(RecvTimeoutError::Disconnected) => Err(CommError("socket listener stopped".into())),
        }
    }

    fn waker(&self) -> Waker {
        let tx = self.wake.clone();
        Waker::new(move || {
            let _ = tx.send(Arrival::Wake);
        })
    }

    fn reply(&mut self, id: &str, reply: &Reply) -> Result<(), CommError> {
        let Some(mut writer) = self.waiting.remove(id) else {
            return Err(CommError(format!("no connection waits for request {id}")));
        };
        let mut line = reply.to_json();
        line.push(b'\n');
        writer
            .write_all(&line)
            .map_err(|e| CommError(format!("cannot answer request {id}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waker_ends_the_wait_and_requests_still_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let mut comm = SocketCommunicator::bind(&path).unwrap();
        crate::communicator::assert_waker_ends_wait(&mut comm);
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"{\"name\":\"version\",\"value\":\"\"}\n").unwrap();
        let incoming = comm.recv(Duration::from_secs(10)).unwrap().expect("the request");
        assert_eq!(incoming.data, br#"{"name":"version","value":""}"#);
    }
}
