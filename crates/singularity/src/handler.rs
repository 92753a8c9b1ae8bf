//! Answers one request: parse, check it is enabled, plan, apply, and map the
//! result to the reply nova expects. Whatever happens, the answer is a
//! [`Reply`] with string `returncode` and `message`; the handler never panics
//! the daemon and never logs a secret.

use crate::apply::{Applier, ApplyError};
use crate::communicator::Metadata;
use crate::configurators::builtin::{self, Session};
use crate::configurators::external::External;
use crate::configurators::files;
use crate::configurators::password::PasswordSettings;
use crate::crypto::cipher::CipherError;
use crate::crypto::dh::SharedSecret;
use crate::functions::{Function, Functions};
use crate::network::{self, NetworkRequest, NetworkSettings, NetworkSpec};
use crate::plan::Plan;
use crate::protocol::{parse_request, Command, Reply, RequestError, COMMAND_NAMES};
use crate::root::Root;
use crate::update;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The agent version: dotted numeric only, as nova compares it with LooseVersion.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the handler needs to know from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Enabled functions.
    pub functions: Functions,
    /// `[file]`: where injected files may go, and their modes.
    pub file: files::FileSettings,
    /// `[password]`.
    pub password: PasswordSettings,
    /// The network configurator's settings.
    pub network: NetworkSettings,
    /// External configurators.
    pub externals: Vec<External>,
    /// How long one external configurator may take.
    pub configurator_timeout: Duration,
    /// `agentupdate`'s settings.
    pub update: update::UpdateSettings,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            functions: Functions::all(),
            file: files::FileSettings::default(),
            password: PasswordSettings::default(),
            network: NetworkSettings::default(),
            externals: Vec::new(),
            configurator_timeout: Duration::from_secs(30),
            update: update::UpdateSettings::default(),
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
pub enum Failure {
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
    /// The build an update installed on the live root, to re-execute once
    /// the reply is sent: (target, previous).
    restart: Option<(PathBuf, PathBuf)>,
    /// Whether the last command changed something outside the plans (an
    /// update installed a build).
    changed_outside: bool,
}

impl Agent {
    /// An agent applying changes through `applier`.
    pub fn new(settings: Settings, applier: Applier) -> Agent {
        Agent {
            settings,
            applier,
            shared: None,
            restart: None,
            changed_outside: false,
        }
    }

    /// The build to re-execute now that the reply to `agentupdate` is sent:
    /// (target, previous).
    pub fn take_restart(&mut self) -> Option<(PathBuf, PathBuf)> {
        self.restart.take()
    }

    /// Replaces the settings (configuration reload). The key exchange survives.
    pub fn reconfigure(&mut self, settings: Settings, applier: Applier) {
        self.settings = settings;
        self.applier = applier;
    }

    /// The commands `features` reports: the enabled built-in ones in a fixed
    /// order, then those only enabled external configurators serve, in the
    /// order they were found.
    pub fn features(&self) -> String {
        features_of(&self.settings, self.applier.root())
    }

    /// Handles one raw request; `metadata` is where `resetnetwork` reads vm-data.
    ///
    /// A command served by a built-in configurator and by external ones is
    /// one change: every plan is applied together, or none is.
    pub fn handle(&mut self, raw: &[u8], metadata: &mut dyn Metadata) -> Handled {
        let parsed = parse_request(raw);
        let name = match &parsed {
            Ok(command) => Some(command.name().to_string()),
            Err(RequestError::Unknown(name)) => Some(name.clone()),
            Err(RequestError::BadValue { name, .. }) => Some(name.to_string()),
            Err(_) => None,
        };
        let externals: Vec<External> = match &name {
            Some(n) => self.externals_for(n),
            None => Vec::new(),
        };
        let done = |command: String, reply: Reply| Handled {
            command,
            reply,
            changed: false,
        };
        let builtin = match parsed {
            Ok(command) if !self.disabled(command.name()) => Some(command),
            Err(RequestError::BadValue { name, why }) if !self.disabled(name) => {
                return done(name.to_string(), Reply::from(&RequestError::BadValue { name, why }));
            }
            Ok(_) | Err(RequestError::Unknown(_) | RequestError::BadValue { .. }) if !externals.is_empty() => None,
            Ok(command) => return done(command.name().to_string(), disabled_reply(command.name())),
            // A known command with a bad value is still refused if disabled.
            Err(RequestError::BadValue { name, .. }) => return done(name.to_string(), disabled_reply(name)),
            Err(err @ RequestError::Unknown(_)) => {
                let label = name.as_deref().map_or_else(|| "-".to_string(), log_label);
                return done(label, Reply::from(&err));
            }
            Err(err) => return done("-".to_string(), Reply::from(&err)),
        };
        let name = name.unwrap_or_default();
        let label = log_label(&name);
        match self.run_all(&name, builtin, &externals, raw, metadata) {
            Ok((reply, changed)) => Handled {
                command: label,
                reply,
                changed,
            },
            Err(failure) => done(label, Reply::error(failure.to_string())),
        }
    }

    fn disabled(&self, name: &str) -> bool {
        !(COMMAND_NAMES.contains(&name) && self.settings.functions.allows_command(name))
    }

    /// The enabled external configurators that serve `command`.
    fn externals_for(&self, command: &str) -> Vec<External> {
        self.settings
            .externals
            .iter()
            .filter(|e| e.serves(command) && self.settings.functions.enables(&e.function))
            .cloned()
            .collect()
    }

    /// Plans the built-in command (if enabled) and runs the external
    /// configurators of `name`, then applies every plan as one change.
    fn run_all(
        &mut self,
        name: &str,
        builtin: Option<Command>,
        externals: &[External],
        raw: &[u8],
        metadata: &mut dyn Metadata,
    ) -> Result<(Reply, bool), Failure> {
        let networked = name == "resetnetwork" || externals.iter().any(|e| is_network_function(&e.function));
        // vm-data is read and parsed once, for the built-in plan and every
        // external configurator.
        let vmdata = if networked && (matches!(builtin, Some(Command::ResetNetwork)) || !externals.is_empty()) {
            let request = NetworkRequest {
                entries: metadata.networking().map_err(|e| Failure::Plan(e.to_string()))?,
                hostname: metadata.hostname().map_err(|e| Failure::Plan(e.to_string()))?,
            };
            Some(request.parse().map_err(|e| Failure::Plan(e.to_string()))?)
        } else {
            None
        };
        let mut replies = Vec::new();
        let mut plans = Vec::new();
        self.changed_outside = false;
        if let Some(command) = builtin {
            let (reply, planned) = self.plan(command, vmdata.as_ref())?;
            replies.push(reply);
            plans.extend(planned);
        }
        if !externals.is_empty() {
            let value = serde_json::from_slice::<serde_json::Value>(raw)
                .ok()
                .and_then(|v| v.get("value").cloned())
                .unwrap_or(serde_json::Value::Null);
            let configuration = match &vmdata {
                Some(spec) => network::configuration(spec),
                None => serde_json::json!({}),
            };
            for ext in externals {
                let (reply, plan) = ext
                    .run(
                        name,
                        &value,
                        configuration.clone(),
                        self.applier.root().base(),
                        self.settings.configurator_timeout,
                        &self.settings.file.allowed,
                    )
                    .map_err(|e| Failure::Plan(e.to_string()))?;
                // A configurator that answers failure vetoes the whole change:
                // nothing of any plan is applied, and its reply is the answer.
                if reply.returncode != "0" {
                    return Ok((reply, false));
                }
                replies.push(reply);
                plans.push(plan);
            }
        }
        let changed = if plans.iter().any(|p| !p.steps.is_empty()) {
            self.applier.apply_all(&plans).map_err(Failure::Apply)?.changed
        } else {
            false
        };
        Ok((combine(replies), changed || self.changed_outside))
    }

    /// The reply and the plans of a built-in command; nothing is applied.
    fn plan(&mut self, command: Command, vmdata: Option<&NetworkSpec>) -> Result<(Reply, Vec<Plan>), Failure> {
        let configurator = builtin::for_command(command.name())
            .ok_or_else(|| Failure::Plan(format!("no built-in configurator answers {}", command.name())))?;
        let mut session = Session {
            settings: &self.settings,
            root: self.applier.root(),
            vmdata,
            shared: &mut self.shared,
            restart: &mut self.restart,
            changed_outside: &mut self.changed_outside,
        };
        configurator.plan(command, &mut session)
    }
}

/// The commands `features` lists: the enabled built-in ones whose
/// configurator can run here, then the enabled external configurators'.
pub fn features_of(settings: &Settings, root: &Root) -> String {
    let mut names: Vec<&str> = COMMAND_NAMES
        .iter()
        .filter(|name| settings.functions.allows_command(name))
        .filter(|name| builtin::for_command(name).is_none_or(|c| c.available(root)))
        .copied()
        .collect();
    for ext in &settings.externals {
        if settings.functions.enables(&ext.function) {
            for command in &ext.commands {
                if !names.contains(&command.as_str()) {
                    names.push(command);
                }
            }
        }
    }
    names.join(",")
}

/// Whether an external configurator's function takes the parsed vm-data.
fn is_network_function(function: &str) -> bool {
    matches!(
        Function::named(function),
        Some(Function::Network | Function::Hosts | Function::Hostname | Function::Resolvers)
    )
}

/// One reply for a command several configurators served (every external one
/// answered `"0"`): the built-in reply if it is not `"0"`, else `"0"` with
/// their messages.
fn combine(mut replies: Vec<Reply>) -> Reply {
    if replies.len() == 1 {
        return replies.remove(0);
    }
    if let Some(bad) = replies.iter().find(|r| r.returncode != "0") {
        return bad.clone();
    }
    let messages: Vec<&str> = replies
        .iter()
        .map(|r| r.message.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    Reply::ok(messages.join("; "))
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
