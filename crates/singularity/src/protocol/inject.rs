//! The two file-injection forms: `injectfile` (base64 of `path,contents`, split
//! at the first comma) and `file_inject` (`{"b64_path": .., "b64_file": ..}`).
//! Both become one [`Injection`] whose path is absolute and free of `..`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use std::fmt;
use zeroize::Zeroizing;

/// Longest accepted path (Linux `PATH_MAX`).
const PATH_MAX: usize = 4096;

/// Which wire form carried the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectForm {
    /// `injectfile`: one base64 string.
    InjectFile,
    /// `file_inject`: an object with path and contents apart.
    FileInject,
}

impl InjectForm {
    /// The protocol command name.
    pub fn name(self) -> &'static str {
        match self {
            InjectForm::InjectFile => "injectfile",
            InjectForm::FileInject => "file_inject",
        }
    }
}

/// A file the host asks to write.
pub struct Injection {
    /// Absolute path in the guest, checked for `..` and NUL.
    pub path: String,
    /// Raw contents (binary-safe), wiped from memory when dropped.
    pub contents: Zeroizing<Vec<u8>>,
    /// The form it arrived in.
    pub form: InjectForm,
}

impl fmt::Debug for Injection {
    // Contents may be keys or other secrets: show only their size.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injection")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("form", &self.form)
            .finish()
    }
}

/// What is wrong with an injection request.
#[derive(Debug, PartialEq, Eq)]
pub enum InjectionError {
    /// The value has the wrong JSON type or misses a key.
    Shape(&'static str),
    /// A base64 field does not decode.
    Base64(&'static str),
    /// `injectfile` data without a comma between path and contents.
    NoComma,
    /// The path is unusable.
    Path(String),
}

impl fmt::Display for InjectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectionError::Shape(what) => f.write_str(what),
            InjectionError::Base64(field) => write!(f, "couldn't decode base64 data in {field}"),
            InjectionError::NoComma => f.write_str("decoded data has no ',' between path and contents"),
            InjectionError::Path(why) => f.write_str(why),
        }
    }
}

/// Decodes base64 into memory that is wiped when dropped.
fn decode(field: &'static str, text: &str) -> Result<Zeroizing<Vec<u8>>, InjectionError> {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    STANDARD
        .decode(trimmed)
        .map(Zeroizing::new)
        .map_err(|_| InjectionError::Base64(field))
}

impl Injection {
    /// Parses the `injectfile` value: base64 of `<path>,<contents>`.
    pub fn from_injectfile(value: &Value) -> Result<Injection, InjectionError> {
        let Value::String(text) = value else {
            return Err(InjectionError::Shape("expected a base64 string"));
        };
        let data = decode("value", text)?;
        let comma = data.iter().position(|&b| b == b',').ok_or(InjectionError::NoComma)?;
        let path = check_path(&data[..comma])?;
        Ok(Injection {
            path,
            contents: Zeroizing::new(data[comma + 1..].to_vec()),
            form: InjectForm::InjectFile,
        })
    }

    /// Parses the `file_inject` value: `{"b64_path": .., "b64_file": ..}`.
    pub fn from_file_inject(value: &Value) -> Result<Injection, InjectionError> {
        let Value::Object(map) = value else {
            return Err(InjectionError::Shape("expected an object with b64_path and b64_file"));
        };
        let field = |key: &'static str| match map.get(key) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(InjectionError::Shape(if key == "b64_path" {
                "b64_path must be a string"
            } else {
                "b64_file must be a string"
            })),
            None => Err(InjectionError::Shape(if key == "b64_path" {
                "missing b64_path"
            } else {
                "missing b64_file"
            })),
        };
        let path_bytes = decode("b64_path", field("b64_path")?)?;
        let contents = decode("b64_file", field("b64_file")?)?;
        Ok(Injection {
            path: check_path(&path_bytes)?,
            contents,
            form: InjectForm::FileInject,
        })
    }
}

/// Accepts an absolute UTF-8 path with no NUL, no `..` and no trailing `/`, and
/// returns it with repeated and `.` components removed.
pub fn check_path(raw: &[u8]) -> Result<String, InjectionError> {
    let bad = |why: &str| InjectionError::Path(why.to_string());
    let text = std::str::from_utf8(raw).map_err(|_| bad("path is not UTF-8"))?;
    if text.is_empty() {
        return Err(bad("path is empty"));
    }
    if text.len() > PATH_MAX {
        return Err(bad("path is too long"));
    }
    if text.contains('\0') {
        return Err(bad("path contains a NUL byte"));
    }
    if !text.starts_with('/') {
        return Err(InjectionError::Path(format!("path '{text}' is not absolute")));
    }
    if text.ends_with('/') {
        return Err(InjectionError::Path(format!("path '{text}' names a directory")));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(InjectionError::Path(format!("path '{text}' contains '..'"))),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(InjectionError::Path(format!("path '{text}' names a directory")));
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(data: &[u8]) -> String {
        STANDARD.encode(data)
    }

    #[test]
    fn injectfile_splits_at_the_first_comma() {
        let v = Value::String(b64(b"/etc/motd,a,b\0c"));
        let inj = Injection::from_injectfile(&v).unwrap();
        assert_eq!(inj.path, "/etc/motd");
        assert_eq!(inj.contents[..], b"a,b\0c"[..]);
    }

    #[test]
    fn file_inject_keeps_fields_apart() {
        let v = serde_json::json!({"b64_path": b64(b"/etc/a,b"), "b64_file": b64(b"x")});
        let inj = Injection::from_file_inject(&v).unwrap();
        assert_eq!(inj.path, "/etc/a,b");
        assert_eq!(inj.contents[..], b"x"[..]);
        assert_eq!(inj.form, InjectForm::FileInject);
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in ["etc/x", "/etc/../shadow", "/..", "/", "/etc/", "", "/a\0b"] {
            assert!(check_path(p.as_bytes()).is_err(), "{p:?}");
        }
        assert_eq!(check_path(b"//etc/./ssh//k").unwrap(), "/etc/ssh/k");
        assert!(check_path(b"/\xff").is_err());
    }

    #[test]
    fn bad_base64_and_shapes() {
        assert_eq!(
            Injection::from_injectfile(&Value::String("!!".into())).unwrap_err(),
            InjectionError::Base64("value")
        );
        assert_eq!(
            Injection::from_injectfile(&Value::String(b64(b"/no-comma"))).unwrap_err(),
            InjectionError::NoComma
        );
        assert!(Injection::from_file_inject(&serde_json::json!({"b64_path": "L2E="})).is_err());
        assert!(Injection::from_file_inject(&Value::String("x".into())).is_err());
    }
}
