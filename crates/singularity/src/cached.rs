//! The cache of written files (`<cache>/<function>/<absolute path>`, with the
//! file's mode) and `singularity apply`, which writes them back to the live
//! system through the one applier, or with `--noop` prints what would change.
//!
//! The password is deliberately not cached: writing back an old
//! `/etc/shadow` would undo every password change made since.

use crate::apply::{Applier, ApplyError};
use crate::functions::{Function, Functions};
use crate::plan::{FileWrite, Plan, Step};
use crate::root::{Root, RootError};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// One cached file: where it belongs and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// Absolute path on the managed system.
    pub path: String,
    /// Contents to restore (wiped from memory when dropped: it may be a key).
    pub contents: Zeroizing<Vec<u8>>,
    /// Mode the file had when written.
    pub mode: u32,
    /// The user and group it was written for (a user's
    /// `authorized_keys`), kept as the cached copy's owner; `None`: root's.
    pub owner: Option<(u32, u32)>,
}

/// Why `apply` could not read the cache or write it back.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A path could not be placed under the root.
    #[error(transparent)]
    Root(#[from] RootError),
    /// A cache directory could not be listed.
    #[error("cannot read cache {}: {source}", .dir.display())]
    List {
        /// The directory.
        dir: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A cached entry could not be inspected.
    #[error("cannot stat {}: {source}", .path.display())]
    Stat {
        /// The entry.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A cached file, or the live file it is compared with, could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file (the live one by its system path).
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A built-in function that writes no files.
    #[error("'{0}' has nothing to apply")]
    NothingToApply(String),
    /// Neither `all`, nor a function that writes files, nor one the cache has.
    #[error("unknown function '{action}' (expected all, {known})")]
    UnknownAction {
        /// The action given.
        action: String,
        /// The functions `apply` knows, comma-separated.
        known: String,
    },
    /// `/etc/passwd` could not be read for a user's cached file.
    #[error("{function}: {detail}")]
    Accounts {
        /// The function.
        function: String,
        /// Why.
        detail: String,
    },
    /// A user's cached file whose owner has no account now.
    #[error("{function}: {path}: no account has uid {uid} now")]
    NoAccount {
        /// The function.
        function: String,
        /// The file's system path.
        path: String,
        /// Its owner.
        uid: u32,
    },
    /// Writing a function's files back failed.
    #[error("{function}: {source}")]
    Apply {
        /// The function.
        function: String,
        /// The error.
        #[source]
        source: ApplyError,
    },
}

/// The built-in functions `apply` accepts: those that write files.
pub fn builtin_actions() -> Vec<&'static str> {
    Function::ALL
        .into_iter()
        .filter(|f| f.writes_files())
        .map(Function::name)
        .collect()
}

/// The names of the cache's function directories that are not built-in
/// (external configurators' files), sorted.
fn external_names(root: &Root, cache: &str) -> Result<Vec<String>, CacheError> {
    let dir = root.join(cache.trim_end_matches('/'))?;
    let entries = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CacheError::List { dir, source }),
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| crate::functions::valid_name(n) && Function::named(n).is_none())
        .collect();
    out.sort();
    Ok(out)
}

/// Parses `apply` actions (`all` or function names: built-in ones, or those
/// whose files external configurators wrote) into function names, keeping
/// only those enabled.
pub fn actions(list: &[String], enabled: &Functions, root: &Root, cache: &str) -> Result<Vec<String>, CacheError> {
    let builtin = builtin_actions();
    let external = external_names(root, cache)?;
    let mut out: Vec<String> = Vec::new();
    for action in list {
        let chosen: Vec<String> = if action == "all" {
            builtin
                .iter()
                .map(|s| s.to_string())
                .chain(external.iter().cloned())
                .collect()
        } else if builtin.contains(&action.as_str()) || external.contains(action) {
            vec![action.clone()]
        } else if Function::named(action).is_some() {
            return Err(CacheError::NothingToApply(action.clone()));
        } else {
            let mut known = builtin.join(", ");
            for name in &external {
                known.push_str(", ");
                known.push_str(name);
            }
            return Err(CacheError::UnknownAction {
                action: action.clone(),
                known,
            });
        };
        for f in chosen {
            if enabled.enables(&f) && !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn collect(dir: &Path, prefix: &str, out: &mut Vec<CachedFile>) -> Result<(), CacheError> {
    let mut entries: Vec<_> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(Result::ok).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CacheError::List {
                dir: dir.to_path_buf(),
                source,
            })
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(entry.path()).map_err(|source| CacheError::Stat {
            path: entry.path(),
            source,
        })?;
        let path = format!("{prefix}/{name}");
        if meta.is_dir() {
            collect(&entry.path(), &path, out)?;
        } else if meta.is_file() {
            let contents = Zeroizing::new(fs::read(entry.path()).map_err(|source| CacheError::Read {
                path: entry.path(),
                source,
            })?);
            out.push(CachedFile {
                path,
                contents,
                mode: meta.mode() & 0o7777,
                owner: (meta.uid() != 0 || meta.gid() != 0).then(|| (meta.uid(), meta.gid())),
            });
        }
    }
    Ok(())
}

/// The cached files of `function`.
pub fn files(root: &Root, cache: &str, function: &str) -> Result<Vec<CachedFile>, CacheError> {
    let dir = format!("{}/{function}", cache.trim_end_matches('/'));
    let on_disk = root.join(&dir)?;
    let mut out = Vec::new();
    collect(&on_disk, "", &mut out)?;
    Ok(out)
}

/// A unified diff of `path` from its live contents to `new`, or `None` when equal.
pub fn diff(root: &Root, file: &CachedFile) -> Result<Option<String>, CacheError> {
    let live_path = root.join(&file.path)?;
    let live = match fs::read(&live_path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Zeroizing::new(Vec::new()),
        Err(source) => {
            return Err(CacheError::Read {
                path: PathBuf::from(&file.path),
                source,
            })
        }
    };
    if live == file.contents {
        return Ok(None);
    }
    let old = String::from_utf8_lossy(&live);
    let new = String::from_utf8_lossy(&file.contents);
    let text = similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{}", file.path), &format!("b{}", file.path))
        .to_string();
    Ok(Some(text))
}

/// Writes every cached file of `functions` back; with `noop`, returns the
/// diffs instead. Injected files are held to `inject_allowed` again, on the
/// path as resolved now. Returns the report lines to print.
pub fn apply(
    applier: &Applier,
    cache: &str,
    functions: &[String],
    inject_allowed: &[String],
    noop: bool,
) -> Result<Vec<String>, CacheError> {
    let mut report = Vec::new();
    let mut cached = 0usize;
    for function in functions {
        let files = files(applier.root(), cache, function)?;
        cached += files.len();
        if noop {
            for file in &files {
                if let Some(d) = diff(applier.root(), file)? {
                    report.push(d);
                }
            }
            continue;
        }
        let mut steps = Vec::with_capacity(files.len());
        for f in files {
            let mut write = FileWrite::new(&f.path, f.contents, f.mode);
            // Injected files and external configurators' own functions
            // were held to allowed_paths when written; so they are now.
            if function == Function::File.name() || Function::named(function).is_none() {
                write.within = inject_allowed.to_vec();
            }
            if let Some((uid, gid)) = f.owner {
                // The user's again: within the home the account has now
                // (a link the user made cannot lead out of it), and only
                // its own directory (`~/.ssh`) may be made for it.
                let text = crate::passwd::read(applier.root()).map_err(|detail| CacheError::Accounts {
                    function: function.clone(),
                    detail,
                })?;
                let home = crate::passwd::by_uid(&text, uid)
                    .map(|account| account.home)
                    .filter(|home| home.starts_with('/'))
                    .ok_or_else(|| CacheError::NoAccount {
                        function: function.clone(),
                        path: f.path.clone(),
                        uid,
                    })?;
                write.within = vec![home];
                write.owner = Some((uid, gid));
                write.dirs = crate::plan::ancestors(&f.path)
                    .pop()
                    .map(|parent| vec![(parent, 0o700)])
                    .unwrap_or_default();
            }
            steps.push(Step::Write(write));
        }
        let plan = Plan {
            function: function.clone().into(),
            steps,
        };
        let outcome = applier.apply(&plan).map_err(|source| CacheError::Apply {
            function: function.clone(),
            source,
        })?;
        if outcome.changed {
            report.push(format!("{function}: restored"));
        }
    }
    if functions.is_empty() {
        report.push("nothing to apply: none of the chosen functions is enabled".to_string());
    } else if cached == 0 {
        let dir = applier.root().join(cache.trim_end_matches('/'))?;
        report.push(format!(
            "nothing is cached for {} in {}: nothing to apply",
            functions.join(", "),
            dir.display()
        ));
    } else if report.is_empty() {
        report.push("no changes".to_string());
    }
    Ok(report)
}
