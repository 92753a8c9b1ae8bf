//! The host side of the protocol, as nova and the os-xenapi dom0 `agent`
//! plugin implement it: write a request to `/local/domain/N/data/host/<uuid>`,
//! poll `data/guest/<uuid>` every 0.5 s, give up after the timeout (removing
//! the request) or when `/local/domain/N/name` disappears (a reboot). Used by
//! `singularity-host` and by the tests as a faithful host.

pub mod commands;
pub mod pyjson;
pub mod run;

use serde_json::Value;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use xenstore::{Client, Optional};

/// The plugin's polling interval.
pub const POLL: Duration = Duration::from_millis(500);
/// The plugin's default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// nova's timeout for `resetnetwork`.
pub const RESETNETWORK_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call did not produce a usable reply.
#[derive(Debug)]
pub enum HostError {
    /// No reply within the timeout; the request was removed.
    Timeout(Duration),
    /// The domain's `name` node vanished while waiting.
    Reboot(u32),
    /// The reply is not what nova accepts (not an object, non-string fields).
    BadReply(String),
    /// XenStore failed.
    Xenstore(xenstore::Error),
    /// Something else (random source, encryption).
    Other(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Timeout(t) => write!(f, "TIMEOUT: No response from agent within {} seconds.", t.as_secs()),
            HostError::Reboot(domid) => write!(f, "REBOOT: dom_id {domid} no longer present"),
            HostError::BadReply(why) => write!(f, "malformed reply from agent: {why}"),
            HostError::Xenstore(e) => write!(f, "xenstore: {e}"),
            HostError::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for HostError {}

impl From<xenstore::Error> for HostError {
    fn from(e: xenstore::Error) -> HostError {
        HostError::Xenstore(e)
    }
}

/// A reply that passed nova's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReply {
    /// The `returncode` string.
    pub returncode: String,
    /// The `message` string.
    pub message: String,
    /// The reply exactly as read from XenStore (whitespace-trimmed, as the plugin does).
    pub raw: String,
}

/// Validates a raw reply the way nova's `_call_agent` would survive it.
pub fn check_reply(raw: &[u8]) -> Result<AgentReply, HostError> {
    let text = String::from_utf8_lossy(raw).trim().to_string();
    let value: Value = serde_json::from_str(&text).map_err(|e| HostError::BadReply(format!("not JSON ({e})")))?;
    let Value::Object(map) = &value else {
        return Err(HostError::BadReply("not a JSON object".into()));
    };
    let field = |key: &str| match map.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(HostError::BadReply(format!("'{key}' is not a string"))),
        None => Err(HostError::BadReply(format!("no '{key}'"))),
    };
    Ok(AgentReply {
        returncode: field("returncode")?,
        message: field("message")?,
        raw: text,
    })
}

/// A random UUID4 in canonical lowercase form, like `uuid.uuid4()`.
pub fn uuid4() -> Result<String, HostError> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| HostError::Other(format!("random source: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// One request and its reply, as they crossed XenStore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The request id (node name).
    pub id: String,
    /// The request as written.
    pub request: String,
    /// The reply as read, if one came.
    pub reply: Option<String>,
}

/// A connection to one guest's agent through the privileged XenStore socket.
pub struct AgentHost {
    client: Client,
    domid: u32,
    poll: Duration,
    exchanges: Mutex<Vec<Exchange>>,
}

impl AgentHost {
    /// Talks to domain `domid` through `client`.
    pub fn new(client: Client, domid: u32) -> AgentHost {
        AgentHost {
            client,
            domid,
            poll: POLL,
            exchanges: Mutex::new(Vec::new()),
        }
    }

    /// Changes the polling interval (tests).
    pub fn with_poll(mut self, poll: Duration) -> AgentHost {
        self.poll = poll;
        self
    }

    /// The requests and replies since the last call (for transcripts).
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    fn record(&self, id: &str, request: &[u8], reply: Option<&[u8]>) {
        if let Ok(mut v) = self.exchanges.lock() {
            v.push(Exchange {
                id: id.to_string(),
                request: String::from_utf8_lossy(request).into_owned(),
                reply: reply.map(|r| String::from_utf8_lossy(r).into_owned()),
            });
        }
    }

    /// The XenStore client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The domain.
    pub fn domid(&self) -> u32 {
        self.domid
    }

    fn path(&self, rel: &str) -> String {
        format!("/local/domain/{}/{rel}", self.domid)
    }

    /// Sends `{"name": name, "value": value}` and waits for the reply.
    pub fn call(&self, name: &str, value: Value, timeout: Duration) -> Result<AgentReply, HostError> {
        let mut request = serde_json::Map::new();
        request.insert("name".into(), Value::String(name.into()));
        request.insert("value".into(), value);
        self.call_raw(pyjson::dumps(&Value::Object(request)).as_bytes(), timeout)
    }

    /// Writes `request` as is and waits for the reply.
    pub fn call_raw(&self, request: &[u8], timeout: Duration) -> Result<AgentReply, HostError> {
        let id = uuid4()?;
        let host_node = self.path(&format!("data/host/{id}"));
        let guest_node = self.path(&format!("data/guest/{id}"));
        self.client.write(&host_node, request)?;
        let start = Instant::now();
        let mut rebooted = false;
        while start.elapsed() < timeout {
            if let Some(raw) = self.client.read(&guest_node).optional()? {
                self.record(&id, request, Some(&raw));
                return check_reply(&raw);
            }
            std::thread::sleep(self.poll);
            if !self.client.exists(&self.path("name"))? {
                rebooted = true;
                break;
            }
        }
        self.record(&id, request, None);
        self.client.rm(&host_node).optional()?;
        Err(if rebooted {
            HostError::Reboot(self.domid)
        } else {
            HostError::Timeout(timeout)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked_like_nova() {
        let ok = check_reply(b" {\"returncode\": \"0\", \"message\": \"1.0\"}\n").unwrap();
        assert_eq!((ok.returncode.as_str(), ok.message.as_str()), ("0", "1.0"));
        for bad in [
            &b"\"x\""[..],
            b"[1]",
            b"{\"returncode\": 0, \"message\": \"\"}",
            b"{\"returncode\": \"0\"}",
            b"nope",
        ] {
            assert!(
                matches!(check_reply(bad), Err(HostError::BadReply(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn uuids_are_version_4() {
        let u = uuid4().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, uuid4().unwrap());
    }
}
