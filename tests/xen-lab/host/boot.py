"""One boot of the lab: QEMU (TCG) -> Xen 4.17 -> dom0 -> a PV domU whose init
system runs the release ``singularity`` binary; then every scenario through
that one boot; then power off.

Channels between this process and the emulated machine:
  serial (com1, QEMU stdout)  Xen's and dom0's console, the domU's console as
                              "domU| ..." lines; markers start with "LAB ".
  virtio-serial "xenstore"    dom0's relay to xenstored (guest/labxs.rs),
                              multiplexed here for any number of host clients
                              (xs.Mux); XENSTORED_PATH points at the mux.
  virtio-serial "control"     one-line commands to dom0's /init (restart the
                              domU, ping it, benchmark, power off).
The domU answers questions about itself (shadow, files, network, the agent's
pid) through xenstore: guest/domU-checker.
"""

import base64
import ctypes
import gzip
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import fetch
import nova
from xs import READ, Client, Mux, XsError

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST = os.path.join(os.path.dirname(HERE), "guest")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

DOMU_NAME = "lab-domU"
MAC = "00:16:3e:5a:17:0b"
IP4, GW4, MASK4 = "10.0.0.11", "10.0.0.1", "255.255.255.0"
IP6, GW6 = "fd00:5a17::11", "fd00:5a17::1"
ROUTE = {"route": "192.168.77.0", "netmask": "255.255.255.0", "gateway": GW4}
DNS = ["10.0.0.2", "10.0.0.3"]
HOSTNAME = "lab-guest"
DOM0_VIF_ADDRS = "10.0.0.1/24 fd00:5a17::1/64"
PILEUP_BATCH = 35  # nova-style replies per batch (C xenstored holds ~50 uuid names)
PILEUP_PAUSE = 5.5  # seconds between the batches (the agent prunes replies >= 5 s old)
AGENT_IDLE_WAIT = 3.0  # seconds of quiet before the agent's idle memory is read
# addresses the metrics scenario adds to eth0 and removes again
EXTRA_ADDRS = {"ipv4": "10.0.0.99/24", "ipv6": "fd00:5a17::99/64"}
METRICS_FOLLOW = 5.0  # seconds within which dom0 must see an address change
# data/meminfo_free is read every 60 s, so it may lag the domU's MemAvailable
# by what a minute of this domU's life (ifup, the lab's checker) takes
METRICS_FREE_SLACK_KIB = 16384

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlabkeyfortheXenlabonlyxxxxxxxxxxxxxxxxxxx lab@host"
PASSWORDS = {"md5": "Md5-l4b-pass!", "sha256": "Sha256_l4b.pass"}

PR_SET_PDEATHSIG = 1
HTTP_PORT = 8080  # dom0's busybox httpd for agentupdate (guest/dom0-init "serve")


def newer_build(agent_bin, out_dir):
    """A "newer build" of the agent for agentupdate: no second release
    exists, so the release binary's version string X.Y.Z is changed in place
    to one of the same length (the last digit becomes 9: 0.1.0 -> 0.1.9),
    every occurrence that stands alone (not inside a longer dotted number).
    Checked here, on the host, the way the agent checks a download:
    ``--version`` prints the new version and ``config`` exits 0.
    Returns (path, old version, new version, md5 hex)."""
    out = subprocess.run([agent_bin, "--version"], stdout=subprocess.PIPE, text=True, check=True).stdout
    m = re.fullmatch(r"singularity ([0-9]+(?:\.[0-9]+)*)\s*", out)
    if not m or m.group(1)[-1] == "9":
        raise RuntimeError("cannot make a newer build from --version %r" % out)
    old = m.group(1)
    new = old[:-1] + "9"
    data = open(agent_bin, "rb").read()
    pattern = re.compile(rb"(?<![0-9.])" + re.escape(old.encode()) + rb"(?![0-9.])")
    data, n = pattern.subn(new.encode(), data)
    path = os.path.join(out_dir, "singularity-" + new)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o755)
    got = subprocess.run([path, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    conf_dir = os.path.join(REPO, "dist")
    rc = subprocess.run([path, "-f", conf_dir, "config"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode
    if n == 0 or got != "singularity " + new or rc != 0:
        raise RuntimeError("the newer build is not usable: %d replacements, --version %r, config rc %d"
                           % (n, got, rc))
    return path, old, new, hashlib.md5(data).hexdigest()

def vif_data():
    """vm-data/networking/<mac> exactly as nova's _vif_xenstore_data builds it."""
    return {
        "label": "public", "broadcast": "10.0.0.255", "mac": MAC,
        "ips": [{"ip": IP4, "netmask": MASK4, "enabled": "1", "gateway": GW4}],
        "gateway": GW4,
        "ip6s": [{"ip": IP6, "netmask": 64, "enabled": "1", "gateway": GW6}],
        "gateway_v6": GW6,
        "routes": [ROUTE],
        "dns": DNS,
    }


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    os.setsid()


class LabDown(Exception):
    """The emulated machine died or stopped answering: no further scenarios."""


class Boot:
    def __init__(self, flavour, images, agent_bin, labxs_bin, plugin_dir, run_dir, opts):
        self.flavour = flavour
        self.images = images
        self.agent_bin = agent_bin
        self.labxs_bin = labxs_bin
        self.plugin_dir = plugin_dir
        self.run_dir = run_dir
        self.opts = opts
        self.tag = "[%s]" % flavour
        # short paths for sun_path; made (and removed again) by the parent
        # process when it passes one, so a killed boot leaves nothing behind
        self.sock_dir = opts.sock_dir or tempfile.mkdtemp(prefix="xl-")
        self.qemu = None
        self.t0 = None
        self.lines = []  # (seconds since QEMU start, text)
        self.cond = threading.Condition()
        self.down = None  # why the machine is gone
        self.log = None
        self.mux = None
        self.ctl = None
        self.ctl_buf = b""
        self.seq = 0
        self.peak_rss_kib = 0
        self.checks = []
        self.times = {}
        self.notes = []
        self.domid = None
        self.features = []

    # ------------------------------------------------------------ reporting
    def say(self, msg):
        print("%s %s" % (self.tag, msg), flush=True)

    def check(self, scenario, name, status, detail=""):
        self.checks.append({"scenario": scenario, "name": name, "status": status, "detail": detail,
                            "t": round(self.now(), 1) if self.t0 else 0})
        self.say("%-4s %s: %s%s" % (status, scenario, name, " -- " + detail if detail else ""))
        return status == "PASS"

    def now(self):
        return time.monotonic() - self.t0

    # ------------------------------------------------------------ assembly
    def _domU_initrd(self):
        etc = os.path.join(GUEST, "domU-etc")

        def fill(c):
            c.add_file("etc/inittab", open(os.path.join(GUEST, "domU-inittab"), "rb").read())
            for f in ("domU-rc", "agent-service", "domU-checker"):
                c.add_file("lab/" + f, open(os.path.join(GUEST, f), "rb").read(), 0o755)
            for f in ("os-release", "passwd", "group", "hosts", "hostname", "resolv.conf",
                      "nsswitch.conf"):
                c.add_file("etc/" + f, open(os.path.join(etc, f), "rb").read(), 0o644)
            c.add_file("etc/shadow", open(os.path.join(etc, "shadow"), "rb").read(), 0o640, 0, 42)
            c.add_file("etc/network/interfaces", open(os.path.join(etc, "interfaces"), "rb").read())
            c.add_file("etc/lab-existing.conf",
                       open(os.path.join(etc, "lab-existing.conf"), "rb").read(), 0o640, 0, 4)
            c.add_dir("home")
            c.add_dir("home/debian", 0o755, 1000, 1000)
            conf = os.path.join(REPO, "dist", "singularity.conf")  # the packaged default
            if os.path.exists(conf):
                c.add_file("etc/singularity/singularity.conf", open(conf, "rb").read())
            c.add_file("usr/sbin/singularity", open(self.agent_bin, "rb").read(), 0o755)
            c.add_file("lab/agent.env", ("LOGLEVEL=%s\n" % self.opts.agent_log).encode())

        with gzip.open(os.path.join(self.images, "domU-base.cpio.gz")) as f:
            base = f.read()
        # ONE gzip stream holding both archives: libxenguest gunzips the
        # ramdisk itself and trips over concatenated gzip members
        return gzip.compress(base + fetch.cpio_bytes(fill), compresslevel=1)

    def assemble(self):
        domU_initrd = self._domU_initrd()
        self.update_build = None
        try:
            self.update_build = newer_build(self.agent_bin, self.sock_dir)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            self.update_build_error = str(e)
        cfg = "\n".join([
            'name = "%s"' % DOMU_NAME, 'type = "pv"',
            'kernel = "/lab/vmlinux"', 'ramdisk = "/lab/domU-initrd.gz"',
            'cmdline = "console=hvc0 quiet panic=-1"',
            "memory = 128", "vcpus = 1", 'on_crash = "destroy"',
            'vif = [ "mac=%s,script=/lab/vif-hotplug" ]' % MAC, ""])
        env = "XENSTORED=%s\nDOMU_NAME=%s\nDOM0_VIF_ADDRS='%s'\n" % (
            self.flavour, DOMU_NAME, DOM0_VIF_ADDRS)

        def fill(c):
            c.add_file("init", open(os.path.join(GUEST, "dom0-init"), "rb").read(), 0o755)
            c.add_file("lab/run.env", env.encode())
            c.add_file("lab/domU.cfg", cfg.encode())
            c.add_file("lab/vif-hotplug", open(os.path.join(GUEST, "vif-hotplug"), "rb").read(), 0o755)
            c.add_file("lab/labxs", open(self.labxs_bin, "rb").read(), 0o755)
            c.add_file("lab/domU-initrd.gz", domU_initrd)
            c.add_dir("lab/www")
            if self.update_build:
                path = self.update_build[0]
                c.add_file("lab/www/" + os.path.basename(path), open(path, "rb").read(), 0o644)
            c.add_file("lab/seed/vm-data/hostname", HOSTNAME.encode())
            c.add_file("lab/seed/vm-data/networking/" + MAC.replace(":", ""),
                       json.dumps(vif_data()).encode())

        self.dom0_initrd = os.path.join(self.sock_dir, "dom0-initrd")
        with open(self.dom0_initrd, "wb") as out:
            for part in ("kernel.cpio", "dom0-base.cpio.gz"):
                with open(os.path.join(self.images, part), "rb") as f:
                    shutil.copyfileobj(f, out)
            out.write(gzip.compress(fetch.cpio_bytes(fill), compresslevel=1))
        for name in ("xen", "vmlinux"):  # no commas or spaces in -initrd paths
            os.symlink(os.path.join(self.images, name), os.path.join(self.sock_dir, name))

    # ------------------------------------------------------------ QEMU
    def start(self):
        s = self.sock_dir
        self.xs_sock = os.path.join(s, "xs.sock")
        self.ctl_sock = os.path.join(s, "ctl.sock")
        self.mux_sock = os.path.join(s, "mux.sock")
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg",
            # not -cpu max (dom0 dies at once); +rdrand seeds the guests' crng
            "-cpu", "qemu64,+sse4.1,+sse4.2,+popcnt,+ssse3,+rdrand",
            "-m", str(self.opts.mem), "-smp", str(self.opts.smp),
            "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-no-reboot", "-nodefaults",
            "-kernel", os.path.join(s, "xen"),
            "-append", "console=com1 com1=115200,8n1 dom0_mem=%s,max:%s" % (
                self.opts.dom0_mem, self.opts.dom0_mem),
            "-initrd", "%s console=hvc0 quiet panic=-1 rootfstype=ramfs,%s" % (
                os.path.join(s, "vmlinux"), self.dom0_initrd),
            "-device", "virtio-serial-pci,id=vs",
            "-chardev", "socket,id=xs,path=%s,server=on,wait=off" % self.xs_sock,
            "-device", "virtserialport,bus=vs.0,chardev=xs,name=org.singularity.lab.xenstore",
            "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % self.ctl_sock,
            "-device", "virtserialport,bus=vs.0,chardev=ctl,name=org.singularity.lab.control",
        ]
        with open(os.path.join(self.run_dir, "qemu.cmd"), "w") as f:
            f.write(" ".join(cmd) + "\n")
        self.log = open(os.path.join(self.run_dir, "serial.log"), "w")
        self.t0 = time.monotonic()
        self.qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        threading.Thread(target=self._serial, name="serial", daemon=True).start()
        threading.Thread(target=self._watchdog, name="watchdog", daemon=True).start()

    def _serial(self):
        buf = b""
        while True:
            data = self.qemu.stdout.read1(65536)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                text = raw.decode("utf-8", "replace").replace("\r", "")
                t = self.now()
                self.log.write("%8.2f %s\n" % (t, text))
                with self.cond:
                    self.lines.append((t, text))
                    if "LAB dom0 FATAL" in text or "Kernel panic" in text or "(XEN) Panic" in text:
                        self.down = self.down or text.strip()
                    self.cond.notify_all()
        self.qemu.wait()
        self.log.flush()
        with self.cond:
            self.down = self.down or "QEMU exited (status %s)" % self.qemu.returncode
            self.cond.notify_all()

    def _watchdog(self):
        deadline = self.t0 + self.opts.timeout
        while self.qemu.poll() is None:
            try:
                with open("/proc/%d/status" % self.qemu.pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
            except OSError:
                pass
            if time.monotonic() > deadline:
                with self.cond:
                    self.down = "hard timeout of %d s reached" % self.opts.timeout
                    self.cond.notify_all()
                self.say("TIMEOUT after %d s: killing QEMU" % self.opts.timeout)
                self.kill()
                return
            time.sleep(0.5)

    def kill(self):
        if self.qemu and self.qemu.poll() is None:
            self.qemu.terminate()
            try:
                self.qemu.wait(5)
            except subprocess.TimeoutExpired:
                self.qemu.kill()
                self.qemu.wait()

    def wait_line(self, pattern, timeout, start=0):
        """The first serial line at index >= start matching pattern: (match, t, index)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i][1])
                    if m:
                        return m, self.lines[i][0], i
                    i += 1
                if self.down:
                    raise LabDown(self.down)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LabDown("no '%s' on the console within %d s" % (pattern, timeout))
                self.cond.wait(min(left, 0.5))

    # ------------------------------------------------------------ control
    def control(self, command, timeout=60):
        if self.down:
            raise LabDown(self.down)
        if self.ctl is None:
            self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.ctl.connect(self.ctl_sock)
        self.seq += 1
        seq = str(self.seq)
        self.ctl.sendall(("%s %s\n" % (seq, command)).encode())
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.ctl_buf:
                line, self.ctl_buf = self.ctl_buf.split(b"\n", 1)
                parts = line.decode(errors="replace").split(" ", 3)
                if len(parts) >= 3 and parts[0] == "R" and parts[1] == seq:
                    return int(parts[2]), (parts[3] if len(parts) > 3 else "")
            left = deadline - time.monotonic()
            if left <= 0 or self.down:
                raise LabDown(self.down or "dom0 did not answer '%s' within %d s" % (command, timeout))
            self.ctl.settimeout(min(left, 0.5))
            try:
                data = self.ctl.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise LabDown("control channel closed")
            self.ctl_buf += data

    # ------------------------------------------------------------ xenstore helpers
    def client(self):
        if self.mux.error:
            raise LabDown("xenstore relay: %s" % self.mux.error)
        return Client(self.mux_sock, timeout=30)

    def home(self, domid=None):
        return "/local/domain/%s" % (domid if domid is not None else self.domid)

    def request(self, xs, name, value, timeout=30, domid=None, remove=False, ids=None):
        """One nova-style request, woken by a watch: (reply bytes or None, seconds).
        Like nova, a request that times out is removed; unlike nova, the reply
        is removed after reading with remove=True."""
        home = self.home(domid)
        rid = str(uuid.uuid4())
        if ids is not None:
            ids.append(rid)
        token = "req-" + rid
        reply = "%s/data/guest/%s" % (home, rid)
        xs.watch(reply, token)
        try:
            xs.drain_events()
            t = time.monotonic()
            xs.write("%s/data/host/%s" % (home, rid), json.dumps({"name": name, "value": value}))
            deadline = t + timeout
            while True:
                try:
                    xs.next_event(deadline)
                except TimeoutError:
                    secs = time.monotonic() - t
                    xs.rm("%s/data/host/%s" % (home, rid))
                    return None, secs
                data = xs.read_or_none(reply)
                if data is not None:
                    secs = time.monotonic() - t
                    if remove:
                        xs.rm(reply)
                    return data, secs
        finally:
            xs.unwatch(reply, token)

    def ask(self, question, timeout=30):
        """Ask the domU's checker; returns {key: [values...]} of its answer lines."""
        with self.client() as xs:
            qid = self.ask_send(xs, question)
            return self.ask_answer(xs, qid, question, timeout)

    def ask_send(self, xs, question):
        """Writes a question for the domU's checker; returns its id."""
        qid = uuid.uuid4().hex[:12]
        xs.write("%s/data/lab/check/%s" % (self.home(), qid), question)
        return qid

    def ask_answer(self, xs, qid, question, timeout=30):
        """The checker's answer to question qid: {key: [values...]}."""
        base = "%s/data/lab" % self.home()
        token = "q-" + qid
        xs.watch("%s/result/%s/n" % (base, qid), token)
        try:
            deadline = time.monotonic() + timeout
            while True:
                n = xs.read_or_none("%s/result/%s/n" % (base, qid))
                if n is not None:
                    break
                try:
                    xs.next_event(deadline)
                except TimeoutError:
                    raise AssertionError("the domU checker did not answer '%s'" % question.split()[0])
            chunks = [xs.read("%s/result/%s/%d" % (base, qid, k)) for k in range(int(n))]
            xs.rm("%s/result/%s" % (base, qid))
        finally:
            xs.unwatch("%s/result/%s/n" % (base, qid), token)
        text = base64.b64decode(b"".join(chunks)).decode(errors="replace")
        out = {}
        for line in text.splitlines():
            key, _, rest = line.partition(" ")
            out.setdefault(key, []).append(rest)
        return out

    def guest_files(self, *paths):
        """{path: {mode, uid, gid, size, data} or None} from inside the domU."""
        a = self.ask("files " + " ".join(paths))
        out = {p: None for p in paths}
        for line in a.get("file", []):
            parts = line.split(" ")
            path, mode, uid, gid, size = parts[:5]
            data = parts[5] if len(parts) > 5 else ""
            out[path] = {"mode": mode, "uid": int(uid), "gid": int(gid), "size": int(size),
                         "data": base64.b64decode(data)}
        return out

    def guest_network(self):
        """The domU's hostname, eth0 addresses and routes, and the network
        files: {"hostname": str, "addr": [...], "route4": [...], "route6": [...],
        "files": {path: text}}."""
        a = self.ask("network")
        files = {}
        for entry in a.get("conf", []):
            path, _, data = entry.partition(" ")
            files[path] = base64.b64decode(data).decode(errors="replace")
        return {"hostname": a.get("hostname", ["?"])[0], "addr": a.get("addr", []),
                "route4": a.get("route4", []), "route6": a.get("route6", []), "files": files}

    # ------------------------------------------------------------ scenarios
    def run(self):
        try:
            self.assemble()
            self.start()
            self.scenario_boot()
            if self.opts.hold:
                self.hold()
                return self.report()
            self.scenario_plugin()
            self.scenario_network()
            self.scenario_metrics()
            self.scenario_update()
            self.scenario_robustness()
        except LabDown as e:
            self.check("lab", "machine", "FAIL", str(e))
        except Exception as e:  # a harness bug must still power the lab off
            self.check("lab", "harness", "FAIL", "%s: %s" % (e.__class__.__name__, e))
        finally:
            self.shutdown()
        return self.report()

    def scenario_boot(self):
        S = "boot"
        m, t, _ = self.wait_line(r"\(XEN\) Xen version", 60)
        self.times["xen_banner"] = t
        m, t, _ = self.wait_line(r"LAB dom0 init uptime", 120)
        self.times["dom0_init"] = t
        m, t, _ = self.wait_line(r"LAB dom0 xenstored up flavour=(\S+)", 60)
        self.times["xenstored_up"] = t
        m, t, _ = self.wait_line(r"LAB dom0 relay up", 30)
        self.mux = Mux(self.xs_sock, self.mux_sock, log=self.say)
        self.mux.start()
        m, t, _ = self.wait_line(r"LAB dom0 domU unpaused domid=(\d+)", 90)
        self.domid = int(m.group(1))
        self.times["domU_unpaused"] = t
        self.check(S, "Xen %s, dom0 with %s, PV domU %d" % (fetch.XENVER, self.flavour, self.domid),
                   "PASS", "dom0 ready at %.1f s, domU unpaused at %.1f s" % (
                       self.times["xenstored_up"], t))
        # nova's first call: `version`, sent right after the unpause
        with self.client() as xs:
            reply, secs = self.request(xs, "version", "agent", timeout=self.opts.first_timeout)
        if reply is None:
            raise LabDown("no reply to the first 'version' within %d s" % self.opts.first_timeout)
        self.times["first_reply"] = self.now()
        self.times["first_reply_after_unpause"] = self.times["first_reply"] - self.times["domU_unpaused"]
        try:
            rc, msg, ok = nova.nova_check(reply.decode(), ("0",))
        except ValueError as e:
            rc, msg, ok = None, str(e), False
        self.agent_version = msg if ok else None
        self.check(S, "first 'version' after unpause", "PASS" if ok else "FAIL",
                   "%s, %.1f s after unpause, %.1f s after QEMU start" % (
                       reply.decode(errors="replace"), self.times["first_reply_after_unpause"],
                       self.times["first_reply"]))
        try:
            m, t, _ = self.wait_line(r"domU\| LAB domU agent start #1 uptime=([0-9.]+)", 5)
            self.times["domU_uptime_at_agent_start"] = float(m.group(1))
        except LabDown:
            pass
        with self.client() as xs:
            reply, _ = self.request(xs, "features", "")
        feats = json.loads(reply.decode()) if reply else {}
        self.features = feats.get("message", "").split(",")
        self.say("agent features: %s" % ",".join(self.features))
        # the agent's memory once idle (it releases code pages after 2 s quiet)
        time.sleep(AGENT_IDLE_WAIT)
        self.agent_memory("after_boot", self.ask("agent"))

    def hold(self):
        """--hold: keep the lab up for a developer until the time limit or Ctrl-C."""
        self.say("lab is up (domid %d); until Ctrl-C or --timeout:" % self.domid)
        self.say("  export XENSTORED_PATH=%s   # then xenstore-ls /local/domain/%d, "
                 "singularity-host --domid %d version, ..." % (self.mux_sock, self.domid, self.domid))
        self.say("  console log: %s/serial.log" % self.run_dir)
        while not self.down:
            time.sleep(1)

    def _shadow_others_sha(self):
        lines = open(os.path.join(GUEST, "domU-etc", "shadow")).read().splitlines()
        return hashlib.sha256("".join(l + "\n" for l in lines if not l.startswith("root:")).encode()).hexdigest()

    def scenario_plugin(self):
        S = "plugin"
        plugin = nova.Plugin(self.plugin_dir, self.mux_sock, os.path.join(self.run_dir, "plugin.log"))
        self.plugin = plugin
        host = nova.NovaCall(plugin, self.domid)
        try:
            v = host.version()
            good = v.accepted and re.fullmatch(r"[0-9]+(\.[0-9]+)*", v.message or "") is not None
            self.check(S, "version", "PASS" if good else "FAIL", str(v))
            self.times["plugin_version"] = v.seconds

            for md in ("md5", "sha256"):
                k, p = host.set_password(PASSWORDS[md], md)
                if not k.accepted:
                    self.check(S, "key_init (%s run)" % md, "FAIL", str(k))
                    continue
                self.check(S, "key_init (%s run)" % md, "PASS",
                           "D0, agent public key %s... (%.2f s)" % (k.message[:12], k.seconds))
                self.check(S, "password, openssl -md %s" % md, "PASS" if p.accepted else "FAIL", str(p))
                a = self.ask("shadow %s" % PASSWORDS[md])
                verify = a.get("verify", ["?"])[0]
                st = a.get("stat", ["?"])[0]
                others = a.get("others", [""])[0] == self._shadow_others_sha()
                good = verify.startswith("ok") and st == "640 0 42" and others
                self.check(S, "root's /etc/shadow entry verifies with the guest's crypt (%s)" % md,
                           "PASS" if good else "FAIL",
                           "%s; /etc/shadow %s (root:shadow 0640 kept: %s); other entries unchanged: %s"
                           % (verify, st, st == "640 0 42", others))

            content = ("\n# The following ssh key was injected by Nova\n%s\n" % SSH_KEY).encode()
            r = host.inject_file("/root/.ssh/authorized_keys", content)
            sent = "file_inject" if "file_inject" in self.features else "injectfile"
            self.check(S, "inject_file /root/.ssh/authorized_keys (plugin sent %s)" % sent,
                       "PASS" if r.accepted else "FAIL", str(r))
            content2 = b"# replaced by the lab\nsetting = new\n\x00binary\xff tail\n"
            r = host.inject_file("/etc/lab-existing.conf", content2)
            self.check(S, "inject_file over an existing root:adm 0640 file", "PASS" if r.accepted else "FAIL", str(r))
            got = self.guest_files("/root/.ssh/authorized_keys", "/root/.ssh", "/etc/lab-existing.conf")
            show = lambda f: {k: f[k] for k in ("mode", "uid", "gid", "size")} if f else "missing"  # noqa: E731
            f, d = got["/root/.ssh/authorized_keys"], got["/root/.ssh"]
            good = f is not None and f["data"] == content and f["mode"] == "600" and \
                f["uid"] == 0 and d is not None and d["mode"] == "700"
            self.check(S, "authorized_keys in the domU: nova's content, 0600 root, .ssh 0700",
                       "PASS" if good else "FAIL", "file %s, dir %s" % (show(f), show(d)))
            f = got["/etc/lab-existing.conf"]
            good = f is not None and f["data"] == content2 and f["mode"] == "640" and f["gid"] == 4
            self.check(S, "existing file replaced, mode and group kept", "PASS" if good else "FAIL",
                       "file %s" % show(f))

            implemented = "resetnetwork" in self.features
            r = host.resetnetwork()
            self.resetnetwork_ok = False
            if not implemented:
                ok_nyi = r.returncode == "404" and not r.fatal
                self.check(S, "resetnetwork", "NYI" if ok_nyi else "FAIL",
                           "not in the agent's features yet; answered %s (nova-safe: %s)" % (
                               r.raw, not r.fatal))
            else:
                self.resetnetwork_ok = r.accepted
                self.check(S, "resetnetwork", "PASS" if r.accepted else "FAIL", str(r))
                self.check_network_files(S)
        finally:
            pass

    def check_network_files(self, S):
        self.net = net = self.guest_network()
        files = net["files"]
        conf = "\n".join(t for p, t in files.items() if p.startswith("/etc/network/"))
        # whole words (an address without its /prefix): GW4 10.0.0.1 is a
        # prefix of IP4 10.0.0.11, so a substring test could not fail
        words = set(conf.split()) | {w.split("/")[0] for w in conf.split()}
        want = [IP4, IP6, GW4, GW6, "192.168.77.0"]
        missing = [w for w in want if w not in words]
        self.check(S, "ifupdown configuration written", "FAIL" if missing else "PASS",
                   "%s in %s" % ("missing %s" % missing if missing else "has " + ", ".join(want),
                                 ", ".join(sorted(p for p in files if p.startswith("/etc/network/")))))
        hn = files.get("/etc/hostname", "").strip()
        in_hosts = HOSTNAME in files.get("/etc/hosts", "")
        self.check(S, "hostname from vm-data/hostname", "PASS" if hn == HOSTNAME and net["hostname"] == HOSTNAME
                   and in_hosts else "FAIL", "/etc/hostname %r, kernel %r (in /etc/hosts: %s)" % (hn, net["hostname"], in_hosts))
        missing = [d for d in DNS if d not in files.get("/etc/resolv.conf", "")]
        self.check(S, "resolv.conf has the DNS servers", "FAIL" if missing else "PASS",
                   "missing %s" % missing if missing else ", ".join(DNS))

    def scenario_network(self):
        S = "vif"
        if "resetnetwork" not in self.features:
            self.check(S, "eth0 configured from vm-data, dom0 pings the domU", "NYI",
                       "waits for resetnetwork in the agent's features")
            return
        if not getattr(self, "resetnetwork_ok", False):
            self.check(S, "eth0 configured from vm-data", "FAIL", "resetnetwork failed")
            return
        a = self.net
        addrs = " ".join(a["addr"])
        r4 = a["route4"]
        have4 = "%s/24" % IP4 in addrs
        have6 = "%s/64" % IP6 in addrs
        default = any(l.split()[:3] == ["default", "via", GW4] for l in r4)
        default6 = any(l.split()[:3] == ["default", "via", GW6] for l in a["route6"])
        route = any(l.split()[:3] == ["192.168.77.0/24", "via", GW4] for l in r4)
        good = have4 and have6 and default and default6 and route
        self.check(S, "eth0 has the addresses and routes from vm-data", "PASS" if good else "FAIL",
                   "v4 %s, v6 %s, default route %s, v6 default route %s, 192.168.77.0/24 route %s; hostname %s" % (
                       have4, have6, default, default6, route, a["hostname"]))
        for family, addr in (("4", IP4), ("6", IP6)):
            rc, out = self.control("ping %s %s" % (family, addr), timeout=60)
            self.check(S, "dom0 pings the domU at %s over netback/netfront" % addr,
                       "PASS" if rc == 0 else "FAIL", out.strip(" |"))

    # ------------------------------------------------------------ guest metrics
    def dom0_metrics(self):
        """dom0's `xenstore-ls -f` of the domain, the metrics keys only:
        {path relative to the domain's home: value}."""
        rc, out = self.control("metrics-ls", timeout=30)
        keys = {}
        prefix = self.home() + "/"
        for line in out.split("|"):
            path, sep, value = line.partition(" = ")
            if sep and path.startswith(prefix):
                keys[path[len(prefix):]] = value[1:-1] if value.startswith('"') else value
        return rc, keys

    def guest_facts(self):
        """What the domU itself sees: uname -r, os-release, /proc/meminfo (KiB),
        its clock, each interface's device/nodename, and each interface's
        addresses by family ({"eth0": {"ipv4": set, "ipv6": set}})."""
        a = self.ask("facts")
        mem = {}
        for line in a.get("mem", []):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                mem[parts[0].rstrip(":")] = int(parts[1])
        osrel = {}
        for line in a.get("osrel", []):
            k, _, v = line.partition("=")
            osrel[k] = v.strip('"')
        nodename = {}
        for line in a.get("nodename", []):
            ifname, _, node = line.partition(" ")
            nodename[ifname] = node.strip()
        addrs = {}
        for line in a.get("addr", []):
            parts = line.split()
            if len(parts) >= 4 and parts[2] in ("inet", "inet6"):
                fam = "ipv4" if parts[2] == "inet" else "ipv6"
                ip = ipaddress.ip_address(parts[3].split("/")[0]).compressed
                addrs.setdefault(parts[1], {"ipv4": set(), "ipv6": set()})[fam].add(ip)
        return {"uname": a.get("uname", [""])[0].strip(), "now": a.get("now", [""])[0].strip(),
                "mem": mem, "osrel": osrel, "nodename": nodename, "addrs": addrs}

    def vif_nodes(self, xs, devid):
        """attr/vif/<devid> as the host (a dom0 client) reads it:
        {"ipv4": {index: value}, "ipv6": {index: value}}."""
        base = "%s/attr/vif/%s" % (self.home(), devid)
        out = {"ipv4": {}, "ipv6": {}}
        for fam in out:
            for n in xs.directory("%s/%s" % (base, fam)):
                v = xs.read_or_none("%s/%s/%s" % (base, fam, n))
                if v is not None:
                    out[fam][n] = v.decode(errors="replace")
        return out

    def scenario_metrics(self):
        """The guest metrics as dom0 sees them (xenstore-ls in dom0), against
        what the domU sees of itself; then an address added to eth0 and
        removed again, followed from dom0."""
        S = "metrics"
        t0 = time.monotonic()
        # the addresses resetnetwork gave eth0 may still be settling: compare
        # until dom0 and the domU agree, for a few seconds at most
        deadline = time.monotonic() + METRICS_FOLLOW
        while True:
            facts = self.guest_facts()
            rc, keys = self.dom0_metrics()
            node = facts["nodename"].get("eth0", "")
            devid = node.rsplit("/", 1)[-1] if node.startswith("device/vif/") else None
            want = facts["addrs"].get("eth0", {"ipv4": set(), "ipv6": set()})
            got = {fam: {v for k, v in keys.items() if k.startswith("attr/vif/%s/%s/" % (devid, fam))}
                   for fam in ("ipv4", "ipv6")}
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        required = ["data/os_name", "data/os_distro", "data/os_uname", "data/meminfo_total",
                    "data/meminfo_free", "data/updated"] + [
                    "attr/PVAddons/%sVersion" % p for p in ("Major", "Minor", "Micro", "Build")] + [
                    "attr/vif/%s/ipv4/0" % devid, "attr/vif/%s/ipv6/0" % devid]
        missing = [k for k in required if k not in keys]
        self.check(S, "dom0's xenstore-ls /local/domain/%d shows the metrics keys" % self.domid,
                   "PASS" if rc == 0 and not missing else "FAIL",
                   "%d keys (%s)%s" % (len(keys), ", ".join(sorted(keys)),
                                       "; missing %s" % missing if missing else ""))

        osrel = facts["osrel"]
        major = osrel.get("VERSION_ID", "").split(".")[0]
        expect = {"data/os_name": osrel.get("PRETTY_NAME") or osrel.get("NAME"),
                  "data/os_distro": osrel.get("ID"), "data/os_majorver": major if major.isdigit() else None,
                  "data/os_uname": facts["uname"]}
        wrong = ["%s %r, domU %r" % (k, keys.get(k), v) for k, v in expect.items() if keys.get(k) != v]
        self.check(S, "data/os_* match the domU's os-release and uname -r",
                   "FAIL" if wrong or not facts["uname"] else "PASS",
                   "; ".join(wrong) if wrong else ", ".join("%s=%r" % kv for kv in expect.items()))

        mem = facts["mem"]
        avail = mem.get("MemAvailable", mem.get("MemFree"))
        total, free = keys.get("data/meminfo_total", ""), keys.get("data/meminfo_free", "")
        good_total = total.isdigit() and int(total) == mem.get("MemTotal")
        good_free = free.isdigit() and avail is not None and 0 < int(free) <= mem.get("MemTotal", 0) \
            and abs(int(free) - avail) <= METRICS_FREE_SLACK_KIB
        self.check(S, "data/meminfo_total is the domU's MemTotal, meminfo_free near its MemAvailable",
                   "PASS" if good_total and good_free else "FAIL",
                   "total %s KiB (domU MemTotal %s), free %s KiB (domU MemAvailable %s now, within %d KiB: %s)" % (
                       total, mem.get("MemTotal"), free, avail, METRICS_FREE_SLACK_KIB, good_free))

        pv = [keys.get("attr/PVAddons/%sVersion" % p, "") for p in ("Major", "Minor", "Micro", "Build")]
        version = getattr(self, "agent_version", None) or ""
        good = all(p.isdigit() for p in pv) and ".".join(pv[:3]) == version and pv[3] == "0"
        self.check(S, "attr/PVAddons/* are integers, the agent's version %s" % version,
                   "PASS" if good else "FAIL", "Major %s Minor %s Micro %s Build %s" % tuple(pv))

        vif_dirs = sorted({k.split("/")[2] for k in keys if k.startswith("attr/vif/")})
        canonical = all(ipaddress.ip_address(v).compressed == v for fam in got for v in got[fam])
        good = devid is not None and got == want and want["ipv4"] and \
            any(not ipaddress.ip_address(a).is_link_local for a in want["ipv6"]) and \
            vif_dirs == [devid] and canonical
        self.check(S, "attr/vif/%s/ipv4/*, ipv6/* are eth0's addresses in the domU (%s)" % (devid, node),
                   "PASS" if good else "FAIL",
                   "dom0 ipv4 %s ipv6 %s; domU ip addr ipv4 %s ipv6 %s; vifs in attr/vif %s; text form canonical %s" % (
                       sorted(got["ipv4"]), sorted(got["ipv6"]), sorted(want["ipv4"]),
                       sorted(want["ipv6"]), vif_dirs, canonical))

        updated, now = keys.get("data/updated", ""), facts["now"]
        good = updated.isdigit() and now.isdigit() and int(now) - 300 <= int(updated) <= int(now) + 2
        self.check(S, "data/updated is a time in seconds, of the last 5 minutes by the domU's clock",
                   "PASS" if good else "FAIL", "data/updated %s, domU date +%%s %s" % (updated, now))

        if devid is not None:
            self.metrics_follow(S, devid)
        self.times["metrics_scenario"] = time.monotonic() - t0

    def metrics_follow(self, S, devid):
        """Adds an IPv4 and an IPv6 address to eth0 in the domU, then removes
        them; dom0 must see their nodes appear and go, the other addresses
        keeping their indices."""
        base = "%s/attr/vif/%s" % (self.home(), devid)
        new = {fam: ipaddress.ip_interface(a).ip.compressed for fam, a in EXTRA_ADDRS.items()}
        with self.client() as xs:
            before = self.vif_nodes(xs, devid)
            xs.watch(base, "metrics")
            try:
                for op in ("add", "del"):
                    xs.drain_events()
                    # timed from the question to dom0's view: the checker's
                    # wake-up and `ip` are in it, its answer is not
                    t = time.monotonic()
                    qid = self.ask_send(xs, "addr %s %s" % (op, " ".join(EXTRA_ADDRS.values())))
                    deadline = t + METRICS_FOLLOW
                    while True:
                        nodes = self.vif_nodes(xs, devid)
                        seen = {fam: new[fam] in nodes[fam].values() for fam in new}
                        done = all(seen.values()) if op == "add" else not any(seen.values())
                        if done:
                            break
                        try:
                            xs.next_event(deadline)
                        except TimeoutError:
                            break
                    secs = time.monotonic() - t
                    rcs = self.ask_answer(xs, qid, "addr").get("rc", [])
                    kept = all(nodes[fam].get(n) == v for fam in before for n, v in before[fam].items())
                    where = {fam: [n for n, v in nodes[fam].items() if v == new[fam]] for fam in new}
                    if op == "add":
                        _, ls = self.dom0_metrics()
                        in_ls = all("attr/vif/%s/%s/%s" % (devid, fam, n) in ls and ls[
                            "attr/vif/%s/%s/%s" % (devid, fam, n)] == new[fam]
                            for fam in new for n in where[fam])
                        good = done and kept and in_ls and all(r.startswith("0 ") for r in rcs)
                        self.check(S, "address added in the domU: dom0 sees its node within %.0f s" % METRICS_FOLLOW,
                                   "PASS" if good else "FAIL",
                                   "%s %s after the question to the domU (ip addr: %s); in dom0's xenstore-ls: %s;"
                                   " the other addresses kept their indices: %s" % (
                                       ", ".join("%s %s" % (new[f], ",".join("attr/vif/%s/%s/%s" % (devid, f, n)
                                                                             for n in where[f]) or "absent")
                                                 for f in new),
                                       "%.2f s" % secs, "; ".join(rcs), in_ls, kept))
                        self.times["metrics_add_seen"] = secs
                    else:
                        good = done and kept and nodes == before and all(r.startswith("0 ") for r in rcs)
                        self.check(S, "address removed in the domU: dom0 sees its node go within %.0f s" % METRICS_FOLLOW,
                                   "PASS" if good else "FAIL",
                                   "gone after %.2f s (ip addr: %s); attr/vif/%s as before the add: %s" % (
                                       secs, "; ".join(rcs), devid, nodes == before))
                        self.times["metrics_del_seen"] = secs
            finally:
                xs.unwatch(base, "metrics")

    # ------------------------------------------------------------ agentupdate
    def agent_pid(self, timeout=40):
        """The agent's pid(s) and start count from inside the domU, waiting
        until one singularity process is left (after a re-execution the
        previous build watches the new one until it serves)."""
        deadline = time.monotonic() + timeout
        while True:
            a = self.ask("agent")
            pid = a.get("pid", ["none"])[0]
            if " " not in pid or time.monotonic() > deadline:
                return pid, a.get("starts", ["?"])[0]
            time.sleep(0.5)

    def guest_sums(self, *paths):
        """{path: (mode, uid, gid, size, md5) or None} from inside the domU."""
        a = self.ask("sums " + " ".join(paths))
        out = {p: None for p in paths}
        for line in a.get("sum", []):
            parts = line.split(" ")
            out[parts[0]] = (parts[1], int(parts[2]), int(parts[3]), int(parts[4]), parts[5])
        return out

    def scenario_update(self):
        S = "update"
        t0 = time.monotonic()
        if "agentupdate" not in self.features:
            self.check(S, "agentupdate through the real plugin", "NYI", "not in the agent's features")
            return
        if not self.update_build:
            self.check(S, "a newer build to serve", "FAIL", self.update_build_error)
            return
        if not getattr(self, "resetnetwork_ok", False):
            self.check(S, "agentupdate through the real plugin", "FAIL",
                       "the domU has no network (resetnetwork failed)")
            return
        path, old, new, md5 = self.update_build
        size = os.path.getsize(path)
        target = "/usr/sbin/singularity"
        old_md5 = hashlib.md5(open(self.agent_bin, "rb").read()).hexdigest()
        rc, out = self.control("serve", timeout=30)
        self.check(S, "dom0 serves the newer build over HTTP", "PASS" if rc == 0 else "FAIL",
                   "%s; %s: --version 'singularity %s' and config exit 0 checked on the host, %d bytes"
                   % (out.strip(" |"), os.path.basename(path), new, size))
        if rc != 0:
            return
        url = "http://%s:%d/%s" % (GW4, HTTP_PORT, os.path.basename(path))
        host = nova.NovaCall(self.plugin, self.domid)
        pid, starts = self.agent_pid()

        # refusal first: the right URL with a wrong MD5
        wrong = "".join("%x" % ((int(c, 16) + 1) % 16) for c in md5)
        r = host.call("agent_update", url=url, md5sum=wrong)
        good = r.returncode == "500" and not r.fatal and "MD5" in (r.message or "")
        self.check(S, "agent_update with a wrong MD5 is refused with 500", "PASS" if good else "FAIL", str(r))
        v = host.version()
        sums = self.guest_sums(target, target + ".previous")
        unchanged = v.accepted and v.message == old and sums[target] is not None and \
            sums[target][4] == old_md5 and sums[target + ".previous"] is None
        self.check(S, "after the refusal nothing changed", "PASS" if unchanged else "FAIL",
                   "version %s; %s md5 %s (the running build: %s); %s.previous %s" % (
                       v.message if v.accepted else str(v), target,
                       sums[target][4] if sums[target] else "missing", sums[target] is not None and
                       sums[target][4] == old_md5, target, "absent" if sums[target + ".previous"] is None
                       else "present"))

        # the update nova sends when agent_builds has a newer build
        r = host.call("agent_update", url=url, md5sum=md5)
        self.times["agentupdate_call"] = r.seconds
        self.check(S, "agent_update %s -> %s (url %s, md5 %s)" % (old, new, url, md5),
                   "PASS" if r.accepted else "FAIL", str(r))
        v = host.version()
        self.check(S, "version through the real plugin answers the new version",
                   "PASS" if v.accepted and v.message == new else "FAIL", "%s (want %s)" % (v, new))
        pid2, starts2 = self.agent_pid()
        same = pid2 == pid and " " not in pid2 and starts2 == starts == "1"
        self.check(S, "re-executed in place: the agent's pid unchanged, init never restarted it",
                   "PASS" if same else "FAIL", "pid %s -> %s, init starts %s -> %s" % (pid, pid2, starts, starts2))
        sums = self.guest_sums(target, target + ".previous", target + ".pending")
        cur, prev, pend = sums[target], sums[target + ".previous"], sums[target + ".pending"]
        good = cur is not None and cur[4] == md5 and cur[0] == "755" and prev is not None and \
            prev[4] == old_md5 and pend is None
        fmt = lambda f: "missing" if f is None else "%s %d:%d %d bytes md5 %s" % f  # noqa: E731
        self.check(S, "in the domU: the target is the new build, <target>.previous the old one",
                   "PASS" if good else "FAIL", "%s: %s; .previous: %s; .pending: %s" % (
                       target, fmt(cur), fmt(prev), fmt(pend)))
        self.times["update_scenario"] = time.monotonic() - t0

    def scenario_robustness(self):
        S = "robust"
        before = self.ask("agent")
        pid = before.get("pid", ["none"])[0]
        self.burst(S, self.opts.burst)
        self.malformed(S)
        # replies left in place, in two batches whose pause (the agent may only
        # prune replies a few seconds old) is spent on the latency runs, which
        # remove their replies one at a time
        pileup = self.reply_pileup_batch()
        pause_until = time.monotonic() + PILEUP_PAUSE
        self.latency(S)
        time.sleep(max(0.0, pause_until - time.monotonic()))
        self.reply_pileup_batch(pileup)
        self.check(S, "%d nova-style replies left in data/guest (%d batches, %.1f s apart)" % (
            2 * PILEUP_BATCH, 2, PILEUP_PAUSE), "PASS" if pileup["answered"] == 2 * PILEUP_BATCH else "FAIL",
            "%d answered; data/guest holds %d replies now" % (pileup["answered"], pileup["held"]))
        after = self.ask("agent")
        self.agent_memory("after_burst", after)
        same = after.get("pid", ["?"])[0] == pid and after.get("starts", ["?"])[0] == "1"
        self.check(S, "agent still running, never restarted", "PASS" if same else "FAIL",
                   "pid %s -> %s, starts %s, %s" % (pid, after.get("pid", ["?"])[0],
                                                   after.get("starts", ["?"])[0],
                                                   "RSS " + " ".join(after.get("VmRSS:", []))))
        self.restart(S)

    def agent_memory(self, when, answer):
        """Records the agent's VmRSS/VmHWM (KiB) from a checker 'agent' answer."""
        for key in ("VmRSS:", "VmHWM:"):
            v = answer.get(key, [""])[0].split()
            if v and v[0].isdigit():
                self.times["agent_%s_%s_kib" % (key[2:5].lower(), when)] = int(v[0])

    def latency(self, S):
        """Round trips from dom0's own xenstored socket (labxs bench), then
        from the host through the relay; both remove each reply."""
        rc, out = self.control("bench %d" % self.opts.bench, timeout=90)
        m = re.search(r"BENCH ([0-9 ]+)", out)
        if rc == 0 and m:
            us = sorted(int(x) for x in m.group(1).split())
            self.times["rtt_dom0_ms"] = {"n": len(us), "p50": pct(us, 50) / 1000.0,
                                         "p99": pct(us, 99) / 1000.0, "min": us[0] / 1000.0,
                                         "max": us[-1] / 1000.0}
            self.check(S, "%d round trips from dom0 (watch on data/guest)" % len(us), "PASS",
                       "p50 %.1f ms, p99 %.1f ms" % (self.times["rtt_dom0_ms"]["p50"],
                                                     self.times["rtt_dom0_ms"]["p99"]))
        else:
            self.check(S, "round trips from dom0", "FAIL", out)
        lat = []
        with self.client() as xs:
            for _ in range(self.opts.host_rtts):
                reply, secs = self.request(xs, "version", "agent", remove=True)
                if reply is None:
                    break
                lat.append(secs * 1000.0)
        lat.sort()
        if len(lat) == self.opts.host_rtts:
            self.times["rtt_host_ms"] = {"n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99),
                                         "min": lat[0], "max": lat[-1]}
            self.check(S, "%d round trips from the host through the relay" % len(lat), "PASS",
                       "p50 %.1f ms, p99 %.1f ms" % (pct(lat, 50), pct(lat, 99)))
        else:
            self.check(S, "round trips from the host", "FAIL", "only %d answered" % len(lat))

    def reply_pileup_batch(self, state=None):
        """nova never deletes data/guest/<id>, and C xenstored counts the names
        of a node's children in the guest's 2048-byte node quota: about 50
        uuid-named replies fill data/guest. Two batches of nova-style requests
        (replies left in place) a few seconds apart must all be answered, so
        the agent has to make room by itself."""
        state = state or {"answered": 0, "held": 0, "batches": 0}
        if state["batches"] and state["answered"] < state["batches"] * PILEUP_BATCH:
            return state  # the first batch already lost a reply
        home = self.home()
        with self.client() as xs:
            for _ in range(PILEUP_BATCH):
                reply, _ = self.request(xs, "version", "agent", timeout=10)
                if reply is None:
                    break
                state["answered"] += 1
            state["held"] = len(xs.directory("%s/data/guest" % home))
        state["batches"] += 1
        return state

    def burst(self, S, n):
        """n nova-style requests written at once (pipelined). This host reads
        each reply as its watch fires and removes it (nova never removes
        replies; see reply_capacity for what piling them up does)."""
        home = self.home()
        ids = [str(uuid.uuid4()) for _ in range(n)]
        got = {}
        t = time.monotonic()
        with self.client() as xs:
            xs.watch("%s/data/guest" % home, "burst")
            refused = xs.write_many([("%s/data/host/%s" % (home, i),
                                      json.dumps({"name": "version", "value": "agent"})) for i in ids])
            if refused:
                raise AssertionError("xenstored refused burst writes: %s" % list(refused.values())[0])
            written = time.monotonic() - t
            deadline = time.monotonic() + 90
            pending = set(ids)
            while pending:
                try:  # give up after 20 s without a reply
                    first = xs.next_event(min(deadline, time.monotonic() + 20))
                except TimeoutError:
                    break
                ready = {p.rsplit("/", 1)[-1] for p, _ in [first] + xs.events} & pending
                xs.drain_events()
                reads = [(i, xs.send(READ, ("%s/data/guest/%s" % (home, i)).encode() + b"\0"))
                         for i in sorted(ready)]
                done = []
                for i, rid in reads:
                    try:
                        got[i] = xs.wait(rid)
                        done.append(i)
                    except XsError:
                        pass
                xs.rm_many(["%s/data/guest/%s" % (home, i) for i in done])
                pending.difference_update(done)
            elapsed = time.monotonic() - t
            xs.unwatch("%s/data/guest" % home, "burst")
            # The agent writes a reply before it removes the request: the
            # last removal may come just after the last reply is read.
            settle = time.monotonic() + 5
            left = xs.directory("%s/data/host" % home)
            while left and time.monotonic() < settle:
                time.sleep(0.1)
                left = xs.directory("%s/data/host" % home)
            if left:  # what nova's timeouts would do; then the agent must recover
                xs.rm_many(["%s/data/host/%s" % (home, i) for i in left])
                after, _ = self.request(xs, "version", "agent", remove=True)
        bad = []
        for i in ids:
            r = got.get(i)
            try:
                ok = nova.nova_check(r.decode(), ("0",))[2] if r else False
            except ValueError:
                ok = False
            if not ok:
                bad.append(i)
        self.times["burst"] = {"n": n, "seconds": elapsed, "write_seconds": written}
        good = not bad and not left
        self.check(S, "%d requests in a burst" % n, "PASS" if good else "FAIL",
                   "%d answered '0' in %.2f s (%.0f/s), %d unanswered or bad, %d left in data/host" % (
                       n - len(bad), elapsed, n / elapsed if elapsed else 0, len(bad), len(left)))
        if left:
            self.check(S, "agent answers again once the host removed the %d waiting requests" % len(left),
                       "PASS" if after else "FAIL", after.decode() if after else "no answer")

    def malformed(self, S):
        b64 = lambda s: base64.b64encode(s).decode()  # noqa: E731
        cases = [  # (raw request, must the agent refuse it)
            (b"", True), (b"not json", True), (b"{", True), (b"[]", True), (b'"version"', True),
            (b"42", True), (b"null", True), (b"{}", True), (b'{"name": 5, "value": ""}', True),
            (b'{"value": "agent"}', True), (b'{"name": "no-such-command", "value": ""}', True),
            (b'{"name": "", "value": ""}', True), (b"\xff\xfe\x00\x01garbage", True),
            (b"[" * 2000, True), (b'{"name": "keyinit", "value": "not-a-number"}', True),
            (b'{"name": "password", "value": "!!!not base64"}', True),
            (b'{"name": "password", "value": "QUJD"}', True),
            (b'{"name": "file_inject", "value": "not an object"}', True),
            (json.dumps({"name": "file_inject", "value": {"b64_path": b64(b"relative/x"),
                                                          "b64_file": b64(b"x")}}).encode(), True),
            (json.dumps({"name": "file_inject", "value": {"b64_path": "%%%", "b64_file": "%%%"}}).encode(), True),
            (json.dumps({"name": "injectfile", "value": "%%%"}).encode(), True),
            (json.dumps({"name": "injectfile", "value": b64(b"no-comma-here")}).encode(), True),
            (b'{"name": "version", "value": "agent", "extra": [1, {"a": null}]}', False),
            (json.dumps({"name": "version", "value": "A" * 1900}).encode(), False),
            (b'{"name": "features", "value": {"nested": true}}', False),
        ]
        home = self.home()
        ids = ["bad-%02d-%s" % (i, uuid.uuid4().hex[:6]) for i in range(len(cases))]
        with self.client() as xs:
            xs.watch("%s/data/guest" % home, "bad")
            refused = xs.write_many([("%s/data/host/%s" % (home, i), raw)
                                     for i, (raw, _) in zip(ids, cases)])
            deadline = time.monotonic() + 60
            pending = set(i for i in ids if "%s/data/host/%s" % (home, i) not in refused)
            while pending:
                try:
                    path, _ = xs.next_event(deadline)
                except TimeoutError:
                    break
                pending.discard(path.rsplit("/", 1)[-1])
            xs.unwatch("%s/data/guest" % home, "bad")
            replies = [xs.read_or_none("%s/data/guest/%s" % (home, i)) for i in ids]
            left = xs.directory("%s/data/host" % home)
            xs.rm_many(["%s/data/guest/%s" % (home, i) for i, r in zip(ids, replies) if r is not None])
            after, _ = self.request(xs, "version", "agent", remove=True)
        problems = ["xenstored refused %s: %s" % (p.rsplit("/", 1)[-1], e) for p, e in refused.items()]
        codes = []
        for i, (raw, must_refuse), reply in zip(ids, cases, replies):
            if "%s/data/host/%s" % (home, i) in refused:
                continue
            if reply is None:
                problems.append("no reply to %r" % raw[:30])
                continue
            try:
                rc, _, _ = nova.nova_check(reply.decode("utf-8"), ("0",))
            except (ValueError, UnicodeDecodeError) as e:
                problems.append("%r -> %r: %s" % (raw[:30], reply[:60], e))
                continue
            codes.append(rc)
            if must_refuse and rc == "0":
                problems.append("%r accepted" % raw[:40])
        good = not problems and not left and after is not None
        self.check(S, "%d malformed or hostile requests" % len(cases), "PASS" if good else "FAIL",
                   "all answered nova-safely (returncodes %s), %d left in data/host, version after: %s%s" % (
                       ",".join(sorted(set(codes))), len(left), after.decode() if after else None,
                       "; " + "; ".join(problems) if problems else ""))

    def restart(self, S):
        old = self.domid
        t = time.monotonic()
        rc, out = self.control("restart-domU", timeout=120)
        m = re.search(r"domid=(\d+)", out)
        if rc != 0 or not m:
            self.check(S, "restart the domU", "FAIL", out)
            return
        self.domid = int(m.group(1))
        with self.client() as xs:
            reply, _ = self.request(xs, "version", "agent", timeout=self.opts.first_timeout)
        secs = time.monotonic() - t
        self.times["restart_to_first_reply"] = secs
        self.check(S, "domU restarted (domid %d -> %d), agent answers again" % (old, self.domid),
                   "PASS" if reply is not None and self.domid != old else "FAIL",
                   "first reply %.1f s after the restart command: %s" % (
                       secs, reply.decode() if reply else None))
        v = nova.NovaCall(self.plugin, self.domid).version()
        self.check(S, "the real plugin's version on the new domid", "PASS" if v.accepted else "FAIL", str(v))

    # ------------------------------------------------------------ the end
    def shutdown(self):
        if self.qemu is not None and self.qemu.poll() is None and not self.down:
            try:
                self.control("poweroff", timeout=20)
            except (LabDown, OSError) as e:
                self.say("poweroff: %s" % e)
            try:
                self.qemu.wait(30)
            except subprocess.TimeoutExpired:
                self.say("QEMU did not exit after poweroff: killing it")
        self.kill()
        if self.qemu is not None:
            self.times["qemu_exit"] = self.now()
        if self.mux:
            self.mux.stop()
        if self.ctl:
            self.ctl.close()
        if getattr(self, "plugin", None):
            self.plugin.close()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        if self.log:
            self.log.close()

    def report(self):
        failed = [c for c in self.checks if c["status"] == "FAIL"]
        if failed:
            tail = self.lines[-self.opts.tail:]
            self.say("---- last %d console lines (full log: %s/serial.log)" % (len(tail), self.run_dir))
            for t, text in tail:
                print("%s %8.2f %s" % (self.tag, t, text))
        result = {
            "flavour": self.flavour,
            "result": "FAIL" if failed or not self.checks else "PASS",
            "checks": self.checks,
            "times": self.times,
            "peak_rss_mib": self.peak_rss_kib // 1024,
            "run_dir": self.run_dir,
            "qemu_exit_status": self.qemu.returncode if self.qemu else None,
        }
        with open(os.path.join(self.run_dir, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
        return result
