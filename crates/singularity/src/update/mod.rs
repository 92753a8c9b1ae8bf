//! `agentupdate`: download a new singularity build, check that it is one
//! (MD5, optional minisign signature, a static ELF for this machine whose
//! `--version` and `config` work), replace the target atomically keeping
//! the previous build beside it, and tell the daemon to re-execute.
//!
//! The one exception to "only `apply/` writes": the agent's own executable
//! is not a configuration file (it is not cached for `singularity apply`,
//! nor backed up as `.<name>.bak`), so it is replaced here, with the same
//! discipline: temp file in the same directory, fsync, rename, directory
//! fsync, mode kept. Any failure before the rename changes nothing.

pub mod artifact;
pub mod candidate;
pub mod fetch;
pub mod restart;
pub mod resume;

use crate::protocol::update::{hex, shown_url, with_suffix, UpdateRequest};
use crate::root::Root;
use md5::{Digest, Md5};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest detached signature fetched.
const MAX_SIGNATURE: u64 = 4096;

/// `[update]` and what the update needs to know of the running agent.
#[derive(Clone, Debug)]
pub struct UpdateSettings {
    /// `[update] target`, a path on the managed system; `None` is the
    /// running executable.
    pub target: Option<String>,
    /// `[update] ca_file`: an extra CA certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// `[update] public_key`: a minisign public key (base64) or a file
    /// holding one; when set, `<url>.minisig` is required.
    pub public_key: Option<String>,
    /// `[update] max_size`: largest download, in bytes.
    pub max_size: u64,
    /// `[update] timeout`: the whole download.
    pub timeout: Duration,
    /// `[update] connect_timeout`.
    pub connect_timeout: Duration,
    /// The global options of the running agent, given to the new build's
    /// `config` check.
    pub config_args: Vec<OsString>,
}

impl Default for UpdateSettings {
    fn default() -> UpdateSettings {
        UpdateSettings {
            target: None,
            ca_file: None,
            public_key: None,
            max_size: 64 << 20,
            timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            config_args: Vec::new(),
        }
    }
}

/// Why an update was refused or failed; nothing changed in every case.
#[derive(Debug)]
pub enum UpdateError {
    /// The target could not be found or is not a regular file.
    Target(PathBuf, String),
    /// The download failed.
    Fetch(String, fetch::FetchError),
    /// The MD5 sum does not match.
    Md5 { expected: String, got: String },
    /// A public key is set and the signature is missing.
    NoSignature(String, fetch::FetchError),
    /// The signature or the public key is unusable, or does not verify.
    Signature(String),
    /// The payload is not a singularity build.
    Refused(artifact::Refusal),
    /// The candidate did not pass `--version` or `config`.
    Candidate(String),
    /// Writing or renaming failed.
    Io(String, std::io::Error),
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::Target(p, why) => write!(f, "update target {}: {why}", p.display()),
            UpdateError::Fetch(url, e) => write!(f, "cannot download {url}: {e}"),
            UpdateError::Md5 { expected, got } => write!(f, "MD5 sums do not match ({expected} != {got})"),
            UpdateError::NoSignature(url, e) => {
                write!(f, "a public key is configured and the signature {url} is missing: {e}")
            }
            UpdateError::Signature(why) => write!(f, "signature refused: {why}"),
            UpdateError::Refused(r) => write!(f, "the download is {r}"),
            UpdateError::Candidate(why) => f.write_str(why),
            UpdateError::Io(what, e) => write!(f, "cannot {what}: {e}"),
        }
    }
}

/// What an update did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The build is the running version: nothing changed.
    Current(String),
    /// Installed at `target`; the previous build is at `previous`.
    Installed {
        /// The new version.
        version: String,
        /// The replaced executable.
        target: PathBuf,
        /// The previous build, kept beside it.
        previous: PathBuf,
    },
}

/// The running executable's path (without the " (deleted)" Linux adds once
/// it was replaced).
pub fn running_executable() -> Result<PathBuf, std::io::Error> {
    let exe = std::env::current_exe()?;
    Ok(match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => exe,
    })
}

/// The executable the update replaces: `[update] target` or the running
/// executable, inside the root.
pub fn target_path(settings: &UpdateSettings, root: &Root) -> Result<PathBuf, UpdateError> {
    let on_system = match &settings.target {
        Some(t) => t.clone(),
        None => {
            let exe =
                running_executable().map_err(|e| UpdateError::Target(PathBuf::from("(running)"), e.to_string()))?;
            exe.to_string_lossy().into_owned()
        }
    };
    root.join(&on_system)
        .map_err(|e| UpdateError::Target(PathBuf::from(&on_system), e.to_string()))
}

/// Refuses a target whose directory someone other than root (or the
/// agent's own user) could change: its temporary file, `.previous` and
/// `.pending` live there, and the build is run from there.
fn trusted_directory(target: &Path) -> Result<(), UpdateError> {
    use std::os::unix::fs::MetadataExt;
    let dir = target.parent().unwrap_or(Path::new("/"));
    let meta = std::fs::metadata(dir).map_err(|e| UpdateError::Target(target.to_path_buf(), e.to_string()))?;
    let me = rustix::process::geteuid().as_raw();
    if (meta.uid() != 0 && meta.uid() != me) || meta.mode() & 0o022 != 0 {
        return Err(UpdateError::Target(
            target.to_path_buf(),
            format!(
                "its directory {} may be changed by others (owner uid {}, mode {:04o})",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Whether dotted version `a` is older than `b` (numerically, part by part).
fn older(a: &str, b: &str) -> bool {
    let parts = |v: &str| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    let (mut a, mut b) = (parts(a), parts(b));
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    a < b
}

/// `<target>.previous`.
pub fn previous_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".previous");
    PathBuf::from(name)
}

/// Downloads, checks and installs the build `request` names.
pub fn run(
    request: &UpdateRequest,
    settings: &UpdateSettings,
    root: &Root,
    running: &str,
) -> Result<Outcome, UpdateError> {
    let target = target_path(settings, root)?;
    let meta = std::fs::symlink_metadata(&target).map_err(|e| UpdateError::Target(target.clone(), e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(UpdateError::Target(target, "not a regular file".into()));
    }
    trusted_directory(&target)?;
    let limits = fetch::Limits {
        max_size: settings.max_size,
        connect: settings.connect_timeout,
        total: settings.timeout,
        ca_file: settings.ca_file.clone(),
    };
    let payload = fetch::get(&request.url, &limits).map_err(|e| UpdateError::Fetch(shown_url(&request.url), e))?;
    let got = hex(&Md5::digest(&payload));
    if got != request.md5_hex() {
        return Err(UpdateError::Md5 {
            expected: request.md5_hex(),
            got,
        });
    }
    if let Some(key) = &settings.public_key {
        verify_signature(key, &request.url, &payload, &limits)?;
    }
    let exe = artifact::executable(payload, settings.max_size).map_err(UpdateError::Refused)?;
    let new = candidate::Candidate::write(&target, &exe, &meta)?;
    let version = new.version()?;
    if version == running {
        return Ok(Outcome::Current(version));
    }
    if settings.public_key.is_some() && older(&version, running) {
        // A signature ties no file to a version: with a key, the host is not
        // trusted to go back to an older (perhaps vulnerable) signed build.
        return Err(UpdateError::Candidate(format!(
            "the download is singularity {version}, older than the running {running}: refused with [update] public_key set"
        )));
    }
    new.check_config(&settings.config_args)?;
    let previous = previous_path(&target);
    new.install(&target, &previous)?;
    Ok(Outcome::Installed {
        version,
        target,
        previous,
    })
}

/// Fetches `<url>.minisig` and verifies `payload` with the public key.
fn verify_signature(key: &str, url: &str, payload: &[u8], limits: &fetch::Limits) -> Result<(), UpdateError> {
    let public = if key.starts_with('/') {
        minisign_verify::PublicKey::from_file(key)
            .map_err(|e| UpdateError::Signature(format!("public key file {key}: {e}")))?
    } else {
        minisign_verify::PublicKey::from_base64(key.trim())
            .map_err(|e| UpdateError::Signature(format!("[update] public_key: {e}")))?
    };
    let sig_url = with_suffix(url, ".minisig");
    let shown = shown_url(&sig_url);
    let sig_limits = fetch::Limits {
        max_size: MAX_SIGNATURE,
        ..limits.clone()
    };
    let text = fetch::get(&sig_url, &sig_limits).map_err(|e| UpdateError::NoSignature(shown.clone(), e))?;
    let text = String::from_utf8(text).map_err(|_| UpdateError::Signature(format!("{shown} is not text")))?;
    let signature = minisign_verify::Signature::decode(&text)
        .map_err(|e| UpdateError::Signature(format!("{shown} is not a minisign signature: {e}")))?;
    public
        .verify(payload, &signature, false)
        .map_err(|e| UpdateError::Signature(format!("{shown} does not verify with the configured key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn versions_compare_part_by_part() {
        assert!(older("0.1.0", "0.1.1") && older("0.9.0", "0.10.0") && older("1.2", "1.2.1"));
        assert!(!older("0.1.0", "0.1.0") && !older("1.0.0", "0.99.99") && !older("1.2.0", "1.2"));
    }

    #[test]
    fn a_target_in_a_directory_others_may_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("singularity");
        std::fs::write(&target, b"x").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(trusted_directory(&target).is_ok());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = trusted_directory(&target).unwrap_err().to_string();
        assert!(
            err.contains("may be changed by others") && err.contains("1777"),
            "{err}"
        );
    }
}
