//! The nova agent protocol, parsed at the edge: request bytes in, a typed
//! [`Command`] out; a [`Reply`] out as the one JSON shape nova accepts.
//! No I/O here.
//!
//! A request is `{"name": <string>, "value": <any>}`; a reply is
//! `{"returncode": <string>, "message": <string>}` (nova crashes on anything else).

pub mod inject;
pub mod update;

pub use inject::{Injection, InjectionError};
pub use update::{UpdateRequest, UpdateValueError};

use crate::crypto::dh::PeerKey;
use crate::secret::Secret;
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// Largest request accepted. XenStore values cannot exceed 4096 bytes; the
/// socket communicator enforces the same bound so both behave alike.
pub const MAX_REQUEST: usize = 4096;

/// A request the agent understands, with its value already validated.
#[derive(Debug)]
pub enum Command {
    /// `version`: report the agent version.
    Version,
    /// `features`: list the enabled commands.
    Features,
    /// `keyinit`: start a Diffie-Hellman exchange with the host's public key.
    KeyInit(PeerKey),
    /// `password`: set root's password from a ciphertext (base64, still
    /// encrypted; never printed).
    Password(Secret<String>),
    /// `injectfile` (base64 of `path,contents`) or `file_inject` (an object).
    InjectFile(Injection),
    /// `resetnetwork`: reconfigure networking from `vm-data`.
    ResetNetwork,
    /// `agentupdate`: replace the agent from a URL with an MD5 sum.
    AgentUpdate(UpdateRequest),
}

impl Command {
    /// The protocol name of the command (`injectfile` and `file_inject` both
    /// report the form that was used).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Version => "version",
            Command::Features => "features",
            Command::KeyInit(_) => "keyinit",
            Command::Password(_) => "password",
            Command::InjectFile(inj) => inj.form.name(),
            Command::ResetNetwork => "resetnetwork",
            Command::AgentUpdate(_) => "agentupdate",
        }
    }
}

/// Why a request could not be turned into a [`Command`].
#[derive(Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Larger than [`MAX_REQUEST`].
    TooLarge(usize),
    /// Not UTF-8 or not JSON.
    NotJson(String),
    /// Valid JSON, but not an object.
    NotObject,
    /// No `name` key.
    MissingName,
    /// `name` is not a string.
    NameNotString,
    /// A command nobody implements (or that this agent does not offer).
    Unknown(String),
    /// The `value` of a known command is unusable.
    BadValue {
        /// The command.
        name: &'static str,
        /// What is wrong with its value.
        why: String,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::TooLarge(_) => write!(f, "Request is malformed: larger than {MAX_REQUEST} bytes"),
            RequestError::NotJson(why) => write!(f, "Request is malformed: not valid JSON ({why})"),
            RequestError::NotObject => f.write_str("Request is malformed: not a JSON object"),
            RequestError::MissingName => f.write_str("Request is missing 'name' key"),
            RequestError::NameNotString => f.write_str("Request is malformed: 'name' is not a string"),
            RequestError::Unknown(name) => write!(f, "No such agent command '{name}'"),
            RequestError::BadValue { name, why } => write!(f, "Invalid value for '{name}': {why}"),
        }
    }
}

/// The command names this agent implements, in the order `features` lists
/// them (as UNIX's agent, `agentupdate` after `resetnetwork`).
pub const COMMAND_NAMES: [&str; 8] = [
    "version",
    "features",
    "keyinit",
    "password",
    "injectfile",
    "file_inject",
    "resetnetwork",
    "agentupdate",
];

/// Parses a raw request. The name is returned separately so that even a request
/// with a bad value can be logged and answered by name.
pub fn parse_request(raw: &[u8]) -> Result<Command, RequestError> {
    if raw.len() > MAX_REQUEST {
        return Err(RequestError::TooLarge(raw.len()));
    }
    let text = std::str::from_utf8(raw).map_err(|_| RequestError::NotJson("not UTF-8".into()))?;
    let json: Value = serde_json::from_str(text).map_err(|e| RequestError::NotJson(e.to_string()))?;
    let Value::Object(map) = json else {
        return Err(RequestError::NotObject);
    };
    let name = match map.get("name") {
        None => return Err(RequestError::MissingName),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(RequestError::NameNotString),
    };
    let value = map.get("value").unwrap_or(&Value::Null);
    let bad = |name: &'static str, why: String| RequestError::BadValue { name, why };
    match name {
        "version" => Ok(Command::Version),
        "features" => Ok(Command::Features),
        "keyinit" => {
            let text = string_value(value).ok_or_else(|| bad("keyinit", "expected a decimal string".into()))?;
            PeerKey::parse(&text)
                .map(Command::KeyInit)
                .map_err(|e| bad("keyinit", e.to_string()))
        }
        "password" => match value {
            Value::String(s) => Ok(Command::Password(Secret::new(s.clone()))),
            _ => Err(bad("password", "expected a base64 string".into())),
        },
        "injectfile" => Injection::from_injectfile(value)
            .map(Command::InjectFile)
            .map_err(|e| bad("injectfile", e.to_string())),
        "file_inject" => Injection::from_file_inject(value)
            .map(Command::InjectFile)
            .map_err(|e| bad("file_inject", e.to_string())),
        "resetnetwork" => Ok(Command::ResetNetwork),
        "agentupdate" => UpdateRequest::parse(value)
            .map(Command::AgentUpdate)
            .map_err(|e| bad("agentupdate", e.to_string())),
        other => Err(RequestError::Unknown(other.to_string())),
    }
}

/// A decimal public key may arrive as a JSON string (nova) or, from old
/// tooling, as a JSON integer.
fn string_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// The reply to one request: both fields are strings, always.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reply {
    /// `"0"` on success, `"D0"` for keyinit, `"404"`/`"500"` on failure.
    pub returncode: String,
    /// The result or the error text.
    pub message: String,
}

impl Reply {
    /// A reply with any code.
    pub fn new(returncode: &str, message: impl Into<String>) -> Reply {
        Reply {
            returncode: returncode.to_string(),
            message: message.into(),
        }
    }

    /// `"0"` with a message.
    pub fn ok(message: impl Into<String>) -> Reply {
        Reply::new("0", message)
    }

    /// `"500"` with an error text.
    pub fn error(message: impl Into<String>) -> Reply {
        Reply::new("500", message)
    }

    /// The JSON bytes written back to the host.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising two strings cannot fail; fall back to a fixed valid reply anyway.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"returncode":"500","message":"internal error"}"#.to_vec())
    }

    /// Whether the code means success for the host.
    pub fn is_success(&self) -> bool {
        matches!(self.returncode.as_str(), "0" | "D0")
    }
}

impl From<&RequestError> for Reply {
    fn from(err: &RequestError) -> Reply {
        match err {
            RequestError::Unknown(_) => Reply::new("404", err.to_string()),
            _ => Reply::error(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Command, RequestError> {
        parse_request(s.as_bytes())
    }

    /// The registry of functions and the parser agree: a command added to one
    /// and not the other fails here, not as a 404 or a 500 to nova.
    #[test]
    fn every_registered_command_is_parsed_and_every_parsed_command_registered() {
        use crate::functions::Function;
        let registered = Function::all_commands();
        for name in &registered {
            let err = parse(&format!(r#"{{"name": "{name}", "value": null}}"#)).err();
            assert!(
                !matches!(err, Some(RequestError::Unknown(_))),
                "{name} is registered but not parsed"
            );
        }
        for name in COMMAND_NAMES {
            assert!(
                registered.contains(&name),
                "{name} is offered but no function serves it"
            );
        }
        // Every registered command is offered.
        let hidden: Vec<&str> = registered.into_iter().filter(|c| !COMMAND_NAMES.contains(c)).collect();
        assert!(hidden.is_empty(), "{hidden:?}");
    }

    #[test]
    fn parses_nova_requests() {
        assert!(matches!(
            parse(r#"{"name": "version", "value": "agent"}"#),
            Ok(Command::Version)
        ));
        assert!(matches!(
            parse(r#"{"value": "", "name": "features"}"#),
            Ok(Command::Features)
        ));
        assert!(matches!(
            parse(r#"{"name": "keyinit", "value": "128492706489454800633959484585958"}"#),
            Ok(Command::KeyInit(_))
        ));
        assert!(matches!(
            parse(r#"{"name": "resetnetwork", "value": ""}"#),
            Ok(Command::ResetNetwork)
        ));
        assert!(matches!(
            parse(r#"{"name": "agentupdate", "value": "http://h/s,d41d8cd98f00b204e9800998ecf8427e"}"#),
            Ok(Command::AgentUpdate(_))
        ));
        assert_eq!(
            parse(r#"{"name": "agentupdate", "value": "http://h/s"}"#)
                .unwrap_err()
                .to_string(),
            "Invalid value for 'agentupdate': expected \"<url>,<md5 hex>\" (no comma)"
        );
    }

    #[test]
    fn debug_never_shows_a_ciphertext() {
        let cmd = parse(r#"{"name": "password", "value": "36SsrRz2csiT8ErOtKBNww=="}"#).unwrap();
        assert_eq!(format!("{cmd:?}"), "Password(***)");
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        assert!(matches!(parse("{"), Err(RequestError::NotJson(_))));
        assert_eq!(parse("[1]").unwrap_err(), RequestError::NotObject);
        assert_eq!(parse(r#"{"value": 1}"#).unwrap_err(), RequestError::MissingName);
        assert_eq!(parse(r#"{"name": 5}"#).unwrap_err(), RequestError::NameNotString);
        assert_eq!(
            parse(r#"{"name": "help"}"#).unwrap_err(),
            RequestError::Unknown("help".into())
        );
        let err = parse_request(b"\xff\xfe").unwrap_err();
        assert_eq!(err, RequestError::NotJson("not UTF-8".into()));
    }

    #[test]
    fn replies_are_string_objects() {
        let r = Reply::from(&RequestError::Unknown("x".into()));
        assert_eq!(
            String::from_utf8(r.to_json()).unwrap(),
            r#"{"returncode":"404","message":"No such agent command 'x'"}"#
        );
    }
}
