//! Hostile and malformed requests: each gets its exact reply and leaves the
//! guest root byte for byte unchanged (no file, no cache entry, no backup).

use crate::harness::{Agent, TestRoot};
use crate::socket::keyinit;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const P: &str = "162259276829213363391578010288127";
const P_MINUS_1: &str = "162259276829213363391578010288126";

fn b64(s: &[u8]) -> String {
    STANDARD.encode(s)
}

fn fi(path: &[u8], data: &[u8]) -> String {
    format!(
        r#"{{"name":"file_inject","value":{{"b64_path":"{}","b64_file":"{}"}}}}"#,
        b64(path),
        b64(data)
    )
}

fn ij(raw: &[u8]) -> String {
    format!(r#"{{"name":"injectfile","value":"{}"}}"#, b64(raw))
}

/// (needs a keyinit first, request, returncode, message)
fn cases() -> Vec<(bool, Vec<u8>, &'static str, String)> {
    let s = |x: &str| x.to_string();
    vec![
        (
            false,
            b"{".to_vec(),
            "500",
            s("Request is malformed: not valid JSON (EOF while parsing an object at line 1 column 1)"),
        ),
        (
            false,
            b"not json".to_vec(),
            "500",
            s("Request is malformed: not valid JSON (expected ident at line 1 column 2)"),
        ),
        (
            false,
            b"[]".to_vec(),
            "500",
            s("Request is malformed: not a JSON object"),
        ),
        (
            false,
            b"\"version\"".to_vec(),
            "500",
            s("Request is malformed: not a JSON object"),
        ),
        (
            false,
            b"42".to_vec(),
            "500",
            s("Request is malformed: not a JSON object"),
        ),
        (
            false,
            b"null".to_vec(),
            "500",
            s("Request is malformed: not a JSON object"),
        ),
        (false, b"{}".to_vec(), "500", s("Request is missing 'name' key")),
        (
            false,
            br#"{"value":"agent"}"#.to_vec(),
            "500",
            s("Request is missing 'name' key"),
        ),
        (
            false,
            br#"{"name":5}"#.to_vec(),
            "500",
            s("Request is malformed: 'name' is not a string"),
        ),
        (
            false,
            br#"{"name":null}"#.to_vec(),
            "500",
            s("Request is malformed: 'name' is not a string"),
        ),
        (
            false,
            br#"{"name":["version"]}"#.to_vec(),
            "500",
            s("Request is malformed: 'name' is not a string"),
        ),
        (
            false,
            b"\xff\xfe{}".to_vec(),
            "500",
            s("Request is malformed: not valid JSON (not UTF-8)"),
        ),
        (
            false,
            br#"{"name":"help"}"#.to_vec(),
            "404",
            s("No such agent command 'help'"),
        ),
        (false, br#"{"name":""}"#.to_vec(), "404", s("No such agent command ''")),
        (
            false,
            br#"{"name":"VERSION"}"#.to_vec(),
            "404",
            s("No such agent command 'VERSION'"),
        ),
        (
            false,
            br#"{"name":"kmsactivate","value":{}}"#.to_vec(),
            "404",
            s("No such agent command 'kmsactivate'"),
        ),
        (
            false,
            br#"{"name":"../../etc/shadow"}"#.to_vec(),
            "404",
            s("No such agent command '../../etc/shadow'"),
        ),
        (
            false,
            br#"{"name":"keyinit"}"#.to_vec(),
            "500",
            s("Invalid value for 'keyinit': expected a decimal string"),
        ),
        (
            false,
            br#"{"name":"keyinit","value":"abc"}"#.to_vec(),
            "500",
            s("Invalid value for 'keyinit': public key is not a decimal number"),
        ),
        (
            false,
            br#"{"name":"keyinit","value":"-5"}"#.to_vec(),
            "500",
            s("Invalid value for 'keyinit': public key is not a decimal number"),
        ),
        (
            false,
            br#"{"name":"keyinit","value":""}"#.to_vec(),
            "500",
            s("Invalid value for 'keyinit': public key is not a decimal number"),
        ),
        (
            false,
            br#"{"name":"keyinit","value":"0"}"#.to_vec(),
            "500",
            s("Invalid value for 'keyinit': public key is out of range"),
        ),
        (
            false,
            br#"{"name":"keyinit","value":"1"}"#.to_vec(),
            "500",
            s("Invalid value for 'keyinit': public key is out of range"),
        ),
        (
            false,
            format!(r#"{{"name":"keyinit","value":"{P_MINUS_1}"}}"#).into_bytes(),
            "500",
            s("Invalid value for 'keyinit': public key is out of range"),
        ),
        (
            false,
            format!(r#"{{"name":"keyinit","value":"{P}"}}"#).into_bytes(),
            "500",
            s("Invalid value for 'keyinit': public key is out of range"),
        ),
        (
            false,
            format!(r#"{{"name":"keyinit","value":"{}"}}"#, "9".repeat(60)).into_bytes(),
            "500",
            s("Invalid value for 'keyinit': public key is out of range"),
        ),
        (
            false,
            br#"{"name":"keyinit","value":1.5}"#.to_vec(),
            "500",
            s("Invalid value for 'keyinit': expected a decimal string"),
        ),
        (
            false,
            br#"{"name":"password","value":"aGVsbG8gd29ybGQhISEhIQ=="}"#.to_vec(),
            "500",
            s("Password without key exchange"),
        ),
        (
            false,
            br#"{"name":"password","value":5}"#.to_vec(),
            "500",
            s("Invalid value for 'password': expected a base64 string"),
        ),
        (
            true,
            br#"{"name":"password","value":"!!!not base64"}"#.to_vec(),
            "500",
            s("Couldn't decode base64 data"),
        ),
        (
            true,
            br#"{"name":"password","value":"aGVsbG8gd29ybGQhISEhIQ=="}"#.to_vec(),
            "500",
            s("Invalid password data received"),
        ),
        (
            true,
            br#"{"name":"password","value":"aGVsbG8="}"#.to_vec(),
            "500",
            s("Invalid password data received"),
        ),
        (
            true,
            br#"{"name":"password","value":""}"#.to_vec(),
            "500",
            s("Invalid password data received"),
        ),
        (
            false,
            br#"{"name":"injectfile","value":5}"#.to_vec(),
            "500",
            s("Invalid value for 'injectfile': expected a base64 string"),
        ),
        (
            false,
            br#"{"name":"injectfile","value":"%%%"}"#.to_vec(),
            "500",
            s("Invalid value for 'injectfile': couldn't decode base64 data in value"),
        ),
        (
            false,
            ij(b"/etc/motd-without-comma").into_bytes(),
            "500",
            s("Invalid value for 'injectfile': decoded data has no ',' between path and contents"),
        ),
        (
            false,
            ij(b"etc/motd,x").into_bytes(),
            "500",
            s("Invalid value for 'injectfile': path 'etc/motd' is not absolute"),
        ),
        (
            false,
            ij(b"/root/../etc/shadow,x").into_bytes(),
            "500",
            s("Invalid value for 'injectfile': path '/root/../etc/shadow' contains '..'"),
        ),
        (
            false,
            ij(b"/,x").into_bytes(),
            "500",
            s("Invalid value for 'injectfile': path '/' names a directory"),
        ),
        (
            false,
            ij(b"/etc/,x").into_bytes(),
            "500",
            s("Invalid value for 'injectfile': path '/etc/' names a directory"),
        ),
        (
            false,
            ij(b"/etc/a\0b,x").into_bytes(),
            "500",
            s("Invalid value for 'injectfile': path contains a NUL byte"),
        ),
        (
            false,
            ij(b",x").into_bytes(),
            "500",
            s("Invalid value for 'injectfile': path is empty"),
        ),
        (
            false,
            ij(b"/\xff\xfe,x").into_bytes(),
            "500",
            s("Invalid value for 'injectfile': path is not UTF-8"),
        ),
        (
            false,
            br#"{"name":"file_inject","value":"L2V0Yy9tb3Rk"}"#.to_vec(),
            "500",
            s("Invalid value for 'file_inject': expected an object with b64_path and b64_file"),
        ),
        (
            false,
            br#"{"name":"file_inject","value":{"b64_path":"L2V0Yy9tb3Rk"}}"#.to_vec(),
            "500",
            s("Invalid value for 'file_inject': missing b64_file"),
        ),
        (
            false,
            br#"{"name":"file_inject","value":{"b64_path":1,"b64_file":""}}"#.to_vec(),
            "500",
            s("Invalid value for 'file_inject': b64_path must be a string"),
        ),
        (
            false,
            br#"{"name":"file_inject","value":{"b64_path":"*","b64_file":""}}"#.to_vec(),
            "500",
            s("Invalid value for 'file_inject': couldn't decode base64 data in b64_path"),
        ),
        (
            false,
            fi(b"/etc/../../x", b"x").into_bytes(),
            "500",
            s("Invalid value for 'file_inject': path '/etc/../../x' contains '..'"),
        ),
        (
            false,
            fi(b"/etc", b"x").into_bytes(),
            "500",
            s("refusing to write /etc: it is a directory"),
        ),
        (
            false,
            fi(b"/etc/link", b"x").into_bytes(),
            "500",
            s("refusing to write /etc/link: it is a symbolic link"),
        ),
        (
            false,
            fi(b"/etc/fifo", b"x").into_bytes(),
            "500",
            s("refusing to write /etc/fifo: it is not a regular file"),
        ),
        (
            false,
            format!(r#"{{"name":"version","value":"{}"}}"#, "a".repeat(5000)).into_bytes(),
            "500",
            s("Request is malformed: larger than 4096 bytes"),
        ),
        (
            false,
            br#"{"name":"agentupdate","value":"file:///etc/shadow,d41d8cd98f00b204e9800998ecf8427e"}"#.to_vec(),
            "500",
            s("Invalid value for 'agentupdate': invalid URL: only http and https are fetched (scheme \"file\")"),
        ),
        (
            false,
            fi(b"/etc/passwd/sub", b"x").into_bytes(),
            "500",
            s("cannot inspect /etc/passwd/sub: Not a directory (os error 20)"),
        ),
    ]
}

#[test]
fn hostile_requests_get_exact_replies_and_change_nothing() {
    let root = TestRoot::new();
    std::os::unix::fs::symlink("/etc/passwd", root.path("/etc/link")).unwrap();
    let fifo = std::ffi::CString::new(root.path("/etc/fifo").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let agent = Agent::socket(&root, &[], None);
    let mut c = agent.connect();
    let all = cases();
    assert!(all.len() >= 40, "{} cases", all.len());
    for (needs_key, request, rc, msg) in all {
        if needs_key {
            keyinit(&mut c);
        }
        let before = root.snapshot();
        let (got_rc, got_msg) = c.call(&request);
        let shown = String::from_utf8_lossy(&request[..request.len().min(120)]).into_owned();
        assert_eq!(got_rc, rc, "returncode for {shown}: {got_msg}");
        assert_eq!(got_msg, msg, "message for {shown}");
        assert_eq!(root.snapshot(), before, "root changed by {shown}");
    }
    // After all that, the agent still answers.
    assert_eq!(c.call(br#"{"name":"version","value":"agent"}"#).0, "0");
}

/// A link's target is read as if the root were `/`: an absolute one that
/// names a directory of the host leads nowhere inside the root.
#[test]
fn a_directory_link_out_of_the_root_is_not_followed() {
    let root = TestRoot::new();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path("/srv")).unwrap();
    let agent = Agent::socket(&root, &[], None);
    let mut c = agent.connect();
    let before = root.snapshot();
    let (rc, msg) = c.call(fi(b"/srv/u/.ssh/authorized_keys", b"ssh-ed25519 AAAA k").as_bytes());
    assert_eq!(rc, "500");
    assert_eq!(
        msg,
        "refusing to write /srv/u/.ssh/authorized_keys: it passes through a symbolic link that leads nowhere"
    );
    assert_eq!(root.snapshot(), before);
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written outside"
    );
}

#[test]
fn allowed_paths_hold_for_the_path_as_resolved() {
    let root = TestRoot::new();
    std::fs::create_dir_all(root.path("/root/.ssh/keys.d")).unwrap();
    std::fs::create_dir_all(root.path("/var/home/u/.ssh")).unwrap();
    std::os::unix::fs::symlink("../../etc", root.path("/root/.ssh/etc2")).unwrap();
    std::os::unix::fs::symlink("/etc", root.path("/root/.ssh/etc")).unwrap();
    std::os::unix::fs::symlink("../../../../../..", root.path("/root/.ssh/up")).unwrap();
    std::os::unix::fs::symlink("/root/.ssh/etc2", root.path("/root/.ssh/twice")).unwrap();
    std::os::unix::fs::symlink("keys.d", root.path("/root/.ssh/keys")).unwrap();
    std::os::unix::fs::symlink("var/home", root.path("/home")).unwrap();
    // A user's own link at an allowed path does not move the allowed tree.
    std::fs::create_dir_all(root.path("/var/home/v")).unwrap();
    std::os::unix::fs::symlink("/etc", root.path("/var/home/v/.ssh")).unwrap();
    std::os::unix::fs::lchown(root.path("/var/home/v/.ssh"), Some(1000), Some(1000)).expect("lchown needs root");
    let config = "[file]\nallowed_paths = /root/.ssh, /home/u/.ssh, /home/v/.ssh\n";
    let agent = Agent::socket(&root, &[], Some(config));
    let mut c = agent.connect();
    let before = root.snapshot();
    for path in [
        "/root/.ssh/etc2/shadow",
        "/root/.ssh/etc/shadow",
        "/root/.ssh/up/etc/shadow",
        "/root/.ssh/twice/shadow",
        "/root/.ssh/etc2/cron.d/evil",
        "/home/v/.ssh/shadow",
    ] {
        let (rc, msg) = c.call(fi(path.as_bytes(), b"root::0:0:99999:7:::\n").as_bytes());
        assert_eq!(rc, "500", "{path}: {msg}");
        assert_eq!(
            msg,
            format!("refusing to write {path}: it lies outside the allowed paths once symbolic links are resolved")
        );
        assert_eq!(root.snapshot(), before, "{path} changed the root");
    }
    assert_eq!(root.shadow_hash("root"), "*");
    // Links that stay inside an allowed path, or lead into one, are followed.
    assert_eq!(c.call(fi(b"/root/.ssh/keys/a", b"k\n").as_bytes()).0, "0");
    assert_eq!(root.read("/root/.ssh/keys.d/a"), b"k\n");
    assert_eq!(c.call(fi(b"/home/u/.ssh/authorized_keys", b"k\n").as_bytes()).0, "0");
    assert_eq!(root.read("/var/home/u/.ssh/authorized_keys"), b"k\n");
}
