//! Every command end to end through the socket communicator: the real binary,
//! ciphertexts from the real `openssl` CLI, hashes checked by the system's
//! crypt(3).

use crate::harness::{Agent, TestRoot, ROOT_SHADOW};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use singularity::crypto::dh::{KeyPair, PeerKey};
use std::os::unix::fs::PermissionsExt;

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
        "version,features,keyinit,password,injectfile,file_inject,resetnetwork,agentupdate"
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
    assert_eq!(root.mode("/opt/app/conf.bin"), 0o600);
    assert_eq!(root.mode("/opt/app"), 0o700);

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
fn new_keys_outside_ssh_and_their_new_directories_are_private() {
    let root = TestRoot::new();
    root.write("/etc/hostname", b"vm\n", 0o644);
    std::fs::set_permissions(root.path("/etc"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = Agent::socket(&root, &[], None);
    let mut c = agent.connect();
    let inject = |c: &mut crate::harness::Conn, path: &str, data: &str| {
        c.json(json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode(path), "b64_file": STANDARD.encode(data)}}))
    };
    let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
    assert_eq!(inject(&mut c, "/etc/ssl/private/server.key", key).0, "0");
    assert_eq!(root.read("/etc/ssl/private/server.key"), key.as_bytes());
    assert_eq!(root.mode("/etc/ssl/private/server.key"), 0o600);
    assert_eq!(root.mode("/etc/ssl/private"), 0o700);
    assert_eq!(root.mode("/etc/ssl"), 0o700);
    assert_eq!(root.mode("/etc"), 0o755, "an existing directory keeps its mode");
    // An existing file keeps its mode, whatever it is.
    assert_eq!(inject(&mut c, "/etc/hostname", "other\n").0, "0");
    assert_eq!(root.mode("/etc/hostname"), 0o644);
}

#[test]
fn configured_modes_apply_to_new_injected_files_and_directories() {
    let root = TestRoot::new();
    let config = "[file]\nmode = 0644\ndirectory_mode = 755\n";
    let agent = Agent::socket(&root, &[], Some(config));
    let mut c = agent.connect();
    let request = json!({"name": "file_inject", "value": {"b64_path": STANDARD.encode("/srv/www/index.html"), "b64_file": STANDARD.encode("<p>hi</p>\n")}});
    assert_eq!(c.json(request).0, "0");
    assert_eq!(root.mode("/srv/www/index.html"), 0o644);
    assert_eq!(root.mode("/srv/www"), 0o755);
    assert_eq!(root.mode("/srv"), 0o755);
}

/// Where `needle` occurs in the writable memory (heap, stacks, anonymous
/// mappings) of process `pid`: the names of the mappings.
fn writable_memory_holding(pid: u32, needle: &[u8]) -> Vec<String> {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut hits = Vec::new();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !fields[1].starts_with("rw") {
            continue;
        }
        let (start, end) = fields[0].split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut region = vec![0u8; usize::try_from(end - start).unwrap()];
        if mem.read_exact_at(&mut region, start).is_err() {
            continue; // guard pages and the like
        }
        if region.windows(needle.len()).any(|w| w == needle) {
            hits.push(fields.get(5).copied().unwrap_or("[anonymous]").to_string());
        }
    }
    hits
}

#[test]
fn a_replaced_key_leaves_no_copy_in_the_agents_memory() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &[], None);
    let mut c = agent.connect();
    // Long and random enough to occur nowhere else.
    let mut random = [0u8; 24];
    getrandom::getrandom(&mut random).unwrap();
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let old = format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLD{hex}OLD old@key\n");
    let new = format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEW{hex}NEW new@key\n");
    let inject = |c: &mut crate::harness::Conn, key: &str| {
        let mut value = b"/root/.ssh/authorized_keys,".to_vec();
        value.extend_from_slice(key.as_bytes());
        c.json(json!({"name": "injectfile", "value": STANDARD.encode(&value)}))
    };
    assert_eq!(inject(&mut c, &old).0, "0");
    assert_eq!(inject(&mut c, &new).0, "0");
    assert_eq!(root.read("/root/.ssh/authorized_keys"), new.as_bytes());
    // Requests are handled one at a time: once this one is answered, the
    // injection before it is done with.
    assert_eq!(c.json(json!({"name": "version", "value": "agent"})).0, "0");
    for (which, key) in [("old", &old), ("new", &new)] {
        let needle = key.trim_end().as_bytes();
        let hits = writable_memory_holding(agent.pid(), &needle[16..]);
        assert!(
            hits.is_empty(),
            "the {which} key is still in the agent's memory: {hits:?}"
        );
    }
    // Nor the raw request that carried the old key (its base64 text).
    let mut value = b"/root/.ssh/authorized_keys,".to_vec();
    value.extend_from_slice(old.as_bytes());
    let encoded = STANDARD.encode(&value);
    let hits = writable_memory_holding(agent.pid(), &encoded.as_bytes()[40..100]);
    assert!(
        hits.is_empty(),
        "the old request is still in the agent's memory: {hits:?}"
    );
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

#[test]
fn file_logs_carry_rfc3339_utc_timestamps() {
    let root = TestRoot::new();
    let agent = Agent::socket(&root, &[], None);
    assert_eq!(
        agent
            .connect()
            .json(serde_json::json!({"name": "version", "value": ""}))
            .0,
        "0"
    );
    let log = agent.log();
    assert!(!log.is_empty());
    for line in log.lines() {
        let stamp = line.split(' ').next().unwrap();
        let b = stamp.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        assert!(
            b.len() == 24
                && digits(0..4)
                && b[4] == b'-'
                && digits(5..7)
                && b[7] == b'-'
                && digits(8..10)
                && b[10] == b'T'
                && digits(11..13)
                && b[13] == b':'
                && digits(14..16)
                && b[16] == b':'
                && digits(17..19)
                && b[19] == b'.'
                && digits(20..23)
                && b[23] == b'Z',
            "{line}"
        );
    }
}
