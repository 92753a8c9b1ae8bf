"""Fetch the lab's ingredients at test time and build its boot images.

Everything comes from Debian's package mirror (``apt-get download`` +
``dpkg -x``) and, for the real dom0 plugin, from PyPI (``pip download
os-xenapi==0.3.4``). Nothing binary is committed. Downloads and the images
built from them are cached outside the checkout, in
``${SINGULARITY_XEN_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/singularity-test/xen-lab}``;
the image set is keyed by the exact .deb file names, so a Debian update
rebuilds it and an unchanged mirror costs nothing.

Images (in ``<cache>/images/<key>/``):
  xen                  the hypervisor, uncompressed (QEMU's multiboot loader)
  vmlinux              the Debian kernel as a raw ELF (Xen and libxenguest
                       would spend seconds un-xz-ing the bzImage under TCG)
  kernel.cpio          uncompressed newc archive holding /lab/vmlinux, for
                       dom0's initramfs (the domU's kernel)
  dom0-base.cpio.gz    busybox, the Xen 4.17 tools and libraries, modules
  domU-base.cpio.gz    busybox, xenstore-* tools, ifupdown, iproute2,
                       run-parts, modules: a small Debian 12 userland
Per-run pieces (scripts, the agent, /etc) are separate archives appended at
boot time: Linux unpacks concatenated cpio archives.
"""

import fcntl
import gzip
import hashlib
import io
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zipfile

XENVER = "4.17"
IMAGE_FORMAT = "5"  # bump when the image layout below changes

XEN_PACKAGES = [
    "xen-hypervisor-%s-amd64" % XENVER, "xen-utils-%s" % XENVER, "xen-utils-common",
    "xenstore-utils", "libxencall1", "libxendevicemodel1", "libxenevtchn1",
    "libxenforeignmemory1", "libxengnttab1", "libxenhypfs1", "libxenmisc%s" % XENVER,
    "libxenstore4", "libxentoolcore1", "libxentoollog1", "libyajl2",
]
USERLAND_PACKAGES = ["busybox-static", "dash", "ifupdown", "iproute2", "debianutils"]

DOM0_MODULES = ["xen-evtchn", "xen-gntdev", "xen-gntalloc", "xen-privcmd", "xenfs",
                "xen-netback", "virtio_pci", "virtio_console"]
DOMU_MODULES = ["xenfs", "xen-privcmd", "xen-netfront"]
XENSTORE_CLIS = ["read", "write", "ls", "list", "rm", "exists", "watch", "chmod"]

WHEEL = "os-xenapi==0.3.4"
PLUGIN_FILES = ["agent.py", "xenstore.py", "utils.py", "dom0_pluginlib.py"]


class NoLab(Exception):
    """The lab cannot run here (a download was refused, no QEMU): a skip."""


def cache_dir():
    explicit = os.environ.get("SINGULARITY_XEN_LAB_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "singularity-test", "xen-lab")


def log(msg):
    print("xen-lab: %s" % msg, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def output(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, **kw).stdout


class Lock:
    """An exclusive flock on <cache>/lock while the cache is being changed."""

    def __init__(self, cache):
        os.makedirs(cache, exist_ok=True)
        self.fd = os.open(os.path.join(cache, "lock"), os.O_CREAT | os.O_RDWR, 0o644)

    def __enter__(self):
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# ---------------------------------------------------------------- host tools
def ensure_host_tools():
    """QEMU is installed with apt when missing (scripts/test lists it too)."""
    if shutil.which("qemu-system-x86_64"):
        return
    if os.geteuid() != 0:
        raise NoLab("qemu-system-x86_64 is not installed and we are not root")
    log("installing qemu-system-x86")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "qemu-system-x86"], env=env)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env)
        r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                            "qemu-system-x86"], env=env)
    if r.returncode != 0 or not shutil.which("qemu-system-x86_64"):
        raise NoLab("cannot install qemu-system-x86 with apt-get")


# ---------------------------------------------------------------- Debian
def kernel_package():
    def resolve():
        r = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        m = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", r.stdout)
        return m.group(1) if m else None

    pinned = os.environ.get("XEN_LAB_KERNEL_PACKAGE")
    if pinned:
        return pinned
    pkg = resolve()
    if pkg is None and os.geteuid() == 0:
        log("apt-get update (no kernel package known)")
        subprocess.run(["apt-get", "update", "-qq"])
        pkg = resolve()
    if pkg is None:
        raise NoLab("apt cannot resolve linux-image-amd64 (no package lists?)")
    return pkg


def download_debs(debs_dir, packages):
    """apt-get download what is not cached yet; returns {package: .deb path}."""
    os.makedirs(debs_dir, exist_ok=True)
    # (from an empty directory: apt leaves out what the current one already has)
    with tempfile.TemporaryDirectory() as empty:
        r = subprocess.run(["apt-get", "download", "--print-uris"] + packages, cwd=empty,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise NoLab("apt-get download --print-uris failed: %s" % r.stderr.strip()[-500:])
    files = {}
    for line in r.stdout.splitlines():
        m = re.match(r"'[^']+' (\S+\.deb) ", line)
        if m:
            name = m.group(1)
            files[name.split("_", 1)[0]] = os.path.join(debs_dir, name)
    missing_pkgs = [p for p in packages if p not in files]
    if missing_pkgs:
        raise NoLab("apt knows no candidate for %s" % " ".join(missing_pkgs))
    need = [p for p, f in files.items() if not os.path.exists(f)]
    if need:
        log("apt-get download %s" % " ".join(need))
        r = subprocess.run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root"] + need,
                           cwd=debs_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 or any(not os.path.exists(files[p]) for p in need):
            raise NoLab("apt-get download refused:\n%s" % (r.stderr.strip() or r.stdout.strip()))
    # forget .debs superseded by newer versions
    keep = set(files.values())
    for name in os.listdir(debs_dir):
        path = os.path.join(debs_dir, name)
        if name.endswith(".deb") and path not in keep and name.split("_", 1)[0] in files:
            os.unlink(path)
    return files


# ---------------------------------------------------------------- cpio (newc)
class Cpio:
    """Writes a newc archive (what the Linux initramfs unpacker reads)."""

    def __init__(self, out):
        self.out = out
        self.ino = 1
        self.seen = set()

    def _entry(self, name, mode, data, uid=0, gid=0, mtime=0):
        name_b = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, uid, gid, nlink, mtime, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        self.out.write(hdr.encode() + name_b)
        self.out.write(b"\0" * ((4 - (110 + len(name_b)) % 4) % 4))
        self.out.write(data)
        self.out.write(b"\0" * ((4 - len(data) % 4) % 4))

    def add_dir(self, name, mode=0o755, uid=0, gid=0):
        name = name.strip("/")
        if name and name not in self.seen:
            self.seen.add(name)
            self._entry(name, stat.S_IFDIR | mode, b"", uid, gid)

    def add_parents(self, name):
        parts = name.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.add_dir("/".join(parts[:i]))

    def add_file(self, name, data, mode=0o644, uid=0, gid=0):
        self.add_parents(name)
        self._entry(name.strip("/"), stat.S_IFREG | mode, data, uid, gid)

    def add_symlink(self, name, target):
        self.add_parents(name)
        self._entry(name.strip("/"), stat.S_IFLNK | 0o777, target.encode())

    def add_tree(self, root, owners=None):
        """Everything under ``root``; ``owners`` maps a path to (mode, uid, gid)."""
        owners = owners or {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for name in sorted(dirnames) + sorted(filenames):
                path = os.path.join(dirpath, name)
                rel = os.path.normpath(os.path.join(rel_dir, name))
                st = os.lstat(path)
                mode, uid, gid = owners.get("/" + rel, (stat.S_IMODE(st.st_mode), 0, 0))
                if stat.S_ISLNK(st.st_mode):
                    self.add_symlink(rel, os.readlink(path))
                elif stat.S_ISDIR(st.st_mode):
                    self.seen.add(rel)
                    self._entry(rel, stat.S_IFDIR | mode, b"", uid, gid)
                elif stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as f:
                        self._entry(rel, stat.S_IFREG | mode, f.read(), uid, gid)

    def close(self):
        self._entry("TRAILER!!!", 0, b"")


def cpio_bytes(fill):
    buf = io.BytesIO()
    c = Cpio(buf)
    fill(c)
    c.close()
    return buf.getvalue()


# ---------------------------------------------------------------- kernel
def extract_vmlinux(bzimage):
    """The raw ELF inside a bzImage (boot protocol >= 2.08 payload fields)."""
    with open(bzimage, "rb") as f:
        img = f.read()
    setup_sects = img[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", img, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = img[start:start + payload_length]
    if payload[:6] == b"\xfd7zXZ\x00":
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload[:2] == b"\x1f\x8b":
        elf = gzip.GzipFile(fileobj=io.BytesIO(payload)).read()
    else:
        raise RuntimeError("unsupported kernel compression %r" % payload[:6])
    if elf[:4] != b"\x7fELF":
        raise RuntimeError("the bzImage payload is not an ELF")
    return elf


# ---------------------------------------------------------------- staging
class Tree:
    """A staging directory for one initramfs (merged /usr, like Debian 12)."""

    def __init__(self, path, root):
        self.path = path
        self.root = root  # the unpacked .debs
        for d in ("bin", "sbin", "dev", "proc", "sys", "run", "tmp", "etc", "root", "var/lib",
                  "var/log", "var/cache", "usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu",
                  "lib64"):
            os.makedirs(os.path.join(path, d), exist_ok=True)
        os.symlink("usr/lib", os.path.join(path, "lib"))

    def put(self, src, dst, mode=None):
        target = os.path.join(self.path, dst.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(src, target)
        shutil.copymode(src, target)
        if mode is not None:
            os.chmod(target, mode)

    def link(self, dst, target):
        path = os.path.join(self.path, dst.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            os.symlink(target, path)

    def put_elf(self, rel):
        """A binary from the unpacked .debs plus every library it needs: Xen's
        from the .debs, the rest from this Debian 12 host (same release)."""
        src = os.path.join(self.root, rel.lstrip("/"))
        self.put(src, rel)
        libdir = os.path.join(self.root, "usr/lib/x86_64-linux-gnu")
        env = dict(os.environ, LD_LIBRARY_PATH=libdir)
        out = output(["ldd", src], env=env)
        for line in out.splitlines():
            if "not found" in line:
                raise RuntimeError("%s needs a library this host lacks: %s" % (rel, line.strip()))
            m = re.search(r"(/\S+) \(0x", line)
            if not m:
                continue
            lib = m.group(1)
            if lib.startswith(self.root):
                dst = lib[len(self.root):]
            elif lib.startswith("/lib/"):
                dst = "/usr" + lib
            else:
                dst = lib
            if not os.path.exists(os.path.join(self.path, dst.lstrip("/"))):
                self.put(os.path.realpath(lib), dst)

    def busybox(self):
        self.put(os.path.join(self.root, "bin/busybox"), "/bin/busybox")
        applets = output([os.path.join(self.root, "bin/busybox"), "--list-full"]).split()
        for applet in applets:
            depth = applet.count("/")
            self.link("/" + applet, "../" * depth + "bin/busybox" if depth else "busybox")

    def modules(self, kver, names):
        """The named modules and their dependencies (from each .ko's modinfo)."""
        mroot = os.path.join(self.root, "lib/modules", kver)
        index = {}
        for dirpath, _, filenames in os.walk(os.path.join(mroot, "kernel")):
            for f in filenames:
                if f.endswith(".ko"):
                    index[f[:-3].replace("-", "_")] = os.path.join(dirpath, f)
        builtin = set()
        with open(os.path.join(mroot, "modules.builtin")) as f:
            for line in f:
                builtin.add(os.path.basename(line.strip())[:-3].replace("-", "_"))
        todo = [n.replace("-", "_") for n in names]
        done = set()
        while todo:
            name = todo.pop()
            if name in done or name in builtin:
                continue
            if name not in index:
                raise RuntimeError("kernel module %s not found in %s" % (name, kver))
            done.add(name)
            path = index[name]
            with open(path, "rb") as f:
                data = f.read()
            m = re.search(rb"\0depends=([^\0]*)\0", data)
            if m and m.group(1):
                todo.extend(d.decode().replace("-", "_") for d in m.group(1).split(b","))
            self.put(path, "/usr/lib/modules/%s/%s" % (kver, os.path.relpath(path, mroot)))
        for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            self.put(os.path.join(mroot, f), "/usr/lib/modules/%s/%s" % (kver, f))
        run([os.path.join(self.root, "bin/busybox"), "depmod", "-b", self.path, kver])


def build_images(cache, files, kpkg, out):
    kver = kpkg[len("linux-image-"):]
    work = tempfile.mkdtemp(prefix="build-", dir=cache)
    try:
        root = os.path.join(work, "root")
        os.makedirs(root)
        for deb in files.values():
            run(["dpkg", "-x", deb, root])
        os.makedirs(out)
        with gzip.open(os.path.join(root, "boot/xen-%s-amd64.gz" % XENVER)) as f, \
                open(os.path.join(out, "xen"), "wb") as o:
            shutil.copyfileobj(f, o)
        vmlinux = extract_vmlinux(os.path.join(root, "boot/vmlinuz-%s" % kver))
        with open(os.path.join(out, "vmlinux"), "wb") as o:
            o.write(vmlinux)
        with open(os.path.join(out, "kernel.cpio"), "wb") as o:
            c = Cpio(o)
            c.add_file("lab/vmlinux", vmlinux, 0o644)
            c.close()
        del vmlinux
        xbin = "/usr/lib/xen-%s/bin" % XENVER

        # dom0
        d0 = Tree(os.path.join(work, "dom0"), root)
        for b in ("xl", "xenstored", "oxenstored", "xenconsoled", "xen-init-dom0"):
            d0.put_elf("%s/%s" % (xbin, b))
        for b in ("xl", "xenstored", "oxenstored", "xenconsoled"):
            d0.link("/usr/sbin/" + b, "../lib/xen-%s/bin/%s" % (XENVER, b))
        d0.put_elf("/usr/bin/xenstore")
        for c in XENSTORE_CLIS:
            d0.link("/usr/bin/xenstore-" + c, "xenstore")
        # glibc dlopen()s libgcc_s for pthread_cancel: ldd does not show it
        d0.put("/lib/x86_64-linux-gnu/libgcc_s.so.1", "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1")
        for f in ("xl.conf", "oxenstored.conf"):
            d0.put(os.path.join(root, "etc/xen", f), "/etc/xen/" + f)
        os.makedirs(os.path.join(d0.path, "var/lib/xenstored"), exist_ok=True)
        d0.busybox()
        d0.modules(kver, DOM0_MODULES)
        with open(os.path.join(d0.path, "etc/passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
        with open(os.path.join(d0.path, "etc/group"), "w") as f:
            f.write("root:x:0:\ntty:x:5:\n")

        # domU: a small Debian 12 userland
        du = Tree(os.path.join(work, "domU"), root)
        du.put_elf("/usr/bin/xenstore")
        for c in XENSTORE_CLIS:
            du.link("/usr/bin/xenstore-" + c, "xenstore")
        du.put("/lib/x86_64-linux-gnu/libgcc_s.so.1", "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1")
        du.put_elf("/sbin/ifup")
        du.link("/sbin/ifdown", "ifup")
        du.link("/sbin/ifquery", "ifup")
        du.put_elf("/bin/ip")
        du.link("/sbin/ip", "../bin/ip")
        du.put_elf("/bin/run-parts")
        # Debian's /bin/sh: busybox's sh runs its own applets before anything
        # on PATH, so ifupdown's "ip addr add ..." would get busybox's ip
        du.put_elf("/bin/dash")
        du.link("/bin/sh", "dash")
        for rel in ("etc/network", "lib/ifupdown", "etc/iproute2"):
            shutil.copytree(os.path.join(root, rel), os.path.join(du.path, rel.replace("lib/", "usr/lib/")),
                            symlinks=True, dirs_exist_ok=True)
        du.busybox()
        du.modules(kver, DOMU_MODULES)
        du.link("/init", "bin/busybox")  # busybox init reads /etc/inittab

        for name, tree in (("dom0-base", d0), ("domU-base", du)):
            with gzip.open(os.path.join(out, name + ".cpio.gz"), "wb", compresslevel=6) as o:
                c = Cpio(o)
                c.add_tree(tree.path, {"/tmp": (0o1777, 0, 0), "/root": (0o700, 0, 0)})
                c.close()
        with open(os.path.join(out, "versions"), "w") as f:
            f.write("kernel %s\n" % kver)
            for pkg in sorted(files):
                f.write("%s\n" % os.path.basename(files[pkg]))
        with open(os.path.join(out, "stamp"), "w") as f:
            f.write("ok\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def images(cache):
    """Downloads what is missing and returns the directory of a built image set."""
    ensure_host_tools()
    kpkg = kernel_package()
    files = download_debs(os.path.join(cache, "debs"), XEN_PACKAGES + USERLAND_PACKAGES + [kpkg])
    key = hashlib.sha256(("%s\n%s\n" % (IMAGE_FORMAT, "\n".join(sorted(
        os.path.basename(f) for f in files.values())))).encode()).hexdigest()[:16]
    base = os.path.join(cache, "images")
    out = os.path.join(base, key)
    if not os.path.exists(os.path.join(out, "stamp")):
        shutil.rmtree(out, ignore_errors=True)
        log("building images %s (%s)" % (key, kpkg))
        build_images(cache, files, kpkg, out)
    for old in os.listdir(base):
        if old != key:
            shutil.rmtree(os.path.join(base, old), ignore_errors=True)
    return out


# ---------------------------------------------------------------- PyPI
def plugins(cache):
    """The real os-xenapi dom0 plugins, unpacked from the PyPI wheel."""
    pypi = os.path.join(cache, "pypi")
    dest = os.path.join(pypi, "plugins-0.3.4")
    if all(os.path.exists(os.path.join(dest, f)) for f in PLUGIN_FILES):
        return dest
    os.makedirs(pypi, exist_ok=True)
    wheels = [f for f in os.listdir(pypi) if f.startswith("os_xenapi-0.3.4-") and f.endswith(".whl")]
    if not wheels:
        log("pip download %s" % WHEEL)
        cmd = ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
               "--disable-pip-version-check", "-q", "-d", pypi, WHEEL]
        last = ""
        for py in (sys.executable, "/usr/bin/python3"):
            if not os.path.exists(py):
                continue
            r = subprocess.run([py] + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            last = r.stdout
            if r.returncode == 0:
                break
        wheels = [f for f in os.listdir(pypi) if f.startswith("os_xenapi-0.3.4-") and f.endswith(".whl")]
        if not wheels:
            raise NoLab("pip download %s failed: %s" % (WHEEL, last.strip()[-800:]))
    tmp = tempfile.mkdtemp(prefix="plugins-", dir=pypi)
    with zipfile.ZipFile(os.path.join(pypi, wheels[0])) as z:
        for f in PLUGIN_FILES:
            with z.open("os_xenapi/dom0/etc/xapi.d/plugins/" + f) as src, \
                    open(os.path.join(tmp, f), "wb") as dst:
                shutil.copyfileobj(src, dst)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    return dest


def prepare(cache):
    with Lock(cache):
        img = images(cache)
        plug = plugins(cache)
    return img, plug


if __name__ == "__main__":
    try:
        print(prepare(cache_dir()))
    except NoLab as e:
        print("no lab: %s" % e, file=sys.stderr)
        sys.exit(3)
