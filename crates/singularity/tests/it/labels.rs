//! Replaced files keep their SELinux context, their other extended
//! attributes and their POSIX ACL; new files get the context the policy's
//! `file_contexts` gives their path, else their directory's. Runs as root
//! on a file system that stores `security.selinux`: the temporary
//! directory's, else a small ext4 image on a loop device.

use crate::harness::TestRoot;
use crate::socket::system_crypt;
use crate::xenlab::{GuestLink, XenLab};
use singularity::crypto::cipher::Digest;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use xenstore::sim::Config;

const T: Duration = Duration::from_secs(20);

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap()
}

/// Every extended attribute of `path` (not following a link), by name.
fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let p = c_path(path);
    let mut names = vec![0u8; 65536];
    // SAFETY: `p` is NUL-terminated and `names` valid for its length.
    let n = unsafe { libc::llistxattr(p.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(
        n >= 0,
        "llistxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    names.truncate(usize::try_from(n).unwrap());
    let mut out: Vec<(String, Vec<u8>)> = names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let c = CString::new(name).unwrap();
            let mut value = vec![0u8; 65536];
            // SAFETY: `p` and `c` are NUL-terminated and `value` valid for its length.
            let n = unsafe { libc::lgetxattr(p.as_ptr(), c.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
            assert!(
                n >= 0,
                "lgetxattr {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            value.truncate(usize::try_from(n).unwrap());
            (String::from_utf8_lossy(name).into_owned(), value)
        })
        .collect();
    out.sort();
    out
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let (p, n) = (c_path(path), CString::new(name).unwrap());
    // SAFETY: `p` and `n` are NUL-terminated and `value` valid for its length.
    let ret = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn context(path: &Path) -> Option<String> {
    xattrs(path)
        .into_iter()
        .find(|(name, _)| name == "security.selinux")
        .map(|(_, v)| String::from_utf8_lossy(&v).trim_end_matches('\0').to_string())
}

fn set_context(path: &Path, context: &str) {
    set_xattr(path, "security.selinux", format!("{context}\0").as_bytes()).unwrap();
}

/// A file system that stores `security.selinux`: the temporary directory's,
/// or an ext4 image mounted on a loop device (unmounted when dropped).
struct LabelledFs {
    dir: tempfile::TempDir,
    mount: Option<PathBuf>,
}

impl LabelledFs {
    fn new() -> Option<LabelledFs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: setting security.* attributes needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, "").unwrap();
        let stored = set_xattr(&probe, "security.selinux", b"system_u:object_r:etc_t:s0\0");
        std::fs::remove_file(&probe).unwrap();
        if stored.is_ok() {
            return Some(LabelledFs { dir, mount: None });
        }
        let image = dir.path().join("ext4.img");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        std::fs::File::create(&image).unwrap().set_len(32 << 20).unwrap();
        let ok = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
        if !ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image)) {
            eprintln!(
                "SKIPPED: {} refuses security.selinux ({stored:?}) and mkfs.ext4 failed",
                dir.path().display()
            );
            return None;
        }
        if !ok(Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mount)) {
            eprintln!(
                "SKIPPED: {} refuses security.selinux ({stored:?}) and no loop device is available",
                dir.path().display()
            );
            return None;
        }
        Some(LabelledFs {
            dir,
            mount: Some(mount),
        })
    }

    fn path(&self) -> &Path {
        self.mount.as_deref().unwrap_or(self.dir.path())
    }
}

impl Drop for LabelledFs {
    fn drop(&mut self) {
        if let Some(mount) = &self.mount {
            let _ = Command::new("umount").arg(mount).status();
        }
    }
}

/// A policy with rules for the network files, none for `/root`.
const FILE_CONTEXTS: &str = "\
/etc(/.*)?                          system_u:object_r:etc_t:s0
/etc/network/interfaces\\.d(/.*)?    system_u:object_r:net_conf_t:s0
/etc/shadow.*               --      system_u:object_r:shadow_t:s0
/etc/hosts                  --      <<none>>
";

#[test]
fn replaced_files_keep_labels_attributes_and_acls_and_new_files_get_the_policys() {
    let Some(fs) = LabelledFs::new() else {
        return;
    };
    let root = TestRoot::new_in(fs.path());
    root.seed_debian(&[("eth0", "bc:76:4e:20:6c:5b")]);
    root.write(
        "/etc/selinux/config",
        b"SELINUX=enforcing\nSELINUXTYPE=targeted\n",
        0o644,
    );
    root.write(
        "/etc/selinux/targeted/contexts/files/file_contexts",
        FILE_CONTEXTS.as_bytes(),
        0o644,
    );
    // Labels the policy would not give, so that keeping them is what is tested.
    let fixtures = [
        ("/etc/shadow", "system_u:object_r:custom_shadow_t:s0"),
        ("/etc/hosts", "system_u:object_r:net_conf_t:s0"),
        ("/etc/hostname", "system_u:object_r:hostname_etc_t:s0"),
    ];
    for (path, label) in fixtures {
        let p = root.path(path);
        set_context(&p, label);
        set_xattr(&p, "user.origin", format!("image build of {path}").as_bytes()).unwrap();
        let acl = Command::new("setfacl").args(["-m", "u:1:r,g:1:r"]).arg(&p).output();
        let acl = acl.expect("setfacl (apt-get install acl)");
        assert!(acl.status.success(), "{}", String::from_utf8_lossy(&acl.stderr));
    }
    let before: Vec<_> = fixtures.iter().map(|(p, _)| xattrs(&root.path(p))).collect();
    for attrs in &before {
        let names: Vec<&str> = attrs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["security.selinux", "system.posix_acl_access", "user.origin"]);
    }
    set_context(&root.path("/root"), "system_u:object_r:admin_home_t:s0");

    let mut lab = XenLab::new(GuestLink::Stream, Config::default());
    lab.start_agent(&root, &[], "[main]\nbackup = true\n");
    let host = lab.host();
    let reply = host.password("labelled-Pass", Digest::Sha256, T).unwrap();
    assert_eq!((reply.returncode.as_str(), reply.message.as_str()), ("0", ""));
    let hash = root.shadow_hash("root");
    assert_eq!(system_crypt("labelled-Pass", &hash), hash);
    let nic = crate::xenlab::public_nic();
    host.set_network(&nic).unwrap();
    host.set_hostname("labelled-guest").unwrap();
    let reply = host.resetnetwork(Some(T)).unwrap();
    assert_eq!((reply.returncode.as_str(), reply.message.as_str()), ("0", ""));
    let key = b"ssh-ed25519 AAAAC3 test\n";
    assert_eq!(
        host.inject("/root/.ssh/authorized_keys", key, T).unwrap().returncode,
        "0"
    );
    assert!(lab.stop_agent());

    assert_eq!(root.read("/etc/hostname"), b"labelled-guest\n");
    for ((path, _), attrs) in fixtures.iter().zip(&before) {
        assert_eq!(&xattrs(&root.path(path)), attrs, "{path} kept its attributes");
        let bak = path.replace("/etc/", "/etc/.") + ".bak";
        assert_eq!(
            &xattrs(&root.path(&bak)),
            attrs,
            "{bak} has the attributes of the original"
        );
    }
    let acl = Command::new("getfacl")
        .args(["-n", "--omit-header"])
        .arg(root.path("/etc/shadow"))
        .output()
        .unwrap();
    let acl = String::from_utf8_lossy(&acl.stdout);
    assert!(acl.contains("user:1:r--") && acl.contains("group:1:r--"), "{acl}");
    assert_eq!(
        root.mode("/etc/shadow"),
        0o640,
        "the mode is the original's, ACL mask included"
    );

    // New: the policy's context for the path, directories included.
    for path in ["/etc/network/interfaces.d", "/etc/network/interfaces.d/50-singularity"] {
        assert_eq!(
            context(&root.path(path)).as_deref(),
            Some("system_u:object_r:net_conf_t:s0"),
            "{path}"
        );
    }
    // New, where the policy has no rule: the directory's context.
    for path in ["/root/.ssh", "/root/.ssh/authorized_keys"] {
        assert_eq!(
            context(&root.path(path)).as_deref(),
            Some("system_u:object_r:admin_home_t:s0"),
            "{path}"
        );
    }
}
