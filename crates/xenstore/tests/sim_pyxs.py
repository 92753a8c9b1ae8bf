"""Drives the XenStore simulator with pyxs (Debian python3-pyxs 0.4.2).

Run by sim_real_clients.rs as: python3 sim_pyxs.py DOM0_SOCKET GUEST5_SOCKET
Exits non-zero (AssertionError) on the first mismatch; prints "pyxs ok" last.
"""

import errno
import sys

from pyxs import Client, PyXSError

DOM0, GUEST = sys.argv[1], sys.argv[2]


def expect_errno(code, fn, *args):
    try:
        fn(*args)
    except PyXSError as e:
        assert e.args[0] == code, "%r: got %r, want %d" % (fn, e.args, code)
    else:
        raise AssertionError("%r%r: no error, want %d" % (fn, args, code))


def dom0_basics(c):
    c.write(b"/py/a", b"1")
    assert c.read(b"/py/a") == b"1"
    c.mkdir(b"/py/d")
    assert c.list(b"/py") == [b"a", b"d"], c.list(b"/py")
    assert c.exists(b"/py/d") and not c.exists(b"/py/zz")
    assert c.read(b"/py/d") == b""
    assert c.get_perms(b"/py/a") == [b"n0"]
    c.set_perms(b"/py/a", [b"n0", b"r5"])
    assert c.get_perms(b"/py/a") == [b"n0", b"r5"]
    assert c.get_domain_path(5) == b"/local/domain/5"
    assert c.is_domain_introduced(5) and not c.is_domain_introduced(77)
    c.delete(b"/py/d")
    expect_errno(errno.ENOENT, c.read, b"/py/d")
    expect_errno(errno.ENOENT, c.delete, b"/nothere/x")
    assert [p for p, _, _ in c.walk(b"/py")] == [b"/py", b"/py/a"]
    # Relative paths of dom0 resolve to /local/domain/0.
    assert c.read(b"name") == b"Domain-0"


def dom0_watch_and_transactions(c):
    m = c.monitor()
    m.watch(b"/py", b"tok")
    events = m.wait()
    assert next(events) == (b"/py", b"tok")
    with Client(unix_socket_path=DOM0) as other:
        other.write(b"/py/w", b"x")
        assert next(events) == (b"/py/w", b"tok")

        c.transaction()
        c.write(b"/py/t", b"1")
        assert c.read(b"/py/t") == b"1"
        expect_errno(errno.ENOENT, other.read, b"/py/t")
        assert c.commit() is True
        assert next(events) == (b"/py/t", b"tok")
        assert other.read(b"/py/t") == b"1"

        # A conflicting outside write makes the commit fail (EAGAIN).
        c.transaction()
        assert c.read(b"/py/t") == b"1"
        other.write(b"/py/t", b"2")
        assert next(events) == (b"/py/t", b"tok")
        c.write(b"/py/t", b"3")
        assert c.commit() is False
        assert other.read(b"/py/t") == b"2"

        c.transaction()
        c.write(b"/py/t", b"4")
        c.rollback()
        assert other.read(b"/py/t") == b"2"
    m.unwatch(b"/py", b"tok")


def guest(g):
    assert g.read(b"domid") == b"5"
    assert g.read(b"/local/domain/5/name") == b"guest-5"
    g.write(b"data/py", b"hello")
    assert g.get_perms(b"data/py") == [b"n5", b"b5"]
    expect_errno(errno.EACCES, g.write, b"vm-data/x", b"1")
    expect_errno(errno.EACCES, g.read, b"/local/domain/0/name")
    expect_errno(errno.EACCES, g.delete, b"vm-data")
    expect_errno(errno.EACCES, g.set_perms, b"data", [b"n5"])
    assert g.read(b"vm-data/hostname") == b"vm5"
    g.transaction()
    g.write(b"data/tx", b"1")
    assert g.commit()
    assert g.read(b"data/tx") == b"1"
    m = g.monitor()
    m.watch(b"data", b"gt")
    events = m.wait()
    assert next(events) == (b"data", b"gt")
    with Client(unix_socket_path=DOM0) as c:
        c.write(b"/local/domain/5/data/from0", b"x")
        assert next(events) == (b"data/from0", b"gt")
        c.write(b"/local/domain/5/vm-data/x", b"y")
        g.write(b"data/after", b"1")
        # Only data/ is watched: the vm-data write fired nothing for it.
        assert next(events) == (b"data/after", b"gt")
    m.unwatch(b"data", b"gt")


with Client(unix_socket_path=DOM0) as c:
    dom0_basics(c)
    dom0_watch_and_transactions(c)
    c.write(b"/local/domain/5/vm-data/hostname", b"vm5")
with Client(unix_socket_path=GUEST) as g:
    guest(g)
print("pyxs ok")
