//! `guest-ssh-get-authorized-keys`, `-add-` and `-remove-`: a user's
//! `~/.ssh/authorized_keys`, found through `/etc/passwd` under the root.
//!
//! The file is read and written through the applier, as a write to a path
//! within the user's home: a symbolic link the user made (`~/.ssh -> /root/.ssh`)
//! cannot lead the agent out of it, and the home itself is reached only
//! through root's links. A written file, and a `~/.ssh` made for it, belong
//! to the user; the file is 0600 when new, `~/.ssh` 0700. The errors are
//! qemu-ga's where it has one.

use crate::functions::Function;
use crate::passwd::{self, Account};
use crate::plan::{ancestors, FileWrite, Plan, Step};
use crate::qga::{arg_bool, arg_str, arg_strs, Args, Ctx, QgaError};
use crate::root::Root;
use serde_json::{json, Value};
use std::collections::HashSet;

/// The account `name` in the managed system's `/etc/passwd`.
pub(super) fn account(root: &Root, name: &str) -> Result<Account, QgaError> {
    let missing = |why: String| QgaError::generic(format!("failed to lookup user '{name}': {why}"));
    let text = passwd::read(root).map_err(missing)?;
    passwd::by_name(&text, name).ok_or_else(|| missing("no such user".into()))
}

/// `~/.ssh` and `~/.ssh/authorized_keys` of a home.
fn key_paths(home: &str) -> (String, String) {
    let ssh = format!("{}/.ssh", home.trim_end_matches('/'));
    let keys = format!("{ssh}/authorized_keys");
    (ssh, keys)
}

/// The account and its authorized keys path, after checking that the home is
/// an absolute path.
fn user(ctx: &Ctx<'_>, args: &Args) -> Result<(Account, String), QgaError> {
    let name = arg_str(args, "username").unwrap_or_default();
    let account = account(ctx.root, name)?;
    if !account.home.starts_with('/') {
        return Err(QgaError::generic(format!(
            "failed to lookup user '{name}': its home '{}' is not an absolute path",
            account.home
        )));
    }
    let (_, keys) = key_paths(&account.home);
    Ok((account, keys))
}

/// The `keys` argument, each checked as qemu-ga does (no comment, no line
/// break) and, as more than it does, without a carriage return or NUL.
fn keys_arg(args: &Args) -> Result<Vec<&str>, QgaError> {
    let keys = arg_strs(args, "keys").unwrap_or_default();
    for key in &keys {
        if key.starts_with('#') || key.contains(['\n', '\r', '\0']) {
            return Err(QgaError::generic(format!("invalid OpenSSH public key: '{key}'")));
        }
    }
    Ok(keys)
}

/// The current file, `None` when there is none.
fn read_keys(ctx: &Ctx<'_>, account: &Account, path: &str) -> Result<Option<String>, QgaError> {
    let within = [account.home.clone()];
    match ctx.applier.read(path, &within) {
        Ok(found) => Ok(found.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) => Err(QgaError::generic(format!("failed to read '{path}': {e}"))),
    }
}

/// Writes the file as the user's, `~/.ssh` created 0700 if missing (the home
/// must exist: it is not made here, as qemu-ga does not).
fn write_keys(ctx: &Ctx<'_>, account: &Account, path: &str, contents: String) -> Result<(), QgaError> {
    let (ssh, _) = key_paths(&account.home);
    let home_exists = ctx.root.join(&account.home).is_ok_and(|p| p.is_dir());
    if !home_exists {
        return Err(QgaError::generic(format!(
            "failed to create directory '{ssh}': No such file or directory"
        )));
    }
    let mut write = FileWrite::new(path, contents.into_bytes(), 0o600);
    write.dirs = ancestors(path)
        .into_iter()
        .map(|dir| {
            let mode = if dir == ssh { 0o700 } else { 0o755 };
            (dir, mode)
        })
        .collect();
    write.within = vec![account.home.clone()];
    write.owner = Some((account.uid, account.gid));
    let plan = Plan {
        function: Function::File.into(),
        steps: vec![Step::Write(write)],
    };
    ctx.applier
        .apply(&plan)
        .map(|_| ())
        .map_err(|e| QgaError::generic(format!("failed to write to '{path}': {e}")))
}

/// The keys of a file: its lines without surrounding blanks, less empty
/// lines and comments.
fn listed(contents: &str) -> impl Iterator<Item = &str> {
    contents
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// `guest-ssh-get-authorized-keys`: `{"keys": [...]}`, last line first, the
/// order qemu-ga answers in (libvirt shows them as given).
pub fn get(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    let (account, path) = user(ctx, args)?;
    let Some(contents) = read_keys(ctx, &account, &path)? else {
        return Err(QgaError::generic(format!(
            "failed to read '{path}': Failed to open file \u{201c}{path}\u{201d}: No such file or directory"
        )));
    };
    let mut keys: Vec<&str> = listed(&contents).collect();
    keys.reverse();
    Ok(json!({ "keys": keys }))
}

/// `guest-ssh-add-authorized-keys`: appends the keys not in the file yet
/// (`reset`: the file holds exactly the keys). The rest of the file is kept
/// as it is.
pub fn add(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    let keys = keys_arg(args)?;
    let (account, path) = user(ctx, args)?;
    let reset = arg_bool(args, "reset").unwrap_or(false);
    let old = if reset { None } else { read_keys(ctx, &account, &path)? };
    let mut contents = old.clone().unwrap_or_default();
    if !contents.is_empty() && !contents.ends_with('\n') {
        contents.push('\n');
    }
    let mut present: HashSet<String> = contents.lines().map(str::to_string).collect();
    for key in keys.into_iter().filter(|k| !k.trim().is_empty()) {
        if present.insert(key.to_string()) {
            contents.push_str(key);
            contents.push('\n');
        }
    }
    if old.as_deref() != Some(contents.as_str()) {
        write_keys(ctx, &account, &path, contents)?;
    }
    Ok(json!({}))
}

/// `guest-ssh-remove-authorized-keys`: drops the lines that are exactly one
/// of the keys; no file is fine.
pub fn remove(ctx: &mut Ctx<'_>, args: &Args) -> Result<Value, QgaError> {
    let keys = keys_arg(args)?;
    let (account, path) = user(ctx, args)?;
    let Some(old) = read_keys(ctx, &account, &path)? else {
        return Ok(json!({}));
    };
    let keys: HashSet<&str> = keys.into_iter().collect();
    let kept: String = old
        .split_inclusive('\n')
        .filter(|line| !keys.contains(line.strip_suffix('\n').unwrap_or(line)))
        .collect();
    if kept != old {
        write_keys(ctx, &account, &path, kept)?;
    }
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{args, System};
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const ALICE: &str = "/home/alice/.ssh/authorized_keys";

    fn run(system: &mut System, f: crate::qga::Run, a: Value) -> Result<Value, QgaError> {
        f(&mut system.ctx(), &args(a))
    }

    #[test]
    fn get_lists_keys_last_first_without_blanks_or_comments() {
        let mut system = System::new();
        system.write(ALICE, "ssh-ed25519 AAAA one\n\n# comment\n  ssh-rsa BBBB two  \n");
        let got = run(&mut system, get, json!({"username": "alice"})).unwrap();
        assert_eq!(got, json!({"keys": ["ssh-rsa BBBB two", "ssh-ed25519 AAAA one"]}));
    }

    #[test]
    fn qemu_gas_errors_for_a_missing_user_file_or_bad_key() {
        let mut system = System::new();
        let err = run(&mut system, get, json!({"username": "nobody"})).unwrap_err();
        assert_eq!(err.desc, "failed to lookup user 'nobody': no such user");
        let err = run(&mut system, get, json!({"username": "alice"})).unwrap_err();
        assert_eq!(
            err.desc,
            format!("failed to read '{ALICE}': Failed to open file \u{201c}{ALICE}\u{201d}: No such file or directory")
        );
        for bad in ["# comment", "ssh-rsa AAAA\nssh-rsa BBBB", "ssh-rsa A\rB"] {
            for f in [add, remove] {
                let err = run(&mut system, f, json!({"username": "nobody", "keys": ["ok", bad]})).unwrap_err();
                assert_eq!(
                    err.desc,
                    format!("invalid OpenSSH public key: '{bad}'"),
                    "keys are checked first"
                );
            }
        }
        assert!(!system.path("/home/alice/.ssh").exists());
    }

    #[test]
    fn add_creates_the_users_directory_and_file_and_appends_only_new_keys() {
        let mut system = System::new();
        run(
            &mut system,
            add,
            json!({"username": "alice", "keys": ["ssh-ed25519 AAAA one", ""]}),
        )
        .unwrap();
        assert_eq!(system.read(ALICE), "ssh-ed25519 AAAA one\n");
        if rustix::process::geteuid().is_root() {
            let ssh = std::fs::metadata(system.path("/home/alice/.ssh")).unwrap();
            assert_eq!((ssh.uid(), ssh.gid(), ssh.mode() & 0o7777), (1000, 1001, 0o700));
            let keys = std::fs::metadata(system.path(ALICE)).unwrap();
            assert_eq!((keys.uid(), keys.gid(), keys.mode() & 0o7777), (1000, 1001, 0o600));
        }
        system.write(ALICE, "# mine\nssh-ed25519 AAAA one");
        let keys = json!(["ssh-rsa BBBB two", "ssh-ed25519 AAAA one", "ssh-rsa BBBB two"]);
        run(&mut system, add, json!({"username": "alice", "keys": keys})).unwrap();
        assert_eq!(system.read(ALICE), "# mine\nssh-ed25519 AAAA one\nssh-rsa BBBB two\n");
        let reset = json!({"username": "alice", "keys": ["ssh-rsa CCCC three"], "reset": true});
        run(&mut system, add, reset).unwrap();
        assert_eq!(system.read(ALICE), "ssh-rsa CCCC three\n");
        let cached = "/var/cache/singularity/file/home/alice/.ssh/authorized_keys";
        assert_eq!(
            system.read(cached),
            "ssh-rsa CCCC three\n",
            "cached for `singularity apply`"
        );
    }

    #[test]
    fn add_needs_the_home() {
        let mut system = System::new();
        std::fs::remove_dir(system.path("/home/alice")).unwrap();
        let err = run(&mut system, add, json!({"username": "alice", "keys": ["k"]})).unwrap_err();
        assert_eq!(
            err.desc,
            "failed to create directory '/home/alice/.ssh': No such file or directory"
        );
        assert!(!system.path("/home/alice").exists());
    }

    #[test]
    fn remove_drops_exact_lines_only() {
        let mut system = System::new();
        run(&mut system, remove, json!({"username": "alice", "keys": ["k"]})).unwrap();
        assert!(!system.path(ALICE).exists(), "no file, nothing to do");
        system.write(ALICE, "a one\n# a one\na one\na one extra\nb two");
        run(
            &mut system,
            remove,
            json!({"username": "alice", "keys": ["a one", "b two"]}),
        )
        .unwrap();
        assert_eq!(system.read(ALICE), "# a one\na one extra\n");
    }

    #[test]
    fn links_out_of_the_home_are_refused() {
        let mut system = System::new();
        system.write("/root/.ssh/authorized_keys", "root's key\n");
        std::os::unix::fs::symlink("/root/.ssh", system.path("/home/alice/.ssh")).unwrap();
        let err = run(&mut system, get, json!({"username": "alice"})).unwrap_err();
        assert!(err.desc.contains("outside the allowed paths"), "{}", err.desc);
        let err = run(&mut system, add, json!({"username": "alice", "keys": ["mine"]})).unwrap_err();
        assert!(err.desc.contains("outside the allowed paths"), "{}", err.desc);
        assert_eq!(system.read("/root/.ssh/authorized_keys"), "root's key\n");
    }

    #[test]
    fn a_home_reached_through_another_users_link_is_refused() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: only root gives a link away");
            return;
        }
        let mut system = System::new();
        system.write(
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1001::/srv/alice:/bin/sh\n",
        );
        std::fs::create_dir_all(system.path("/var/alice")).unwrap();
        std::fs::create_dir_all(system.path("/srv")).unwrap();
        std::os::unix::fs::symlink("../var/alice", system.path("/srv/alice")).unwrap();
        // root's link: followed.
        run(&mut system, add, json!({"username": "alice", "keys": ["k"]})).unwrap();
        assert_eq!(system.read("/var/alice/.ssh/authorized_keys"), "k\n");
        // another user's: refused.
        std::os::unix::fs::lchown(system.path("/srv/alice"), Some(4242), Some(4242)).unwrap();
        let err = run(&mut system, add, json!({"username": "alice", "keys": ["k2"]})).unwrap_err();
        assert!(err.desc.contains("outside the allowed paths"), "{}", err.desc);
        assert!(run(&mut system, get, json!({"username": "alice"})).is_err());
        assert_eq!(system.read("/var/alice/.ssh/authorized_keys"), "k\n");
    }
}
