//! A plan is what a configurator wants done, as data: files to write, the root
//! password to set, commands to run. Nothing here touches the system; the
//! applier ([`crate::apply`]) carries a plan out.

use crate::functions::Function;
use crate::secret::Secret;
use std::borrow::Cow;
use std::fmt;
use zeroize::Zeroizing;

/// A file to write atomically. `Debug` shows the size, not the contents
/// (an injected file may be a private key).
#[derive(Clone, PartialEq, Eq)]
pub struct FileWrite {
    /// Absolute path on the managed system.
    pub path: String,
    /// The new contents (wiped from memory when dropped: it may be a key).
    pub contents: Zeroizing<Vec<u8>>,
    /// Mode for a new file (an existing file keeps its own).
    pub mode: u32,
    /// Ancestor directories with the mode each gets if it must be created,
    /// outermost first.
    pub dirs: Vec<(String, u32)>,
    /// When not empty, the file must lie at or below one of these paths once
    /// every symbolic link on its way is resolved (checked by the applier).
    pub within: Vec<String>,
    /// The user and group that own the file, new or replaced, and each
    /// directory created for it (a user's `~/.ssh/authorized_keys`). `None`:
    /// an existing file keeps its owner, new ones are root's.
    pub owner: Option<(u32, u32)>,
}

impl FileWrite {
    /// A file whose missing parents are created 0755.
    pub fn new(path: &str, contents: impl Into<Zeroizing<Vec<u8>>>, mode: u32) -> FileWrite {
        let dirs = ancestors(path).into_iter().map(|d| (d, 0o755)).collect();
        FileWrite {
            path: path.to_string(),
            contents: contents.into(),
            mode,
            dirs,
            within: Vec::new(),
            owner: None,
        }
    }
}

impl fmt::Debug for FileWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileWrite")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .field("dirs", &self.dirs)
            .field("within", &self.within)
            .field("owner", &self.owner)
            .finish()
    }
}

/// The ancestors of an absolute path, outermost first, without `/` itself.
pub fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut end = 0;
    while let Some(i) = path[end + 1..].find('/') {
        end += 1 + i;
        out.push(path[..end].to_string());
    }
    out
}

/// A program to run (never through a shell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Program name or path.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// One thing to do.
#[derive(Debug)]
pub enum Step {
    /// Write a file.
    Write(FileWrite),
    /// Set a user's password hash in `/etc/shadow`, under the shadow lock.
    SetPassword {
        /// The account (root for nova).
        user: String,
        /// The crypt(3) hash to store.
        hash: Secret<String>,
    },
    /// Make `path` a symbolic link to `target` (e.g. Gentoo's `net.eth0 -> net.lo`).
    Symlink {
        /// Absolute path of the link.
        path: String,
        /// What it points to, verbatim.
        target: String,
    },
    /// Set the kernel hostname (sethostname(2)).
    SetHostname(String),
    /// Run a command on the live system, after every other step of every plan
    /// applied together; if it fails, the files are put back.
    Run(Run),
}

/// What one function wants done.
#[derive(Debug)]
pub struct Plan {
    /// The name of the function the plan belongs to, built-in or external
    /// (it names the plan's cache directory).
    pub function: Cow<'static, str>,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl From<Function> for Cow<'static, str> {
    fn from(f: Function) -> Cow<'static, str> {
        Cow::Borrowed(f.name())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match step {
                Step::Write(w) => writeln!(f, "{}: write {} ({} bytes)", self.function, w.path, w.contents.len())?,
                Step::SetPassword { user, .. } => {
                    writeln!(f, "{}: set the password of {user} in /etc/shadow", self.function)?
                }
                Step::Symlink { path, target } => writeln!(f, "{}: link {path} -> {target}", self.function)?,
                Step::SetHostname(name) => writeln!(f, "{}: set the hostname to {name}", self.function)?,
                Step::Run(r) => writeln!(f, "{}: run {} {}", self.function, r.program, r.args.join(" "))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_are_outermost_first() {
        assert_eq!(ancestors("/root/.ssh/authorized_keys"), vec!["/root", "/root/.ssh"]);
        assert!(ancestors("/x").is_empty());
    }

    #[test]
    fn debug_never_shows_file_contents() {
        let w = FileWrite::new("/root/.ssh/id_ed25519", b"PRIVATE KEY MATERIAL".to_vec(), 0o600);
        let text = format!("{w:?}");
        assert!(!text.contains("PRIVATE") && text.contains("bytes: 20"), "{text}");
    }

    #[test]
    fn display_never_shows_a_hash() {
        let plan = Plan {
            function: Function::Password.into(),
            steps: vec![Step::SetPassword {
                user: "root".into(),
                hash: Secret::new("$6$salt$hash".into()),
            }],
        };
        let text = plan.to_string();
        assert!(!text.contains("$6$"));
        assert!(text.contains("root"));
    }
}
