"""The real os-xenapi 0.3.4 dom0 ``agent`` plugin, driven the way nova does.

The plugin files come from the PyPI wheel (fetch.plugins). They are imported
unchanged with two import stubs (stubs/XenAPIPlugin.py, stubs/XenAPI.py) and
a small Python 3 shim:

* ``utils.run_command`` returns bytes under Python 3, which breaks
  ``xenstore.record_exists`` (``e.stderr == ''``) and ``delete_record``
  (``'could not remove path' in e.stderr``): it is replaced by the same
  function in text mode.
* ``agent.base64`` works on str under Python 2; the ``injectfile`` branch
  needs latin-1 str in and out.

The plugin shells out to Debian's ``xenstore-read/-write/-exists/-rm`` (and
``uuidgen``); with ``XENSTORED_PATH`` pointing at the lab's xenstored mux
they reach the real xenstored in dom0. What nova does with the plugin's
answer (nova/virt/xenapi/agent.py ``_call_agent``) is re-implemented in
``NovaCall`` below, together with nova's ``SimpleDH`` (openssl CLI).
"""

import base64
import binascii
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))

DH_PRIME = 162259276829213363391578010288127  # 2**107 - 1
DH_BASE = 5


class Plugin:
    """The imported plugin module plus the environment it runs in."""

    def __init__(self, plugin_dir, xenstored_path, log_file=None):
        self.bin = tempfile.mkdtemp(prefix="xen-lab-bin-")
        if not shutil.which("uuidgen"):
            path = os.path.join(self.bin, "uuidgen")
            with open(path, "w") as f:
                f.write("#!/bin/sh\nexec cat /proc/sys/kernel/random/uuid\n")
            os.chmod(path, 0o755)
        for tool in ("xenstore-read", "xenstore-write", "xenstore-exists", "xenstore-rm"):
            if not shutil.which(tool):
                raise RuntimeError("%s is not installed (Debian package xenstore-utils)" % tool)
        os.environ["PATH"] = self.bin + os.pathsep + os.environ.get("PATH", "")
        os.environ["XENSTORED_PATH"] = xenstored_path
        sys.path[:0] = [os.path.join(HERE, "stubs"), plugin_dir]
        import utils  # noqa: E402  (the plugin's utils.py)

        def run_command(cmd, cmd_input=None, ok_exit_codes=None):
            proc = utils.make_subprocess(cmd, stdout=True, stderr=True, stdin=True,
                                         universal_newlines=True, close_fds=True)
            return utils.finish_subprocess(proc, cmd, cmd_input=cmd_input,
                                           ok_exit_codes=ok_exit_codes)

        utils.run_command = run_command
        import agent  # noqa: E402  (the plugin itself)

        class Latin1Base64:
            @staticmethod
            def b64decode(s):
                return base64.b64decode(s).decode("latin-1")

            @staticmethod
            def b64encode(s):
                return base64.b64encode(s.encode("latin-1") if isinstance(s, str) else s).decode()

        agent.base64 = Latin1Base64
        # dom0_pluginlib.configure_logging logs every command to syslog when
        # /dev/log exists; the lab keeps the host's syslog clean and sends
        # the plugin's log (every xenstore-* it runs) to a file instead
        root = logging.getLogger()
        for h in list(root.handlers):
            root.removeHandler(h)
        if log_file:
            handler = logging.FileHandler(log_file)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
            root.addHandler(handler)
            root.setLevel(logging.DEBUG)
        else:
            root.addHandler(logging.NullHandler())
        self.agent = agent

    def close(self):
        shutil.rmtree(self.bin, ignore_errors=True)


class Outcome:
    """One plugin call as nova sees it."""

    def __init__(self, fn, raw=None, error=None, fatal=None, returncode=None, message=None,
                 accepted=False, seconds=0.0):
        self.fn = fn
        self.raw = raw
        self.error = error  # plugin exception text (TIMEOUT:, NOT IMPLEMENTED:, ...)
        self.fatal = fatal  # a reply that would crash nova (fails the instance build)
        self.returncode = returncode
        self.message = message
        self.accepted = accepted  # returncode among nova's success codes
        self.seconds = seconds

    def __str__(self):
        if self.fatal:
            return "%s: FATAL for nova: %s (raw %r)" % (self.fn, self.fatal, self.raw)
        if self.error:
            return "%s: plugin raised %s" % (self.fn, self.error)
        return "%s -> %s (%.2f s)" % (self.fn, self.raw, self.seconds)


def nova_check(raw, success):
    """nova's _call_agent: (returncode, message, accepted) or raises ValueError
    with why nova would crash on this reply."""
    if not isinstance(raw, dict):
        try:
            ret = json.loads(raw)
        except ValueError as e:  # jsonify() never hands nova invalid JSON, but be exact
            raise ValueError("reply is not JSON: %s" % e)
    else:
        ret = raw
    if not isinstance(ret, dict):
        raise ValueError("reply is not a JSON object")
    if "returncode" not in ret or "message" not in ret:
        raise ValueError("reply lacks returncode or message")
    if not isinstance(ret["returncode"], str) or not isinstance(ret["message"], str):
        raise ValueError("returncode/message are not strings")
    return ret["returncode"], ret["message"].replace("\\r\\n", ""), ret["returncode"] in success


class NovaCall:
    """Calls plugin functions with the arguments xapi would deliver (strings)."""

    def __init__(self, plugin, domid):
        self.agent = plugin.agent
        self.domid = domid

    def call(self, fn, success=("0",), timeout=30, **args):
        arg_dict = {"id": str(uuid.uuid4()), "dom_id": str(self.domid), "timeout": str(timeout)}
        arg_dict.update(args)
        t0 = time.monotonic()
        try:
            raw = getattr(self.agent, fn)(None, arg_dict)
        except Exception as e:  # what xapi would turn into XENAPI_PLUGIN_FAILURE
            return Outcome(fn, error="%s: %s" % (e.__class__.__name__, e),
                           seconds=time.monotonic() - t0)
        seconds = time.monotonic() - t0
        try:
            rc, msg, ok = nova_check(raw, success)
        except ValueError as e:
            return Outcome(fn, raw=raw, fatal=str(e), seconds=seconds)
        return Outcome(fn, raw=raw, returncode=rc, message=msg, accepted=ok, seconds=seconds)

    def version(self):
        return self.call("version")

    def set_password(self, password, md):
        """nova's set_admin_password: key_init, then password encrypted the
        way SimpleDH does it, with ``-md`` added (nova passes none, so its
        digest is its host OpenSSL's default: md5 before 1.1.0, sha256 after)."""
        private = int(binascii.hexlify(os.urandom(10)), 16)
        public = pow(DH_BASE, private, DH_PRIME)
        k = self.call("key_init", success=("D0",), pub=str(public))
        if not k.accepted:
            return k, None
        try:
            shared = pow(int(k.message), private, DH_PRIME)
        except ValueError:
            k.fatal = "keyinit message is not an integer: int() would raise in nova"
            return k, None
        cmd = ["openssl", "aes-128-cbc", "-A", "-a", "-pass", "pass:%s" % shared, "-nosalt",
               "-md", md]
        r = subprocess.run(cmd, input=password + "\n", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, check=True)
        enc = r.stdout.strip("\n")
        return k, self.call("password", enc_pass=enc)

    def inject_file(self, path, contents):
        return self.call("inject_file", b64_path=base64.b64encode(path.encode()).decode(),
                         b64_contents=base64.b64encode(contents).decode())

    def resetnetwork(self):
        return self.call("resetnetwork", success=("0", "500"), timeout=60)
