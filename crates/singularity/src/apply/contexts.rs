//! The SELinux context a new file gets from the policy's `file_contexts`,
//! the way `matchpathcon` finds it, in a documented subset:
//!
//! * the policy is `SELINUXTYPE=` in `/etc/selinux/config`; its rules are
//!   `/etc/selinux/<type>/contexts/files/file_contexts`, then
//!   `file_contexts.homedirs` and `file_contexts.local`, in that order, all
//!   read under the root;
//! * a rule is `REGEX [TYPE] CONTEXT`: the regular expression must match the
//!   whole path, TYPE (`--` regular file, `-d` directory, `-l`, `-c`, `-b`,
//!   `-s`, `-p`) limits the kinds of file it applies to, and the context
//!   `<<none>>` means the file gets no label from the policy;
//! * the last matching rule wins, and rules without regular expression
//!   characters (exact paths) come after all the others, as libselinux
//!   sorts them;
//! * not supported: the compiled `.bin` files, `file_contexts.subs` path
//!   equivalences, and media or X contexts. A rule whose expression the
//!   `regex-lite` syntax does not accept (PCRE-only constructs) is skipped.
//!
//! Reading these files, and a directory's context when the policy has no
//! rule, is the only I/O here.

use super::{target, write, xattrs};
use std::cell::OnceCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The kind of file a context is wanted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// One rule of a `file_contexts` file.
#[derive(Debug)]
struct Rule {
    /// The expression as written.
    regex: String,
    /// The literal text every match starts with.
    stem: String,
    /// `None`: any kind of file; `Some(None)`: a kind this module never asks for.
    kind: Option<Option<Kind>>,
    /// `None` for `<<none>>`.
    context: Option<String>,
}

/// The rules of a policy, in the order they apply (the last match wins).
#[derive(Debug, Default)]
pub(crate) struct FileContexts {
    rules: Vec<Rule>,
}

fn is_meta(c: char) -> bool {
    matches!(c, '.' | '^' | '$' | '?' | '*' | '+' | '|' | '[' | '(' | '{' | '\\')
}

/// The literal prefix of `regex`: up to the first special character, less
/// the last literal if a quantifier makes it optional; none with an
/// alternative, which may start anywhere.
fn stem(regex: &str) -> String {
    if regex.contains('|') {
        return String::new();
    }
    let end = regex.find(is_meta).unwrap_or(regex.len());
    let mut stem = regex[..end].to_string();
    if matches!(regex[end..].chars().next(), Some('?' | '*' | '{')) {
        stem.pop();
    }
    stem
}

impl FileContexts {
    /// Parses the text of `file_contexts` files, in the order they are read.
    /// Lines that are not rules (comments, blanks, malformed) are skipped.
    pub(crate) fn parse<'a>(texts: impl IntoIterator<Item = &'a str>) -> FileContexts {
        let mut regexes = Vec::new();
        let mut exact = Vec::new();
        for line in texts.into_iter().flat_map(str::lines) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (regex, kind, context) = match fields[..] {
                [regex, context] => (regex, None, context),
                [regex, kind, context] => {
                    let kind = match kind {
                        "--" => Some(Kind::File),
                        "-d" => Some(Kind::Dir),
                        "-l" | "-c" | "-b" | "-s" | "-p" => None,
                        _ => continue,
                    };
                    (regex, Some(kind), context)
                }
                _ => continue,
            };
            let rule = Rule {
                regex: regex.to_string(),
                stem: stem(regex),
                kind,
                context: (context != "<<none>>").then(|| context.to_string()),
            };
            if regex.contains(is_meta) {
                regexes.push(rule);
            } else {
                exact.push(rule);
            }
        }
        regexes.extend(exact);
        FileContexts { rules: regexes }
    }

    /// The rule for `path`, a resolved absolute path: `None` when no rule
    /// matches, `Some(None)` for `<<none>>`, else the context.
    pub(crate) fn lookup(&self, path: &str, kind: Kind) -> Option<Option<&str>> {
        self.rules
            .iter()
            .rev()
            .filter(|r| r.kind.is_none_or(|k| k == Some(kind)) && path.starts_with(&r.stem))
            .find(|r| match regex_lite::Regex::new(&format!("^(?:{})$", r.regex)) {
                Ok(re) => re.is_match(path),
                Err(e) => {
                    log::debug!("file_contexts: skipping {}: {e}", r.regex);
                    false
                }
            })
            .map(|r| r.context.as_deref())
    }
}

/// The value of `SELINUXTYPE=` in the text of `/etc/selinux/config`, if it
/// names a policy directory.
fn policy_type(config: &str) -> Option<&str> {
    let value = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SELINUXTYPE="))
        .next_back()?
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    (!value.is_empty() && !value.contains('/') && value != "." && value != "..").then_some(value)
}

/// Reads a small text file at `path` under the root, if it is there.
fn read_text(root: &OwnedFd, path: &str) -> Option<String> {
    let found = target::locate(root, path).ok()?;
    if !found.missing.is_empty() {
        return None;
    }
    let bytes = write::read(found.dir.as_fd(), &found.name).ok()?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// The policy's rules under the root, if it has a policy with a
/// `file_contexts` file.
pub(crate) fn load(root: &OwnedFd) -> Option<FileContexts> {
    let config = read_text(root, "/etc/selinux/config")?;
    let policy = policy_type(&config)?;
    let dir = format!("/etc/selinux/{policy}/contexts/files");
    let main = read_text(root, &format!("{dir}/file_contexts"))?;
    let extra: Vec<String> = ["file_contexts.homedirs", "file_contexts.local"]
        .iter()
        .filter_map(|name| read_text(root, &format!("{dir}/{name}")))
        .collect();
    Some(FileContexts::parse(
        std::iter::once(main.as_str()).chain(extra.iter().map(String::as_str)),
    ))
}

/// The contexts new files and directories get under one root: the policy's
/// for their path (the policy is read once, when first needed), else their
/// directory's.
pub(crate) struct Labels<'a> {
    root: &'a OwnedFd,
    policy: OnceCell<Option<FileContexts>>,
}

impl<'a> Labels<'a> {
    pub(crate) fn new(root: &'a OwnedFd) -> Labels<'a> {
        Labels {
            root,
            policy: OnceCell::new(),
        }
    }

    /// The context for a new `kind` at `path` (resolved, absolute) in `dir`,
    /// NUL-terminated as libselinux stores it; `None` for no label.
    pub(crate) fn for_new(&self, path: &str, kind: Kind, dir: BorrowedFd<'_>) -> Option<Vec<u8>> {
        if let Some(policy) = self.policy.get_or_init(|| load(self.root)) {
            match policy.lookup(path, kind) {
                Some(Some(context)) => return Some([context.as_bytes(), b"\0"].concat()),
                Some(None) => return None,
                None => {}
            }
        }
        xattrs::get(dir, xattrs::SELINUX).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
# comment
/.*                         system_u:object_r:default_t:s0
/etc(/.*)?                  system_u:object_r:etc_t:s0
/etc/shadow.*           --  system_u:object_r:shadow_t:s0
/etc/sysconfig/network-scripts(/.*)?  system_u:object_r:net_conf_t:s0
/etc/sysconfig/network-scripts/ifcfg-.*  --  system_u:object_r:net_conf_t:s0
/etc/NetworkManager(/.*)?   -d  system_u:object_r:NetworkManager_etc_t:s0
/etc/resolv\.conf.*     --  system_u:object_r:net_conf_t:s0
/etc/opaque(/.*)?           <<none>>
/etc/shadow             --  system_u:object_r:exact_t:s0
/etc/hosts              -l  system_u:object_r:link_t:s0
/root(/.*)?                 system_u:object_r:admin_home_t:s0
/bad[                       system_u:object_r:never_t:s0
"#;

    #[test]
    fn the_last_match_wins_and_exact_paths_come_last() {
        let fc = FileContexts::parse([RULES]);
        let ctx = |p, k| fc.lookup(p, k).flatten();
        assert_eq!(ctx("/etc/motd", Kind::File), Some("system_u:object_r:etc_t:s0"));
        assert_eq!(ctx("/etc/shadow-", Kind::File), Some("system_u:object_r:shadow_t:s0"));
        // Written before the regexes that also match it, an exact path still wins.
        assert_eq!(ctx("/etc/shadow", Kind::File), Some("system_u:object_r:exact_t:s0"));
        assert_eq!(
            ctx("/etc/resolv.conf", Kind::File),
            Some("system_u:object_r:net_conf_t:s0")
        );
        assert_eq!(ctx("/etc/resolvXconf", Kind::File), Some("system_u:object_r:etc_t:s0"));
        assert_eq!(
            ctx("/etc/sysconfig/network-scripts/ifcfg-eth0", Kind::File),
            Some("system_u:object_r:net_conf_t:s0")
        );
        assert_eq!(ctx("/usr/bin", Kind::Dir), Some("system_u:object_r:default_t:s0"));
        assert_eq!(ctx("/root/.ssh", Kind::Dir), Some("system_u:object_r:admin_home_t:s0"));
        // The whole path must match.
        assert_eq!(ctx("/etcetera", Kind::File), Some("system_u:object_r:default_t:s0"));
    }

    #[test]
    fn file_types_limit_rules_and_none_means_no_label() {
        let fc = FileContexts::parse([RULES]);
        assert_eq!(
            fc.lookup("/etc/NetworkManager/system-connections", Kind::Dir),
            Some(Some("system_u:object_r:NetworkManager_etc_t:s0"))
        );
        assert_eq!(
            fc.lookup("/etc/NetworkManager/system-connections/a.nmconnection", Kind::File),
            Some(Some("system_u:object_r:etc_t:s0"))
        );
        assert_eq!(
            fc.lookup("/etc/hosts", Kind::File),
            Some(Some("system_u:object_r:etc_t:s0")),
            "a rule for links is not one for files"
        );
        assert_eq!(fc.lookup("/etc/opaque/x", Kind::File), Some(None));
        assert_eq!(
            FileContexts::parse(["/etc(/.*)? etc_t\n"]).lookup("/var/x", Kind::File),
            None
        );
    }

    #[test]
    fn local_rules_come_after_the_policy_and_bad_lines_are_skipped() {
        let fc = FileContexts::parse([
            RULES,
            "/etc/motd  --  system_u:object_r:local_t:s0\n/etc/x -q odd_t\n/etc/y\n",
        ]);
        assert_eq!(
            fc.lookup("/etc/motd", Kind::File),
            Some(Some("system_u:object_r:local_t:s0"))
        );
        assert_eq!(
            fc.lookup("/etc/x", Kind::File),
            Some(Some("system_u:object_r:etc_t:s0"))
        );
        assert_eq!(
            fc.lookup("/bad[", Kind::File),
            Some(Some("system_u:object_r:default_t:s0"))
        );
    }

    #[test]
    fn stems_and_policy_types() {
        assert_eq!(stem("/etc/shadow.*"), "/etc/shadow");
        assert_eq!(stem("/etc(/.*)?"), "/etc");
        assert_eq!(stem("/etcs?/x"), "/etc");
        assert_eq!(stem("/etc/hosts"), "/etc/hosts");
        assert_eq!(stem("/etc/a|/var/b"), "");
        let fc = FileContexts::parse(["/etc/a|/var/b  --  system_u:object_r:either_t:s0\n"]);
        assert_eq!(
            fc.lookup("/var/b", Kind::File),
            Some(Some("system_u:object_r:either_t:s0"))
        );
        assert_eq!(
            policy_type("SELINUX=enforcing\nSELINUXTYPE=targeted\n"),
            Some("targeted")
        );
        assert_eq!(policy_type("SELINUXTYPE=\"mls\"\n"), Some("mls"));
        assert_eq!(policy_type("SELINUXTYPE=../../tmp\n"), None);
        assert_eq!(policy_type("SELINUX=disabled\n"), None);
    }
}
