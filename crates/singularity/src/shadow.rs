//! Editing `/etc/shadow` content: bytes in, bytes out, no I/O.
//!
//! A shadow line is `name:password:lastchg:min:max:warn:inactive:expire:flag`
//! (shadow(5)). [`set_password`] rewrites fields 2 and 3 of one user's line
//! and leaves every other byte of the file as it was.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Fields on a shadow line (eight `:`).
const FIELDS: usize = 9;

/// Why the shadow content could not be edited. Messages hold no file content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowError {
    /// No line's first field is the user name.
    NoSuchUser,
    /// The user's line (1-based number) does not have exactly 9 fields.
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// The user name is empty or contains `:` or a control character.
    InvalidUser,
    /// The hash is empty (that would allow a login without a password) or
    /// contains `:` or a control character such as `\n`.
    InvalidHash,
}

impl fmt::Display for ShadowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShadowError::NoSuchUser => f.write_str("no such user in the shadow file"),
            ShadowError::Malformed { line } => {
                write!(f, "malformed shadow entry on line {line}")
            }
            ShadowError::InvalidUser => f.write_str("invalid user name"),
            ShadowError::InvalidHash => f.write_str("invalid password hash"),
        }
    }
}

impl std::error::Error for ShadowError {}

/// True for a value that can sit in a shadow field: non-empty, no `:`, no
/// ASCII control character (`\n`, `\r`, NUL, …).
fn is_field_safe(value: &str) -> bool {
    !value.is_empty() && !value.bytes().any(|b| b == b':' || b.is_ascii_control())
}

/// Returns `shadow` with `user`'s password field set to `hash` and the
/// last-change field set to `days_since_epoch`.
///
/// The user's line is the first whose first field equals `user` exactly
/// (later duplicates are left alone, as getspnam(3) ignores them). It must
/// have exactly 9 fields; the other 7 are kept byte for byte, including a
/// `\r` before its `\n`. Every other line, comment and blank line, and the
/// presence or absence of a final `\n`, are kept byte for byte. Lines need
/// not be UTF-8.
///
/// # Errors
/// [`ShadowError::InvalidUser`] / [`ShadowError::InvalidHash`] for values
/// that are empty or hold `:` or a control character,
/// [`ShadowError::NoSuchUser`] if no line names the user,
/// [`ShadowError::Malformed`] if the user's line has not 9 fields.
pub fn set_password(shadow: &[u8], user: &str, hash: &str, days_since_epoch: u64) -> Result<Vec<u8>, ShadowError> {
    if !is_field_safe(user) {
        return Err(ShadowError::InvalidUser);
    }
    if !is_field_safe(hash) {
        return Err(ShadowError::InvalidHash);
    }
    let mut out = Vec::with_capacity(shadow.len() + hash.len() + 20);
    let mut found = false;
    for (index, chunk) in shadow.split_inclusive(|&b| b == b'\n').enumerate() {
        let (body, newline) = match chunk.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (chunk, &b""[..]),
        };
        let name = body.split(|&b| b == b':').next().unwrap_or_default();
        if found || name != user.as_bytes() {
            out.extend_from_slice(chunk);
            continue;
        }
        found = true;
        let fields: Vec<&[u8]> = body.split(|&b| b == b':').collect();
        if fields.len() != FIELDS {
            return Err(ShadowError::Malformed { line: index + 1 });
        }
        out.extend_from_slice(fields[0]);
        out.push(b':');
        out.extend_from_slice(hash.as_bytes());
        out.push(b':');
        out.extend_from_slice(days_since_epoch.to_string().as_bytes());
        for field in &fields[3..] {
            out.push(b':');
            out.extend_from_slice(field);
        }
        out.extend_from_slice(newline);
    }
    if found {
        Ok(out)
    } else {
        Err(ShadowError::NoSuchUser)
    }
}

/// Whole days from 1970-01-01 UTC to `now`, for shadow's last-change field.
///
/// Never returns 0, because a last change of 0 means "must change the
/// password at next login" (shadow(5)); a clock at or before the epoch
/// (e.g. an unset RTC early in boot) gives 1.
pub fn days_since_epoch(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const H: &str = "$6$salt$hash";

    fn set(shadow: &str, user: &str) -> Result<String, ShadowError> {
        set_password(shadow.as_bytes(), user, H, 20000).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn edit_table() {
        let root = "root:*:19000:0:99999:7:::\n";
        let daemon = "daemon:*:19000:0:99999:7:::\n";
        let bob = "bob:!:19000:0:99999:7:::\n";
        let root_new = "root:$6$salt$hash:20000:0:99999:7:::\n";
        let bob_new = "bob:$6$salt$hash:20000:0:99999:7:::\n";
        let table: &[(String, &str, String)] = &[
            // first, middle, last line
            (
                format!("{root}{daemon}{bob}"),
                "root",
                format!("{root_new}{daemon}{bob}"),
            ),
            (
                format!("{daemon}{root}{bob}"),
                "root",
                format!("{daemon}{root_new}{bob}"),
            ),
            (
                format!("{daemon}{bob}{root}"),
                "root",
                format!("{daemon}{bob}{root_new}"),
            ),
            // no trailing newline
            (
                "daemon:*:1::::::\nroot:x:1:2:3:4:5:6:7".into(),
                "root",
                "daemon:*:1::::::\nroot:$6$salt$hash:20000:2:3:4:5:6:7".into(),
            ),
            // CRLF kept, in the last field
            (
                "root:x:1::::::\r\nbob:x:1::::::\r\n".into(),
                "bob",
                "root:x:1::::::\r\nbob:$6$salt$hash:20000::::::\r\n".into(),
            ),
            // comments, blank lines, prefixes and lookalikes untouched
            (
                format!("# root:x:1::::::\n\n#root:x:1::::::\nroot2:x:1::::::\nroo:x:1::::::\n{bob}"),
                "bob",
                format!("# root:x:1::::::\n\n#root:x:1::::::\nroot2:x:1::::::\nroo:x:1::::::\n{bob_new}"),
            ),
            // only the first of duplicate lines
            (format!("{bob}{bob}"), "bob", format!("{bob_new}{bob}")),
            // a single line
            ("bob:::::::: \n".into(), "bob", "bob:$6$salt$hash:20000:::::: \n".into()),
        ];
        for (input, user, want) in table {
            assert_eq!(set(input, user).as_ref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn other_bytes_untouched_even_non_utf8() {
        let mut shadow = b"a\xff\xfe:x:1::::::\n\n\xc3(:bad\n".to_vec();
        shadow.extend_from_slice(b"root:old:1:0:99999:7:::");
        let out = set_password(&shadow, "root", H, 7).unwrap();
        let mut want = b"a\xff\xfe:x:1::::::\n\n\xc3(:bad\n".to_vec();
        want.extend_from_slice(b"root:$6$salt$hash:7:0:99999:7:::");
        assert_eq!(out, want);
    }

    #[test]
    fn errors() {
        use ShadowError::*;
        let ok = "root:x:1::::::\n";
        assert_eq!(set(ok, "bob"), Err(NoSuchUser));
        assert_eq!(set("", "root"), Err(NoSuchUser));
        assert_eq!(set("\n\n", "root"), Err(NoSuchUser));
        assert_eq!(set("bob:x:1::::::\nroot:x:1\n", "root"), Err(Malformed { line: 2 }));
        assert_eq!(set("root\n", "root"), Err(Malformed { line: 1 }));
        assert_eq!(set("root:x:1:::::::\n", "root"), Err(Malformed { line: 1 })); // 10 fields
        assert_eq!(set(ok, ""), Err(InvalidUser));
        assert_eq!(set(ok, "root:x"), Err(InvalidUser));
        assert_eq!(set(ok, "ro\not"), Err(InvalidUser));
        for bad in ["", "$6$a:b", "$6$a\nroot::0::::::", "$6$a\r", "a\0b"] {
            assert_eq!(set_password(ok.as_bytes(), "root", bad, 1), Err(InvalidHash), "{bad:?}");
        }
        // locked and disabled hashes are fine
        assert!(set_password(ok.as_bytes(), "root", "!$6$a$b", 1).is_ok());
        assert!(set_password(ok.as_bytes(), "root", "*", 1).is_ok());
    }

    #[test]
    fn error_messages() {
        assert_eq!(ShadowError::NoSuchUser.to_string(), "no such user in the shadow file");
        assert_eq!(
            ShadowError::Malformed { line: 3 }.to_string(),
            "malformed shadow entry on line 3"
        );
        assert_eq!(ShadowError::InvalidHash.to_string(), "invalid password hash");
    }

    #[test]
    fn days() {
        let day = |d: u64| UNIX_EPOCH + Duration::from_secs(d * 86_400);
        assert_eq!(days_since_epoch(day(19_000)), 19_000);
        assert_eq!(days_since_epoch(day(19_000) + Duration::from_secs(86_399)), 19_000);
        assert_eq!(days_since_epoch(day(2)), 2);
        assert_eq!(days_since_epoch(UNIX_EPOCH), 1);
        assert_eq!(days_since_epoch(UNIX_EPOCH - Duration::from_secs(5)), 1);
        assert!(days_since_epoch(SystemTime::now()) > 19_000);
    }
}
