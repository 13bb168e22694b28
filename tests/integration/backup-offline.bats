#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# Shut-off domains: images read through qemu-nbd, checkpoints as qemu-img bitmaps plus redefined
# metadata; the chain goes on online.

load backup_helpers

setup_file () { bk_setup_file; }
setup () { bk_setup vbo; }
teardown () { bk_teardown; }

offline_write () { qemu-io -f qcow2 -c "$2" "$(vb_disk_path "$VM" "$1")" >/dev/null; }

@test "offline full, offline inc, online inc: every point restores identical" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x11 0 4M"
  vsh destroy "$VM" >/dev/null
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  [[ "$output" == *"shut off"* ]]
  assert_clean "$VM" "$T/b"
  not pgrep -f "qemu-nbd.*$VM" >/dev/null
  cp "$(vb_disk_path "$VM" sda)" "$T/p0.qcow2"
  offline_write sda "write -P 0x22 8M 1M"
  offline_write sda "write -z 1M 1M"
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  grep -a -q '^data 0000000000800000 0000000000100000' "$T/b/sda.inc.virtback.1.data"
  grep -a -q '^zero 0000000000100000 0000000000100000' "$T/b/sda.inc.virtback.1.data"
  cp "$(vb_disk_path "$VM" sda)" "$T/p1.qcow2"
  vsh start "$VM" >/dev/null
  vb_guest_io "$VM" sda "write -P 0x33 20M 1M"
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/p2.qcow2"
  run "$VIRTBACK" verify -i "$T/b"
  [ "$status" -eq 0 ]
  for i in 0 1 2; do
    rm -rf "$T/r"
    "$VIRTBACK" restore -i "$T/b" -o "$T/r" --until virtback.$i
    vb_compare "$T/p$i.qcow2" "$T/r/sda.qcow2"
  done
}

@test "offline copy needs no checkpoint and leaves the images untouched" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x11 0 2M"
  vsh destroy "$VM" >/dev/null
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/c" -l copy -n
  [ "$status" -eq 0 ]
  [ -z "$(vb_checkpoints "$VM")" ]
  [ -z "$(qemu-img info "$(vb_disk_path "$VM" sda)" | grep bitmaps)" ]
  "$VIRTBACK" restore -i "$T/c" -o "$T/r"
  vb_compare "$(vb_disk_path "$VM" sda)" "$T/r/sda.qcow2"
}

@test "offline: a removed or inconsistent bitmap makes inc fail naming the fix" {
  vb_make_vm "$VM" 64M
  vsh destroy "$VM" >/dev/null
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  qemu-img bitmap --remove "$(vb_disk_path "$VM" sda)" virtback.0
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"bitmap of checkpoint virtback.0 is missing"*"run a full backup"* ]]
  assert_clean "$VM" "$T/b"
  [ "$(cat "$T/b/$VM.cpt")" = '["virtback.0"]' ]
}

# Eight read connections plus the extent map's own: qemu-nbd must take them all.  A client
# past its limit waits for a greeting forever, so a timeout turns a hang into a failure.
@test "offline copy with --connections 8 (the map adds a ninth connection) completes" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x5 0 4M"
  vsh destroy "$VM" >/dev/null
  run timeout -s KILL 120 "$VIRTBACK" backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l copy -n --connections 8
  echo "$output"
  [ "$status" -eq 0 ]
  assert_clean "$VM" "$T/b"
  not pgrep -f "qemu-nbd.*$VM" >/dev/null
  "$VIRTBACK" restore -i "$T/b" -o "$T/r"
  vb_compare "$(vb_disk_path "$VM" sda)" "$T/r/sda.qcow2"
}
