#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# Backups written by the real virtnbdbackup (Debian's 1.9.15) restore with
# virtback to images identical to the VM's disks at each point in time.

load restore_helpers

VM=vbrst-compat

# One VM, three backup directories made by the peer:
#   $B: full, then four incs (data, zero writes, discards, overlapping writes,
#       a disk grown with blockresize), snapshots of both disks at each point;
#   $C: a compressed copy (-z);
#   $Z: a compressed full and inc (-z), on a new chain.
setup_file () {
  rb_load
  export S=$BATS_FILE_TMPDIR/snap B=$BATS_FILE_TMPDIR/b C=$BATS_FILE_TMPDIR/c Z=$BATS_FILE_TMPDIR/z
  mkdir -p "$S"
  vb_make_vm $VM 128M 2
  snap () { vb_snapshot_disk $VM sda "$S/sda.$1.qcow2" && vb_snapshot_disk $VM sdb "$S/sdb.$1.qcow2"; }

  vb_guest_io $VM sda "write -P 0x11 0 4M" "write -P 0x22 64M 2M" "write -P 0x23 127M 1M"
  vb_guest_io $VM sdb "write -P 0x55 1M 3M"
  snap 0 && rb_peer_backup $VM full "$B"
  vb_guest_io $VM sda "write -P 0x33 1M 1M" "write -z 64M 512K" "discard 2M 1M"
  vb_guest_io $VM sdb "write -z 2M 64K" "write -P 0x66 100M 1M"
  snap 1 && rb_peer_backup $VM inc "$B"
  vb_guest_io $VM sda "write -P 0x44 1536K 1M" "write -P 0x45 100M 3M" "write -z 101M 64K"
  snap 2 && rb_peer_backup $VM inc "$B"
  vsh blockresize $VM sda 192M >/dev/null
  vb_guest_io $VM sda "write -P 0x77 150M 2M" "write -P 0x78 127M 2M"
  snap 3 && rb_peer_backup $VM inc "$B"
  vb_guest_io $VM sda "write -z 0 1M" "write -P 0x99 3M 64K"
  vb_guest_io $VM sdb "write -P 0x67 100M 64K"
  snap 4 && rb_peer_backup $VM inc "$B"
  rb_peer_backup $VM copy "$C" -z
  rb_peer_backup $VM full "$Z" -z
  vb_guest_io $VM sda "write -P 0xaa 10M 5M" "write -z 100M 1M"
  snap z1 && rb_peer_backup $VM inc "$Z" -z
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
}

teardown_file () {
  vb_destroy_vm $VM
}

@test "the peer's chain verifies" {
  run "$VIRTBACK" verify -i "$B"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"OK: 10 data files of 2 disks"* ]]
}

@test "every point of a full + 4 inc chain restores identical to the disks" {
  for p in 0 1 2 3 4; do
    rb_restore_check "$B" virtnbdbackup.$p "$S/sda.$p.qcow2" "$S/sdb.$p.qcow2"
  done
}

@test "without --until the newest point is restored, grown disk included" {
  out=$BATS_TEST_TMPDIR/o
  run "$VIRTBACK" restore -i "$B" -o "$out"
  echo "$output"
  [ "$status" -eq 0 ]
  rb_compare "$S/sda.4.qcow2" "$out/sda.qcow2"
  rb_compare "$S/sdb.4.qcow2" "$out/sdb.qcow2"
  [ "$(qemu-img info --output=json "$out/sda.qcow2" | jq '."virtual-size"')" = $((192 << 20)) ]
}

@test "a compressed copy restores identical" {
  run "$VIRTBACK" verify -i "$C"
  [ "$status" -eq 0 ]
  out=$BATS_TEST_TMPDIR/o
  "$VIRTBACK" restore -i "$C" -o "$out"
  rb_compare "$S/sda.4.qcow2" "$out/sda.qcow2"
  rb_compare "$S/sdb.4.qcow2" "$out/sdb.qcow2"
}

@test "a compressed full + inc restores identical at both points" {
  run "$VIRTBACK" verify -i "$Z"
  echo "$output"
  [ "$status" -eq 0 ]
  out=$BATS_TEST_TMPDIR/o0
  "$VIRTBACK" restore -i "$Z" -o "$out" --until virtnbdbackup.0
  rb_compare "$S/sda.4.qcow2" "$out/sda.qcow2"
  rb_compare "$S/sdb.4.qcow2" "$out/sdb.qcow2"
  out=$BATS_TEST_TMPDIR/o1
  "$VIRTBACK" restore -i "$Z" -o "$out" --until virtnbdbackup.1
  rb_compare "$S/sda.z1.qcow2" "$out/sda.qcow2"
  rb_compare "$S/sdb.z1.qcow2" "$out/sdb.qcow2"
}

@test "the qcow2 options of the source are kept" {
  out=$BATS_TEST_TMPDIR/o
  "$VIRTBACK" restore -i "$B" -o "$out" -d sdb --until virtnbdbackup.1
  info=$(qemu-img info --output=json "$out/sdb.qcow2")
  src=$(qemu-img info -U --output=json "$(vb_disk_path $VM sdb)")
  [ "$(jq '."cluster-size"' <<<"$info")" = "$(jq '."cluster-size"' <<<"$src")" ]
  [ "$(jq -r '."format-specific".data.compat' <<<"$info")" = 1.1 ]
}
