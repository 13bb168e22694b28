#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# scripts/quickstart.sh: from a fresh Debian 12 machine to a first full and
# incremental backup, as root:
#   1. installs the build and runtime packages (apt-get);
#   2. builds build/virtback;
#   3. starts virtlogd and libvirtd if they are not running (no systemd needed);
#   4. creates a demo VM "virtback-demo" with a 1 GiB qcow2 disk and writes
#      data into it through QEMU (HMP qemu-io: the guest's view, so the dirty
#      bitmap sees it);
#   5. runs a full backup, writes more data, runs an incremental backup;
#   6. prints where the backup is and what it holds (virtback dump, verify).
#
# Usage: sudo scripts/quickstart.sh [BACKUP-DIR]
#        sudo scripts/quickstart.sh --remove     (delete the demo VM again)
# The default BACKUP-DIR is /var/tmp/virtback-demo/backup-<date>; it must
# be empty or missing.
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VM=virtback-demo
URI=qemu:///system
IMG_DIR=/var/lib/libvirt/images     # where QEMU (user libvirt-qemu) may open images
DISK=$IMG_DIR/$VM.qcow2
VIRTBACK=$ROOT/build/virtback

say () { printf '\n== %s\n' "$*"; }
die () { echo "quickstart: $*" >&2; exit 1; }
vsh () { virsh -q -c "$URI" "$@"; }

remove_vm () {
  vsh destroy "$VM" >/dev/null 2>&1 || true
  vsh undefine "$VM" --checkpoints-metadata >/dev/null 2>&1 || true
  rm -f "$DISK"
}

[ "$(id -u)" -eq 0 ] || die "run as root: sudo $0"
if [ "${1:-}" = --remove ]; then
  remove_vm
  echo "removed $VM and $DISK (backups under /var/tmp/virtback-demo are kept)"
  exit 0
fi
OUT=${1:-/var/tmp/virtback-demo/backup-$(date +%Y%m%d-%H%M%S)}

say "1/6 packages"
PKGS=(gcc meson ninja-build pkg-config libvirt-dev libnbd-dev libxml2-dev libjson-c-dev
      liblz4-dev libzstd-dev zlib1g-dev libdeflate-dev nbdkit nbdkit-plugin-dev qemu-system-x86 qemu-utils libvirt-daemon-system
      libvirt-clients libnbd-bin)
if dpkg-query -W -f='${db:Status-Abbrev}\n' "${PKGS[@]}" 2>/dev/null | grep -qv '^ii' ||
   [ "$(dpkg-query -W "${PKGS[@]}" 2>/dev/null | wc -l)" -lt ${#PKGS[@]} ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${PKGS[@]}"
else
  echo "all installed"
fi

say "2/6 build"
cd "$ROOT"
[ -f build/build.ninja ] || meson setup build
ninja -C build

say "3/6 virtlogd and libvirtd"
# Without udev, /dev/kvm is root-only; QEMU runs as libvirt-qemu, group kvm.
if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
for _ in $(seq 50); do virsh -c "$URI" version >/dev/null 2>&1 && break; sleep 0.2; done
virsh -c "$URI" version | head -1

say "4/6 demo VM $VM"
remove_vm
qemu-img create -q -f qcow2 "$DISK" 1G
# No guest OS is needed: the VM sits in firmware, and disks, dirty bitmaps
# and backup jobs work all the same.
type=qemu
[ -e /dev/kvm ] && type=kvm
vsh define /dev/stdin >/dev/null <<XML
<domain type='$type'>
  <name>$VM</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$DISK'/><target dev='sda' bus='sata'/></disk>
  </devices>
</domain>
XML
vsh start "$VM" >/dev/null
vsh list --all | grep -w "$VM"

# guest_write 'qemu-io command'...: write through QEMU as the guest would.
# sata0-0-0 is the device id libvirt gives the SATA disk sda.
guest_write () {
  local c
  for c in "$@" flush; do
    vsh qemu-monitor-command "$VM" --hmp "qemu-io -d sata0-0-0 \"$c\"" >/dev/null
    echo "  qemu-io: $c"
  done
}
guest_write "write -P 0x11 0 8M" "write -P 0x22 100M 16M" "write -P 0x33 700M 4M"

say "5/6 full backup, more writes, incremental backup"
mkdir -p "$(dirname "$OUT")"
echo "\$ build/virtback backup -d $VM -o $OUT -l full"
"$VIRTBACK" backup -d "$VM" -o "$OUT" -l full
guest_write "write -P 0x44 4M 1M" "write -z 104M 2M" "write -P 0x55 900M 8M"
echo "\$ build/virtback backup -d $VM -o $OUT -l inc"
"$VIRTBACK" backup -d "$VM" -o "$OUT" -l inc

say "6/6 the backup"
echo "Backup directory: $OUT"
ls -l "$OUT"
echo
echo "\$ build/virtback dump -i $OUT"
"$VIRTBACK" dump -i "$OUT" || echo "(virtback dump failed)"
echo
echo "\$ build/virtback verify -i $OUT"
"$VIRTBACK" verify -i "$OUT" || echo "(virtback verify failed)"
cat <<EOF

Next steps:
  build/virtback restore -i $OUT -o /var/tmp/virtback-demo/restore
  qemu-img compare -U /var/tmp/virtback-demo/restore/sda.qcow2 $DISK
  sudo scripts/quickstart.sh --remove      # delete the demo VM
EOF
