//! Answers one request: parse, check it is enabled, plan, apply, and map the
//! result to the reply nova expects. Whatever happens, the answer is a
//! [`Reply`] with string `returncode` and `message`; the handler never panics
//! the daemon and never logs a secret.

use crate::apply::{Applier, ApplyError};
use crate::communicator::Metadata;
use crate::configurators::{files, password};
use crate::crypto::cipher::{decrypt_password, CipherError};
use crate::crypto::dh::{KeyPair, SharedSecret};
use crate::crypto::hash::Scheme;
use crate::functions::{Function, Functions};
use crate::network::{self, NetworkRequest, Renderer};
use crate::plan::{Plan, Step};
use crate::protocol::{parse_request, Command, Reply, RequestError, COMMAND_NAMES};
use std::fmt;

/// The agent version: dotted numeric only, as nova compares it with LooseVersion.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the handler needs to know from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Enabled functions.
    pub functions: Functions,
    /// Path prefixes file injection may write under.
    pub inject_allowed: Vec<String>,
    /// Hash scheme for `/etc/shadow`.
    pub password_scheme: Scheme,
    /// Whether an empty root password may be set.
    pub password_allow_empty: bool,
    /// Network renderer override (`None`: chosen from the system).
    pub network_renderer: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            functions: Functions::all(),
            inject_allowed: vec!["/".to_string()],
            password_scheme: Scheme::Sha512,
            password_allow_empty: false,
            network_renderer: None,
        }
    }
}

/// The result of handling one request, for the reply and the log line.
#[derive(Debug)]
pub struct Handled {
    /// The command name, or `-` when the request had none.
    pub command: String,
    /// The reply to send.
    pub reply: Reply,
    /// Whether the system changed.
    pub changed: bool,
}

/// A host-chosen command name as it may appear in a log line: plain short
/// names as they are, anything else escaped and cut (a name may be 4 KiB of
/// anything, line breaks included).
fn log_label(name: &str) -> String {
    const MAX: usize = 32;
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.len() <= MAX && !name.is_empty() && name.chars().all(plain) {
        return name.to_string();
    }
    let cut: String = name.chars().take(MAX).collect();
    let more = if cut.len() < name.len() { "..." } else { "" };
    format!("{cut:?}{more}")
}

/// Why a command failed (mapped to `"500"` with this text).
enum Failure {
    NoKeyExchange,
    Cipher(CipherError),
    Plan(String),
    Apply(ApplyError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoKeyExchange => f.write_str("Password without key exchange"),
            Failure::Cipher(CipherError::Base64) => f.write_str("Couldn't decode base64 data"),
            Failure::Cipher(_) => f.write_str("Invalid password data received"),
            Failure::Plan(why) => f.write_str(why),
            Failure::Apply(e) => e.fmt(f),
        }
    }
}

/// The request handler and the little state the protocol needs between
/// requests: the shared secret from the last `keyinit`.
pub struct Agent {
    settings: Settings,
    applier: Applier,
    shared: Option<SharedSecret>,
}

impl Agent {
    /// An agent applying changes through `applier`.
    pub fn new(settings: Settings, applier: Applier) -> Agent {
        Agent {
            settings,
            applier,
            shared: None,
        }
    }

    /// Replaces the settings (configuration reload). The key exchange survives.
    pub fn reconfigure(&mut self, settings: Settings, applier: Applier) {
        self.settings = settings;
        self.applier = applier;
    }

    /// The commands `features` reports: implemented and enabled, in a fixed order.
    pub fn features(&self) -> String {
        COMMAND_NAMES
            .iter()
            .filter(|name| COMMAND_NAMES.contains(name) && self.settings.functions.allows_command(name))
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Handles one raw request; `metadata` is where `resetnetwork` reads vm-data.
    pub fn handle(&mut self, raw: &[u8], metadata: &mut dyn Metadata) -> Handled {
        let command = match parse_request(raw) {
            Ok(command) => command,
            Err(err) => {
                // A known command with a bad value is still refused if disabled.
                let (reply, label) = match &err {
                    RequestError::BadValue { name, .. } if self.disabled(name) => {
                        (disabled_reply(name), name.to_string())
                    }
                    RequestError::BadValue { name, .. } => (Reply::from(&err), name.to_string()),
                    RequestError::Unknown(name) => (Reply::from(&err), log_label(name)),
                    _ => (Reply::from(&err), "-".to_string()),
                };
                return Handled {
                    command: label,
                    reply,
                    changed: false,
                };
            }
        };
        let name = command.name().to_string();
        if self.disabled(&name) {
            return Handled {
                command: name,
                reply: disabled_reply(command.name()),
                changed: false,
            };
        }
        let (reply, changed) = match self.run(command, metadata) {
            Ok(done) => done,
            Err(failure) => (Reply::error(failure.to_string()), false),
        };
        Handled {
            command: name,
            reply,
            changed,
        }
    }

    fn disabled(&self, name: &str) -> bool {
        !(COMMAND_NAMES.contains(&name) && self.settings.functions.allows_command(name))
    }

    fn run(&mut self, command: Command, metadata: &mut dyn Metadata) -> Result<(Reply, bool), Failure> {
        match command {
            Command::Version => Ok((Reply::ok(VERSION), false)),
            Command::Features => Ok((Reply::ok(self.features()), false)),
            Command::KeyInit(peer) => {
                let pair = KeyPair::generate().map_err(|e| Failure::Plan(format!("cannot read random data: {e}")))?;
                let public = pair.public_key();
                // Replaces (and so wipes) any earlier secret.
                self.shared = Some(pair.shared_secret(peer));
                Ok((Reply::new("D0", public.to_string()), false))
            }
            Command::Password(ciphertext) => {
                // One password per key exchange: the secret is wiped whatever happens.
                let shared = self.shared.take().ok_or(Failure::NoKeyExchange)?;
                let (plain, _digest) = decrypt_password(&shared, ciphertext.expose()).map_err(Failure::Cipher)?;
                drop(shared);
                let plan = password::plan(
                    &plain,
                    self.settings.password_scheme,
                    self.settings.password_allow_empty,
                )
                .map_err(|e| Failure::Plan(e.to_string()))?;
                let outcome = self.applier.apply(&plan).map_err(Failure::Apply)?;
                Ok((Reply::ok(""), outcome.changed))
            }
            Command::InjectFile(injection) => {
                let plan =
                    files::plan(&injection, &self.settings.inject_allowed).map_err(|e| Failure::Plan(e.to_string()))?;
                let outcome = self.applier.apply(&plan).map_err(Failure::Apply)?;
                Ok((Reply::ok(""), outcome.changed))
            }
            Command::ResetNetwork => self.reset_network(metadata),
            // Not in COMMAND_NAMES: `disabled` answered it already.
            Command::AgentUpdate => Err(Failure::Plan("not implemented".into())),
        }
    }
}

impl Agent {
    /// `resetnetwork`: read vm-data, plan every enabled network function, and
    /// apply it all as one change (rolled back if the bring-up fails). The
    /// reply message carries the notes (e.g. entries with no local NIC).
    fn reset_network(&mut self, metadata: &mut dyn Metadata) -> Result<(Reply, bool), Failure> {
        let request = NetworkRequest {
            entries: metadata.networking().map_err(|e| Failure::Plan(e.to_string()))?,
            hostname: metadata.hostname().map_err(|e| Failure::Plan(e.to_string()))?,
        };
        let renderer = match &self.settings.network_renderer {
            Some(name) => Some(name.parse::<Renderer>().map_err(Failure::Plan)?),
            None => None,
        };
        let outcome = network::plan(&request, self.applier.root(), &self.settings.functions, renderer)
            .map_err(|e| Failure::Plan(e.to_string()))?;
        log::info!("resetnetwork: {} configuration ({})", outcome.renderer, outcome.why);
        let mut plans = outcome.plans;
        if !outcome.bringup.is_empty() {
            plans.push(Plan {
                function: Function::Network,
                steps: outcome.bringup.into_iter().map(Step::Run).collect(),
            });
        }
        let applied = self.applier.apply_all(&plans).map_err(Failure::Apply)?;
        Ok((Reply::ok(outcome.report.join("; ")), applied.changed))
    }
}

fn disabled_reply(name: &str) -> Reply {
    Reply::new("404", format!("No such agent command '{name}'"))
}

#[cfg(test)]
mod tests {
    use super::log_label;

    #[test]
    fn unknown_command_names_are_logged_on_one_short_line() {
        assert_eq!(log_label("kmsactivate"), "kmsactivate");
        assert_eq!(
            log_label("x\nFAKE: root password set"),
            "\"x\\nFAKE: root password set\""
        );
        let long = log_label(&"a".repeat(4000));
        assert_eq!(long, format!("\"{}\"...", "a".repeat(32)));
        assert_eq!(log_label(""), "\"\"");
    }
}
