//! The built-in configurators: one per function that answers nova's
//! commands, each turning a parsed command into a reply and plans (data;
//! nothing is applied here). [`BUILT_IN`] is the registry the handler
//! dispatches through; the functions' names and commands come from
//! [`Function`], and a test fails when a command has no configurator or two.

use crate::configurators::{files, password};
use crate::crypto::cipher::decrypt_password;
use crate::crypto::dh::{KeyPair, SharedSecret};
use crate::functions::Function;
use crate::handler::{features_of, Failure, Settings, VERSION};
use crate::network::{self, NetworkSpec, Renderer};
use crate::plan::{Plan, Step};
use crate::protocol::{Command, Reply};
use crate::root::Root;
use crate::update;
use std::path::PathBuf;

/// What one request's planning may read and the little state the protocol
/// keeps between requests.
pub struct Session<'a> {
    /// The handler's settings.
    pub settings: &'a Settings,
    /// The managed system (read only).
    pub root: &'a Root,
    /// vm-data, parsed once at the edge (`resetnetwork`).
    pub vmdata: Option<&'a NetworkSpec>,
    /// The secret of the last `keyinit`, which `password` uses up.
    pub shared: &'a mut Option<SharedSecret>,
    /// The build `agentupdate` installed on the live root, to re-execute
    /// once the reply is sent: (target, previous).
    pub restart: &'a mut Option<(PathBuf, PathBuf)>,
    /// Set when a command changed the system outside its plans (an update).
    pub changed_outside: &'a mut bool,
}

/// A built-in configurator.
pub trait Configurator: Sync {
    /// The function that enables it (`functions`, `-F`).
    fn function(&self) -> Function;
    /// The commands it answers: its function's.
    fn commands(&self) -> &'static [&'static str] {
        self.function().commands()
    }
    /// Whether it can run on this system; `features` leaves it out if not.
    fn available(&self, _root: &Root) -> bool {
        true
    }
    /// The reply to `command` and the plans that carry it out.
    fn plan(&self, command: Command, session: &mut Session<'_>) -> Result<(Reply, Vec<Plan>), Failure>;
}

/// Every built-in configurator.
pub static BUILT_IN: &[&dyn Configurator] = &[&Version, &Features, &Password, &Files, &Network, &Update];

/// The configurator that answers `name`, if any.
pub fn for_command(name: &str) -> Option<&'static dyn Configurator> {
    BUILT_IN.iter().copied().find(|c| c.commands().contains(&name))
}

/// `version`.
struct Version;

impl Configurator for Version {
    fn function(&self) -> Function {
        Function::Version
    }
    fn plan(&self, _: Command, _: &mut Session<'_>) -> Result<(Reply, Vec<Plan>), Failure> {
        Ok((Reply::ok(VERSION), Vec::new()))
    }
}

/// `features`.
struct Features;

impl Configurator for Features {
    fn function(&self) -> Function {
        Function::Features
    }
    fn plan(&self, _: Command, session: &mut Session<'_>) -> Result<(Reply, Vec<Plan>), Failure> {
        Ok((Reply::ok(features_of(session.settings, session.root)), Vec::new()))
    }
}

/// `keyinit` and `password`: root's password through a Diffie-Hellman
/// exchange.
struct Password;

impl Configurator for Password {
    fn function(&self) -> Function {
        Function::Password
    }
    fn plan(&self, command: Command, session: &mut Session<'_>) -> Result<(Reply, Vec<Plan>), Failure> {
        match command {
            Command::KeyInit(peer) => {
                let pair = KeyPair::generate().map_err(|e| Failure::Plan(format!("cannot read random data: {e}")))?;
                let public = pair.public_key();
                // Replaces (and so wipes) any earlier secret.
                *session.shared = Some(pair.shared_secret(peer));
                Ok((Reply::new("D0", public.to_string()), Vec::new()))
            }
            Command::Password(ciphertext) => {
                // One password per key exchange: the secret is wiped whatever happens.
                let shared = session.shared.take().ok_or(Failure::NoKeyExchange)?;
                let (plain, _digest) = decrypt_password(&shared, ciphertext.expose()).map_err(Failure::Cipher)?;
                drop(shared);
                let s = session.settings;
                let plan = password::plan(password::USER, &plain, s.password.scheme, s.password.allow_empty)
                    .map_err(|e| Failure::Plan(e.to_string()))?;
                Ok((Reply::ok(""), vec![plan]))
            }
            other => Err(unserved(&other)),
        }
    }
}

/// `injectfile` and `file_inject`.
struct Files;

impl Configurator for Files {
    fn function(&self) -> Function {
        Function::File
    }
    fn plan(&self, command: Command, session: &mut Session<'_>) -> Result<(Reply, Vec<Plan>), Failure> {
        let Command::InjectFile(injection) = command else {
            return Err(unserved(&command));
        };
        let s = session.settings;
        let plan = files::plan(&injection, &s.file.allowed, s.file.modes).map_err(|e| Failure::Plan(e.to_string()))?;
        Ok((Reply::ok(""), vec![plan]))
    }
}

/// `resetnetwork`: every enabled network function (network, hosts,
/// hostname, resolvers) planned from vm-data, and the bring-up, as one
/// change (rolled back if the bring-up fails). The reply message carries the
/// notes (e.g. entries with no local NIC).
struct Network;

impl Configurator for Network {
    fn function(&self) -> Function {
        Function::Network
    }
    fn plan(&self, command: Command, session: &mut Session<'_>) -> Result<(Reply, Vec<Plan>), Failure> {
        if !matches!(command, Command::ResetNetwork) {
            return Err(unserved(&command));
        }
        let empty = NetworkSpec {
            nics: Vec::new(),
            hostname: None,
        };
        let spec = session.vmdata.unwrap_or(&empty);
        let s = session.settings;
        let renderer = match &s.network.renderer {
            Some(name) => Some(name.parse::<Renderer>().map_err(|e| Failure::Plan(e.to_string()))?),
            None => None,
        };
        let outcome =
            network::plan_spec(spec, session.root, &s.functions, renderer).map_err(|e| Failure::Plan(e.to_string()))?;
        log::info!("resetnetwork: {} configuration ({})", outcome.renderer, outcome.why);
        let mut plans = outcome.plans;
        if !outcome.bringup.is_empty() {
            plans.push(Plan {
                function: Function::Network.into(),
                steps: outcome.bringup.into_iter().map(Step::Run).collect(),
            });
        }
        Ok((Reply::ok(outcome.report.join("; ")), plans))
    }
}

/// `agentupdate`: installs the build (see `update`); on the live root the
/// daemon re-executes it once this reply is sent.
struct Update;

impl Configurator for Update {
    fn function(&self) -> Function {
        Function::Update
    }
    fn plan(&self, command: Command, session: &mut Session<'_>) -> Result<(Reply, Vec<Plan>), Failure> {
        let Command::AgentUpdate(request) = command else {
            return Err(unserved(&command));
        };
        let root = session.root;
        log::info!(
            "agentupdate: fetching {} (md5 {})",
            crate::protocol::update::shown_url(&request.url),
            request.md5_hex()
        );
        match update::run(&request, &session.settings.update, root, VERSION) {
            Ok(update::Outcome::Current(version)) => Ok((
                Reply::ok(format!("version {version} is already running; nothing changed")),
                Vec::new(),
            )),
            Ok(update::Outcome::Installed {
                version,
                target,
                previous,
            }) => {
                *session.changed_outside = true;
                log::info!(
                    "agentupdate: installed version {version} at {} (previous build kept as {})",
                    target.display(),
                    previous.display()
                );
                if root.is_live() {
                    *session.restart = Some((target, previous));
                    Ok((Reply::ok(format!("updated to {version}; restarting")), Vec::new()))
                } else {
                    let message = format!(
                        "installed {version} at {}; not restarted (not the live root)",
                        target.display()
                    );
                    Ok((Reply::ok(message), Vec::new()))
                }
            }
            Err(e) => Err(Failure::Plan(e.to_string())),
        }
    }
}

/// A command handed to a configurator that does not answer it (the
/// registry's lookup prevents it).
fn unserved(command: &Command) -> Failure {
    Failure::Plan(format!("no built-in configurator answers {}", command.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::COMMAND_NAMES;

    #[test]
    fn every_command_has_exactly_one_configurator_of_its_function() {
        for name in COMMAND_NAMES {
            let serving: Vec<Function> = BUILT_IN
                .iter()
                .filter(|c| c.commands().contains(&name))
                .map(|c| c.function())
                .collect();
            assert_eq!(serving.len(), 1, "{name}: {serving:?}");
        }
        for function in Function::ALL {
            for name in function.commands() {
                assert!(for_command(name).is_some(), "{function}'s {name} has no configurator");
            }
        }
        for c in BUILT_IN {
            for name in c.commands() {
                assert!(COMMAND_NAMES.contains(name), "{name} is not a protocol command");
            }
        }
    }
}
