//! The functions an operator can enable (`functions = ...`, `-F`), and which
//! protocol commands each one answers.

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
}

impl Function {
    /// Every function, in the documented order.
    pub const ALL: [Function; 9] = [
        Function::Network,
        Function::Hosts,
        Function::Hostname,
        Function::Resolvers,
        Function::Password,
        Function::File,
        Function::Update,
        Function::Version,
        Function::Features,
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
        }
    }

    /// The protocol commands this function answers.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Function::Network | Function::Hosts | Function::Hostname | Function::Resolvers => &["resetnetwork"],
            Function::Password => &["keyinit", "password"],
            Function::File => &["injectfile", "file_inject"],
            Function::Update => &["agentupdate"],
            Function::Version => &["version"],
            Function::Features => &["features"],
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Function {
    type Err = String;

    fn from_str(s: &str) -> Result<Function, String> {
        Function::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown function '{s}' (expected one of {})", Functions::all()))
    }
}

/// A set of enabled functions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Functions(BTreeSet<Function>);

impl Functions {
    /// Every function enabled.
    pub fn all() -> Functions {
        Functions(Function::ALL.into_iter().collect())
    }

    /// Parses a comma-separated list (`all` enables everything). Empty items and
    /// surrounding spaces are ignored.
    pub fn parse(list: &str) -> Result<Functions, String> {
        let mut set = BTreeSet::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "all" {
                set.extend(Function::ALL);
            } else {
                set.insert(item.parse()?);
            }
        }
        Ok(Functions(set))
    }

    /// Whether `f` is enabled.
    pub fn contains(&self, f: Function) -> bool {
        self.0.contains(&f)
    }

    /// Whether any enabled function answers the protocol command `name`.
    pub fn allows_command(&self, name: &str) -> bool {
        self.0.iter().any(|f| f.commands().contains(&name))
    }

    /// The enabled functions.
    pub fn iter(&self) -> impl Iterator<Item = Function> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep the documented order, not the enum's sort order.
        let names: Vec<&str> = Function::ALL
            .into_iter()
            .filter(|x| self.contains(*x))
            .map(Function::name)
            .collect();
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
        assert!(Functions::parse("network,bogus").unwrap_err().contains("bogus"));
        let net = Functions::parse("hosts").unwrap();
        assert!(net.allows_command("resetnetwork"));
    }
}
