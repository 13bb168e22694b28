#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# Issue 10, the restore side: an intact earlier point restores past later
# damage (D4); raw images in a backup directory verify, dump and restore
# (D5); restore -D checks the name first; ENOSPC names the image; verify
# knows a running backup; lock files do not outlive a run.

load backup_helpers
load restore_helpers

setup_file () { bk_setup_file; }
setup () {
  bk_setup vbd
  OUT=$T/out
  rb_private_tmpdir
}
teardown () {
  [ -z "${SMALL:-}" ] || umount "$SMALL" 2>/dev/null || true
  [ -z "${BGPID:-}" ] || kill -CONT "$BGPID" 2>/dev/null || true
  bk_teardown
}

# A chain full (virtback.0), inc (virtback.1), inc (virtback.2) in $B, with
# $T/snapN.qcow2 the disk as of checkpoint N.
make_chain () {
  B=$T/b
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x11 0 2M"
  vb_snapshot_disk "$VM" sda "$T/snap0.qcow2"
  "$VIRTBACK" backup -d "$VM" -o "$B" -l full -n $VB_SCRATCH_OPT
  vb_guest_io "$VM" sda "write -P 0x22 4M 1M"
  vb_snapshot_disk "$VM" sda "$T/snap1.qcow2"
  "$VIRTBACK" backup -d "$VM" -o "$B" -l inc -n $VB_SCRATCH_OPT
  vb_guest_io "$VM" sda "write -P 0x33 8M 1M"
  vb_snapshot_disk "$VM" sda "$T/snap2.qcow2"
  "$VIRTBACK" backup -d "$VM" -o "$B" -l inc -n $VB_SCRATCH_OPT
  ls "$B/sda.inc.virtback.2.data"
}

# The point virtback.1 restores exactly despite damage to the later file,
# with one warning line naming it; the newest point and the damaged point
# itself still fail, naming it.
earlier_point_survives () {
  vbk restore -i "$B" -o "$OUT" --until virtback.1
  [ "$status" -eq 0 ]
  rb_compare "$T/snap1.qcow2" "$OUT/sda.qcow2"
  [[ "$output" == *"warning: "*"sda.inc.virtback.2.data"* ]]
  [ "$(grep -c 'warning: ' <<<"$output")" -eq 1 ]
  rm -rf "$OUT"
  for point in "" virtback.2; do
    vbk restore -i "$B" -o "$OUT" ${point:+--until "$point"}
    [ "$status" -eq 1 ]
    [[ "$output" == *"virtback restore: "*"sda.inc.virtback.2.data"* ]]
    rb_no_image "$OUT"
  done
}

@test "D4: a later file replaced by random bytes does not block an earlier point" {
  make_chain
  head -c "$(stat -c %s "$B/sda.inc.virtback.2.data")" /dev/urandom \
    > "$B/sda.inc.virtback.2.data"
  earlier_point_survives
}

@test "D4: a deleted later file does not block an earlier point" {
  make_chain
  rm "$B/sda.inc.virtback.2.data"*
  earlier_point_survives
}

# $VM with sda qcow2 and sdb raw, data on both; snapshots $T/sda.qcow2 and
# $T/sdb.qcow2 of what the guest sees.
make_raw_vm () {
  vb_make_vm "$VM" 64M 2 "" sdb
  vb_guest_io "$VM" sda "write -P 0x41 1M 2M" "write -z 8M 1M"
  vb_guest_io "$VM" sdb "write -P 0x42 3M 1M" "write -P 0x43 60M 1M"
  vb_snapshot_disk "$VM" sda "$T/sda.qcow2"
  qemu-img convert -U -f raw -O qcow2 "$VB_IMG_DIR/$VM-sdb.raw" "$T/sdb.qcow2"
}

# Backup dir $1 with raw image $2 verifies, dumps it as a raw image, and
# restores every disk (named in $3) exactly, as qcow2 and as raw.
raw_backup_restores () {
  local dir=$1 rawfile=$2 disks=$3 d fmt
  vbk verify -i "$dir"
  [ "$status" -eq 0 ]
  [[ "$output" == *"OK:"* ]]
  vbk dump -i "$dir"
  [ "$status" -eq 0 ]
  grep -E "^  $rawfile .*raw image" <<<"$output"
  [[ "$output" != *"NOT RESTORABLE"* ]]
  for fmt in qcow2 raw; do
    vbk restore -i "$dir" -o "$OUT.$fmt" --format $fmt
    [ "$status" -eq 0 ]
    for d in $disks; do
      vb_compare "$T/$d.qcow2" "$OUT.$fmt/$d.$fmt"
    done
  done
  # sparse: the 64M raw disk holding 2M of data stays small
  [ "$(du -k "$OUT.qcow2/${rawfile%%.*}.qcow2" | cut -f1)" -lt 16384 ]
  # a raw image cut short is refused, naming it
  truncate -s 32M "$dir/$rawfile"
  vbk verify -i "$dir"
  [ "$status" -eq 1 ]
  [[ "$output" == *"$rawfile"* ]]
  vbk restore -i "$dir" -o "$OUT.bad"
  [ "$status" -eq 1 ]
  [[ "$output" == *"virtback restore: "*"$rawfile"* ]]
  rb_no_image "$OUT.bad"
}

@test "D5: a full backup with -r (a raw disk copied whole) verifies and restores" {
  make_raw_vm
  vbk backup -d "$VM" -o "$T/r" -l full -r -n $VB_SCRATCH_OPT
  [ "$status" -eq 0 ]
  raw_backup_restores "$T/r" sdb.copy.data "sda sdb"
}

@test "D5: a copy backup with -t raw (a sparse raw image per disk) verifies and restores" {
  make_raw_vm
  vbk backup -d "$VM" -o "$T/t" -l copy -t raw -n $VB_SCRATCH_OPT
  [ "$status" -eq 0 ]
  raw_backup_restores "$T/t" sda.copy.data "sda"
}

@test "restore -D -N with an existing domain name fails before writing a byte" {
  make_chain
  vbk restore -i "$B" -o "$OUT" -D -N "$VM"
  [ "$status" -eq 1 ]
  [[ "$output" == *"virtback restore: "*"'$VM'"*"-N"* ]]
  [ "$(grep -c . <<<"$output")" -eq 1 ]
  [ ! -e "$OUT" ]
}

@test "restore out of space names the image, fails and leaves no image" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x55 0 20M"
  "$VIRTBACK" backup -d "$VM" -o "$T/b" -l copy -n $VB_SCRATCH_OPT
  SMALL=$T/small
  mkdir -p "$SMALL"
  mount -t tmpfs -o size=8M tmpfs "$SMALL"
  vbk restore -i "$T/b" -o "$SMALL"
  [ "$status" -eq 1 ]
  [[ "$output" == *"virtback restore: "*"$SMALL/sda.qcow2"*"No space left"* ]]
  [ "$(grep -c 'virtback restore' <<<"$output")" -eq 1 ]
  rb_no_image "$SMALL"
}

@test "verify during a running backup says so and does not advise removing its .partial" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x66 0 160M"
  "$VIRTBACK" backup -d "$VM" -o "$T/b" -l full -n $VB_SCRATCH_OPT
  vb_guest_io "$VM" sda "write -P 0x67 0 160M"
  vb_bg_start "$T/bg" "$VIRTBACK" backup -d "$VM" -o "$T/b" -l inc -n $VB_SCRATCH_OPT
  BGPID=$(cat "$T/bg/pid")
  # Hold the backup still while its .partial exists, so verify sees it run.
  until ls "$T/b"/*.partial >/dev/null 2>&1 || [ -s "$T/bg/rc" ]; do sleep 0.01; done
  kill -STOP "$BGPID"
  ls "$T/b"/*.partial
  vbk verify -i "$T/b"
  kill -CONT "$BGPID"
  [[ "$output" == *"a backup of domain '$VM' is running"* ]]
  [[ "$output" != *"remove it"* ]]
  [ "$(vb_bg_rc "$T/bg")" -eq 0 ]
  vbk verify -i "$T/b"
  [ "$status" -eq 0 ]
}

@test "a backup run leaves no lock file under /run/virtback" {
  vb_make_vm "$VM" 64M
  uuid=$(vsh domuuid "$VM")
  vbk backup -d "$VM" -o "$T/b" -l full -n $VB_SCRATCH_OPT
  [ "$status" -eq 0 ]
  [ ! -e "/run/virtback/$uuid.lock" ]
  vbk backup -d "$VM" -o "$T/b2" -l copy -x sda -n $VB_SCRATCH_OPT
  [ ! -e "/run/virtback/$uuid.lock" ]
}
