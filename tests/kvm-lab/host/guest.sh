# One boot of the KVM lab's guest (sourced by tests/kvm-lab/lab): its files,
# the domain, the control channel (guest/control) and the direct line to the
# agent on port 1.
#
# Per boot, BOOT (in the run directory) keeps data.img, console.log,
# control.log, agent1.log, domain.xml and the outputs the checks saved;
# SOCK (short, under /tmp: socket paths are limited to 108 bytes) holds
# libvirt's agent socket and the FIFOs of the two pipe channels.

BOOT=
SOCK=
AGENT=
CONTROL_FD=
SIDE_FD=
READERS=()

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# wait_until SECONDS COMMAND...: polls every 0.2 s; fails early when the
# domain is no longer running.
wait_until() {
  local limit=$1 end
  shift
  end=$((SECONDS + limit))
  while [ $SECONDS -lt $end ]; do
    "$@" && return 0
    [ "$(domain_state)" = running ] || return 1
    sleep 0.2
  done
  return 1
}

# start_guest PORT0_AGENT PORT1_AGENT: files, channels, domain; returns once
# QEMU runs.
start_guest() {
  local port0=$1 port1=$2 type=qemu xml
  [ "$accel" = kvm ] && type=kvm
  truncate -s 64M "$BOOT/data.img"
  # No lazy initialisation: nothing writes behind the agents' backs.
  mkfs.ext4 -q -F -L labdata -E lazy_itable_init=0,lazy_journal_init=0 "$BOOT/data.img"
  cat "$IMAGE_DIR/base.cpio.gz" "$RUN_IMAGE" >"$BOOT/initrd.gz"
  mkfifo "$SOCK/agent1.in" "$SOCK/agent1.out" "$SOCK/control.in" "$SOCK/control.out"
  # Readers first: QEMU may open the .out FIFOs write-only.
  cat "$SOCK/control.out" >>"$BOOT/control.log" &
  READERS+=($!)
  cat "$SOCK/agent1.out" >>"$BOOT/agent1.log" &
  READERS+=($!)
  # Read-write opens of a FIFO never block; the guest reads what QEMU passes on.
  exec {CONTROL_FD}<>"$SOCK/control.in"
  exec {SIDE_FD}<>"$SOCK/agent1.in"
  xml=$BOOT/domain.xml
  sed -e "s|@TYPE@|$type|" -e "s|@NAME@|singularity-kvm-lab-$$-${BOOT##*/}|" \
    -e "s|@KERNEL@|$IMAGE_DIR/vmlinuz|" -e "s|@INITRD@|$BOOT/initrd.gz|" \
    -e "s|@CMDLINE@|console=ttyS0 quiet panic=-1 lab.port0=$port0 lab.port1=$port1|" \
    -e "s|@DIR@|$BOOT|g" -e "s|@SOCK@|$SOCK|g" "$here/domain.xml.in" >"$xml"
  define_domain "singularity-kvm-lab-$$-${BOOT##*/}" "$xml"
  vsh start "$DOMAIN" >/dev/null
}

end_boot() {
  local pid
  remove_domain
  [ -n "$CONTROL_FD" ] && exec {CONTROL_FD}>&-
  [ -n "$SIDE_FD" ] && exec {SIDE_FD}>&-
  CONTROL_FD=
  SIDE_FD=
  for pid in "${READERS[@]}"; do kill "$pid" 2>/dev/null || true; done
  READERS=()
  [ -n "$SOCK" ] && rm -rf "$SOCK"
  SOCK=
}

# ask QUESTION ARGS...: the guest's answer lines (guest/control); fails
# when no answer comes within 30 s.
ask() {
  local id end
  # Unique without a counter: ask runs in command substitutions (subshells),
  # where a counter's increment would be lost and an old answer matched.
  id=${EPOCHREALTIME/./}$((RANDOM % 10))
  printf '%s %s\n' "$id" "$*" >&"$CONTROL_FD"
  end=$((SECONDS + 30))
  while [ $SECONDS -lt $end ]; do
    if grep -q "^$id\. done" "$BOOT/control.log"; then
      sed -n "s/^$id| //p" "$BOOT/control.log"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

guest_ready() { grep -q '^0\. ready' "$BOOT/control.log" 2>/dev/null; }

agent_connected() {
  VSH_TIMEOUT=10 vsh qemu-agent-command --timeout 5 "$DOMAIN" '{"execute":"guest-ping"}' \
    >/dev/null 2>&1
}

# The agent on port 1 answers guest-sync straight from the FIFOs (libvirt
# never talks to it). Requests written while the guest's port is still
# closed wait in QEMU, so a late agent answers the first one.
side_agent_syncs() {
  local id=$((RANDOM * 1000 + RANDOM)) end
  printf '{"execute":"guest-sync","arguments":{"id":%d}}\n' "$id" >&"$SIDE_FD"
  end=$((SECONDS + 30))
  while [ $SECONDS -lt $end ]; do
    grep -Eq "\"return\": *$id[^0-9]" "$BOOT/agent1.log" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

console_tail() {
  tail -n "${1:-40}" "$BOOT/console.log" 2>/dev/null | sed 's/^/kvm-lab:   console| /'
}
