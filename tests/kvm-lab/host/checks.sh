# The KVM lab's checks (sourced by tests/kvm-lab/lab): one boot per agent,
# the same virsh calls against each, then the outputs side by side.
#
# What a call printed is kept in BOOT/raw/NAME ("exit N" last); the calls
# whose output is compared across agents are also written, normalised, to
# BOOT/cmp/NAME (normalise). README.md lists what differs and why.

PASSED=0
FAILED=0
FAILURES=()
TIMES=()
TERM_WHILE_FROZEN=()
NYI=
OUT=

# The commands issue 14 asks of singularity: guest-info's list is compared
# on these; qemu-ga's others are printed, not compared.
QGA_COMMANDS=(guest-sync guest-sync-delimited guest-ping guest-info guest-set-user-password
  guest-fsfreeze-status guest-fsfreeze-freeze guest-fsfreeze-freeze-list guest-fsfreeze-thaw
  guest-set-time guest-get-time guest-shutdown guest-get-osinfo guest-get-host-name
  guest-get-timezone guest-get-users guest-network-get-interfaces guest-get-fsinfo
  guest-get-disks guest-get-vcpus guest-set-vcpus guest-ssh-get-authorized-keys
  guest-ssh-add-authorized-keys guest-ssh-remove-authorized-keys guest-fstrim)

KEY1="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnWkH8D0kvmlabkeyoneoneoneoneoneoneoneone lab-key-1"
KEY2="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC7TtQ4mkvmlabkeytwotwotwotwotwotwotwotwo lab-key-2"
KEY3="ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDkvmlabkeythreethreethreethree lab-key-3"

# verdict NAME OK|... DETAIL: one PASS/FAIL line for the agent on port 0.
verdict() {
  local name=$1 status=FAIL detail=${3:-}
  # shorter lines: the domain and the boot directory are in the log's head
  [ -n "$DOMAIN" ] && name=${name//"$DOMAIN"/DOMAIN}
  [ -n "$BOOT" ] && name=${name//"$BOOT/"/}
  [ "$2" = ok ] && status=PASS
  if [ "$status" = PASS ]; then
    PASSED=$((PASSED + 1))
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("[$AGENT] $name")
  fi
  printf 'kvm-lab: [%s] %s %s%s\n' "$AGENT" "$status" "$name" "${detail:+: $detail}"
}

# expect NAME COMMAND...: PASS when the command succeeds.
expect() {
  local name=$1
  shift
  if "$@"; then verdict "$name" ok; else verdict "$name" fail; fi
}

# run_virsh NAME ARGS...: virsh ARGS; its output in OUT and BOOT/raw/NAME.
run_virsh() {
  local name=$1 rc=0
  shift
  OUT=$(vsh "$@" 2>&1) || rc=$?
  printf '%s\nexit %s\n' "$OUT" "$rc" >"$BOOT/raw/$name"
  return $rc
}

# virsh_matches NAME PATTERN ARGS...: virsh ARGS succeeds and prints PATTERN
# (grep -E); the output is compared across agents.
virsh_matches() {
  local name=$1 pattern=$2 rc=0
  shift 2
  run_virsh "$name" "$@" || rc=$?
  normalise "$name" <"$BOOT/raw/$name" >"$BOOT/cmp/$name"
  if [ $rc = 0 ] && grep -Eq -- "$pattern" <<<"$OUT"; then
    verdict "virsh $*" ok
  else
    verdict "virsh $*" fail "exit $rc, wanted /$pattern/: $(tr '\n' ' ' <<<"$OUT" | cut -c1-300)"
  fi
}

# keep NAME TEXT: a guest-side answer compared across agents as it is.
keep() { printf '%s\n' "$2" >"$BOOT/cmp/$1"; }

# What legitimately differs between agents is taken out (README.md, "What
# differs between the agents").
normalise() {
  case $1 in
    guest-info)
      # the command list on issue 14's commands; the version not at all
      awk '/"name":/ { n = $0; sub(/.*"name": *"/, "", n); sub(/".*/, "", n); name = n }
           /"enabled":/ { en = ($0 ~ /true/) ? "enabled" : "disabled" }
           /"success-response":/ { sr = ($0 ~ /true/) ? "replies" : "no-reply" }
           /^ *}/ { if (name != "") print name, en, sr; name = "" }
           /^exit / { print }' |
        grep -E "^($(
          IFS='|'
          echo "${QGA_COMMANDS[*]}"
        )|exit) " | LC_ALL=C sort
      ;;
    guestinfo)
      # disk serials: qemu-ga 7.2 reads them from udev's database, which the
      # lab's guest (no udev) lacks; the agent reads /sys/block/*/serial
      sed -e "s/$DOMAIN/DOMAIN/g" -e 's/[[:space:]]*$//' -e '/^$/d' |
        grep -Ev '^(fs\.[0-9]+\.)?disk\.[0-9]+\.serial +:' || true
      ;;
    fstrim-paths)
      # members in one order (an agent's order is its own), no byte counts
      sorted_json | sed -e 's/"trimmed": *[0-9]*/"trimmed": N/'
      ;;
    sshkeys-*-get)
      # the keys in any order: qemu-ga 7.2 lists them last line first
      sed -e 's/[[:space:]]*$//' -e '/^$/d' | LC_ALL=C sort
      ;;
    *)
      sed -e "s/$DOMAIN/DOMAIN/g" -e 's/[[:space:]]*$//' | sed -e '/^$/d'
      ;;
  esac
}

# sorted_json: a virsh output (JSON, then "exit N") with the JSON's members
# sorted; anything that is not JSON passes as it is.
sorted_json() {
  /usr/bin/python3 -c '
import json, sys
lines = sys.stdin.read().splitlines()
body, tail = lines[:-1], lines[-1:]
try:
    print(json.dumps(json.loads("\n".join(body)), sort_keys=True, indent=1))
except ValueError:
    print("\n".join(body))
print("\n".join(tail))'
}

run_boot() {
  local run=$1 idx=$2 side=$4 t0 t_ready t_agent t_checks wire_from
  AGENT=$3
  BOOT=$run/$idx-$AGENT
  SOCK=$sock_root/$idx
  mkdir -p "$BOOT/raw" "$BOOT/cmp" "$SOCK"
  log "boot $idx: $AGENT on port 0 (libvirt's), $side on port 1 ($BOOT)"
  [ -n "${RUN_IMAGE:-}" ] || {
    RUN_IMAGE=$run/run.cpio.gz
    run_image "$here/guest" "$agent_bin" "$RUN_IMAGE"
  }
  WIRE_LOG=$run/libvirtd-agent.log
  wire_from=$(wc -l <"$WIRE_LOG" 2>/dev/null || echo 0)
  t0=$(now)
  start_guest "$AGENT" "$side"
  if ! wait_until "$boot_timeout" guest_ready; then
    verdict "guest boots (control channel up within $boot_timeout s)" fail "state $(domain_state)"
    console_tail
    end_boot
    return
  fi
  t_ready=$(since "$t0")
  if ! wait_until 60 agent_connected; then
    verdict "libvirt reaches $AGENT on org.qemu.guest_agent.0" fail "no guest-ping within 60 s"
    console_tail
    end_boot
    return
  fi
  t_agent=$(since "$t0")
  verdict "libvirt reaches $AGENT on org.qemu.guest_agent.0" ok "guest up ${t_ready} s, agent ${t_agent} s after start"
  if [ "$side" != none ]; then
    expect "$side on org.qemu.guest_agent.1 answers guest-sync (side by side)" side_agent_syncs
  fi

  t_checks=$(now)
  check_read_only
  check_time
  check_vcpus
  check_ssh_keys
  check_passwords
  check_freeze
  check_fstrim
  check_refusals
  check_agents_stable
  check_freeze_restart
  check_quiesced_snapshot
  [ -n "$hold" ] && [ "$idx" = 1 ] && hold_guest
  check_shutdown
  libvirt_requests "$run/libvirtd-agent.log" "$wire_from"
  TIMES+=("boot $idx ($AGENT on port 0): guest up ${t_ready} s, agent reached ${t_agent} s, checks $(since "$t_checks") s, total $(since "$t0") s")
  if [ "$FAILED" -gt 0 ]; then console_tail 25; fi
  end_boot
}

# libvirt_requests LOG FROM: what libvirtd sent the agent during this boot
# (its log from line FROM on), compared across agents: the same virsh calls
# must make libvirt send the same requests, whatever the agent answered
# before. set-time's argument is the host's clock: taken out; so are the
# lab's guest-pings (how many depends on how soon an agent came up).
libvirt_requests() {
  [ -f "$1" ] || return 0
  tail -n "+$(($2 + 1))" "$1" | sed -n "s/.*Send command '\(.*\)' for write.*/\1/p" |
    sed 's/"time":[0-9]*/"time":T/' | { grep -v '^{"execute":"guest-ping"}$' || true; } \
    >"$BOOT/cmp/libvirt-requests"
}

hold_guest() {
  log "holding $DOMAIN: virsh -c $URI ... (agent socket $SOCK/agent0.sock); press Enter to go on"
  read -r _ || true
}

# The calls that only read: their outputs are compared across agents.
check_read_only() {
  virsh_matches domhostname '^kvm-lab-guest$' domhostname "$DOMAIN"
  virsh_matches domifaddr '52:54:00:6b:6c:01 +ipv4 +10\.0\.2\.15/24' domifaddr "$DOMAIN" --source agent
  virsh_matches guestinfo 'os\.id +: debian' guestinfo "$DOMAIN"
  grep -Eq 'hostname +: kvm-lab-guest' <<<"$OUT" &&
    grep -Eq 'fs\.[0-9]+\.mountpoint +: /mnt/data' <<<"$OUT" &&
    grep -Eq 'if\.[0-9]+\.addr\.[0-9]+\.addr +: 10\.0\.2\.15' <<<"$OUT" &&
    verdict "guestinfo: hostname, /mnt/data, eth0's address" ok ||
    verdict "guestinfo: hostname, /mnt/data, eth0's address" fail
  virsh_matches domfsinfo '/mnt/data +vda +ext4 +vda' domfsinfo "$DOMAIN"
  virsh_matches guestvcpus 'online +: 0-1' guestvcpus "$DOMAIN"
  virsh_matches guest-info '"guest-ping"' qemu-agent-command "$DOMAIN" --pretty '{"execute":"guest-info"}'
  log "[$AGENT] guest-info: version $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$BOOT/raw/guest-info")"
  if [ "$AGENT" = singularity ]; then
    if grep -Eq '"guest-(exec|file-)' "$BOOT/raw/guest-info"; then
      verdict "guest-info offers no guest-exec and no guest-file-*" fail
    else
      verdict "guest-info offers no guest-exec and no guest-file-*" ok
    fi
  fi
}

# virsh_refused NAME EXACT ARGS...: virsh ARGS fails with libvirt's
# "error:" (the agent answered an error, and libvirt took it as one). The
# output is compared across agents: whole when EXACT is "exact" (the
# protocol's own messages, which clients match on), else up to the agent's
# free-text description (README.md).
virsh_refused() {
  local name=$1 exact=$2 rc=0
  shift 2
  run_virsh "$name" "$@" || rc=$?
  if [ "$exact" = exact ]; then
    normalise "$name" <"$BOOT/raw/$name" >"$BOOT/cmp/$name"
  else
    normalise "$name" <"$BOOT/raw/$name" |
      sed "s/\(unable to execute QEMU agent command '[^']*'\): .*/\1: DESC/" >"$BOOT/cmp/$name"
  fi
  if [ $rc != 0 ] && grep -q '^error:' <<<"$OUT"; then
    verdict "virsh $* refused" ok "$(grep -m1 -v '^error: Unable to\|^error: failed to' <<<"$OUT" | cut -c1-200)"
  else
    verdict "virsh $* refused" fail "exit $rc: $(tr '\n' ' ' <<<"$OUT" | cut -c1-300)"
  fi
}

# Requests an agent must refuse, and how: an unknown command, a stray
# argument, a user that does not exist, the CPU that cannot go offline; and
# a mount point that is not one, which freezes nothing.
check_refusals() {
  virsh_refused refuse-unknown exact qemu-agent-command "$DOMAIN" '{"execute":"guest-no-such-command"}'
  virsh_refused refuse-argument exact qemu-agent-command "$DOMAIN" \
    '{"execute":"guest-get-host-name","arguments":{"x":1}}'
  virsh_refused refuse-password-user desc set-user-password "$DOMAIN" no-such-user NotSet1
  virsh_refused refuse-sshkeys-user desc get-user-sshkeys "$DOMAIN" no-such-user
  virsh_refused refuse-vcpu0 desc guestvcpus "$DOMAIN" --cpulist 0 --disable
  # not a refusal: qemu-ga freezes the mounts it finds among those named
  virsh_matches freeze-no-mountpoint '^Froze 0 filesystem' domfsfreeze "$DOMAIN" --mountpoint /no/such/mount
  # nothing stayed frozen or offline
  virsh_matches refuse-after-status '"thawed"' qemu-agent-command "$DOMAIN" '{"execute":"guest-fsfreeze-status"}'
  virsh_matches refuse-after-vcpus 'online +: 0-1' guestvcpus "$DOMAIN"
}

# domtime: the host's clock within a few seconds, before and after --now
# (nova's sync_guest_time) and --sync (the guest reads its RTC back).
check_time() {
  local host guest
  time_close() {
    run_virsh domtime domtime "$DOMAIN" || return 1
    guest=$(sed -n 's/^Time: *//p' <<<"$OUT")
    host=$(date +%s)
    [ -n "$guest" ] && [ $((guest > host ? guest - host : host - guest)) -le "$1" ]
  }
  if time_close 10; then verdict "virsh domtime" ok "guest $guest, host $host"; else
    verdict "virsh domtime" fail "guest ${guest:-?}, host ${host:-?}: $OUT"; fi
  if run_virsh domtime-now domtime "$DOMAIN" --now && time_close 3; then
    verdict "virsh domtime --now" ok "guest $guest, host $host"
  else
    verdict "virsh domtime --now" fail "$OUT"
  fi
  if run_virsh domtime-sync domtime "$DOMAIN" --sync && time_close 3; then
    verdict "virsh domtime --sync" ok "guest $guest, host $host"
  else
    verdict "virsh domtime --sync" fail "$OUT"
  fi
  normalise domtime-sync <"$BOOT/raw/domtime-sync" | grep -v '^Time:' >"$BOOT/cmp/domtime-sync" || true
}

# guestvcpus: the second vCPU offline and back, seen from inside too.
check_vcpus() {
  local cpus
  if run_virsh vcpu-disable guestvcpus "$DOMAIN" --cpulist 1 --disable &&
    cpus=$(ask cpus) && [ "$cpus" = 0 ]; then
    verdict "virsh guestvcpus --cpulist 1 --disable" ok "guest's online CPUs: $cpus"
  else
    verdict "virsh guestvcpus --cpulist 1 --disable" fail "$OUT; guest's online CPUs: ${cpus:-?}"
  fi
  virsh_matches guestvcpus-disabled 'online +: 0$' guestvcpus "$DOMAIN"
  if run_virsh vcpu-enable guestvcpus "$DOMAIN" --cpulist 1 --enable &&
    cpus=$(ask cpus) && [ "$cpus" = 0-1 ]; then
    verdict "virsh guestvcpus --cpulist 1 --enable" ok "guest's online CPUs: $cpus"
  else
    verdict "virsh guestvcpus --cpulist 1 --enable" fail "$OUT; guest's online CPUs: ${cpus:-?}"
  fi
  # setvcpus --guest: the count, not a list (libvirt picks the CPUs)
  local n want
  for n in 1 2; do
    want=0
    [ "$n" = 2 ] && want=0-1
    if run_virsh "setvcpus-guest-$n" setvcpus "$DOMAIN" "$n" --guest &&
      cpus=$(ask cpus) && [ "$cpus" = "$want" ]; then
      verdict "virsh setvcpus $n --guest" ok "guest's online CPUs: $cpus"
    else
      verdict "virsh setvcpus $n --guest" fail "$OUT; guest's online CPUs: ${cpus:-?}"
    fi
    normalise "setvcpus-guest-$n" <"$BOOT/raw/setvcpus-guest-$n" >"$BOOT/cmp/setvcpus-guest-$n"
  done
}

# set-user-sshkeys appends without --reset; --remove takes keys away;
# --reset alone empties the file. Each step is read back through the agent
# and from inside the guest (owner lab, .ssh 0700, authorized_keys 0600).
check_ssh_keys() {
  local keys=$BOOT/keys step
  run_virsh sshkeys-none get-user-sshkeys "$DOMAIN" lab || true
  normalise sshkeys-none <"$BOOT/raw/sshkeys-none" >"$BOOT/cmp/sshkeys-none"
  log "[$AGENT] get-user-sshkeys before any key: $(tr '\n' ' ' <<<"$OUT")"
  sshkeys_step() {
    local name=$1 want=$2 listed inside
    shift 2
    if ! run_virsh "$name" set-user-sshkeys "$DOMAIN" lab "$@"; then
      verdict "virsh set-user-sshkeys lab $*" fail "$OUT"
      return
    fi
    run_virsh "$name-get" get-user-sshkeys "$DOMAIN" lab || true
    normalise "$name-get" <"$BOOT/raw/$name-get" >"$BOOT/cmp/$name-get"
    listed=$(grep -o 'lab-key-[0-9]' <<<"$OUT" | LC_ALL=C sort | tr '\n' ' ' || true)
    inside=$(ask sshkeys lab) || inside="no answer from the guest"
    # blank lines in the file are not keys (README.md)
    keep "$name-guest" "$(grep -v '^key *$' <<<"$inside" || true)"
    if [ "$listed" = "$want" ] &&
      [ "$(grep -o 'lab-key-[0-9]' <<<"$inside" | LC_ALL=C sort | tr '\n' ' ')" = "$want" ] &&
      grep -q '^stat /home/lab/.ssh 700 lab lab$' <<<"$inside" &&
      grep -q '^stat /home/lab/.ssh/authorized_keys 600 lab lab$' <<<"$inside"; then
      verdict "virsh set-user-sshkeys lab $*" ok "keys now: ${want:-none}"
    else
      verdict "virsh set-user-sshkeys lab $*" fail \
        "wanted '${want}', get-user-sshkeys lists '$listed'; guest: $(tr '\n' ';' <<<"$inside")"
    fi
  }
  printf '%s\n%s\n' "$KEY1" "$KEY2" >"$keys.12"
  printf '%s\n' "$KEY3" >"$keys.3"
  printf '%s\n' "$KEY2" >"$keys.2"
  sshkeys_step sshkeys-add "lab-key-1 lab-key-2 " --file "$keys.12"
  sshkeys_step sshkeys-append "lab-key-1 lab-key-2 lab-key-3 " --file "$keys.3"
  sshkeys_step sshkeys-remove "lab-key-1 lab-key-3 " --remove --file "$keys.2"
  sshkeys_step sshkeys-reset "lab-key-3 " --reset --file "$keys.3"
  sshkeys_step sshkeys-empty "" --reset
}

# set-user-password as nova sends it (crypted false) for root, and a crypt
# hash made on the host (crypted true) for lab. The hash is read back from
# the guest's /etc/shadow and checked twice by crypt(3): on the host
# (host_crypt_verifies) and in the guest (busybox mkpasswd, guest/control).
check_passwords() {
  local answer hash
  password_step() {
    local user=$1 password=$2
    shift 2
    if ! run_virsh "password-$user" set-user-password "$DOMAIN" "$user" "$@"; then
      verdict "virsh set-user-password $user ${*:2}" fail "$OUT"
      return
    fi
    answer=$(ask shadow "$user" "$password") || answer="no answer from the guest"
    hash=$(sed -n 's/^hash //p' <<<"$answer")
    # compared across agents: the entry's other fields, the file's mode and
    # the other entries; not the hash (random salt; qemu-ga's chpasswd makes
    # yescrypt, the agent SHA-512: README.md) nor busybox's verdict on it
    keep "shadow-$user" "$(sed -e '/^verify /d' -e '/^hash /d' <<<"$answer")"
    if host_crypt_verifies "$password" "$hash" && grep -Eq '^verify (ok|skipped)' <<<"$answer" &&
      grep -q '^stat 640 root shadow$' <<<"$answer"; then
      verdict "virsh set-user-password $user ${*:2}" ok \
        "host crypt(3) ok, guest $(head -n1 <<<"$answer"), on the ${hash:0:3}... hash in /etc/shadow (root:shadow 0640)"
    else
      verdict "virsh set-user-password $user ${*:2}" fail \
        "host crypt(3): $(host_crypt_verifies "$password" "$hash" && echo ok || echo fail); guest: $(tr '\n' ';' <<<"$answer")"
    fi
  }
  password_step lab "$LAB_PASSWORD" "$LAB_HASH" --encrypted
  password_step root "$ROOT_PASSWORD" "$ROOT_PASSWORD"
}

# host_crypt_verifies PASSWORD HASH: crypt(3) of PASSWORD with HASH as its
# setting gives HASH (the host's glibc, through python3's crypt module;
# openssl passwd for $1$, $5$ and $6$ when python3 has no crypt).
host_crypt_verifies() {
  local password=$1 hash=$2 salt again
  [ -n "$hash" ] || return 1
  if again=$(PW=$password HASH=$hash /usr/bin/python3 -W ignore -c \
    'import crypt, os; print(crypt.crypt(os.environ["PW"], os.environ["HASH"]))' 2>/dev/null); then
    [ "$again" = "$hash" ]
    return
  fi
  salt=${hash#\$?\$}
  salt=${salt%%\$*}
  case $hash in
    '$1$'*) again=$(openssl passwd -1 -salt "$salt" "$password") ;;
    '$5$'*) again=$(openssl passwd -5 -salt "$salt" "$password") ;;
    '$6$'*) again=$(openssl passwd -6 -salt "$salt" "$password") ;;
    *) return 1 ;;
  esac
  [ "$again" = "$hash" ]
}

# domfsfreeze: a write to /mnt/data waits while frozen and completes after
# domfsthaw; only the allowed commands work meanwhile.
check_freeze() {
  local n
  for n in 1 2; do
    local args=() name=freeze
    [ "$n" = 2 ] && args=(--mountpoint /mnt/data) && name=freeze-mountpoint
    virsh_matches "$name" 'Froze 1 filesystem' domfsfreeze "$DOMAIN" "${args[@]}"
    if grep -Eq 'not currently supported|unsupported|has not been found|has been disabled' <<<"$OUT"; then
      # not an agent that freezes (yet): say so once, and do not go on
      # with a thaw and a write that would only fail in its wake
      verdict "domfsfreeze: the agent implements guest-fsfreeze-*" fail \
        "$AGENT answers: $(tr '\n' ' ' <<<"$OUT" | cut -c1-200)"
      return
    fi
    virsh_matches "$name-status" '"frozen"' qemu-agent-command "$DOMAIN" '{"execute":"guest-fsfreeze-status"}'
    if [ "$n" = 1 ]; then
      # libvirt's domhostname takes CommandDisabled as "no hostname", so the
      # refusal is looked at through qemu-agent-command
      run_virsh hostname-frozen qemu-agent-command "$DOMAIN" '{"execute":"guest-get-host-name"}' || true
      normalise hostname-frozen <"$BOOT/raw/hostname-frozen" >"$BOOT/cmp/hostname-frozen"
      if grep -q 'guest-get-host-name has been disabled: the agent is in frozen state' <<<"$OUT"; then
        verdict "guest-get-host-name refused while frozen" ok "$OUT"
      else
        verdict "guest-get-host-name refused while frozen" fail "$OUT"
      fi
    fi
    ask write-start "probe$n" >/dev/null || true
    sleep 2
    if [ "$(ask write-state "probe$n")" = pending ]; then
      verdict "a write to /mnt/data waits while frozen (${args[*]:-all})" ok
    else
      verdict "a write to /mnt/data waits while frozen (${args[*]:-all})" fail "$(ask write-state "probe$n")"
    fi
    virsh_matches "thaw$n" 'Thawed 1 filesystem' domfsthaw "$DOMAIN"
    if wait_until 10 probe_done "probe$n"; then
      verdict "the write completes after domfsthaw" ok
    else
      verdict "the write completes after domfsthaw" fail "$(ask write-state "probe$n")"
    fi
  done
}

# domfstrim (guest-fstrim): succeeds, and the agent's own answer names
# /mnt/data (how many bytes were trimmed is taken out: it depends on what the
# filesystem did before).
check_fstrim() {
  virsh_matches domfstrim '^exit 0$|^$' domfstrim "$DOMAIN"
  if grep -Eq 'not currently supported|has not been found|has been disabled' <<<"$OUT"; then
    verdict "domfstrim: the agent implements guest-fstrim" fail \
      "$AGENT answers: $(tr '\n' ' ' <<<"$OUT" | cut -c1-200)"
    return
  fi
  virsh_matches fstrim-paths '"path": *"/mnt/data"' qemu-agent-command "$DOMAIN" --pretty \
    '{"execute":"guest-fstrim","arguments":{"minimum":0}}'
}

probe_done() { [ "$(ask write-state "$1")" = done ]; }

# No agent crashed and came back (init respawns them).
check_agents_stable() {
  local answer
  answer=$(ask agents) || answer="no answer from the guest"
  if grep -q '^port 0 starts 1$' <<<"$answer" && grep -q '^port 1 starts 1$' <<<"$answer"; then
    verdict "both agents ran without a restart" ok "$(grep '^process' <<<"$answer" | tr '\n' ';')"
  else
    verdict "both agents ran without a restart" fail "$(tr '\n' ';' <<<"$answer")"
  fi
}

# An agent that dies while the filesystems are frozen (SIGKILL: a crash
# during a snapshot) and is started again by init still knows they are,
# refuses what it must, and thaws them. Then SIGTERM while frozen (a service
# stop during a snapshot): qemu-ga ignores it while frozen; an agent may
# instead thaw and exit. Either way an agent serves the port afterwards, its
# fsfreeze-status is the truth, and a thaw leaves nothing waiting.
check_freeze_restart() {
  local answer
  virsh_matches restart-kill-freeze 'Froze 1 filesystem' domfsfreeze "$DOMAIN"
  grep -q 'Froze 1' <<<"$OUT" || return 0
  ask write-start probe3 >/dev/null || true
  answer=$(ask restart-agent 0 KILL) || answer="no answer from the guest"
  if grep -q ' start 2$' <<<"$answer" && wait_until 60 agent_connected; then
    verdict "$AGENT restarted by init after SIGKILL while frozen, libvirt reconnects" ok "$answer"
  else
    verdict "$AGENT restarted by init after SIGKILL while frozen, libvirt reconnects" fail "$answer"
  fi
  virsh_matches restart-kill-status '"frozen"' qemu-agent-command "$DOMAIN" '{"execute":"guest-fsfreeze-status"}'
  run_virsh restart-kill-hostname qemu-agent-command "$DOMAIN" '{"execute":"guest-get-host-name"}' || true
  normalise restart-kill-hostname <"$BOOT/raw/restart-kill-hostname" >"$BOOT/cmp/restart-kill-hostname"
  if grep -q 'has been disabled: the agent is in frozen state' <<<"$OUT"; then
    verdict "guest-get-host-name refused after the SIGKILL restart" ok
  else
    verdict "guest-get-host-name refused after the SIGKILL restart" fail "$OUT"
  fi
  if [ "$(ask write-state probe3)" = pending ]; then
    verdict "the write still waits after the SIGKILL restart" ok
  else
    verdict "the write still waits after the SIGKILL restart" fail "$(ask write-state probe3)"
  fi
  virsh_matches restart-kill-thaw 'Thawed 1 filesystem' domfsthaw "$DOMAIN"
  if wait_until 10 probe_done probe3; then
    verdict "the write completes after the restarted agent's thaw" ok
  else
    verdict "the write completes after the restarted agent's thaw" fail "$(ask write-state probe3)"
  fi

  virsh_matches restart-term-freeze 'Froze 1 filesystem' domfsfreeze "$DOMAIN"
  ask write-start probe4 >/dev/null || true
  # the guest waits up to 10 s for a new start; none comes when the agent
  # ignores the signal
  answer=$(ask restart-agent 0 TERM) || answer="no answer from the guest"
  local how="exited, init started it again"
  grep -q ' start 2$' <<<"$answer" && how="ignored"
  if wait_until 60 agent_connected; then
    verdict "SIGTERM while frozen: an agent serves the port after it" ok "$how: $answer"
  else
    verdict "SIGTERM while frozen: an agent serves the port after it" fail "$answer"
  fi
  # What the agent says now must be what the filesystem does: qemu-ga stays
  # frozen (it ignores SIGTERM while frozen); an agent that thaws before it
  # exits says thawed, and the write has gone through. Not compared across
  # agents (README.md).
  local status write
  run_virsh restart-term-status qemu-agent-command "$DOMAIN" '{"execute":"guest-fsfreeze-status"}' || true
  status=$(grep -o 'frozen\|thawed' <<<"$OUT" | head -n1 || true)
  if [ "$status" = thawed ]; then wait_until 10 probe_done probe4 || true; fi
  write=$(ask write-state probe4) || write="no answer"
  if { [ "$status" = frozen ] && [ "$write" = pending ]; } ||
    { [ "$status" = thawed ] && [ "$write" = done ]; }; then
    verdict "SIGTERM while frozen: fsfreeze-status matches the filesystem" ok "$how; status $status, write $write"
  else
    verdict "SIGTERM while frozen: fsfreeze-status matches the filesystem" fail "$how; status ${status:-?} ($OUT), write $write"
  fi
  TERM_WHILE_FROZEN+=("$AGENT: $how ($answer), then $status")
  if run_virsh restart-term-thaw domfsthaw "$DOMAIN" && wait_until 10 probe_done probe4; then
    verdict "domfsthaw after SIGTERM, and the write is through" ok "$OUT"
  else
    verdict "domfsthaw after SIGTERM, and the write is through" fail "$OUT; write $(ask write-state probe4)"
  fi
}

# A disk-only snapshot with --quiesce (libvirt freezes through the agent,
# snapshots, then thaws: qemu_snapshot.c), onto a qcow2 overlay in BOOT.
check_quiesced_snapshot() {
  local from
  from=$(wc -l <"$WIRE_LOG" 2>/dev/null || echo 0)
  virsh_matches snapshot-quiesce 'Domain snapshot .* created' snapshot-create-as "$DOMAIN" lab-snap \
    --disk-only --quiesce --atomic --no-metadata --diskspec "vda,snapshot=external,file=$BOOT/overlay.qcow2"
  if [ -f "$WIRE_LOG" ]; then
    tail -n "+$((from + 1))" "$WIRE_LOG" | sed -n "s/.*Send command '\(.*\)' for write.*/\1/p" |
      { grep -v '"guest-ping"' || true; } >"$BOOT/cmp/snapshot-quiesce-requests"
    if grep -q 'guest-fsfreeze-freeze' "$BOOT/cmp/snapshot-quiesce-requests" &&
      grep -q 'guest-fsfreeze-thaw' "$BOOT/cmp/snapshot-quiesce-requests"; then
      verdict "the snapshot froze and thawed through the agent" ok \
        "$(tr '\n' ' ' <"$BOOT/cmp/snapshot-quiesce-requests")"
    else
      verdict "the snapshot froze and thawed through the agent" fail \
        "libvirt sent: $(tr '\n' ' ' <"$BOOT/cmp/snapshot-quiesce-requests")"
    fi
  fi
  virsh_matches snapshot-status '"thawed"' qemu-agent-command "$DOMAIN" '{"execute":"guest-fsfreeze-status"}'
}

# shutdown --mode agent: the agent runs /sbin/shutdown, the domain shuts off.
check_shutdown() {
  local t0 end
  t0=$(now)
  if ! run_virsh shutdown shutdown --mode agent "$DOMAIN"; then
    verdict "virsh shutdown --mode agent" fail "$OUT"
    return
  fi
  end=$((SECONDS + 60))
  while [ $SECONDS -lt $end ] && [ "$(domain_state)" != "shut off" ]; do sleep 0.2; done
  if [ "$(domain_state)" = "shut off" ] && grep -q 'LAB shutdown' "$BOOT/console.log"; then
    verdict "virsh shutdown --mode agent" ok "shut off after $(since "$t0") s"
  else
    verdict "virsh shutdown --mode agent" fail \
      "state $(domain_state) after $(since "$t0") s; 'LAB shutdown' on the console: $(grep -c 'LAB shutdown' "$BOOT/console.log")"
  fi
}

# Every compared output of every boot against the first boot's.
compare_boots() {
  local run=$1 ref other name ref_agent differ
  ref=$(ls -1d "$run"/[0-9]*-*/ 2>/dev/null | head -n1)
  [ -n "$ref" ] || return 0
  ref=${ref%/}
  ref_agent=${ref##*/[0-9]-}
  for other in $(ls -1d "$run"/[0-9]*-*/ | tail -n +2); do
    other=${other%/}
    AGENT="${other##*/[0-9]-} vs $ref_agent"
    for name in $(ls "$ref/cmp"); do
      if [ ! -f "$other/cmp/$name" ]; then
        verdict "same output: $name" fail "not run"
      elif differ=$(diff -u "$ref/cmp/$name" "$other/cmp/$name"); then
        verdict "same output: $name" ok
      else
        verdict "same output: $name" fail "differences:"
        sed -n '3,$p' <<<"$differ" | sed 's/^/kvm-lab:     /'
      fi
    done
    extras "$ref" "$other"
  done
}

# guest-info: commands one agent offers and the other does not, outside
# issue 14's list (printed, not compared).
extras() {
  local a b
  [ -f "$1/raw/guest-info" ] && [ -f "$2/raw/guest-info" ] || return 0
  a=$(command_names "$1/raw/guest-info")
  b=$(command_names "$2/raw/guest-info")
  log "[$AGENT] guest-info commands only ${1##*/[0-9]-} offers: $(comm -23 <(echo "$a") <(echo "$b") | tr '\n' ' ')"
  log "[$AGENT] guest-info commands only ${2##*/[0-9]-} offers: $(comm -13 <(echo "$a") <(echo "$b") | tr '\n' ' ')"
}

command_names() {
  sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' "$1" | LC_ALL=C sort -u
}

summary() {
  local t
  log "================================================================ summary"
  for t in "${TIMES[@]}"; do log "$t"; done
  log "accel $accel; wall time $1 s"
  for t in "${TERM_WHILE_FROZEN[@]}"; do log "SIGTERM while frozen: $t"; done
  [ -n "$NYI" ] && log "NYI: singularity has no qga communicator yet: qemu-ga served both ports"
  for t in "${FAILURES[@]}"; do log "FAILED: $t"; done
  if [ "$FAILED" = 0 ] && [ "$PASSED" -gt 0 ]; then
    echo "LAB RESULT: PASS"
  else
    echo "LAB RESULT: FAIL"
  fi
  log "$PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ] && [ "$PASSED" -gt 0 ]
}
