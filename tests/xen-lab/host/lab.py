#!/usr/bin/env python3
"""The singularity Xen lab: entry point (tests/xen-lab/lab, scripts/xen-lab).

  lab.py [--flavours xenstored,oxenstored] [--jobs N] [--agent PATH] ...

1. builds the release static agent (cargo, in the background) while it
   fetches Debian's Xen/kernel/busybox packages and the os-xenapi wheel and
   builds the boot images (fetch.py; cached outside the checkout);
2. builds dom0's helper (guest/labxs.rs) with rustc;
3. boots the lab once per xenstored flavour (boot.py), in parallel with
   --jobs 2, and runs every scenario through that boot;
4. prints the checks, the timings and one "LAB RESULT: PASS|FAIL" line.

Exit status: 0 PASS, 1 FAIL. When the lab cannot run here (a download was
refused, QEMU cannot be installed) it says "skipped: no lab" loudly and
exits 1, or 0 if SINGULARITY_ALLOW_SKIP=1.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the checkout

import fetch  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
TRIPLE = "x86_64-unknown-linux-gnu"
FLAVOURS = ("xenstored", "oxenstored")


class Terminated(Exception):
    pass


def on_signal(signum, _frame):
    raise Terminated("signal %d" % signum)


def options(argv):
    p = argparse.ArgumentParser(prog="xen-lab", description=__doc__.split("\n\n")[0])
    p.add_argument("--flavours", default=",".join(FLAVOURS),
                   help="xenstored flavours to boot, comma-separated [%(default)s]")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("XEN_LAB_JOBS", "0")) or None,
                   help="boots at once [2 on 2+ CPUs, else 1]")
    p.add_argument("--agent", default=os.environ.get("XEN_LAB_AGENT"),
                   help="use this static singularity binary instead of building one")
    p.add_argument("--timeout", type=int, default=int(os.environ.get("XEN_LAB_TIMEOUT", "300")),
                   help="hard limit per boot, seconds [%(default)s]")
    p.add_argument("--first-timeout", type=int, default=120,
                   help="wait for the agent's first reply, seconds [%(default)s]")
    p.add_argument("--mem", type=int, default=1024, help="QEMU RAM in MiB [%(default)s]")
    p.add_argument("--dom0-mem", default="512M", help="Xen dom0_mem [%(default)s]")
    p.add_argument("--smp", type=int, default=1, help="emulated CPUs [%(default)s]")
    p.add_argument("--burst", type=int, default=200, help="requests in the burst [%(default)s]")
    p.add_argument("--bench", type=int, default=60, help="round trips from dom0 [%(default)s]")
    p.add_argument("--host-rtts", type=int, default=20,
                   help="round trips from the host through the relay [%(default)s]")
    p.add_argument("--agent-log", default="info", choices=("debug", "info", "warning", "error"),
                   help="the agent's log level (its log is on the domU console) [%(default)s]")
    p.add_argument("--hold", action="store_true",
                   help="boot, check the first reply, then keep the lab up (XENSTORED_PATH is printed)")
    p.add_argument("--tail", type=int, default=80, help="console lines shown on failure")
    p.add_argument("--keep-runs", type=int, default=6, help="run directories kept in the cache")
    p.add_argument("--boot", help=argparse.SUPPRESS)  # internal: one boot (a child process)
    p.add_argument("--images", help=argparse.SUPPRESS)
    p.add_argument("--labxs", help=argparse.SUPPRESS)
    p.add_argument("--plugins", help=argparse.SUPPRESS)
    p.add_argument("--run-dir", help=argparse.SUPPRESS)
    p.add_argument("--sock-dir", help=argparse.SUPPRESS)
    p.add_argument("--total-timeout", type=int,
                   default=int(os.environ.get("XEN_LAB_TOTAL_TIMEOUT", "1200")),
                   help="hard limit for the whole run incl. downloads, seconds [%(default)s]")
    return p.parse_args(argv)


def skip(reason):
    bar = "#" * 78
    lines = [l for l in reason.splitlines() if l.strip()][-6:]
    print("\n".join([bar, "#  xen-lab: skipped: no lab"] + ["#  " + l for l in lines] + [bar]),
          flush=True)
    print("xen-lab: skipped: no lab (%s)" % lines[0] if lines else "xen-lab: skipped: no lab",
          file=sys.stderr, flush=True)
    if os.environ.get("SINGULARITY_ALLOW_SKIP") == "1":
        print("xen-lab: SINGULARITY_ALLOW_SKIP=1: not failing", flush=True)
        print("xen-lab: 0 passed, 0 failed, 1 skipped", flush=True)
        return 0
    print("xen-lab: failing (set SINGULARITY_ALLOW_SKIP=1 to accept a machine without the lab)",
          flush=True)
    print("LAB RESULT: FAIL\nxen-lab: 0 passed, 1 failed", flush=True)
    return 1


def start_agent_build():
    target_dir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    binary = os.path.join(target_dir, TRIPLE, "release", "singularity")
    env = dict(os.environ, RUSTFLAGS="-C target-feature=+crt-static")
    log = open(os.path.join(fetch.cache_dir(), "agent-build.log"), "w")
    proc = subprocess.Popen(["cargo", "build", "--release", "--locked", "-p", "singularity",
                             "--target", TRIPLE], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, binary, log


def build_labxs(cache):
    src = os.path.join(os.path.dirname(HERE), "guest", "labxs.rs")
    digest = hashlib.sha256(open(src, "rb").read()).hexdigest()[:16]
    out = os.path.join(cache, "labxs-%s" % digest)
    if not os.path.exists(out):
        tmp = out + ".tmp"
        subprocess.run(["rustc", "--edition", "2021", "-O", "-C", "target-feature=+crt-static",
                        "-C", "strip=symbols", "--target", TRIPLE, src, "-o", tmp], check=True)
        os.rename(tmp, out)
        for old in os.listdir(cache):
            if old.startswith("labxs-") and old != os.path.basename(out):
                os.unlink(os.path.join(cache, old))
    return out


def prune_runs(runs, keep):
    if not os.path.isdir(runs):
        return
    for old in sorted(os.listdir(runs))[:-keep or None]:
        shutil.rmtree(os.path.join(runs, old), ignore_errors=True)


def one_boot(opts):
    """Child process: one boot, result JSON in the run directory."""
    import boot
    b = boot.Boot(opts.boot, opts.images, opts.agent, opts.labxs, opts.plugins, opts.run_dir, opts)
    result = b.run()
    return 0 if result["result"] == "PASS" else 1


def fmt_s(v):
    return "%.1f s" % v if isinstance(v, (int, float)) else "-"


def summary(results, phases, total):
    print("xen-lab: ================================================================ summary")
    statuses = {}
    nyi = []
    for r in results:
        for c in r["checks"]:
            statuses[c["status"]] = statuses.get(c["status"], 0) + 1
            if c["status"] == "NYI":
                nyi.append("%s: %s" % (r["flavour"], c["name"]))
    for r in results:
        t = r.get("times", {})
        print("xen-lab: [%s] %s  (%d checks; QEMU peak RSS %s MiB; run dir %s)" % (
            r["flavour"], r["result"], len(r["checks"]), r.get("peak_rss_mib"), r.get("run_dir")))
        print("xen-lab: [%s]   boot: Xen banner %s, dom0 /init %s, xenstored up %s, domU unpaused %s,"
              " power-off %s" % (r["flavour"], fmt_s(t.get("xen_banner")), fmt_s(t.get("dom0_init")),
                                 fmt_s(t.get("xenstored_up")), fmt_s(t.get("domU_unpaused")),
                                 fmt_s(t.get("qemu_exit"))))
        print("xen-lab: [%s]   first reply: %s after QEMU start, %s after unpause (agent started at"
              " domU uptime %s)" % (r["flavour"], fmt_s(t.get("first_reply")),
                                    fmt_s(t.get("first_reply_after_unpause")),
                                    fmt_s(t.get("domU_uptime_at_agent_start"))))
        mem = [(label, t.get(key)) for key, label in (
            ("agent_rss_after_boot_kib", "idle VmRSS after boot"),
            ("agent_hwm_after_burst_kib", "VmHWM after the burst"),
            ("agent_rss_after_burst_kib", "VmRSS after the burst"))]
        if any(v for _, v in mem):
            print("xen-lab: [%s]   agent in the domU: %s" % (r["flavour"], ", ".join(
                "%s %s" % (label, "%.2f MiB" % (v / 1024.0) if v else "n/a") for label, v in mem)))
        for key, label in (("rtt_dom0_ms", "round trip from dom0 (xenstored socket)"),
                           ("rtt_host_ms", "round trip from the host (relay)")):
            v = t.get(key)
            if v:
                print("xen-lab: [%s]   %s: p50 %.1f ms, p99 %.1f ms (min %.1f, max %.1f, n=%d)" % (
                    r["flavour"], label, v["p50"], v["p99"], v["min"], v["max"], v["n"]))
        if t.get("burst"):
            b = t["burst"]
            print("xen-lab: [%s]   burst: %d requests answered in %.2f s; restart to first reply: %s;"
                  " plugin version call %s" % (r["flavour"], b["n"], b["seconds"],
                                               fmt_s(t.get("restart_to_first_reply")),
                                               fmt_s(t.get("plugin_version"))))
        if t.get("metrics_scenario") is not None:
            print("xen-lab: [%s]   metrics: scenario %s; an added address in dom0's xenstore %s after"
                  " asking the domU, a removed one gone after %s" % (
                      r["flavour"], fmt_s(t.get("metrics_scenario")), fmt_s(t.get("metrics_add_seen")),
                      fmt_s(t.get("metrics_del_seen"))))
        if t.get("update_scenario") is not None:
            print("xen-lab: [%s]   agentupdate: scenario %s; the plugin's agent_update call %s" % (
                r["flavour"], fmt_s(t.get("update_scenario")), fmt_s(t.get("agentupdate_call"))))
    print("xen-lab: checks: %s" % ", ".join("%d %s" % (n, s) for s, n in sorted(statuses.items())))
    for n in nyi:
        print("xen-lab: not yet implemented in the agent (check turns strict by itself): %s" % n)
    print("xen-lab: wall time: %s" % ", ".join("%s %.1f s" % kv for kv in phases + [("total", total)]))


def main(argv):
    opts = options(argv)
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    if opts.boot:
        return one_boot(opts)
    t0 = time.monotonic()
    cache = fetch.cache_dir()
    os.makedirs(cache, exist_ok=True)
    flavours = [f for f in opts.flavours.split(",") if f]
    bad = [f for f in flavours if f not in FLAVOURS]
    if bad:
        print("xen-lab: unknown flavour %s" % ",".join(bad), file=sys.stderr)
        return 2
    jobs = opts.jobs or (2 if (os.cpu_count() or 1) >= 2 else 1)
    build = None
    children = []
    sock_dirs = []
    phases = []
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(opts.total_timeout)
    try:
        if not opts.agent:
            fetch.log("building the release static agent in the background "
                      "(cargo build --release -p singularity --target %s, +crt-static)" % TRIPLE)
            build = start_agent_build()
        tp = time.monotonic()
        try:
            images, plugins = fetch.prepare(cache)
        except fetch.NoLab as e:
            return skip(str(e))
        phases.append(("fetch+images", time.monotonic() - tp))
        labxs = build_labxs(cache)
        if build:
            proc, binary, log = build
            tb = time.monotonic()
            rc = proc.wait()
            log.close()
            build = None
            phases.append(("agent build (after fetch)", time.monotonic() - tb))
            if rc != 0:
                with open(os.path.join(cache, "agent-build.log")) as f:
                    sys.stdout.write(f.read()[-4000:])
                print("xen-lab: cargo build failed\nLAB RESULT: FAIL", flush=True)
                return 1
            opts.agent = binary
        if not os.path.exists(opts.agent):
            print("xen-lab: no agent binary at %s\nLAB RESULT: FAIL" % opts.agent, flush=True)
            return 1
        out = subprocess.run(["file", "-b", opts.agent], stdout=subprocess.PIPE, text=True).stdout \
            if shutil.which("file") else ""
        fetch.log("agent %s (%d bytes%s)" % (opts.agent, os.path.getsize(opts.agent),
                                             ", " + out.split(",")[0].strip() + ", " +
                                             ("static" if "static" in out else "NOT static")
                                             if out else ""))
        runs = os.path.join(cache, "runs")
        prune_runs(runs, opts.keep_runs)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-%d" % os.getpid()
        tb = time.monotonic()
        pending = list(flavours)
        results = []
        lock = threading.Lock()

        def pump(child):
            for line in child.stdout:
                with lock:
                    sys.stdout.write(line)
                    sys.stdout.flush()

        while pending or children:
            while pending and len(children) < jobs:
                flavour = pending.pop(0)
                run_dir = os.path.join(runs, stamp, flavour)
                os.makedirs(run_dir)
                sock_dir = tempfile.mkdtemp(prefix="xl-")
                sock_dirs.append(sock_dir)
                cmd = [sys.executable, os.path.abspath(__file__), "--boot", flavour,
                       "--images", images, "--agent", opts.agent, "--labxs", labxs,
                       "--plugins", plugins, "--run-dir", run_dir, "--sock-dir", sock_dir,
                       "--timeout", str(opts.timeout), "--first-timeout", str(opts.first_timeout),
                       "--mem", str(opts.mem), "--dom0-mem", opts.dom0_mem, "--smp", str(opts.smp),
                       "--burst", str(opts.burst), "--bench", str(opts.bench),
                       "--host-rtts", str(opts.host_rtts), "--tail", str(opts.tail),
                       "--agent-log", opts.agent_log] + (["--hold"] if opts.hold else [])
                child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         text=True, bufsize=1)
                th = threading.Thread(target=pump, args=(child,), daemon=True)
                th.start()
                children.append((flavour, child, th, run_dir))
                fetch.log("booting the lab with %s (run dir %s)" % (flavour, run_dir))
            time.sleep(0.2)
            for entry in list(children):
                flavour, child, th, run_dir = entry
                if child.poll() is None:
                    continue
                th.join(5)
                children.remove(entry)
                try:
                    with open(os.path.join(run_dir, "result.json")) as f:
                        results.append(json.load(f))
                except (OSError, ValueError):
                    results.append({"flavour": flavour, "result": "FAIL", "run_dir": run_dir,
                                    "checks": [{"scenario": "lab", "name": "boot process",
                                                "status": "FAIL",
                                                "detail": "exited %s without a result" % child.returncode}]})
        phases.append(("boots (%d at once)" % min(jobs, len(flavours)), time.monotonic() - tb))
        results.sort(key=lambda r: flavours.index(r["flavour"]))
        summary(results, phases, time.monotonic() - t0)
        ok = all(r["result"] == "PASS" for r in results) and len(results) == len(flavours)
        counts = {}
        for r in results:
            for c in r["checks"]:
                counts[c["status"]] = counts.get(c["status"], 0) + 1
        print("LAB RESULT: %s" % ("PASS" if ok else "FAIL"), flush=True)
        # the plain closing line CI reads (not-yet-implemented checks count as skipped)
        print("xen-lab: %d passed, %d failed%s" % (
            counts.get("PASS", 0), counts.get("FAIL", 0) + (0 if ok or counts.get("FAIL") else 1),
            ", %d skipped" % counts["NYI"] if counts.get("NYI") else ""), flush=True)
        return 0 if ok else 1
    except Terminated as e:
        print("xen-lab: interrupted (%s)\nLAB RESULT: FAIL" % e, flush=True)
        return 1
    finally:
        if build:
            try:
                os.killpg(build[0].pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            build[0].wait()
        for _, child, _, _ in children:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()  # its QEMU dies with it (PR_SET_PDEATHSIG)
                child.wait()
        for d in sock_dirs:
            shutil.rmtree(d, ignore_errors=True)
        signal.alarm(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
