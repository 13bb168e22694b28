#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# scripts/quickstart.sh: from a fresh Debian 12 machine to a first full and
# incremental backup of a real guest, as root:
#   1. installs the packages of packages.txt's build, run and demo sections
#      (scripts/packages.sh, apt-get);
#   2. builds build/virtback;
#   3. starts virtlogd and libvirtd if they are not running (no systemd needed);
#   4. builds a tiny Linux guest with qemu-guest-agent from Debian's archive
#      (tests/guest/build-tiny-guest.sh) and starts it as the VM
#      "virtback-demo" with a 256 MiB qcow2 disk, which the guest formats as
#      ext4 and mounts at /mnt/sda; writes files there through the agent;
#   5. runs a full backup, for which the agent freezes the guest's
#      filesystems (an application-consistent backup), writes more files,
#      runs an incremental backup;
#   6. prints where the backup is and what it holds (virtback dump, verify).
# It stops with a non-zero status at the first step that fails.
#
# Usage: sudo scripts/quickstart.sh [BACKUP-DIR]
#        sudo scripts/quickstart.sh --remove     (delete the demo VM again)
# The default BACKUP-DIR is /var/tmp/virtback-demo/backup-<date>; it must
# be empty or missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VM=virtback-demo
URI=qemu:///system
# Under /var/lib/libvirt/images, which QEMU (user libvirt-qemu) may open.
DEMO=/var/lib/libvirt/images/$VM
DISK=$DEMO/sda.qcow2
VIRTBACK=$ROOT/build/virtback

say () { printf '\n== %s\n' "$*"; }
die () { echo "quickstart: $*" >&2; exit 1; }
vsh () { virsh -q -c "$URI" "$@"; }

remove_vm () {
  vsh destroy "$VM" >/dev/null 2>&1 || true
  vsh undefine "$VM" --checkpoints-metadata >/dev/null 2>&1 || true
  rm -f "$DISK" "$DEMO/console.log"
}

agent () { vsh qemu-agent-command "$VM" "$1"; }

# guest_sh SCRIPT: run SCRIPT with /bin/sh in the guest through the agent's
# guest-exec; prints its output and returns its exit status.
guest_sh () {
  local req pid st
  req=$(jq -cn --arg s "$1" \
    '{execute: "guest-exec", arguments: {path: "/bin/sh", arg: ["-c", $s], "capture-output": true}}')
  pid=$(agent "$req" | jq -e '.return.pid') || return 1
  req=$(jq -cn --argjson p "$pid" '{execute: "guest-exec-status", arguments: {pid: $p}}')
  for _ in $(seq 600); do
    st=$(agent "$req") || return 1
    if [ "$(jq '.return.exited' <<<"$st")" = true ]; then
      jq -r '.return["out-data"] // ""' <<<"$st" | base64 -d
      jq -r '.return["err-data"] // ""' <<<"$st" | base64 -d >&2
      return "$(jq '.return.exitcode // 255' <<<"$st")"
    fi
    sleep 0.1
  done
  echo "guest-exec did not end: $1" >&2
  return 1
}

# guest_write SCRIPT: write files in the guest, then sync them to its disk.
guest_write () {
  echo "  guest: $1"
  guest_sh "$1 && sync" || die "writing in the guest failed: $1"
}

start_daemons () {
  # Without udev, /dev/kvm is root-only; QEMU runs as libvirt-qemu, group kvm.
  if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  fi
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
  for _ in $(seq 50); do virsh -c "$URI" version >/dev/null 2>&1 && break; sleep 0.2; done
  virsh -c "$URI" version | sed -n 1p
}

# The tiny guest boots under TCG (domain type qemu): a Linux kernel under
# KVM needs hardware virtualisation that some hosts (nested, PVM) lack, and
# this guest boots in seconds either way.  Without RDRAND its entropy pool
# takes long to fill and mke2fs stalls.
define_vm () {
  vsh define /dev/stdin >/dev/null <<XML
<domain type='qemu'>
  <name>$VM</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>$DEMO/guest/vmlinux</kernel>
    <initrd>$DEMO/guest/initrd.img</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'>
    <model>qemu64</model><feature policy='require' name='rdrand'/>
  </cpu>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$DISK'/><target dev='sda' bus='sata'/></disk>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='file'><source path='$DEMO/console.log'/><target port='0'/></serial>
    <console type='file'><source path='$DEMO/console.log'/><target type='serial' port='0'/></console>
  </devices>
</domain>
XML
}

# The agent starts after the guest's init has mounted its disk.
wait_for_guest () {
  for _ in $(seq 600); do
    agent '{"execute":"guest-ping"}' >/dev/null 2>&1 && guest_sh 'grep -q " /mnt/sda " /proc/mounts' &&
      return 0
    sleep 0.2
  done
  tail -20 "$DEMO/console.log" >&2 || true
  die "the guest did not come up in 2 minutes (its console is above)"
}

make_guest () {
  mkdir -p "$DEMO"
  chmod 0755 "$DEMO"
  "$ROOT/tests/guest/build-tiny-guest.sh" "$DEMO/guest" >/dev/null
  remove_vm
  qemu-img create -q -f qcow2 "$DISK" 256M
  define_vm
  vsh start "$VM" >/dev/null
  vsh list --all | grep -w "$VM"
  wait_for_guest
  echo "  guest: up, agent answers, /mnt/sda mounted"
}

# backup LEVEL: a backup into $OUT; the guest agent must have frozen the
# guest's filesystems for it (its log counts the freezes).
backup () {
  local level=$1 n0 n1 log
  n0=$(guest_sh 'grep -c guest-fsfreeze-freeze /run/qga.log || true')
  echo "\$ build/virtback backup -d $VM -o $OUT -l $level"
  log=$(mktemp)
  "$VIRTBACK" backup -d "$VM" -o "$OUT" -l "$level" 2>&1 | tee "$log" ||
    { rm -f "$log"; die "the $level backup failed"; }
  grep -q 'did not freeze' "$log" && { rm -f "$log"; die "the guest agent did not freeze the guest's filesystems"; }
  rm -f "$log"
  n1=$(guest_sh 'grep -c guest-fsfreeze-freeze /run/qga.log || true')
  [ "$n1" -gt "$n0" ] || die "the guest agent saw no freeze during the $level backup"
  echo "  the guest agent froze the guest's filesystems while the backup job started:"
  echo "  the $level backup is application-consistent"
}

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0"
if [ "${1:-}" = --remove ]; then
  remove_vm
  rm -rf "$DEMO"
  echo "removed $VM and $DEMO (backups under /var/tmp/virtback-demo are kept)"
  exit 0
fi
OUT=${1:-/var/tmp/virtback-demo/backup-$(date +%Y%m%d-%H%M%S)}
trap '[ $? -eq 0 ] || echo "quickstart: failed; sudo $0 --remove deletes the demo VM" >&2' EXIT

say "1/6 packages"
"$ROOT/scripts/packages.sh" --install build run demo

say "2/6 build"
cd "$ROOT"
[ -f build/build.ninja ] || meson setup build
ninja -C build

say "3/6 virtlogd and libvirtd"
start_daemons

say "4/6 demo VM $VM: a tiny Linux guest with qemu-guest-agent"
make_guest
guest_write 'dd if=/dev/urandom of=/mnt/sda/random.bin bs=1M count=8 2>/dev/null'
guest_write 'seq 1 100000 >/mnt/sda/numbers.txt'

say "5/6 full backup, more writes, incremental backup"
mkdir -p "$(dirname "$OUT")"
backup full
guest_write 'dd if=/dev/urandom of=/mnt/sda/more.bin bs=1M count=4 2>/dev/null'
guest_write 'echo hello >/mnt/sda/hello.txt && rm /mnt/sda/numbers.txt'
backup inc
echo "  the guest's files now:"
guest_sh 'cd /mnt/sda && sha256sum hello.txt more.bin random.bin' | sed 's/^/  /'

say "6/6 the backup"
echo "Backup directory: $OUT"
ls -l "$OUT"
echo
echo "\$ build/virtback dump -i $OUT"
"$VIRTBACK" dump -i "$OUT" || die "virtback dump failed"
echo
echo "\$ build/virtback verify -i $OUT"
"$VIRTBACK" verify -i "$OUT" || die "virtback verify failed"
cat <<EOF

Next steps:
  build/virtback restore -i $OUT -o /var/tmp/virtback-demo/restore --format raw
  e2fsck -fn /var/tmp/virtback-demo/restore/sda.raw        # the guest's ext4, clean
  debugfs -R 'cat /hello.txt' /var/tmp/virtback-demo/restore/sda.raw
  sudo scripts/quickstart.sh --remove      # delete the demo VM
EOF
