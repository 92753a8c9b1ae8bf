//! File injection (`injectfile`, `file_inject`): which paths may be written,
//! and with what mode a new file and its new parent directories are created.
//! No I/O here: the allowed prefixes travel with the plan, and the applier
//! holds the path to them again once symbolic links are resolved.

use crate::functions::Function;
use crate::plan::{ancestors, FileWrite, Plan, Step};
use crate::protocol::Injection;
use std::fmt;

/// A path outside every allowed prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAllowed {
    /// The requested path.
    pub path: String,
}

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path '{}' is outside the allowed injection paths", self.path)
    }
}

impl std::error::Error for NotAllowed {}

/// Whether `path` is `prefix` or lies below it, component by component.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// `[file]`: where injected files may go, and their modes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSettings {
    /// Absolute path prefixes file injection may write under (`/`: anywhere).
    pub allowed: Vec<String>,
    /// Modes of new injected files and their new directories.
    pub modes: Modes,
}

impl Default for FileSettings {
    fn default() -> FileSettings {
        FileSettings {
            allowed: vec!["/".to_string()],
            modes: Modes::default(),
        }
    }
}

/// The modes injected files and their new directories are created with
/// (`[file] mode` and `directory_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modes {
    /// A new file.
    pub file: u32,
    /// Each directory created for it.
    pub directory: u32,
}

impl Default for Modes {
    /// Private: an injected file may be a key, so only root reads it.
    fn default() -> Modes {
        Modes {
            file: 0o600,
            directory: 0o700,
        }
    }
}

/// Plans the write of an injected file. `allowed` lists absolute prefixes
/// (`/` allows everything); the applier checks them again on the path as
/// resolved, symbolic links followed. A new file and the directories created
/// for it get `modes`; an existing file keeps its mode.
pub fn plan(injection: &Injection, allowed: &[String], modes: Modes) -> Result<Plan, NotAllowed> {
    let path = injection.path.as_str();
    if !allowed.iter().any(|prefix| under(path, prefix)) {
        return Err(NotAllowed { path: path.to_string() });
    }
    let write = FileWrite {
        path: path.to_string(),
        contents: injection.contents.clone(),
        mode: modes.file,
        dirs: ancestors(path).into_iter().map(|d| (d, modes.directory)).collect(),
        within: allowed.to_vec(),
        owner: None,
    };
    Ok(Plan {
        function: Function::File.into(),
        steps: vec![Step::Write(write)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::inject::InjectForm;

    fn inj(path: &str) -> Injection {
        Injection {
            path: path.into(),
            contents: b"k".to_vec().into(),
            form: InjectForm::FileInject,
        }
    }

    fn only_write(plan: &Plan) -> &FileWrite {
        match &plan.steps[..] {
            [Step::Write(w)] => w,
            other => panic!("unexpected steps {other:?}"),
        }
    }

    #[test]
    fn new_files_and_their_directories_are_private_everywhere() {
        let p = plan(&inj("/root/.ssh/authorized_keys"), &["/".into()], Modes::default()).unwrap();
        let w = only_write(&p);
        assert_eq!(w.mode, 0o600);
        assert_eq!(w.dirs, vec![("/root".into(), 0o700), ("/root/.ssh".into(), 0o700)]);
        let p = plan(&inj("/etc/ssl/private/server.key"), &["/".into()], Modes::default()).unwrap();
        let w = only_write(&p);
        assert_eq!(w.mode, 0o600);
        assert!(w.dirs.iter().all(|(_, mode)| *mode == 0o700), "{:?}", w.dirs);
        assert_eq!(
            w.within,
            vec!["/".to_string()],
            "the applier checks the resolved path too"
        );
    }

    #[test]
    fn prefixes_match_whole_components() {
        let allowed = vec!["/root/.ssh".to_string(), "/etc/motd".to_string()];
        assert!(plan(&inj("/root/.ssh/authorized_keys"), &allowed, Modes::default()).is_ok());
        assert!(plan(&inj("/etc/motd"), &allowed, Modes::default()).is_ok());
        assert!(plan(&inj("/root/.sshx/k"), &allowed, Modes::default()).is_err());
        assert!(plan(&inj("/etc/motd2"), &allowed, Modes::default()).is_err());
        assert!(plan(&inj("/etc/shadow"), &[], Modes::default()).is_err());
    }
}
