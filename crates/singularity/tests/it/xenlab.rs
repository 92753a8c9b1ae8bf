//! A simulated host for the Xen communicator: the XenStore simulator with a
//! dom0 socket and one guest, the real agent binary connected as that guest,
//! and an [`AgentHost`] that behaves like nova's dom0 plugin.

use crate::harness::{bin, TestRoot};
use singularity_host::dom0::AgentHost;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xenstore::sim::{Config, Simulator};
use xenstore::Client;

/// The guest's domain id in these tests.
pub const DOMID: u32 = 7;

/// How the guest reaches XenStore.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum GuestLink {
    /// A stream socket with guest permissions.
    Stream,
    /// The seqpacket socket emulating `/dev/xen/xenbus` exactly.
    Device,
}

pub struct XenLab {
    pub sim: Simulator,
    pub dom0: PathBuf,
    pub guest: PathBuf,
    dir: tempfile::TempDir,
    agent: Option<Child>,
}

impl XenLab {
    pub fn new(link: GuestLink, config: Config) -> XenLab {
        let dir = tempfile::tempdir().expect("tempdir");
        let dom0 = dir.path().join("dom0.sock");
        let guest = dir.path().join("guest.sock");
        let sim = Simulator::new(config);
        sim.listen_dom0(&dom0).expect("dom0 socket");
        match link {
            GuestLink::Stream => sim.add_guest(DOMID, &guest),
            GuestLink::Device => sim.add_guest_device(DOMID, &guest),
        }
        .expect("guest socket");
        XenLab {
            sim,
            dom0,
            guest,
            dir,
            agent: None,
        }
    }

    /// Starts the agent for `root`, with extra global arguments and a config body.
    pub fn start_agent(&mut self, root: &TestRoot, extra: &[&str], config: &str) {
        self.start_agent_in(None, root.base(), extra, config);
    }

    /// [`XenLab::start_agent`] for any directory as the root.
    pub fn start_agent_at(&mut self, root: &std::path::Path, extra: &[&str], config: &str) {
        self.start_agent_in(None, root, extra, config);
    }

    /// Like [`XenLab::start_agent_at`], in the network namespace `netns` if
    /// given (`ip netns exec`, which also shows the namespace's own `/sys`).
    pub fn start_agent_in(&mut self, netns: Option<&str>, root: &std::path::Path, extra: &[&str], config: &str) {
        let confdir = self.dir.path().join("conf");
        std::fs::create_dir_all(&confdir).expect("mkdir");
        std::fs::write(confdir.join("singularity.conf"), config).expect("conf");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        let child = cmd
            .arg("-f")
            .arg(&confdir)
            .arg("-H")
            .arg(self.log())
            .args(["-l", "debug", "--root"])
            .arg(root)
            .args(extra)
            .args(["daemon", "--nodaemonize", "--communicator", "xen", "--pidfile"])
            .arg(self.dir.path().join("singularity.pid"))
            .env("XENSTORED_PATH", &self.guest)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent");
        self.agent = Some(child);
        // Ready once it watches data/host: the watch makes the directory listable.
        let host = self.host();
        let reply = host.version(Duration::from_secs(20)).expect("agent answers version");
        assert_eq!(reply.returncode, "0");
    }

    /// The agent's log file (every agent this lab started appends to it).
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    /// What the agents logged so far (at debug level).
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// The agent's process id.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    /// Replaces the agent's configuration file (read again on SIGHUP).
    pub fn write_config(&self, config: &str) {
        std::fs::write(self.dir.path().join("conf/singularity.conf"), config).expect("conf");
    }

    /// Whether the agent process is still alive.
    pub fn agent_alive(&mut self) -> bool {
        matches!(self.agent.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the agent with SIGKILL (no chance to finish anything).
    pub fn kill_agent(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the agent with SIGTERM and returns whether it exited cleanly.
    pub fn stop_agent(&mut self) -> bool {
        let Some(mut child) = self.agent.take() else {
            return false;
        };
        // SAFETY: kill(2) on our own, not yet reaped child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        false
    }

    /// Waits until `data/host` is empty: a request is removed just after its
    /// reply is written, so a host that has read the reply may still see it.
    pub fn wait_no_requests(&self) {
        let c = self.client();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = c.directory(&self.home("data/host")).expect("list data/host");
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "requests left in data/host: {left:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.dom0).expect("dom0 client")
    }

    /// A host polling every 20 ms (the plugin's 0.5 s only slows tests down).
    pub fn host(&self) -> AgentHost {
        AgentHost::new(self.client(), DOMID).with_poll(Duration::from_millis(20))
    }

    pub fn home(&self, rel: &str) -> String {
        format!("/local/domain/{DOMID}/{rel}")
    }
}

impl Drop for XenLab {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.sim.shutdown();
    }
}

/// The vm-data entry the tests give NIC eth0 (MAC bc:76:4e:20:6c:5b): one
/// IPv4 address, a gateway and a DNS server, as nova writes them.
pub fn public_nic() -> singularity_host::dom0::commands::NicSpec {
    singularity_host::dom0::commands::NicSpec {
        mac: "BC:76:4E:20:6C:5B".into(),
        label: "public".into(),
        ip: Some("203.0.113.10/24".parse().unwrap()),
        gateway: Some("203.0.113.1".parse().unwrap()),
        dns: vec!["198.51.100.53".parse().unwrap()],
        ..Default::default()
    }
}
