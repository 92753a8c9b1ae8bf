//! The managed system's accounts, from its `/etc/passwd` (files only: the
//! agent never loads NSS modules). Parsing is pure.

use crate::root::Root;

/// A user's line of `/etc/passwd`, as far as the agent needs it.
#[derive(Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// The first line of a passwd(5) text for which `matches` holds of its
/// fields, with numeric uid and gid.
fn entry(text: &str, matches: impl Fn(&[&str]) -> bool) -> Option<Account> {
    let fields: Vec<&str> = text
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && matches(f))?;
    Some(Account {
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: fields[5].to_string(),
    })
}

/// The entry of `name`: the first line whose first field is `name`.
pub fn by_name(text: &str, name: &str) -> Option<Account> {
    if name.is_empty() {
        return None;
    }
    entry(text, |f| f[0] == name)
}

/// The entry of the first account with uid `uid`.
pub fn by_uid(text: &str, uid: u32) -> Option<Account> {
    entry(text, |f| f[2].parse() == Ok(uid))
}

/// The text of the root's `/etc/passwd`.
pub fn read(root: &Root) -> Result<String, String> {
    let path = root.join("/etc/passwd").map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "root:x:0:0:root:/root:/bin/sh\nbad:x:zz:1::/x:/bin/sh\nbob:x:1000:1001:Bob:/home/bob:/bin/sh\nbob2:x:1000:1001::/home/bob2:/bin/sh\n";

    #[test]
    fn accounts_by_name_and_by_uid() {
        let bob = Account {
            uid: 1000,
            gid: 1001,
            home: "/home/bob".into(),
        };
        assert_eq!(by_name(TEXT, "bob"), Some(bob));
        assert_eq!(by_name(TEXT, "bo"), None);
        assert_eq!(by_name(TEXT, "bad"), None, "a uid that is not a number");
        assert_eq!(by_name(TEXT, ""), None);
        assert_eq!(
            by_uid(TEXT, 1000).map(|a| a.home),
            Some("/home/bob".into()),
            "the first one"
        );
        assert_eq!(by_uid(TEXT, 0).map(|a| a.home), Some("/root".into()));
        assert_eq!(by_uid(TEXT, 7), None);
    }
}
