"""XenStore wire protocol on the host side of the lab (Python 3 stdlib only).

Two pieces:

* ``Mux``: dom0 splices ONE persistent xenstored connection onto a
  virtio-serial port (guest/labxs.rs ``relay``); QEMU exposes the host end as
  a Unix socket. ``Mux`` holds that socket for the life of the lab and serves
  a second Unix socket to any number of host clients at once: the Debian
  ``xenstore-*`` tools (``XENSTORED_PATH``), the real os-xenapi plugin, and
  ``Client`` below. Request ids are rewritten per client, watch tokens get a
  client prefix so events go back to their owner, and when a client goes
  away its watches are removed and its open transactions aborted on the
  shared connection. The virtio-serial port therefore never sees a session
  boundary (those are unreliable, see the lab notes).

* ``Client``: a small synchronous client (read, write, rm, directory, watch,
  pipelined writes) used by the scenarios.

Every host client is privileged (dom0), because the one connection behind
the mux is dom0's own socket connection to xenstored.
"""

import os
import select
import socket
import struct
import threading
import time

DIRECTORY, READ, GET_PERMS, WATCH, UNWATCH = 1, 2, 3, 4, 5
TRANSACTION_START, TRANSACTION_END = 6, 7
WRITE, MKDIR, RM = 11, 12, 13
WATCH_EVENT, ERROR = 15, 16
HEADER = struct.Struct("<IIII")
PAYLOAD_MAX = 4096  # XENSTORE_PAYLOAD_MAX


class XsError(Exception):
    """An ERROR reply from xenstored (``errno`` is its text, e.g. ENOENT)."""

    def __init__(self, errno, path=""):
        super().__init__("%s%s" % (errno, ": " + path if path else ""))
        self.errno = errno


def _split_messages(buf):
    """Complete messages at the front of ``buf`` and the rest."""
    out = []
    while len(buf) >= HEADER.size:
        ty, rid, tx, ln = HEADER.unpack_from(buf)
        if len(buf) < HEADER.size + ln:
            break
        out.append((ty, rid, tx, bytes(buf[HEADER.size:HEADER.size + ln])))
        del buf[:HEADER.size + ln]
    return out


def _pack(ty, rid, tx, payload):
    return HEADER.pack(ty, rid, tx, len(payload)) + payload


class _MuxClient:
    def __init__(self, cid, sock):
        self.cid = cid
        self.sock = sock
        self.inbuf = bytearray()
        self.watches = set()  # (path, token as sent upstream)
        self.txs = set()


class Mux:
    """Multiplexes host clients onto one upstream xenstored stream."""

    def __init__(self, upstream_path, listen_path, log=None):
        self.upstream_path = upstream_path
        self.listen_path = listen_path
        self.log = log or (lambda msg: None)
        self.up = None
        self.upbuf = bytearray()
        self.listener = None
        self.clients = {}  # fileno -> _MuxClient
        self.pending = {}  # upstream rid -> (client or None, client rid, type)
        self.next_rid = 1
        self.next_cid = 1
        self.stopping = False
        self.thread = None
        self.error = None
        self.messages = 0

    def start(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                up.connect(self.upstream_path)
                break
            except OSError:
                up.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.up = up
        try:
            os.unlink(self.listen_path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.listen_path)
        self.listener.listen(64)
        self.thread = threading.Thread(target=self._run, name="xs-mux", daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        if self.thread:
            self.thread.join(timeout=2)
        for c in list(self.clients.values()):
            c.sock.close()
        self.clients.clear()
        for s in (self.listener, self.up):
            if s:
                s.close()
        try:
            os.unlink(self.listen_path)
        except OSError:
            pass

    # -- internals (mux thread only) -------------------------------------
    def _send_up(self, ty, client, crid, tx, payload):
        rid = self.next_rid
        self.next_rid = self.next_rid % 0xFFFFFFF0 + 1
        self.pending[rid] = (client, crid, ty)
        self.up.sendall(_pack(ty, rid, tx, payload))
        self.messages += 1

    def _drop_client(self, c):
        self.clients.pop(c.sock.fileno(), None)
        try:
            c.sock.close()
        except OSError:
            pass
        for rid, (owner, crid, ty) in list(self.pending.items()):
            if owner is c:
                self.pending[rid] = (None, crid, ty)
        for path, token in c.watches:
            self._send_up(UNWATCH, None, 0, 0, path + b"\0" + token + b"\0")
        for tx in c.txs:
            self._send_up(TRANSACTION_END, None, 0, tx, b"F\0")

    def _from_client(self, c, ty, rid, tx, payload):
        if ty in (WATCH, UNWATCH):
            parts = payload.split(b"\0")
            if len(parts) >= 2:
                token = b"c%d:" % c.cid + parts[1]
                payload = parts[0] + b"\0" + token + b"\0"
                if ty == WATCH:
                    c.watches.add((parts[0], token))
                else:
                    c.watches.discard((parts[0], token))
        elif ty == TRANSACTION_END:
            c.txs.discard(tx)
        self._send_up(ty, c, rid, tx, payload)

    def _from_upstream(self, ty, rid, tx, payload):
        if ty == WATCH_EVENT:
            parts = payload.split(b"\0")
            token = parts[1] if len(parts) > 1 else b""
            prefix, sep, orig = token.partition(b":")
            if not sep or not prefix.startswith(b"c"):
                return
            for c in self.clients.values():
                if b"c%d" % c.cid == prefix:
                    out = parts[0] + b"\0" + orig + b"\0"
                    self._to_client(c, _pack(WATCH_EVENT, 0, 0, out))
                    break
            return
        entry = self.pending.pop(rid, None)
        if entry is None:
            self.log("xs-mux: reply with unknown id %d (type %d)" % (rid, ty))
            return
        client, crid, req_ty = entry
        if client is None:
            if req_ty == TRANSACTION_START and ty != ERROR:
                # a client that left while starting a transaction: abort it
                try:
                    t = int(payload.rstrip(b"\0"))
                    self._send_up(TRANSACTION_END, None, 0, t, b"F\0")
                except ValueError:
                    pass
            return
        if req_ty == TRANSACTION_START and ty != ERROR:
            try:
                client.txs.add(int(payload.rstrip(b"\0")))
            except ValueError:
                pass
        self._to_client(client, _pack(ty, crid, tx, payload))

    def _to_client(self, c, data):
        try:
            c.sock.sendall(data)
        except OSError:
            self._drop_client(c)

    def _run(self):
        try:
            while not self.stopping:
                socks = [self.up, self.listener] + [c.sock for c in self.clients.values()]
                ready, _, _ = select.select(socks, [], [], 0.2)
                for s in ready:
                    if s is self.listener:
                        conn, _ = self.listener.accept()
                        c = _MuxClient(self.next_cid, conn)
                        self.next_cid += 1
                        self.clients[conn.fileno()] = c
                    elif s is self.up:
                        data = self.up.recv(65536)
                        if not data:
                            raise OSError("upstream xenstored relay closed")
                        self.upbuf += data
                        for msg in _split_messages(self.upbuf):
                            self._from_upstream(*msg)
                    else:
                        c = self.clients.get(s.fileno())
                        if c is None:
                            continue
                        try:
                            data = s.recv(65536)
                        except OSError:
                            data = b""
                        if not data:
                            self._drop_client(c)
                            continue
                        c.inbuf += data
                        for msg in _split_messages(c.inbuf):
                            self._from_client(c, *msg)
        except Exception as e:  # reported by the owner; the lab fails then
            if not self.stopping:
                self.error = e
                self.log("xs-mux: stopped: %s" % e)
                for c in list(self.clients.values()):  # wake every waiting client
                    c.sock.close()
                self.clients.clear()


class Client:
    """A synchronous xenstore client on a Unix socket (the mux's)."""

    def __init__(self, path, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.timeout = timeout
        self.buf = bytearray()
        self.rid = 0
        self.events = []
        self.replies = {}

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _pump(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("xenstore: no answer in time")
        ready, _, _ = select.select([self.sock], [], [], left)
        if not ready:
            raise TimeoutError("xenstore: no answer in time")
        data = self.sock.recv(65536)
        if not data:
            raise OSError("xenstore connection closed")
        self.buf += data
        for ty, rid, _tx, payload in _split_messages(self.buf):
            if ty == WATCH_EVENT:
                parts = payload.split(b"\0")
                self.events.append((parts[0].decode(), parts[1].decode() if len(parts) > 1 else ""))
            else:
                self.replies[rid] = (ty, payload)

    def send(self, ty, payload, tx=0):
        if len(payload) > PAYLOAD_MAX:
            # xenstored drops a connection that sends more: that would be
            # the relay's one connection, for every host client at once
            raise ValueError("xenstore message of %d bytes (limit %d)" % (len(payload), PAYLOAD_MAX))
        self.rid += 1
        self.sock.sendall(_pack(ty, self.rid, tx, payload))
        return self.rid

    def wait(self, rid, what="", timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while rid not in self.replies:
            self._pump(deadline)
        ty, payload = self.replies.pop(rid)
        if ty == ERROR:
            raise XsError(payload.rstrip(b"\0").decode(errors="replace"), what)
        return payload

    def call(self, ty, payload, what=""):
        return self.wait(self.send(ty, payload), what)

    def read(self, path):
        return self.call(READ, path.encode() + b"\0", path)

    def read_or_none(self, path):
        try:
            return self.read(path)
        except XsError as e:
            if e.errno == "ENOENT":
                return None
            raise

    def write(self, path, value):
        if isinstance(value, str):
            value = value.encode()
        self.call(WRITE, path.encode() + b"\0" + value, path)

    def write_many(self, items):
        """Pipelined writes: all requests first, then all replies. Returns
        {path: XsError} for the writes xenstored refused."""
        rids = [self.send(WRITE, p.encode() + b"\0" + (v.encode() if isinstance(v, str) else v))
                for p, v in items]
        errors = {}
        for rid, (p, _) in zip(rids, items):
            try:
                self.wait(rid, p)
            except XsError as e:
                errors[p] = e
        return errors

    def rm_many(self, paths):
        """Pipelined removals."""
        rids = [self.send(RM, p.encode() + b"\0") for p in paths]
        for rid, p in zip(rids, paths):
            self.wait(rid, p)

    def rm(self, path):
        self.call(RM, path.encode() + b"\0", path)

    def directory(self, path):
        try:
            payload = self.call(DIRECTORY, path.encode() + b"\0", path)
        except XsError as e:
            if e.errno == "ENOENT":
                return []
            raise
        return [p.decode() for p in payload.split(b"\0") if p]

    def watch(self, path, token):
        self.call(WATCH, path.encode() + b"\0" + token.encode() + b"\0", path)

    def unwatch(self, path, token):
        self.call(UNWATCH, path.encode() + b"\0" + token.encode() + b"\0", path)

    def next_event(self, deadline):
        while not self.events:
            self._pump(deadline)
        return self.events.pop(0)

    def drain_events(self):
        self.events.clear()
