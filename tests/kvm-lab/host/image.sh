# The KVM lab's host tools and guest image (sourced by tests/kvm-lab/lab).
#
# Everything the guest runs comes from Debian's package mirror: apt-get
# download + dpkg -x of the kernel linux-image-amd64 points at,
# busybox-static and qemu-guest-agent. qemu-ga's libraries, chpasswd with
# its PAM stack, and the UTC zone file come from this Debian 12 host (same
# release), libraries found with ldd. The base image (busybox,
# modules, qemu-ga) is cached under <cache>/images/<key>/, keyed by the exact
# .deb names and this file; the lab's own files and the agent binary go into
# a second, per-run archive appended to it (Linux unpacks concatenated
# archives), so a new agent never rebuilds the base image.

# Virtio and the data disk's filesystem are modules in Debian's kernel;
# their dependencies are added and ordered by module_order.
GUEST_MODULES=(virtio_pci virtio_console virtio_blk virtio_net crc32c_generic ext4)
PAM_MODULES=(/lib/x86_64-linux-gnu/security/pam_unix.so /lib/x86_64-linux-gnu/security/pam_deny.so
  /lib/x86_64-linux-gnu/security/pam_permit.so)
HOST_PACKAGES=(qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients cpio
  e2fsprogs)

cache_dir() {
  if [ -n "${SINGULARITY_KVM_LAB_CACHE:-}" ]; then
    echo "$SINGULARITY_KVM_LAB_CACHE"
  else
    echo "${XDG_CACHE_HOME:-$HOME/.cache}/singularity-test/kvm-lab"
  fi
}

# Installs the host packages that are missing; a refused install is "no lab".
ensure_host_tools() {
  local missing=() pkg
  for pkg in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || no_lab "not root, and these are not installed: ${missing[*]}"
  log "apt-get install ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null || no_lab "apt-get install ${missing[*]} failed"
  fi
}

# Sets KERNEL_PACKAGE: the package linux-image-amd64 points at, or KVM_LAB_KERNEL_PACKAGE.
kernel_package() {
  local pkg
  if [ -n "${KVM_LAB_KERNEL_PACKAGE:-}" ]; then
    KERNEL_PACKAGE=$KVM_LAB_KERNEL_PACKAGE
    return
  fi
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
  if [ -z "$pkg" ]; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
  fi
  [ -n "$pkg" ] || no_lab "apt cannot resolve linux-image-amd64 (no package lists?)"
  KERNEL_PACKAGE=$pkg
}

# download_debs DIR PACKAGE...: sets DEBS to the .deb paths, downloading
# what is not in DIR yet.
download_debs() {
  local dir=$1 uris name pkg need=() empty
  shift
  mkdir -p "$dir"
  # in an empty directory: apt-get prints nothing for a file already there
  empty=$(mktemp -d)
  uris=$(cd "$empty" && apt-get download --print-uris "$@" 2>&1) || {
    rmdir "$empty"
    no_lab "apt-get download --print-uris $*: $uris"
  }
  rmdir "$empty"
  DEBS=()
  for pkg in "$@"; do
    # each line: 'URL' FILE SIZE HASH, FILE starting with "<package>_"
    name=$(awk -v p="$pkg" '{ n = $2; sub(/_.*/, "", n); if (n == p) print $2 }' <<<"$uris")
    [ -n "$name" ] || no_lab "apt-get knows no package $pkg"
    [ -f "$dir/$name" ] || need+=("$pkg")
    DEBS+=("$dir/$name")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "apt-get download ${need[*]}"
    (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "${need[@]}" >/dev/null) ||
      no_lab "apt-get download ${need[*]} refused"
  fi
}

# module_order MODDIR NAME...: the modules' paths relative to MODDIR,
# each after the modules it depends on (from the "depends=" of its
# .modinfo section: the package ships no modules.dep).
module_order() {
  local moddir=$1 seen=" "
  shift
  visit() {
    local name=$1 file dep
    case $seen in *" $name "*) return ;; esac
    seen+="$name "
    file=$(cd "$moddir" && find kernel -name "$name.ko" -print -quit)
    [ -n "$file" ] || file=$(cd "$moddir" && find kernel -name "${name//_/-}.ko" -print -quit)
    [ -n "$file" ] || { echo "kvm-lab: no module $name in $moddir" >&2; return 1; }
    for dep in $(tr '\0' '\n' <"$moddir/$file" | sed -n 's/^depends=//p' | tr ',' ' '); do
      visit "$dep" || return 1
    done
    echo "$file"
  }
  local name
  for name in "$@"; do visit "$name" || return 1; done
}

# Copies an ELF program and every library ldd finds for it into ROOT, at the
# same paths.
copy_with_libraries() {
  local root=$1 program=$2 lib
  ldd "$root$program" | grep -q 'not found' && {
    ldd "$root$program" >&2
    no_lab "libraries of $program are missing on this host (apt-get install qemu-system-x86 brings them)"
  }
  for lib in $(ldd "$root$program" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# cpio_gz DIR OUT: a gzip'd newc archive of DIR, owners as they are.
cpio_gz() {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1 >"$2"
}

# base_image CACHE: sets IMAGE_DIR to the directory holding vmlinuz,
# base.cpio.gz and busybox, building them when the cache has none for these packages.
base_image() {
  local cache=$1 key dir tmp root version deb busybox applet module file
  kernel_package
  download_debs "$cache/debs" "$KERNEL_PACKAGE" busybox-static qemu-guest-agent
  key=$({ printf '%s\n' "${DEBS[@]##*/}" "${GUEST_MODULES[@]}"; cat "${BASH_SOURCE[0]}"; } |
    sha256sum | cut -c1-16)
  dir=$cache/images/$key
  IMAGE_DIR=$dir
  [ -f "$dir/base.cpio.gz" ] && return
  log "building the base image ($dir)"
  mkdir -p "$cache/images"
  tmp=$(mktemp -d "$cache/images/.build-XXXXXX")
  root=$tmp/root
  mkdir -p "$tmp/debs" "$root"
  for deb in "${DEBS[@]}"; do dpkg -x "$deb" "$tmp/debs"; done

  # busybox, and a link for every applet at its usual place
  busybox=$tmp/debs/bin/busybox
  mkdir -p "$root/bin"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$busybox" --list-full); do
    [ -e "$root/$applet" ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -s /bin/busybox "$root/$applet"
  done
  ln -s bin/busybox "$root/init"

  # the real qemu-ga, its libraries and the dynamic loader
  mkdir -p "$root/usr/sbin"
  cp "$tmp/debs/usr/sbin/qemu-ga" "$root/usr/sbin/qemu-ga"
  copy_with_libraries "$root" /usr/sbin/qemu-ga

  # Debian's chpasswd (package passwd), which qemu-ga runs for
  # guest-set-user-password, with the PAM stack Debian 12 gives it
  # (pam_unix, yescrypt), and the UTC zone /etc/localtime points at on a
  # Debian system: all from this Debian 12 host, like qemu-ga's libraries
  for file in /usr/sbin/chpasswd /etc/pam.d/chpasswd /etc/pam.d/common-password \
    /etc/login.defs /usr/share/zoneinfo/Etc/UTC "${PAM_MODULES[@]}"; do
    [ -f "$file" ] || no_lab "$file is missing on this host (Debian's passwd, libpam-modules, tzdata)"
    mkdir -p "$root$(dirname "$file")"
    cp -L "$file" "$root$file"
    case $file in *.so | */chpasswd) copy_with_libraries "$root" "$file" ;; esac
  done
  ln -s /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"

  # the kernel and its modules, with the load order /lab/rc follows
  version=$(cd "$tmp/debs/lib/modules" && ls | head -n1)
  mkdir -p "$root/lib/modules/$version"
  module_order "$tmp/debs/lib/modules/$version" "${GUEST_MODULES[@]}" >"$tmp/order" ||
    no_lab "$KERNEL_PACKAGE lacks a module the guest needs"
  while read -r module; do
    mkdir -p "$root/lib/modules/$version/$(dirname "$module")"
    cp "$tmp/debs/lib/modules/$version/$module" "$root/lib/modules/$version/$module"
  done <"$tmp/order"
  cp "$tmp/order" "$root/lib/modules/$version/load-order"

  mkdir -p "$root"/{proc,sys,dev,run,tmp,mnt/data,var/cache,var/lib,var/log,etc/singularity}
  chmod 1777 "$root/tmp"
  cpio_gz "$root" "$tmp/base.cpio.gz"
  cp "$tmp/debs/boot/vmlinuz-$version" "$tmp/vmlinuz"
  # the host hashes the password it hands over crypted with the guest's busybox
  cp "$busybox" "$tmp/busybox"
  mkdir -p "$dir"
  mv "$tmp/vmlinuz" "$tmp/base.cpio.gz" "$tmp/busybox" "$dir/"
  rm -rf "$tmp"
}

# run_image GUEST_DIR AGENT OUT: the per-run archive: the lab's /etc, init
# scripts and control loop, and the agent binary (when there is one).
run_image() {
  local guest=$1 agent=$2 out=$3 stage
  stage=$(mktemp -d)
  mkdir -p "$stage"/{etc/singularity,lab,sbin,usr/sbin,root,home/lab}
  cp "$guest"/etc/* "$stage/etc/"
  cp "$guest/inittab" "$stage/etc/inittab"
  cp "$guest/singularity.conf" "$stage/etc/singularity/singularity.conf"
  cp "$guest/rc" "$guest/agent" "$guest/control" "$guest/stop" "$stage/lab/"
  cp "$guest/shutdown" "$stage/sbin/shutdown"
  [ -n "$agent" ] && cp "$agent" "$stage/usr/sbin/singularity"
  # Debian's owners and modes where an agent reads or writes
  chmod 0640 "$stage/etc/shadow"
  chown 0:42 "$stage/etc/shadow"
  chmod 0700 "$stage/root"
  chown 1000:1000 "$stage/home/lab"
  cpio_gz "$stage" "$out"
  rm -rf "$stage"
}
