//! `singularity-host demo`: the agent's whole story in one command, with no Xen and
//! no privileges. It starts the XenStore simulator, an agent for a guest whose
//! root is a temporary directory seeded like a small Debian system, and drives
//! nova's boot sequence through the same host code as `singularity-host`,
//! printing every request and reply, then the files the agent wrote.

use crate::dom0::commands::NicSpec;
use crate::dom0::{AgentHost, HostError};
use singularity::communicator::xen::XenCommunicator;
use singularity::crypto::cipher::Digest;
use singularity::daemon;
use singularity::handler::{Agent, Settings};
use singularity::network::addr::AddrError;
use singularity::root::Root;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xenstore::sim::{Config, Simulator};
use xenstore::Client;

/// The guest's domain id.
const DOMID: u32 = 7;
/// Polling interval of the demo host (the plugin polls every 500 ms).
const POLL: Duration = Duration::from_millis(10);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The seed root: path, contents, mode.
const SEED: &[(&str, &str, u32)] = &[
    ("/etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n", 0o644),
    ("/etc/hostname", "localhost\n", 0o644),
    ("/etc/hosts", "127.0.0.1\tlocalhost\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n", 0o644),
    ("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n", 0o644),
    ("/etc/shadow", "root:*:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n", 0o640),
    ("/etc/network/interfaces", "# interfaces(5) file used by ifup(8) and ifdown(8)\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n", 0o644),
    ("/etc/resolv.conf", "nameserver 127.0.0.1\n", 0o644),
    ("/sys/class/net/lo/address", "00:00:00:00:00:00\n", 0o444),
    ("/sys/class/net/eth0/address", "bc:76:4e:20:6c:5b\n", 0o444),
    ("/sys/class/net/eth1/address", "bc:76:4e:20:6c:5c\n", 0o444),
];

fn make_root() -> Result<PathBuf, String> {
    let mut random = [0u8; 6];
    getrandom::getrandom(&mut random).map_err(|e| e.to_string())?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("singularity-demo-{suffix}"));
    fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    for (path, body, mode) in SEED {
        let p = dir.join(path.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        fs::write(&p, body).map_err(|e| e.to_string())?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).map_err(|e| e.to_string())?;
    }
    let root_home = dir.join("root");
    fs::create_dir(&root_home).map_err(|e| e.to_string())?;
    fs::set_permissions(&root_home, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    Ok(dir)
}

type Tree = BTreeMap<String, (u32, Option<Vec<u8>>)>;

fn snapshot(base: &Path, dir: &Path, out: &mut Tree) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let rel = format!("/{}", path.strip_prefix(base).unwrap_or(&path).display());
        if meta.is_dir() {
            out.insert(rel, (meta.mode() & 0o7777, None));
            snapshot(base, &path, out);
        } else {
            out.insert(rel, (meta.mode() & 0o7777, fs::read(&path).ok()));
        }
    }
}

/// A fixed address of the demo data.
fn addr<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("'{s}' is not an address"))
}

/// An address with a prefix, parsed as the agent parses one.
fn cidr<T: std::str::FromStr<Err = AddrError>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: AddrError| e.to_string())
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn print_exchanges(host: &AgentHost) {
    for ex in host.take_exchanges() {
        println!("  host  -> data/host/{}…   {}", short(&ex.id), ex.request);
        match ex.reply {
            Some(reply) => println!("  agent <- data/guest/{}…  {}", short(&ex.id), reply.trim()),
            None => println!("  agent <- (no reply)"),
        }
    }
}

fn step(host: &AgentHost, title: &str, run: impl FnOnce() -> Result<String, HostError>) -> Result<(), String> {
    println!("\n== {title}");
    let result = run();
    print_exchanges(host);
    match result {
        Ok(note) if note.is_empty() => Ok(()),
        Ok(note) => {
            println!("  {note}");
            Ok(())
        }
        Err(e) => Err(format!("{title}: {e}")),
    }
}

fn expect(reply: crate::dom0::AgentReply, codes: &[&str]) -> Result<String, HostError> {
    if codes.contains(&reply.returncode.as_str()) {
        Ok(String::new())
    } else {
        Err(HostError::Other(format!(
            "agent returned {}: {}",
            reply.returncode, reply.message
        )))
    }
}

/// Runs the demo; `keep` leaves the guest root in place.
pub fn run(keep: bool) -> Result<(), String> {
    let started = Instant::now();
    let base = make_root()?;
    let result = run_in(&base, started);
    if keep {
        println!("\nThe guest root is kept at {}", base.display());
    } else {
        let _ = fs::remove_dir_all(&base);
    }
    result
}

fn run_in(base: &Path, started: Instant) -> Result<(), String> {
    let mut seed = Tree::new();
    snapshot(base, base, &mut seed);
    let sockets = base.join("run");
    fs::create_dir_all(&sockets).map_err(|e| e.to_string())?;
    let (dom0_sock, guest_sock) = (sockets.join("xenstored.sock"), sockets.join("xenbus"));
    println!("singularity-host demo: a simulated Xen host (dom0) and guest domain {DOMID}");
    println!("guest root: {} (seeded like a small Debian 12 system)", base.display());

    let sim = Simulator::new(Config::default());
    sim.listen_dom0(&dom0_sock).map_err(|e| format!("simulator: {e}"))?;
    sim.create_domain(DOMID, "demo-guest");
    sim.add_guest_device(DOMID, &guest_sock)
        .map_err(|e| format!("simulator: {e}"))?;

    let client = Client::connect(&dom0_sock).map_err(|e| format!("dom0 client: {e}"))?;
    let host = AgentHost::new(client, DOMID).with_poll(POLL);

    println!("\n== nova writes vm-data before the guest boots");
    let nics = [
        NicSpec {
            mac: "BC:76:4E:20:6C:5B".into(),
            label: "public".into(),
            ip: Some(cidr("203.0.113.10/24")?),
            gateway: Some(addr("203.0.113.1")?),
            ip6: Some(cidr("2001:db8::10/64")?),
            gateway6: Some(addr("2001:db8::1")?),
            dns: vec![addr("198.51.100.53")?],
            routes: Vec::new(),
        },
        NicSpec {
            mac: "BC:76:4E:20:6C:5C".into(),
            label: "private".into(),
            ip: Some(cidr("10.208.227.239/19")?),
            routes: vec![(cidr("10.176.0.0/12")?, addr("10.208.224.1")?)],
            ..NicSpec::default()
        },
    ];
    for nic in &nics {
        host.set_network(nic).map_err(|e| e.to_string())?;
        println!(
            "  vm-data/networking/{} = {}",
            nic.mac.replace(':', ""),
            crate::dom0::pyjson::dumps(&nic.to_json())
        );
    }
    host.set_hostname("demo-guest").map_err(|e| e.to_string())?;
    println!("  vm-data/hostname = demo-guest");

    // The agent, in this process, exactly as the daemon runs it.
    let stop = Arc::new(AtomicBool::new(false));
    let agent_thread = {
        let stop = stop.clone();
        let guest = guest_sock.to_string_lossy().into_owned();
        let root = Root::new(base);
        std::thread::spawn(move || -> Result<(), String> {
            let mut comm =
                XenCommunicator::connect(Some(&guest), Duration::from_secs(60)).map_err(|e| e.to_string())?;
            let applier = singularity::apply::Applier::new(root, false, Some("/var/cache/singularity".into()));
            let mut agent = Agent::new(Settings::default(), applier);
            while !stop.load(Ordering::SeqCst) {
                daemon::serve_one(&mut comm, None, &mut agent, Duration::from_millis(100));
            }
            Ok(())
        })
    };

    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoKeyDemoKeyDemoKeyDemoKeyDemoKey demo@example";
    let keyfile = format!("\n# The following ssh key was injected by Nova\n{key}\n");
    let result = (|| {
        step(&host, "version (nova retries this for up to 300 s at boot)", || {
            let r = host.version(TIMEOUT)?;
            expect(r, &["0"])
        })?;
        step(
            &host,
            "features, then the SSH key (the plugin picks file_inject from features)",
            || {
                expect(
                    host.inject("/root/.ssh/authorized_keys", keyfile.as_bytes(), TIMEOUT)?,
                    &["0"],
                )
            },
        )?;
        step(
            &host,
            "keyinit + password (Diffie-Hellman, AES-128-CBC as OpenSSL >= 1.1 hosts send it)",
            || {
                expect(host.password("demo-Passw0rd", Digest::Sha256, TIMEOUT)?, &["0"])?;
                Ok("root's password is now demo-Passw0rd (SHA-512 crypt in /etc/shadow)".into())
            },
        )?;
        step(&host, "resetnetwork", || {
            let r = host.resetnetwork(Some(TIMEOUT))?;
            Ok(format!("returncode {}: {}", r.returncode, r.message))
        })?;
        step(&host, "an unknown command", || {
            let r = host.call("help", serde_json::json!(""), TIMEOUT)?;
            expect(r, &["404"])
        })
    })();

    stop.store(true, Ordering::SeqCst);
    let agent_result = agent_thread.join().map_err(|_| "agent thread failed".to_string())?;
    sim.shutdown();
    result?;
    agent_result?;

    let _ = fs::remove_dir_all(&sockets);
    print_changes(base, &seed);
    println!("\ndemo finished in {} ms", started.elapsed().as_millis());
    Ok(())
}

fn print_changes(base: &Path, seed: &Tree) {
    let mut now = Tree::new();
    snapshot(base, base, &mut now);
    println!("\n== files the agent wrote (mode, path)");
    for (path, (mode, data)) in &now {
        if seed.get(path) == Some(&(*mode, data.clone())) {
            continue;
        }
        // The cache's own directories add nothing to the picture.
        if data.is_none() && path.starts_with("/var/cache/singularity/") {
            continue;
        }
        let kind = if data.is_none() { "/" } else { "" };
        let what = if seed.contains_key(path) { "changed" } else { "new" };
        println!("  {mode:04o}  {path}{kind}  ({what})");
    }
    for (path, (_, data)) in &now {
        // The cache mirrors the live files: listed above, not diffed again.
        let Some(new) = data.as_ref().filter(|_| !path.starts_with("/var/cache/singularity/")) else {
            continue;
        };
        let old = seed.get(path).and_then(|(_, d)| d.clone()).unwrap_or_default();
        if old == *new {
            continue;
        }
        let (old, new) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(new));
        let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
            .unified_diff()
            .context_radius(2)
            .header(&format!("seed{path}"), &format!("guest{path}"))
            .to_string();
        println!("\n{}", diff.trim_end());
    }
}
