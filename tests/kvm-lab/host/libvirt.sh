# libvirt for the KVM lab (sourced by tests/kvm-lab/lab): the daemons when
# none runs (a machine without systemd), the domain, and its clean-up.

URI=qemu:///system
STARTED_LIBVIRTD=
STARTED_VIRTLOGD=
DOMAIN=

# Every virsh call has a time limit: by default libvirt waits for an agent's
# reply forever.
vsh() {
  timeout "${VSH_TIMEOUT:-90}" virsh -c "$URI" "$@"
}

# detect_accel KERNEL: kvm when a KVM guest really runs here, else tcg.
# An open /dev/kvm is not enough: under some outer hypervisors a nested KVM
# guest hangs in the kernel's decompressor. The probe boots KERNEL with no
# initramfs; its first line ("Linux version") comes within a second or two
# where KVM works, and it panics and ends at once (panic=-1, -no-reboot).
detect_accel() {
  local out
  [ -e /dev/kvm ] || { echo tcg; return; }
  out=$(mktemp)
  timeout 15 qemu-system-x86_64 -accel kvm -m 128 -display none -nodefaults -no-reboot \
    -serial "file:$out" -kernel "$1" -append "console=ttyS0 earlyprintk=ttyS0 panic=-1" \
    </dev/null >/dev/null 2>&1 || true
  if grep -aq 'Linux version' "$out"; then echo kvm; else echo tcg; fi
  rm -f "$out"
}

# Starts virtlogd and libvirtd unless a libvirtd answers already; only what
# this run started is stopped by stop_libvirt. libvirtd logs its agent
# traffic to AGENT_LOG (the "Send command" and "Line [" lines).
start_libvirt() {
  local agent_log=$1 i
  if VSH_TIMEOUT=10 vsh version >/dev/null 2>&1; then
    log "using the libvirtd that runs already"
    return
  fi
  # Debian's libvirt looks this user up at start (libvirt-daemon-system
  # would create it); the lab's domain runs QEMU as root all the same.
  if ! id libvirt-qemu >/dev/null 2>&1; then
    log "useradd -r libvirt-qemu"
    useradd -r -s /usr/sbin/nologin -d /var/lib/libvirt -c "Libvirt Qemu" libvirt-qemu
  fi
  # ... and puts it in group kvm, as libvirt-daemon-system's postinst does.
  # Without it libvirtd finds /dev/kvm unusable for QEMU's user, takes every
  # cached capability probe as outdated and probes QEMU again on every call
  # ("KVM was enabled when probing ..., but it is not available now"):
  # about 4 s per virsh call, 70 s per boot.
  if [ -e /dev/kvm ] && getent group kvm >/dev/null &&
    ! id -nG libvirt-qemu | grep -qw kvm; then
    log "usermod -aG kvm libvirt-qemu"
    usermod -aG kvm libvirt-qemu
  fi
  # the directories libvirt-daemon-system would make
  mkdir -p /run/libvirt /var/log/libvirt/qemu /var/lib/libvirt/qemu
  if [ ! -S /run/libvirt/virtlogd-sock ] || ! pid_alive /run/virtlogd.pid; then
    virtlogd -d
    STARTED_VIRTLOGD=$(wait_pidfile /run/virtlogd.pid)
  fi
  LIBVIRT_LOG_FILTERS="1:qemu.qemu_agent" LIBVIRT_LOG_OUTPUTS="1:file:$agent_log" libvirtd -d
  STARTED_LIBVIRTD=$(wait_pidfile /run/libvirtd.pid)
  for i in $(seq 100); do
    VSH_TIMEOUT=10 vsh version >/dev/null 2>&1 && break
    [ "$i" = 100 ] && die "libvirtd does not answer"
    sleep 0.2
  done
  log "started libvirtd (pid $STARTED_LIBVIRTD) and virtlogd (pid ${STARTED_VIRTLOGD:-already running})"
}

pid_alive() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_pidfile() {
  local i
  for i in $(seq 100); do
    if pid_alive "$1"; then
      cat "$1"
      return
    fi
    sleep 0.1
  done
  die "no process wrote $1"
}

# stop_pid PID: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

stop_libvirt() {
  if [ -n "$STARTED_LIBVIRTD" ]; then
    stop_pid "$STARTED_LIBVIRTD"
    STARTED_LIBVIRTD=
  fi
  if [ -n "$STARTED_VIRTLOGD" ]; then
    stop_pid "$STARTED_VIRTLOGD"
    STARTED_VIRTLOGD=
  fi
}

# define_domain NAME XML: defines it (persistent, so that a shut-off guest
# is still there to be looked at); remove_domain undoes it.
define_domain() {
  DOMAIN=$1
  vsh define "$2" >/dev/null
}

remove_domain() {
  local pid=
  [ -n "$DOMAIN" ] || return 0
  [ -f "/run/libvirt/qemu/$DOMAIN.pid" ] && pid=$(cat "/run/libvirt/qemu/$DOMAIN.pid")
  if vsh domstate "$DOMAIN" 2>/dev/null | grep -qv 'shut off'; then
    vsh destroy "$DOMAIN" >/dev/null 2>&1 || true
  fi
  vsh undefine "$DOMAIN" >/dev/null 2>&1 || true
  # A QEMU that outlived destroy (seen once, after a boot whose agent stayed
  # frozen) would run on after libvirtd stops: this run's own, so stopped.
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    grep -q "guest=$DOMAIN," "/proc/$pid/cmdline" 2>/dev/null; then
    log "QEMU $pid of $DOMAIN outlived virsh destroy: stopping it"
    stop_pid "$pid"
  fi
  DOMAIN=
}

domain_state() {
  VSH_TIMEOUT=10 vsh domstate "$DOMAIN" 2>/dev/null | head -n1
}
