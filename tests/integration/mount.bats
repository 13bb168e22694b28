#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# virtback mount / umount: a GPT disk with an ext4 partition, an xfs
# partition and an LVM LV (made and changed with libguestfs, never by the
# host kernel) is backed up full, changed, backed up inc; each point's files
# appear read-only under MOUNTPOINT/sda1, sda2, vg0-root with the contents
# of that point (sha256); umount leaves no FUSE mount, no process, no
# socket, no run directory; a busy mount point, a killed background
# process and a mount interrupted while it starts are handled.  Each mount
# boots one appliance (12-20 s under TCG here): two in all and one cut
# short, besides the two guestfish runs of the set-up.

load backup_helpers

VM=vbu

# guestfish with the cached appliance (scripts/guestfs-appliance.sh), as
# virtback itself finds it.
gf () {
  LIBGUESTFS_PATH=$APPLIANCE LIBGUESTFS_BACKEND=direct \
    LIBGUESTFS_BACKEND_SETTINGS=$(cat "$APPLIANCE/backend-settings") \
    guestfish --format=qcow2 -a "$(vb_disk_path $VM sda)" "$@"
}

setup_file () {
  bk_setup_file
  export APPLIANCE=${VIRTBACK_APPLIANCE:-/var/cache/virtback/appliance}
  "$VB_ROOT/scripts/guestfs-appliance.sh" "$APPLIANCE" >/dev/null
  export F=$BATS_FILE_TMPDIR/files B=$BATS_FILE_TMPDIR/b
  mkdir -p "$F"
  head -c 3M /dev/urandom >"$F/big.bin"
  head -c 1M /dev/urandom >"$F/new.bin"
  echo "ext4 at the full" >"$F/a0.txt"
  echo "ext4 at the inc" >"$F/a1.txt"
  echo "lvm at the full" >"$F/c.txt"
  vb_make_vm $VM 512M
  vsh destroy $VM >/dev/null
  # 64 MiB ext4, 321 MiB xfs (mkfs.xfs wants 300 MiB), the rest LVM.
  gf <<EOF >/dev/null
run
part-init /dev/sda gpt
part-add /dev/sda p 2048 133119
part-add /dev/sda p 133120 790527
part-add /dev/sda p 790528 -2048
mkfs ext4 /dev/sda1
mkfs xfs /dev/sda2
pvcreate /dev/sda3
vgcreate vg0 /dev/sda3
lvcreate root vg0 64
mkfs ext4 /dev/vg0/root
mount /dev/sda1 /
upload $F/a0.txt /a.txt
upload $F/big.bin /big.bin
umount /
mount /dev/sda2 /
mkdir /dir
upload $F/big.bin "/dir/big copy.bin"
umount /
mount /dev/vg0/root /
upload $F/c.txt /c.txt
umount /
EOF
  vsh start $VM >/dev/null
  "$VIRTBACK" backup -d $VM -o "$B" -l full -n >/dev/null 2>&1
  vsh destroy $VM >/dev/null
  gf <<EOF >/dev/null
run
mount /dev/sda1 /
upload $F/a1.txt /a.txt
umount /
mount /dev/sda2 /
upload $F/new.bin /dir/new.bin
umount /
mount /dev/vg0/root /
rm /c.txt
umount /
EOF
  vsh start $VM >/dev/null
  "$VIRTBACK" backup -d $VM -o "$B" -l inc -n >/dev/null 2>&1
}

teardown_file () {
  vb_destroy_vm $VM
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  MNT=$BATS_TEST_TMPDIR/mnt
  mkdir -p "$MNT"
  ls -d /tmp/libguestfs* 2>/dev/null | sort >"$BATS_TEST_TMPDIR/lgfs.before" || true
}

teardown () {
  "$VIRTBACK" umount "$MNT" 2>/dev/null || true
}

# The run directory of the mount at $MNT.
rundir () { grep -lx -- "$MNT" /run/virtback/mount/*/mountpoint 2>/dev/null | xargs -r dirname; }

# mount_point ARGS...: mount $B with ARGS at $MNT; sets RD.
mount_point () {
  vbk mount -i "$B" "$@" "$MNT"
  [ "$status" -eq 0 ]
  RD=$(rundir)
  [ -n "$RD" ]
  pgrep -f "$RD/map.sock" >/dev/null   # nbdkit serves the point
}

# Nothing of the mount of run directory $1 is left.
assert_gone () {
  ! grep -q " $MNT " /proc/mounts || { echo "FUSE mount left"; return 1; }
  [ ! -e "$1" ] || { echo "run directory left"; ls -la "$1"; return 1; }
  ! pgrep -af -- "$1" || { echo "process left"; return 1; }
  ! pgrep -f "nbdkit.*dir=$B" >/dev/null || { echo "nbdkit left"; return 1; }
  ls -d /tmp/libguestfs* 2>/dev/null | sort | comm -13 "$BATS_TEST_TMPDIR/lgfs.before" - |
    { ! grep . ; } || { echo "libguestfs temporary directory left"; return 1; }
  [ -z "$(ls -A "$MNT")" ]
}

sha () { sha256sum <"$1" | cut -d' ' -f1; }

@test "mount the full: ext4, xfs and LVM read-only with the full's files; umount leaves nothing" {
  mount_point --until virtback.0
  [[ "$output" == *"$MNT/sda1 ext4"* ]]
  [[ "$output" == *"$MNT/sda2 xfs"* ]]
  [[ "$output" == *"$MNT/vg0-root ext4"* ]]
  [ "$(ls "$MNT" | tr '\n' ' ')" = "sda1 sda2 vg0-root " ]
  # The appliance is our own child qemu, not a filesystem in the host kernel.
  ! grep -E " $MNT/" /proc/mounts
  grep -q " $MNT fuse ro," /proc/mounts
  [ "$(sha "$MNT/sda1/big.bin")" = "$(sha "$F/big.bin")" ]
  [ "$(sha "$MNT/sda1/a.txt")" = "$(sha "$F/a0.txt")" ]
  [ "$(sha "$MNT/sda2/dir/big copy.bin")" = "$(sha "$F/big.bin")" ]
  [ "$(sha "$MNT/vg0-root/c.txt")" = "$(sha "$F/c.txt")" ]
  [ ! -e "$MNT/sda2/dir/new.bin" ]
  # Read-only: every kind of write fails.
  run sh -c "echo x >'$MNT/sda1/new.txt'"
  [ "$status" -ne 0 ]
  [[ "$output" == *"Read-only file system"* ]]
  not touch "$MNT/sda2/dir/x"
  not rm "$MNT/vg0-root/c.txt"
  not mkdir "$MNT/sda1/d"
  [ "$(sha "$MNT/vg0-root/c.txt")" = "$(sha "$F/c.txt")" ]
  vbk umount "$MNT"
  [ "$status" -eq 0 ]
  assert_gone "$RD"
}

@test "mount the inc: its changes; a busy mount point refuses umount; a killed mount is cleaned up" {
  mount_point
  [ "$(sha "$MNT/sda1/a.txt")" = "$(sha "$F/a1.txt")" ]
  [ "$(sha "$MNT/sda1/big.bin")" = "$(sha "$F/big.bin")" ]
  [ "$(sha "$MNT/sda2/dir/new.bin")" = "$(sha "$F/new.bin")" ]
  [ "$(sha "$MNT/sda2/dir/big copy.bin")" = "$(sha "$F/big.bin")" ]
  [ ! -e "$MNT/vg0-root/c.txt" ]
  # A second mount at the same place is refused.
  vbk mount -i "$B" "$MNT"
  [ "$status" -eq 1 ]
  [[ "$output" == *"mounted already"* ]]
  # Busy: a process whose working directory is inside.
  (cd "$MNT/sda1" && exec sleep 60) &
  local busy=$!
  sleep 0.5
  vbk umount "$MNT"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"is busy"* ]]
  [ "$(sha "$MNT/sda1/a.txt")" = "$(sha "$F/a1.txt")" ]
  kill $busy; wait $busy || true
  # The background process killed: umount still ends it all.
  kill -9 "$(cat "$RD/pid")"
  vbk umount "$MNT"
  [ "$status" -eq 0 ]
  assert_gone "$RD"
}

@test "mount and umount refuse bad arguments in one line and leave nothing" {
  vbk mount -i "$B" "$BATS_TEST_TMPDIR/nowhere"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  touch "$MNT/file"
  vbk mount -i "$B" "$MNT"
  [ "$status" -eq 1 ]
  [[ "$output" == *"not empty"* ]]
  rm "$MNT/file"
  # A point that does not exist fails before any appliance boots.
  vbk mount -i "$B" --until virtback.9 "$MNT"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [ -z "$(rundir)" ]
  [ -z "$(ls -A "$MNT")" ]
  ! pgrep -f "nbdkit.*dir=$B"
  vbk umount "$MNT"
  [ "$status" -eq 1 ]
  [[ "$output" == *"not a mount of virtback mount"* ]]
  vbk mount "$MNT"
  [ "$status" -eq 2 ]
}

@test "a mount interrupted while its appliance boots fails and leaves nothing" {
  vb_bg_start "$BATS_TEST_TMPDIR/bg" "$VIRTBACK" mount -i "$B" "$MNT"
  local i
  for i in $(seq 600); do
    RD=$(rundir)
    [ -n "$RD" ] && pgrep -f "$RD/tmp" >/dev/null && break   # qemu runs
    [ ! -s "$BATS_TEST_TMPDIR/bg/rc" ] || break
    sleep 0.1
  done
  if ! pgrep -f "$RD/tmp" >/dev/null; then
    echo "no appliance under '$RD/tmp' after ${i}00 ms: rc '$(cat "$BATS_TEST_TMPDIR/bg/rc" 2>/dev/null)', output:"
    cat "$BATS_TEST_TMPDIR/bg/out"
    ps -eo pid,etimes,args | grep -e qemu -e nbdkit -e virtback | grep -v grep
    false
  fi
  kill -INT "$(cat "$BATS_TEST_TMPDIR/bg/pid")"
  [ "$(vb_bg_rc "$BATS_TEST_TMPDIR/bg")" -eq 1 ]
  cat "$BATS_TEST_TMPDIR/bg/out"
  [ "$(cat "$BATS_TEST_TMPDIR/bg/out")" = "virtback mount: cancelled" ]
  assert_gone "$RD"
}
