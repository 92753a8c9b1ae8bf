//! File injection (`injectfile`, `file_inject`): which paths may be written,
//! and with what mode a new file and its new parent directories are created.

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

fn in_ssh_dir(dir: &str) -> bool {
    dir.rsplit('/').next() == Some(".ssh")
}

/// Plans the write of an injected file. `allowed` lists absolute prefixes
/// (`/` allows everything). New files under a `.ssh` directory are 0600,
/// others 0644; a created `.ssh` directory is 0700.
pub fn plan(injection: &Injection, allowed: &[String]) -> Result<Plan, NotAllowed> {
    let path = injection.path.as_str();
    if !allowed.iter().any(|prefix| under(path, prefix)) {
        return Err(NotAllowed { path: path.to_string() });
    }
    let dirs: Vec<(String, u32)> = ancestors(path)
        .into_iter()
        .map(|d| {
            let mode = if in_ssh_dir(&d) { 0o700 } else { 0o755 };
            (d, mode)
        })
        .collect();
    let in_ssh = dirs.last().is_some_and(|(d, _)| in_ssh_dir(d));
    let write = FileWrite {
        path: path.to_string(),
        contents: injection.contents.clone(),
        mode: if in_ssh { 0o600 } else { 0o644 },
        dirs,
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
            contents: b"k".to_vec(),
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
    fn ssh_files_are_private() {
        let p = plan(&inj("/root/.ssh/authorized_keys"), &["/".into()]).unwrap();
        let w = only_write(&p);
        assert_eq!(w.mode, 0o600);
        assert_eq!(w.dirs, vec![("/root".into(), 0o755), ("/root/.ssh".into(), 0o700)]);
        assert_eq!(only_write(&plan(&inj("/etc/motd"), &["/".into()]).unwrap()).mode, 0o644);
    }

    #[test]
    fn prefixes_match_whole_components() {
        let allowed = vec!["/root/.ssh".to_string(), "/etc/motd".to_string()];
        assert!(plan(&inj("/root/.ssh/authorized_keys"), &allowed).is_ok());
        assert!(plan(&inj("/etc/motd"), &allowed).is_ok());
        assert!(plan(&inj("/root/.sshx/k"), &allowed).is_err());
        assert!(plan(&inj("/etc/motd2"), &allowed).is_err());
        assert!(plan(&inj("/etc/shadow"), &[]).is_err());
    }
}
