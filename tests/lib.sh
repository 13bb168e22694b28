# SPDX-License-Identifier: GPL-3.0-or-later
# tests/lib.sh: shared helpers for integration tests (sourced by bats files and scripts).
# Everything here drives real parts: libvirtd, QEMU VMs, qemu-img, qemu-io over HMP.

VB_ROOT=${VB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VIRTBACK=${VIRTBACK:-$VB_ROOT/build/virtback}
VB_URI=${VB_URI:-qemu:///system}
# VM images live under /var/lib/libvirt/images so QEMU (user libvirt-qemu) can open them.
VB_IMG_DIR=${VB_IMG_DIR:-/var/lib/libvirt/images/vbtest}

vsh () { virsh -q -c "$VB_URI" "$@"; }

# Start virtlogd and libvirtd unless running (no systemd on these hosts).
vb_daemons_up () {
  # Without udev, /dev/kvm may be root-only; QEMU runs as libvirt-qemu (group kvm).
  if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
  # The daemons outlive the test run: they must not hold bats' output open (bats waits for it).
  pgrep -x virtlogd >/dev/null || virtlogd -d </dev/null >/dev/null 2>&1 3>&-
  pgrep -x libvirtd >/dev/null || libvirtd -d </dev/null >/dev/null 2>&1 3>&-
  local i
  for i in $(seq 50); do
    virsh -c "$VB_URI" version >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "libvirtd did not come up" >&2
  return 1
}

vb_domain_type () { [ -e /dev/kvm ] && echo kvm || echo qemu; }

# vb_make_vm NAME SIZE [NDISKS [FMT_OPTS [RAW_DEVS]]]: qcow2 disks sda, sdb, ... on SATA, defined
# and started; the targets listed in RAW_DEVS (e.g. "sdb") are raw images instead.
# No guest OS: the VM sits in firmware, which is all disks, bitmaps and backup jobs need.
vb_make_vm () {
  local name=$1 size=$2 ndisks=${3:-1} opts=${4:-} raws=" ${5:-} " i dev fmt disks=""
  local letters=(a b c d e f)
  vb_destroy_vm "$name"
  mkdir -p "$VB_IMG_DIR"
  for ((i = 0; i < ndisks; i++)); do
    dev=sd${letters[$i]}
    fmt=qcow2
    [[ "$raws" == *" $dev "* ]] && fmt=raw
    qemu-img create -q -f $fmt ${opts:+-o "$opts"} "$VB_IMG_DIR/$name-$dev.$fmt" "$size" || return 1
    disks+="<disk type='file' device='disk'><driver name='qemu' type='$fmt'/>
      <source file='$VB_IMG_DIR/$name-$dev.$fmt'/><target dev='$dev' bus='sata'/></disk>"
  done
  cat > "$VB_IMG_DIR/$name.xml" <<XML
<domain type='$(vb_domain_type)'>
  <name>$name</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>$disks</devices>
</domain>
XML
  vsh define "$VB_IMG_DIR/$name.xml" >/dev/null && vsh start "$name" >/dev/null
}

vb_disk_path () { echo "$VB_IMG_DIR/$1-$2.qcow2"; }

# qdev id of a SATA disk target: libvirt puts sdX on controller 0, unit X (sda -> sata0-0-0).
vb_qdev () {
  local n=$(( $(printf '%d' "'${2:2:1}") - 97 ))
  echo "sata0-0-$n"
}

# vb_guest_io NAME DEV 'qemu-io command' ...: run qemu-io commands on the live disk, then flush.
vb_guest_io () {
  local name=$1 dev=$2 qdev out
  shift 2
  qdev=$(vb_qdev "$name" "$dev")
  for cmd in "$@" flush; do
    out=$(vsh qemu-monitor-command "$name" --hmp "qemu-io -d $qdev \"$cmd\"") || return 1
    case "$out" in *rror*|*nvalid*) echo "qemu-io $cmd: $out" >&2; return 1;; esac
  done
}

# vb_snapshot_disk NAME DEV OUT: copy the live disk as the guest sees it now (after a flush).
vb_snapshot_disk () {
  vb_guest_io "$1" "$2" || return 1
  qemu-img convert -U -O qcow2 "$(vb_disk_path "$1" "$2")" "$3"
}

# The peer's restore ends its qemu-nbd with SIGTERM and returns at once,
# while qemu-nbd may still be writing the image's last metadata: wait until
# the qemu-nbd of the output directory (-o) has exited before anyone reads it.
virtnbdrestore () {
  local rc a prev="" out="" i
  for a in "$@"; do [ "$prev" = -o ] && out=$a; prev=$a; done
  command virtnbdrestore "$@"
  rc=$?
  if [ -n "$out" ]; then
    for i in $(seq 300); do pgrep -f "qemu-nbd.* $out/" >/dev/null || break; sleep 0.1; done
  fi
  return $rc
}

# vb_compare A B: identical content and identical virtual size.  (Not -s: strict mode also
# compares allocation, and a restore that zeroes a range leaves zero clusters where a
# qemu-img convert copy leaves the range unallocated.)
vb_vsize () { qemu-img info -U --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }
vb_compare () {
  qemu-img compare -U -q "$1" "$2" || return 1
  [ "$(vb_vsize "$1")" = "$(vb_vsize "$2")" ] || { echo "virtual sizes differ: $1 $2" >&2; return 1; }
}

vb_destroy_vm () {
  local name=$1
  vsh destroy "$name" >/dev/null 2>&1 || true
  vsh undefine "$name" --checkpoints-metadata --nvram >/dev/null 2>&1 ||
    vsh undefine "$name" --checkpoints-metadata >/dev/null 2>&1 || true
  rm -f "$VB_IMG_DIR/$name"-*.qcow2 "$VB_IMG_DIR/$name"-*.raw "$VB_IMG_DIR/$name.xml"
}

# No libvirt job may be left on the domain.
vb_no_job () {
  local info
  info=$(vsh domjobinfo "$1" 2>/dev/null | awk -F: '/Job type/ {gsub(/ /,"",$2); print $2}')
  [ -z "$info" ] || [ "$info" = None ]
}

vb_checkpoints () { vsh checkpoint-list "$1" --name 2>/dev/null | sort; }

# vb_bg_start DIR CMD...: run CMD in the background; its pid goes to DIR/pid
# (read it with "$(cat DIR/pid)"), its output to DIR/out, and its exit status
# to DIR/rc when it ends.  The status goes through a file: bash may not keep
# the status of a background child that exits before "wait" asks for it.
vb_bg_start () {
  local d=$1
  shift
  mkdir -p "$d" && rm -f "$d/pid" "$d/rc"
  # "|| rc=$?": under set -e (bats) a failing wait would end the subshell.
  ( "$@" & echo $! >"$d/pid"; rc=0; wait $! || rc=$?
    echo $rc >"$d/rc.tmp" && mv "$d/rc.tmp" "$d/rc" ) >"$d/out" 2>&1 &
  until [ -s "$d/pid" ]; do sleep 0.01; done
}

# vb_bg_rc DIR: wait (at most 120 s) for the command of vb_bg_start DIR to
# end and print its exit status.
vb_bg_rc () {
  local i
  for i in $(seq 1200); do
    [ -s "$1/rc" ] && { cat "$1/rc"; return 0; }
    sleep 0.1
  done
  echo "the background command did not end" >&2
  return 1
}

# vb_test_ca DIR CN: a CA named CN (DIR/ca-cert.pem, ca-key.pem) and a server certificate for
# localhost and 127.0.0.1 that it signed (DIR/server-cert.pem, server-key.pem): the names
# nbdkit and libnbd look for in a TLS directory.  One day of validity is enough for a test.
vb_test_ca () {
  local d=$1
  mkdir -p "$d" &&
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca-key.pem" -out "$d/ca-cert.pem" \
      -days 1 -subj "/CN=$2" 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -keyout "$d/server-key.pem" -out "$d/server.csr" \
      -subj /CN=localhost 2>/dev/null &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/server.ext" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca-cert.pem" -CAkey "$d/ca-key.pem" \
      -CAcreateserial -days 1 -extfile "$d/server.ext" -out "$d/server-cert.pem" 2>/dev/null
}

# vb_fresh_root CMD...: CMD (a test host's sshd) in a mount namespace of its own where root's
# ~/.bashrc and ~/.profile are those of a fresh Debian (base-files' dot.bashrc and
# dot.profile).  sshd runs every session's command through root's shell, and Debian's bash
# reads ~/.bashrc then; a workstation's own start-up files (this machine's run pyenv init,
# about 0.1 s a login) belong to no hypervisor or standby host.
vb_fresh_root () {
  # shellcheck disable=SC2016
  unshare -m --propagation private sh -c '
    for f in bashrc profile; do
      [ -e "$HOME/.$f" ] && [ -e "/usr/share/base-files/dot.$f" ] || continue
      mount --bind "/usr/share/base-files/dot.$f" "$HOME/.$f" || exit 99
    done
    exec "$@"' vb-fresh-root "$@"
}
