#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# tests/guest/build-tiny-guest.sh: build a tiny Linux guest for the
# application-consistency tests: an uncompressed kernel (vmlinux) and an
# initramfs holding busybox, qemu-ga, mke2fs and the modules for virtio and
# SATA disks.  The guest mounts every data disk as ext4 at /mnt/<dev>
# (formatting a blank one first), runs the guest agent on the virtio port
# org.qemu.guest_agent.0 with its log in /run/qga.log, and powers off on an
# ACPI power button.  Kernel option vbtest.noagent keeps the agent off;
# vbtest.debug lists modules, virtio devices and the kernel log on the console.
#
#   tests/guest/build-tiny-guest.sh [CACHEDIR]
#   tests/guest/build-tiny-guest.sh --boot [CACHEDIR]
#
# --boot writes CACHEDIR/boot/disk.qcow2 instead: a 128 MiB disk that boots
# by itself (the OS lives on the disk, so a backup of it holds the OS): an
# MBR (syslinux-common's mbr.bin), partition 1 FAT16 (active) with SYSLINUX,
# the bzImage and the initramfs, partition 2 ext4 (label tgdata) for the
# guest's data, which the guest mounts at /mnt/sda2.  Built without loop
# devices or mounts: mkfs.fat, syslinux and mcopy work on the partition
# image (extlinux --install on ext4 would need it mounted), mkfs.ext4 -d
# fills the data partition, and both are copied into place with dd.
#
# CACHEDIR defaults to $VB_GUEST_DIR or /var/lib/libvirt/images/vbtest/tinyguest
# and ends up holding vmlinux and initrd.img (root-owned 0644 in a 0755
# directory, which libvirt relabels for QEMU).  A build newer than this script
# is reused.  The kernel .deb is downloaded once with apt-get and kept there.
# Needs (Debian): busybox-static qemu-guest-agent e2fsprogs xz-utils cpio kmod;
# --boot also syslinux syslinux-common mtools dosfstools fdisk qemu-utils.
set -euo pipefail
export LC_ALL=C

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BOOT=0
[ "${1:-}" = --boot ] && { BOOT=1; shift; }
OUT=${1:-${VB_GUEST_DIR:-/var/lib/libvirt/images/vbtest/tinyguest}}
MODULES="virtio_pci virtio_console virtio_blk crc32c_generic ext4 button evdev
         virtio_scsi sd_mod ahci"

die () { echo "build-tiny-guest: $*" >&2; exit 1; }

up_to_date () {
  local f
  for f in vmlinux initrd.img; do
    [ -s "$OUT/$f" ] && [ "$OUT/$f" -nt "$SELF" ] || return 1
  done
}

check_tools () {
  local t
  for t in busybox qemu-ga mke2fs xz cpio gzip modprobe depmod dpkg-deb apt-get; do
    command -v "$t" >/dev/null || die "$t is missing (apt-get install busybox-static qemu-guest-agent e2fsprogs xz-utils cpio kmod)"
  done
  # The initramfs has no libc for busybox: it must be the static one.
  ldd "$(command -v busybox)" >/dev/null 2>&1 && die "busybox is dynamic: install busybox-static"
  return 0
}

# The kernel package that linux-image-amd64 points at, downloaded into
# $OUT/deb once (apt's sandbox user cannot write there; the warning is harmless).
fetch_kernel_deb () {
  local pkg deb log
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || die "apt-cache knows no linux-image-amd64 dependency (apt-get update?)"
  mkdir -p "$OUT/deb"
  deb=$(ls "$OUT/deb/${pkg}_"*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    log=$(cd "$OUT/deb" && apt-get download -q "$pkg" 2>&1 || true)
    deb=$(ls "$OUT/deb/${pkg}_"*.deb 2>/dev/null | head -1 || true)
    [ -n "$deb" ] || die "could not download $pkg: $log"
  fi
  echo "$deb"
}

# QEMU boots an ELF vmlinux through PVH, seconds faster under TCG than a
# bzImage; it is the xz payload inside the bzImage.
extract_vmlinux () {
  local bz=$1 dst=$2 off
  off=$(grep -a -b -o -m1 -P '\xfd7zXZ\x00' "$bz" | head -1 | cut -d: -f1)
  [ -n "$off" ] || die "no xz payload in $bz"
  # xz complains about the bytes after the payload; the ELF is complete.
  tail -c +$((off + 1)) "$bz" | xz -dc >"$dst" 2>/dev/null || true
  [ "$(head -c 4 "$dst" | od -An -c | tr -d ' ')" = '177ELF' ] || die "extracted kernel is not ELF"
}

# Copy the modules and their dependencies, in load order, into the tree.
add_modules () {
  local kroot=$1 kver=$2 root=$3 m ko
  depmod -b "$kroot" "$kver"
  mkdir -p "$root/lib/modules"
  : >"$root/lib/modules/load-order"
  for m in $MODULES; do
    modprobe -d "$kroot" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$root/lib/modules/"
    basename "$ko" >>"$root/lib/modules/load-order"
  done
}

# A real binary at PATH in the tree with the libraries ldd names.
add_binary () {
  local root=$1 bin=$2 dst=$3 lib
  rm -f "$root$dst"            # never write through a busybox link
  install -D -m 0755 "$bin" "$root$dst"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    [ -e "$root$lib" ] || install -D -m 0755 "$lib" "$root$lib"
  done
}

write_init_files () {
  local root=$1
  cat >"$root/etc/inittab" <<'EOF'
::sysinit:/etc/rc.sysinit
::respawn:/etc/rc.agent
::respawn:/sbin/acpid -f -l /run/acpid.log
ttyS0::respawn:/sbin/getty -n -l /bin/sh 115200 ttyS0
::shutdown:/etc/rc.shutdown
EOF
  cat >"$root/etc/rc.sysinit" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/virtio-ports
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 run /run
for m in $(cat /lib/modules/load-order); do insmod /lib/modules/$m 2>/dev/null; done
sleep 0.3
for s in /sys/block/sd* /sys/block/vd*; do
  [ -e "$s" ] || continue
  d=${s##*/}
  # A partitioned disk: its partitions are mounted below.
  ls -d $s/$d[0-9]* >/dev/null 2>&1 && continue
  # A disk whose first MiB is all zero has never been formatted.
  if [ "$(dd if=/dev/$d bs=65536 count=16 2>/dev/null | tr -d '\000' | wc -c)" = 0 ]; then
    echo "tinyguest: formatting /dev/$d"
    /sbin/mke2fs -q -t ext4 -F /dev/$d
  fi
  mkdir -p /mnt/$d
  mount -t ext4 /dev/$d /mnt/$d && echo "tinyguest: mounted /dev/$d on /mnt/$d"
done
# Partitions (the bootable disk's data partition): each ext4 one is mounted.
for s in /sys/class/block/*; do
  [ -e "$s/partition" ] || continue
  d=${s##*/}
  mkdir -p /mnt/$d
  if mount -t ext4 /dev/$d /mnt/$d 2>/dev/null; then
    echo "tinyguest: mounted /dev/$d on /mnt/$d"
  else
    rmdir /mnt/$d
  fi
done
if grep -qw vbtest.debug /proc/cmdline; then
  lsmod; ls -l /sys/bus/virtio/devices/ /sys/class/virtio-ports/; dmesg | tail -40
fi
echo "tinyguest: up"
EOF
  cat >"$root/etc/rc.agent" <<'EOF'
#!/bin/sh
# No udev here: find the agent's port by name and make the link by hand.
grep -qw vbtest.noagent /proc/cmdline && exec sleep 1000000
for p in /sys/class/virtio-ports/vport*; do
  [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
  ln -sf /dev/${p##*/} /dev/virtio-ports/org.qemu.guest_agent.0
  mkdir -p /run/qga
  /usr/sbin/qemu-ga -m virtio-serial -p /dev/${p##*/} -t /run/qga -f /run/qemu-ga.pid \
    -l /run/qga.log -v
  echo "tinyguest: qemu-ga exited with $?:"; tail -5 /run/qga.log
  sleep 1
  exit
done
# The port may not be there yet: init runs this again.
sleep 1
EOF
  cat >"$root/etc/rc.shutdown" <<'EOF'
#!/bin/sh
sync
umount -a -r 2>/dev/null
EOF
  # qemu-ga's guest-shutdown runs "shutdown -P +0" (or -r / -H).
  cat >"$root/sbin/shutdown" <<'EOF'
#!/bin/sh
case " $* " in
  *" -r "*) exec reboot ;;
  *" -H "*) exec halt ;;
  *) exec poweroff ;;
esac
EOF
  mkdir -p "$root/etc/acpi/PWRF"
  printf '#!/bin/sh\nexec poweroff\n' >"$root/etc/acpi/PWRF/00000080"
  chmod 0755 "$root/etc/rc.sysinit" "$root/etc/rc.agent" "$root/etc/rc.shutdown" \
    "$root/sbin/shutdown" "$root/etc/acpi/PWRF/00000080"
}

build_initramfs () {
  local kroot=$1 kver=$2 root=$3 out=$4 d
  for d in bin sbin usr/bin usr/sbin etc proc sys dev run tmp mnt lib/modules var/log; do
    mkdir -p "$root/$d"
  done
  ln -s ../run "$root/var/run"
  install -m 0755 "$(command -v busybox)" "$root/bin/busybox"
  # Links by hand: "busybox --install" would point them at the host path.
  for d in $("$root/bin/busybox" --list-full); do
    [ -e "$root/$d" ] || ln -s /bin/busybox "$root/$d"
  done
  ln -sf bin/busybox "$root/init"
  add_binary "$root" "$(command -v qemu-ga)" /usr/sbin/qemu-ga
  add_binary "$root" "$(command -v mke2fs)" /sbin/mke2fs
  cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"
  add_modules "$kroot" "$kver" "$root"
  write_init_files "$root"
  mknod -m 0600 "$root/dev/console" c 5 1
  mknod -m 0666 "$root/dev/null" c 1 3
  (cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -6) >"$out"
}

# The partitions of the bootable disk, in MiB.
BOOT_DISK_MIB=128
BOOT_PART_START=1
BOOT_PART_MIB=32

boot_up_to_date () {
  [ -s "$OUT/boot/disk.qcow2" ] && [ "$OUT/boot/disk.qcow2" -nt "$SELF" ]
}

check_boot_tools () {
  local t
  for t in syslinux mcopy mkfs.fat sfdisk mkfs.ext4 qemu-img; do
    command -v "$t" >/dev/null || die "$t is missing (apt-get install syslinux syslinux-common mtools dosfstools fdisk e2fsprogs qemu-utils)"
  done
  [ -r /usr/lib/syslinux/mbr/mbr.bin ] || die "no /usr/lib/syslinux/mbr/mbr.bin (apt-get install syslinux-common)"
}

# Partition 1: FAT16 with SYSLINUX, the kernel and the initramfs.  The
# hidden-sectors field (-h) tells the boot sector where the partition starts.
make_boot_part () {
  local img=$1 bz=$2 initrd=$3 cfg=$WORK/syslinux.cfg
  truncate -s ${BOOT_PART_MIB}M "$img"
  mkfs.fat -F 16 -n TGBOOT -h $((BOOT_PART_START * 2048)) "$img" >/dev/null
  syslinux --install "$img"
  cat >"$cfg" <<'CFG'
SERIAL 0 115200
DEFAULT tiny
PROMPT 0
TIMEOUT 0
LABEL tiny
  LINUX /bzImage
  INITRD /initrd.img
  APPEND console=ttyS0 panic=-1 quiet
CFG
  mcopy -i "$img" "$bz" ::/bzImage
  mcopy -i "$img" "$initrd" ::/initrd.img
  mcopy -i "$img" "$cfg" ::/syslinux.cfg
}

# MBR, the two partitions, copied into place; then qcow2 (sparse).
build_boot_disk () {
  local bz=$1 initrd=$2 raw=$WORK/disk.raw data_start
  data_start=$((BOOT_PART_START + BOOT_PART_MIB))
  truncate -s ${BOOT_DISK_MIB}M "$raw"
  printf 'label: dos\nstart=%dMiB, size=%dMiB, type=6, bootable\nstart=%dMiB, type=83\n' \
    $BOOT_PART_START $BOOT_PART_MIB $data_start | sfdisk -q "$raw"
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
  make_boot_part "$WORK/boot.fat" "$bz" "$initrd"
  dd if="$WORK/boot.fat" of="$raw" bs=1M seek=$BOOT_PART_START conv=notrunc,sparse status=none
  mkdir -p "$WORK/data"
  echo "tiny guest data partition" >"$WORK/data/README"
  truncate -s $((BOOT_DISK_MIB - data_start))M "$WORK/data.img"
  mkfs.ext4 -q -F -L tgdata -d "$WORK/data" "$WORK/data.img"
  dd if="$WORK/data.img" of="$raw" bs=1M seek=$data_start conv=notrunc,sparse status=none
  mkdir -p "$OUT/boot"
  chmod 0755 "$OUT/boot"
  qemu-img convert -q -f raw -O qcow2 "$raw" "$OUT/boot/disk.qcow2.new"
  chmod 0644 "$OUT/boot/disk.qcow2.new"
  mv -f "$OUT/boot/disk.qcow2.new" "$OUT/boot/disk.qcow2"
}

# The kernel package unpacked into a work dir of its own (WORK, removed at exit);
# KVER is its version.
unpack_kernel () {
  check_tools
  mkdir -p "$OUT"
  chmod 0755 "$OUT"
  local deb
  WORK=$(mktemp -d /var/tmp/tinyguest.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  deb=$(fetch_kernel_deb)
  dpkg-deb -x "$deb" "$WORK/k"
  KVER=$(ls "$WORK/k/lib/modules" | head -1)
  [ -n "$KVER" ] || die "no modules in $deb"
}

main_boot () {
  if boot_up_to_date; then
    echo "$OUT/boot/disk.qcow2"
    return 0
  fi
  check_boot_tools
  unpack_kernel
  local kver=$KVER
  build_initramfs "$WORK/k" "$kver" "$WORK/root" "$WORK/initrd.img"
  build_boot_disk "$WORK/k/boot/vmlinuz-$kver" "$WORK/initrd.img"
  echo "$OUT/boot/disk.qcow2"
}

main () {
  [ $BOOT = 1 ] && { main_boot; return; }
  if up_to_date; then
    echo "$OUT"
    return 0
  fi
  unpack_kernel
  local kver=$KVER
  extract_vmlinux "$WORK/k/boot/vmlinuz-$kver" "$OUT/vmlinux.new"
  build_initramfs "$WORK/k" "$kver" "$WORK/root" "$OUT/initrd.img.new"
  chmod 0644 "$OUT/vmlinux.new" "$OUT/initrd.img.new"
  mv -f "$OUT/vmlinux.new" "$OUT/vmlinux"
  mv -f "$OUT/initrd.img.new" "$OUT/initrd.img"
  echo "$kver" >"$OUT/kernel-version"
  echo "$OUT"
}

main "$@"
