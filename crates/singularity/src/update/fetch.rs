//! Downloads for `agentupdate`: one GET over http or https with a size
//! limit, a connect and a total timeout and a few redirects at most. TLS is
//! rustls with the system's CA store (and `[update] ca_file`); no proxy from
//! the environment. Reads only; writes nothing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};

/// The system CA bundles, first found wins (Debian/Ubuntu/Alpine, RHEL and
/// Fedora, SUSE, others).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Redirects followed at most.
pub const MAX_REDIRECTS: u32 = 3;

/// How one download is bounded.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_size: u64,
    /// Time allowed to connect.
    pub connect: Duration,
    /// Time allowed for the whole download, redirects included.
    pub total: Duration,
    /// An extra CA certificate file (PEM).
    pub ca_file: Option<PathBuf>,
}

/// Why a download failed (the URL is the caller's to add).
#[derive(Debug)]
pub enum FetchError {
    /// The server answered with this status.
    Status(u16),
    /// Longer than the limit.
    TooLarge(u64),
    /// More redirects than [`MAX_REDIRECTS`].
    Redirects,
    /// A timeout (connect or total).
    Timeout(String),
    /// The CA file could not be used.
    CaFile(PathBuf, String),
    /// Anything else (DNS, connection, TLS, truncated body).
    Other(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Status(code) => write!(f, "the server answered HTTP {code}"),
            FetchError::TooLarge(max) => write!(f, "larger than the limit of {max} bytes ([update] max_size)"),
            FetchError::Redirects => write!(f, "more than {MAX_REDIRECTS} redirects"),
            FetchError::Timeout(what) => write!(f, "timed out ({what})"),
            FetchError::CaFile(path, why) => write!(f, "cannot use CA file {}: {why}", path.display()),
            FetchError::Other(why) => f.write_str(why),
        }
    }
}

/// The certificates of the first system bundle found and of `extra`.
fn root_certs(extra: Option<&Path>) -> Result<RootCerts, FetchError> {
    let mut certs = Vec::new();
    let mut add = |pem: &[u8]| -> usize {
        let before = certs.len();
        for item in parse_pem(pem).flatten() {
            if let PemItem::Certificate(c) = item {
                certs.push(c.to_owned());
            }
        }
        certs.len() - before
    };
    if let Some(bundle) = SYSTEM_BUNDLES.iter().find_map(|p| std::fs::read(p).ok()) {
        add(&bundle);
    }
    if let Some(path) = extra {
        let pem = std::fs::read(path).map_err(|e| FetchError::CaFile(path.to_path_buf(), e.to_string()))?;
        if add(&pem) == 0 {
            return Err(FetchError::CaFile(
                path.to_path_buf(),
                "no PEM certificate in it".into(),
            ));
        }
    }
    Ok(RootCerts::Specific(Arc::new(certs)))
}

/// rustls with *ring*. Deprecated in rustls 0.23.48 only for its lack of
/// post-quantum key exchange; the other provider (aws-lc-rs) is a C
/// library, and what travels here is a public build checked by MD5 and,
/// when configured, by signature, so secrecy of the transfer is not at stake.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// GETs `url` within `limits`. An HTTP error status, a body over the
/// limit, a timeout or a truncated body is an error.
pub fn get(url: &str, limits: &Limits) -> Result<Vec<u8>, FetchError> {
    let tls = TlsConfig::builder()
        .root_certs(root_certs(limits.ca_file.as_deref())?)
        .unversioned_rustls_crypto_provider(Arc::new(ring_provider()))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .proxy(None)
        .max_redirects(MAX_REDIRECTS)
        // An https URL is not followed to plain http.
        .https_only(url.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("https:")))
        .timeout_connect(Some(limits.connect))
        .timeout_global(Some(limits.total))
        .user_agent(concat!("singularity/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| classify(e, limits))?;
    response
        .body_mut()
        .with_config()
        .limit(limits.max_size)
        .read_to_vec()
        .map_err(|e| classify(e, limits))
}

fn classify(e: ureq::Error, limits: &Limits) -> FetchError {
    match e {
        ureq::Error::StatusCode(code) => FetchError::Status(code),
        ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge(limits.max_size),
        ureq::Error::TooManyRedirects => FetchError::Redirects,
        ureq::Error::Timeout(which) => FetchError::Timeout(format!(
            "{which}; connect limit {} s, total limit {} s",
            limits.connect.as_secs(),
            limits.total.as_secs()
        )),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            FetchError::Other("the connection closed before the whole body arrived".into())
        }
        other => FetchError::Other(without_secrets(&other.to_string())),
    }
}

/// An error text with every URL in it shown as [`shown_url`] shows it (a
/// `Location` header or a URI may carry a password or a signature).
fn without_secrets(text: &str) -> String {
    text.split(' ')
        .map(|word| match word.find("://") {
            Some(at) => {
                let start = word[..at]
                    .rfind(|c: char| !c.is_ascii_alphanumeric())
                    .map_or(0, |i| i + 1);
                format!(
                    "{}{}",
                    &word[..start],
                    crate::protocol::update::shown_url(&word[start..])
                )
            }
            None => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_error_texts_lose_their_secrets() {
        assert_eq!(
            super::without_secrets("location header is malformed: \"https://u:pw@h/x?sig=abc\""),
            "location header is malformed: \"https://***@h/x?***"
        );
        assert_eq!(super::without_secrets("no url here"), "no url here");
    }
}
