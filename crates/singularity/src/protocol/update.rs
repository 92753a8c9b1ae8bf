//! The value of `agentupdate`, parsed: nova's `"<url>,<md5 hex>"` string
//! (since 2013) or the older `{"url": …, "md5sum": …}` object. No I/O here.

use serde_json::Value;
use std::fmt;

/// Longest URL accepted (the whole request is at most 4096 bytes anyway).
const MAX_URL: usize = 2048;

/// Where the new build is and the MD5 sum nova vouches for it with.
#[derive(Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// An `http://` or `https://` URL with a host.
    pub url: String,
    /// The MD5 digest nova sent (its `agent_builds.md5hash`).
    pub md5: [u8; 16],
}

/// Shows the URL as logs do: its user information and query may hold a
/// password or a signature.
impl fmt::Debug for UpdateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateRequest")
            .field("url", &shown_url(&self.url))
            .field("md5", &self.md5_hex())
            .finish()
    }
}

/// Why an `agentupdate` value is unusable.
#[derive(Debug, PartialEq, Eq)]
pub enum UpdateValueError {
    /// Neither a string nor an object.
    WrongType,
    /// A string without the comma between URL and MD5 sum.
    NoComma,
    /// An object without `url` or `md5sum` (or with one that is not a string).
    MissingKey(&'static str),
    /// The URL is empty, too long, not http/https, or has no host.
    BadUrl(String),
    /// The MD5 sum is not 32 hexadecimal digits.
    BadMd5(String),
}

impl fmt::Display for UpdateValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateValueError::WrongType => {
                f.write_str("expected \"<url>,<md5 hex>\" or {\"url\": ..., \"md5sum\": ...}")
            }
            UpdateValueError::NoComma => f.write_str("expected \"<url>,<md5 hex>\" (no comma)"),
            UpdateValueError::MissingKey(key) => write!(f, "missing URL or MD5 sum in dictionary arguments ('{key}')"),
            UpdateValueError::BadUrl(why) => write!(f, "invalid URL: {why}"),
            UpdateValueError::BadMd5(why) => write!(f, "invalid MD5 sum: {why}"),
        }
    }
}

impl UpdateRequest {
    /// Parses the request's `value`.
    pub fn parse(value: &Value) -> Result<UpdateRequest, UpdateValueError> {
        let (url, md5) = match value {
            Value::String(s) => {
                // The MD5 sum has no comma; the URL may have one.
                let (url, md5) = s.rsplit_once(',').ok_or(UpdateValueError::NoComma)?;
                (url.to_string(), md5.to_string())
            }
            Value::Object(map) => {
                let get = |key: &'static str| match map.get(key) {
                    Some(Value::String(s)) => Ok(s.clone()),
                    _ => Err(UpdateValueError::MissingKey(key)),
                };
                (get("url")?, get("md5sum")?)
            }
            _ => return Err(UpdateValueError::WrongType),
        };
        Ok(UpdateRequest {
            url: check_url(url.trim())?,
            md5: parse_md5(md5.trim())?,
        })
    }

    /// The MD5 sum as lowercase hex.
    pub fn md5_hex(&self) -> String {
        hex(&self.md5)
    }
}

/// `url` as logs and replies show it: user information and the query (a
/// password, a temporary URL's signature) become `***`.
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // User information ends at the last '@' before the path: a '?' or '#'
    // typed into a password must not end it early and show the rest.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (userinfo, rest) = match rest[..authority_end].rfind('@') {
        Some(at) => (true, &rest[at + 1..]),
        None => (false, rest),
    };
    let (path_start, query) = match rest.find(['?', '#']) {
        Some(i) => (&rest[..i], if rest[i..].starts_with('?') { "?***" } else { "" }),
        None => (rest, ""),
    };
    let shown_user = if userinfo { "***@" } else { "" };
    format!("{scheme}://{shown_user}{path_start}{query}")
}

/// `url` with `suffix` added to its path (before any query): where a
/// detached signature lives.
pub fn with_suffix(url: &str, suffix: &str) -> String {
    match url.find(['?', '#']) {
        Some(i) => format!("{}{suffix}{}", &url[..i], &url[i..]),
        None => format!("{url}{suffix}"),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_url(url: &str) -> Result<String, UpdateValueError> {
    let bad = |why: &str| UpdateValueError::BadUrl(why.to_string());
    if url.is_empty() {
        return Err(bad("empty"));
    }
    if url.len() > MAX_URL {
        return Err(bad(&format!("longer than {MAX_URL} bytes")));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("holds spaces or control characters"));
    }
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("http://") {
        r
    } else {
        let scheme = url.split_once("://").map_or("none", |(s, _)| s);
        let shown: String = scheme.chars().take(16).collect();
        return Err(bad(&format!("only http and https are fetched (scheme {shown:?})")));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(bad("no host"));
    }
    Ok(url.to_string())
}

fn parse_md5(text: &str) -> Result<[u8; 16], UpdateValueError> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let shown: String = text.chars().take(40).collect();
        return Err(UpdateValueError::BadMd5(format!(
            "expected 32 hexadecimal digits, got {shown:?}"
        )));
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        // Checked above: two ASCII hex digits.
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUM: &str = "d41d8cd98f00b204e9800998ecf8427e";

    #[test]
    fn nova_string_form() {
        let u = UpdateRequest::parse(&json!(format!("http://10.0.0.1:8000/singularity,{SUM}"))).unwrap();
        assert_eq!(u.url, "http://10.0.0.1:8000/singularity");
        assert_eq!(u.md5_hex(), SUM);
        // Upper-case hex, spaces around, and a comma in the URL.
        let u = UpdateRequest::parse(&json!(format!("https://h/a,b.tar.gz , {}", SUM.to_uppercase()))).unwrap();
        assert_eq!(u.url, "https://h/a,b.tar.gz");
        assert_eq!(u.md5_hex(), SUM);
    }

    #[test]
    fn old_object_form() {
        let u = UpdateRequest::parse(&json!({"url": "https://example.com/s.tar.gz", "md5sum": SUM})).unwrap();
        assert_eq!(u.url, "https://example.com/s.tar.gz");
        assert_eq!(
            UpdateRequest::parse(&json!({"url": "https://h/x"})),
            Err(UpdateValueError::MissingKey("md5sum"))
        );
        assert_eq!(
            UpdateRequest::parse(&json!({"md5sum": SUM, "url": 5})),
            Err(UpdateValueError::MissingKey("url"))
        );
    }

    #[test]
    fn urls_are_shown_without_credentials_or_queries() {
        assert_eq!(shown_url("http://h:8000/a/b"), "http://h:8000/a/b");
        assert_eq!(shown_url("https://u:pw@h/a?sig=1&x=2"), "https://***@h/a?***");
        assert_eq!(shown_url("https://h?x"), "https://h?***");
        assert_eq!(shown_url("https://u:p#ss@h/a"), "https://***@h/a");
        assert_eq!(shown_url("https://u:p?ss@h:81/a#f"), "https://***@h:81/a");
        assert_eq!(shown_url("http://h/a@b/c"), "http://h/a@b/c");
        let request = UpdateRequest {
            url: "https://u:pw@h/b?sig=s3cret".into(),
            md5: [0; 16],
        };
        let debug = format!("{request:?}");
        assert!(!debug.contains("pw") && !debug.contains("s3cret"), "{debug}");
        assert_eq!(
            with_suffix("https://h/a?sig=1", ".minisig"),
            "https://h/a.minisig?sig=1"
        );
        assert_eq!(with_suffix("https://h/a", ".minisig"), "https://h/a.minisig");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        assert_eq!(UpdateRequest::parse(&json!(null)), Err(UpdateValueError::WrongType));
        assert_eq!(UpdateRequest::parse(&json!([1])), Err(UpdateValueError::WrongType));
        assert_eq!(
            UpdateRequest::parse(&json!("http://h/x")),
            Err(UpdateValueError::NoComma)
        );
        let err = |v: Value| UpdateRequest::parse(&v).unwrap_err().to_string();
        assert_eq!(
            err(json!("http://h/x,abc")),
            "invalid MD5 sum: expected 32 hexadecimal digits, got \"abc\""
        );
        assert!(err(json!(format!("http://h/x,{}", "g".repeat(32)))).starts_with("invalid MD5 sum"));
        assert_eq!(
            err(json!(format!("file:///etc/shadow,{SUM}"))),
            "invalid URL: only http and https are fetched (scheme \"file\")"
        );
        assert_eq!(
            err(json!(format!("ftp://h/x,{SUM}"))),
            "invalid URL: only http and https are fetched (scheme \"ftp\")"
        );
        assert_eq!(
            err(json!(format!("/tmp/x,{SUM}"))),
            "invalid URL: only http and https are fetched (scheme \"none\")"
        );
        assert_eq!(err(json!(format!("http:///x,{SUM}"))), "invalid URL: no host");
        assert_eq!(err(json!(format!(",{SUM}"))), "invalid URL: empty");
        assert_eq!(
            err(json!(format!("http://h/a b,{SUM}"))),
            "invalid URL: holds spaces or control characters"
        );
        assert_eq!(
            err(json!(format!("http://h/{},{SUM}", "a".repeat(3000)))),
            "invalid URL: longer than 2048 bytes"
        );
    }
}
