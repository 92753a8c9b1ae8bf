//! The functions an operator can enable (`functions = ...`, `-F`), and which
//! protocol commands each one answers. [`Function`] is the one registry of
//! the built-in functions: `functions` parsing, `features`, `apply`'s
//! actions, the configuration documentation and the error messages all come
//! from it. External configurators add functions of their own by name.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// One manageable function, named as in the configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Function {
    /// Network interface configuration (`resetnetwork`).
    Network,
    /// `/etc/hosts` (`resetnetwork`).
    Hosts,
    /// The hostname (`resetnetwork`).
    Hostname,
    /// `resolv.conf` (`resetnetwork`).
    Resolvers,
    /// Root's password (`keyinit`, `password`).
    Password,
    /// File injection (`injectfile`, `file_inject`).
    File,
    /// Agent self-update (`agentupdate`).
    Update,
    /// `version`.
    Version,
    /// `features`.
    Features,
    /// Guest metrics in XenStore for the toolstack (no command; the xen
    /// communicator only).
    Metrics,
    /// Filesystems (the qga communicator): freeze and thaw, trim, and what is
    /// mounted on which disk.
    Filesystems,
    /// The clock and the time zone (the qga communicator).
    Time,
    /// Shutdown and reboot on the host's request (the qga communicator).
    Power,
    /// Virtual CPUs on- and offline (the qga communicator).
    Vcpus,
    /// What the guest runs and who is logged in (the qga communicator).
    Guestinfo,
}

impl Function {
    /// Every function, in the documented order.
    pub const ALL: [Function; 15] = [
        Function::Network,
        Function::Hosts,
        Function::Hostname,
        Function::Resolvers,
        Function::Password,
        Function::File,
        Function::Update,
        Function::Version,
        Function::Features,
        Function::Metrics,
        Function::Filesystems,
        Function::Time,
        Function::Power,
        Function::Vcpus,
        Function::Guestinfo,
    ];

    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Function::Network => "network",
            Function::Hosts => "hosts",
            Function::Hostname => "hostname",
            Function::Resolvers => "resolvers",
            Function::Password => "password",
            Function::File => "file",
            Function::Update => "update",
            Function::Version => "version",
            Function::Features => "features",
            Function::Metrics => "metrics",
            Function::Filesystems => "filesystems",
            Function::Time => "time",
            Function::Power => "power",
            Function::Vcpus => "vcpus",
            Function::Guestinfo => "guestinfo",
        }
    }

    /// The nova protocol commands this function answers (the QEMU guest
    /// agent's commands name their function in `qga::commands::COMMANDS`).
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Function::Network | Function::Hosts | Function::Hostname | Function::Resolvers => &["resetnetwork"],
            Function::Password => &["keyinit", "password"],
            Function::File => &["injectfile", "file_inject"],
            Function::Update => &["agentupdate"],
            Function::Version => &["version"],
            Function::Features => &["features"],
            Function::Metrics
            | Function::Filesystems
            | Function::Time
            | Function::Power
            | Function::Vcpus
            | Function::Guestinfo => &[],
        }
    }
}

impl Function {
    /// Whether the function writes files (that `apply` can write again):
    /// the others only answer, or change kernel state.
    pub fn writes_files(self) -> bool {
        !matches!(
            self,
            Function::Version
                | Function::Features
                | Function::Metrics
                | Function::Filesystems
                | Function::Time
                | Function::Power
                | Function::Vcpus
                | Function::Guestinfo
        )
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A function name or list that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FunctionError {
    /// Not a built-in function's name.
    #[error("unknown function '{0}' (expected one of {names})", names = Function::names())]
    Unknown(String),
    /// Not a built-in function's name, nor `all`, in a list of built-in ones.
    #[error("unknown function '{0}' (expected one of {names}, or all)", names = Function::names())]
    NotBuiltin(String),
    /// Neither a built-in function's name, nor `all`, nor a well-formed
    /// external function's name.
    #[error(
        "bad function name '{0}' (expected one of {names}, or all, or an external configurator's \
         function: letters, digits, '_' and '-')",
        names = Function::names()
    )]
    BadName(String),
}

impl FromStr for Function {
    type Err = FunctionError;

    fn from_str(s: &str) -> Result<Function, FunctionError> {
        Function::named(s).ok_or_else(|| FunctionError::Unknown(s.to_string()))
    }
}

impl Function {
    /// The built-in function named `name`.
    pub fn named(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Every protocol command a built-in function answers, once each, in the
    /// order `features` lists them.
    pub fn all_commands() -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for f in Function::ALL {
            for c in f.commands() {
                if !out.contains(c) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The built-in function names, comma-separated, in the documented order.
    pub fn names() -> String {
        Function::ALL.map(Function::name).join(", ")
    }
}

/// Whether `name` can name a function or a command: ASCII letters, digits,
/// `_` and `-`, 1 to 64 of them.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A set of enabled functions: built-in ones, and names that external
/// configurators declare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Functions {
    builtin: BTreeSet<Function>,
    external: BTreeSet<String>,
    /// `all`: every function, whatever external configurators declare.
    every: bool,
}

impl Functions {
    /// Every function enabled.
    pub fn all() -> Functions {
        Functions {
            builtin: Function::ALL.into_iter().collect(),
            external: BTreeSet::new(),
            every: true,
        }
    }

    /// Parses a comma-separated list of built-in names (`all` enables
    /// everything). Empty items and surrounding spaces are ignored.
    pub fn parse(list: &str) -> Result<Functions, FunctionError> {
        let f = Functions::parse_with_external(list)?;
        match f.external.iter().next() {
            Some(name) => Err(FunctionError::NotBuiltin(name.clone())),
            None => Ok(f),
        }
    }

    /// Like [`Functions::parse`], also accepting any other well-formed name as
    /// an external configurator's function ([`Functions::undeclared`] tells
    /// which no configurator declares).
    pub fn parse_with_external(list: &str) -> Result<Functions, FunctionError> {
        let mut out = Functions {
            builtin: BTreeSet::new(),
            external: BTreeSet::new(),
            every: false,
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "all" {
                out.builtin.extend(Function::ALL);
                out.every = true;
            } else if let Some(f) = Function::named(item) {
                out.builtin.insert(f);
            } else if valid_name(item) {
                out.external.insert(item.to_string());
            } else {
                return Err(FunctionError::BadName(item.to_string()));
            }
        }
        Ok(out)
    }

    /// The names given for external functions that no configurator in
    /// `declared` serves (a typo, or a configurator that is gone).
    pub fn undeclared(&self, declared: &[&str]) -> Vec<String> {
        self.external
            .iter()
            .filter(|n| !declared.contains(&n.as_str()))
            .cloned()
            .collect()
    }

    /// Whether the built-in `f` is enabled.
    pub fn contains(&self, f: Function) -> bool {
        self.builtin.contains(&f)
    }

    /// Whether the function called `name` (built-in or external) is enabled.
    pub fn enables(&self, name: &str) -> bool {
        match Function::named(name) {
            Some(f) => self.contains(f),
            None => self.every || self.external.contains(name),
        }
    }

    /// Whether any enabled built-in function answers the protocol command `name`.
    pub fn allows_command(&self, name: &str) -> bool {
        self.builtin.iter().any(|f| f.commands().contains(&name))
    }

    /// The enabled built-in functions.
    pub fn iter(&self) -> impl Iterator<Item = Function> + '_ {
        self.builtin.iter().copied()
    }
}

impl fmt::Display for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep the documented order, not the enum's sort order.
        let mut names: Vec<&str> = Function::ALL
            .into_iter()
            .filter(|x| self.contains(*x))
            .map(Function::name)
            .collect();
        names.extend(self.external.iter().map(String::as_str));
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_maps_commands() {
        let f = Functions::parse("password, version,features").unwrap();
        assert!(f.allows_command("keyinit") && f.allows_command("password"));
        assert!(!f.allows_command("injectfile"));
        assert_eq!(f.to_string(), "password,version,features");
        assert_eq!(Functions::parse("all").unwrap(), Functions::all());
        assert_eq!(
            Functions::parse("network,bogus").unwrap_err(),
            FunctionError::NotBuiltin("bogus".into())
        );
        let net = Functions::parse("hosts").unwrap();
        assert!(net.allows_command("resetnetwork"));
    }

    #[test]
    fn external_names_are_accepted_and_the_undeclared_ones_told() {
        let f = Functions::parse_with_external("password,kms,kms2").unwrap();
        assert!(f.enables("kms") && f.enables("password") && !f.enables("network"));
        assert!(!f.enables("other"));
        assert_eq!(f.to_string(), "password,kms,kms2");
        assert_eq!(f.undeclared(&["kms"]), ["kms2"]);
        let err = Functions::parse_with_external("kms/2").unwrap_err();
        assert_eq!(err, FunctionError::BadName("kms/2".into()));
        let text = err.to_string();
        assert!(text.contains("'kms/2'") && text.contains("network"), "{text}");
        // `all` enables external functions too, declared now or later.
        assert!(Functions::all().enables("anything"));
        assert!(Functions::parse("all").unwrap().enables("kms"));
    }

    #[test]
    fn every_command_is_listed_once() {
        let all = Function::all_commands();
        assert_eq!(all.len(), 8, "{all:?}");
        for c in [
            "resetnetwork",
            "keyinit",
            "password",
            "injectfile",
            "file_inject",
            "agentupdate",
            "version",
            "features",
        ] {
            assert!(all.contains(&c), "{c}");
        }
        assert!(valid_name("kms-activate_2") && !valid_name("a/b") && !valid_name("") && !valid_name(&"a".repeat(65)));
    }
}
