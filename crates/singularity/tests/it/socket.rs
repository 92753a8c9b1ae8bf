//! Every command end to end through the socket communicator: the real binary,
//! ciphertexts from the real `openssl` CLI, hashes checked by the system's
//! crypt(3).

use crate::harness::{Agent, TestRoot, ROOT_SHADOW};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use singularity::crypto::dh::{KeyPair, PeerKey};

pub use crate::tools::{openssl_encrypt, system_crypt};

/// keyinit from a host key pair; returns the shared secret as nova computes it.
pub fn keyinit(conn: &mut crate::harness::Conn) -> String {
    let host = KeyPair::generate().expect("random");
    let (rc, msg) = conn.json(json!({"name": "keyinit", "value": host.public_key().to_string()}));
    assert_eq!(rc, "D0", "{msg}");
    assert!(
        msg.bytes().all(|b| b.is_ascii_digit()),
        "public key is plain decimal: {msg}"
    );
    let shared = host.shared_secret(PeerKey::parse(&msg).expect("agent key in range"));
    shared.as_decimal().to_string()
}

#[test]
fn version_and_features() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &[], None);
    let mut c = agent.connect();
    let (rc, version) = c.json(json!({"name": "version", "value": "agent"}));
    assert_eq!(rc, "0");
    assert!(
        !version.is_empty() && version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{version}"
    );
    let (rc, features) = c.json(json!({"name": "features", "value": ""}));
    assert_eq!(rc, "0");
    assert_eq!(
        features,
        "version,features,keyinit,password,injectfile,file_inject,resetnetwork"
    );
}

#[test]
fn functions_restrict_commands_and_features() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &["-F", "version,features,file"], None);
    let mut c = agent.connect();
    assert_eq!(
        c.json(json!({"name": "features", "value": ""})).1,
        "version,features,injectfile,file_inject"
    );
    let (rc, msg) = c.json(json!({"name": "keyinit", "value": "12345"}));
    assert_eq!((rc.as_str(), msg.as_str()), ("404", "No such agent command 'keyinit'"));
    let (rc, _) = c.json(json!({"name": "password", "value": "x"}));
    assert_eq!(rc, "404");
    // The same restriction from the configuration file (one daemon at a time).
    drop(c);
    drop(agent);
    let agent = Agent::socket(&root, &[], Some("[main]\nfunctions = password,version\n"));
    let mut c = agent.connect();
    assert_eq!(
        c.json(json!({"name": "features", "value": ""})),
        ("404".into(), "No such agent command 'features'".into())
    );
    assert_eq!(c.json(json!({"name": "injectfile", "value": ""})).0, "404");
}

#[test]
fn password_from_openssl_md5_and_sha256() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &[], None);
    let mut c = agent.connect();
    for (md, pw) in [("md5", "Passw0rd!"), ("sha256", "pässwörd with spaces & $ymbols")] {
        let shared = keyinit(&mut c);
        let ct = openssl_encrypt(&shared, pw, md);
        assert_eq!(
            c.json(json!({"name": "password", "value": ct})),
            ("0".into(), String::new()),
            "{md}"
        );
        let hash = root.shadow_hash("root");
        assert!(hash.starts_with("$6$"), "{hash}");
        assert_eq!(system_crypt(pw, &hash), hash, "crypt(3) verifies the {md} password");
        assert_ne!(system_crypt("wrong", &hash), hash);
    }
    let shadow = String::from_utf8(root.read("/etc/shadow")).unwrap();
    let lines: Vec<&str> = shadow.lines().collect();
    assert_eq!(lines[1], "daemon:*:19000:0:99999:7:::", "other lines untouched");
    let fields: Vec<&str> = lines[0].split(':').collect();
    assert_eq!(fields.len(), 9);
    assert!(fields[2].parse::<u64>().unwrap() > 19000, "last-change field updated");
    assert_eq!(&fields[3..], &ROOT_SHADOW.split(':').collect::<Vec<_>>()[3..]);
    assert_eq!(root.mode("/etc/shadow"), 0o640, "mode kept");
    // The key is wiped after use: a second password needs a new keyinit.
    let (rc, msg) = c.json(json!({"name": "password", "value": openssl_encrypt("1", "x", "md5")}));
    assert_eq!((rc.as_str(), msg.as_str()), ("500", "Password without key exchange"));
}

#[test]
fn sha256_hash_scheme_from_config() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &[], Some("[password]\nhash = sha256\n"));
    let mut c = agent.connect();
    let shared = keyinit(&mut c);
    assert_eq!(
        c.json(json!({"name": "password", "value": openssl_encrypt(&shared, "pw", "sha256")}))
            .0,
        "0"
    );
    let hash = root.shadow_hash("root");
    assert!(hash.starts_with("$5$"));
    assert_eq!(system_crypt("pw", &hash), hash);
}

#[test]
fn injectfile_and_file_inject() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &[], None);
    let mut c = agent.connect();
    let key = b"\n# The following ssh key was injected by Nova\nssh-rsa AAAA test@host\n";
    let mut value = b"/root/.ssh/authorized_keys,".to_vec();
    value.extend_from_slice(key);
    let (rc, msg) = c.json(json!({"name": "injectfile", "value": STANDARD.encode(&value)}));
    assert_eq!((rc.as_str(), msg.as_str()), ("0", ""));
    assert_eq!(root.read("/root/.ssh/authorized_keys"), key);
    assert_eq!(root.mode("/root/.ssh"), 0o700);
    assert_eq!(root.mode("/root/.ssh/authorized_keys"), 0o600);

    // Binary contents with commas and NULs, through file_inject, into new directories.
    let data = b"a,b\0c\xff".to_vec();
    let (rc, _) = c.json(json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode("/opt/app/conf.bin"), "b64_file": STANDARD.encode(&data)}}));
    assert_eq!(rc, "0");
    assert_eq!(root.read("/opt/app/conf.bin"), data);
    assert_eq!(root.mode("/opt/app/conf.bin"), 0o644);
    assert_eq!(root.mode("/opt/app"), 0o755);

    // An existing file keeps its mode.
    root.write("/etc/motd", b"old\n", 0o640);
    assert_eq!(c.json(json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode("/etc/motd"), "b64_file": STANDARD.encode("new\n")}})).0, "0");
    assert_eq!(root.read("/etc/motd"), b"new\n");
    assert_eq!(root.mode("/etc/motd"), 0o640);
    // The cache holds what was written, for `singularity apply`.
    assert_eq!(root.read("/var/cache/singularity/file/etc/motd"), b"new\n");
}

#[test]
fn backups_when_enabled() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &["-b"], None);
    let mut c = agent.connect();
    root.write("/etc/motd", b"old\n", 0o644);
    assert_eq!(c.json(json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode("/etc/motd"), "b64_file": STANDARD.encode("new\n")}})).0, "0");
    assert_eq!(root.read("/etc/.motd.bak"), b"old\n");
    let before = root.read("/etc/shadow");
    let shared = keyinit(&mut c);
    assert_eq!(
        c.json(json!({"name": "password", "value": openssl_encrypt(&shared, "pw", "md5")}))
            .0,
        "0"
    );
    assert_eq!(root.read("/etc/.shadow.bak"), before);
    assert_eq!(root.mode("/etc/.shadow.bak"), 0o640);
}

#[test]
fn allowed_paths_restrict_injection() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &[], Some("[file]\nallowed_paths = /root/.ssh, /etc/motd\n"));
    let mut c = agent.connect();
    let inject = |c: &mut crate::harness::Conn, path: &str| {
        c.json(json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode(path), "b64_file": "eA=="}}))
    };
    assert_eq!(inject(&mut c, "/root/.ssh/authorized_keys").0, "0");
    assert_eq!(inject(&mut c, "/etc/motd").0, "0");
    let before = root.snapshot();
    assert_eq!(
        inject(&mut c, "/etc/shadow"),
        (
            "500".into(),
            "path '/etc/shadow' is outside the allowed injection paths".into()
        )
    );
    assert_eq!(inject(&mut c, "/root/.sshd").0, "500");
    assert_eq!(root.snapshot(), before);
}

#[test]
fn secrets_never_reach_the_log() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &[], None);
    let mut c = agent.connect();
    let password = "Sup3r-S3cret-Value";
    let shared = keyinit(&mut c);
    let ct = openssl_encrypt(&shared, password, "sha256");
    assert_eq!(c.json(json!({"name": "password", "value": ct})).0, "0");
    let key = "ssh-rsa AAAAB3NzaSecretKeyMaterial";
    let req = json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode("/root/.ssh/authorized_keys"), "b64_file": STANDARD.encode(key)}});
    assert_eq!(c.json(req).0, "0");
    let hash = root.shadow_hash("root");
    let log = agent.log();
    assert!(
        log.contains("command password returncode 0"),
        "one line per request: {log}"
    );
    for secret in [password, &ct, &shared, &hash, key, &STANDARD.encode(key)] {
        assert!(!log.contains(secret), "log leaks {secret:?}:\n{log}");
    }
}
