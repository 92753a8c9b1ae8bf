//! The real tools the password tests trust: nova's `openssl` command line and
//! the system's crypt(3). Both are run directly, without a shell.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// `openssl aes-128-cbc -A -a -nosalt -pass pass:<shared> -md <md>` with
/// `plain + "\n"` on stdin, as nova runs it (nova gives no `-md`; the host
/// OpenSSL's default is MD5 before 1.1.0 and SHA-256 after). The output is
/// returned as openssl prints it, final newline included.
pub fn openssl_encrypt(shared: &str, plain: &str, md: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["aes-128-cbc", "-A", "-a", "-nosalt", "-md", md, "-pass"])
        .arg(format!("pass:{shared}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl (is it installed?): {e}"));
    let mut stdin = child.stdin.take().expect("stdin piped");
    stdin.write_all(format!("{plain}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl failed: {out:?}");
    String::from_utf8(out.stdout).expect("base64 output")
}

/// The system's crypt(3), through perl.
pub fn system_crypt(password: &str, setting: &str) -> String {
    let out = Command::new("perl")
        .args(["-e", "print crypt($ARGV[0], $ARGV[1])", password, setting])
        .output()
        .unwrap_or_else(|e| panic!("cannot run perl (is it installed?): {e}"));
    assert!(out.status.success(), "perl failed: {out:?}");
    String::from_utf8(out.stdout).expect("crypt output")
}
