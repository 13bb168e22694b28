#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# A two-disk VM, a full and five incs (data, zero and overlapping writes,
# discards, a disk grown, shrunk and grown again) written by virtback restore with virtback at every point, and with
# virtnbdrestore (the peer) where its limits allow: it ignores zero frames,
# so it is compared only at points with no zeroing since the full backup.

load restore_helpers

VM=vbrst-own

setup_file () {
  rb_load
  export S=$BATS_FILE_TMPDIR/snap B=$BATS_FILE_TMPDIR/b
  mkdir -p "$S"
  vb_make_vm $VM 128M 2
  snap () { vb_snapshot_disk $VM sda "$S/sda.$1.qcow2" && vb_snapshot_disk $VM sdb "$S/sdb.$1.qcow2"; }
  vb_guest_io $VM sda "write -P 0x11 0 4M" "write -P 0x22 64M 2M"
  vb_guest_io $VM sdb "write -P 0x55 1M 3M"
  snap 0 && "$VIRTBACK" backup -d $VM -o "$B" -l full -n
  # point 1: data writes only (compressed inc)
  vb_guest_io $VM sda "write -P 0x33 1M 1M" "write -P 0x34 65M 64K"
  vb_guest_io $VM sdb "write -P 0x56 10M 1M"
  snap 1 && "$VIRTBACK" backup -d $VM -o "$B" -l inc -z -n
  # point 2: zero writes, discards, overlapping writes
  vb_guest_io $VM sda "write -z 64M 512K" "discard 2M 1M" "write -P 0x35 1536K 1M"
  vb_guest_io $VM sdb "write -z 1M 1M" "write -P 0x57 10M 64K"
  snap 2 && "$VIRTBACK" backup -d $VM -o "$B" -l inc -n
  # point 3: a grown disk
  vsh blockresize $VM sda 160M >/dev/null
  vb_guest_io $VM sda "write -P 0x36 150M 1M"
  vb_guest_io $VM sdb "write -P 0x58 20M 1M"
  snap 3 && "$VIRTBACK" backup -d $VM -o "$B" -l inc -n
  # point 4: overlapping writes within one backup
  vb_guest_io $VM sda "write -P 0x40 5M 2M" "write -P 0x41 6M 2M" "write -P 0x42 5632K 64K"
  vb_guest_io $VM sdb "write -P 0x59 30M 512K" "write -P 0x5a 30M 64K"
  snap 4 && "$VIRTBACK" backup -d $VM -o "$B" -l inc -z -n
  # point 5: large zeroing over earlier data
  vb_guest_io $VM sda "write -z 0 8M" "write -P 0x43 7M 64K"
  vb_guest_io $VM sdb "write -z 0 32M"
  snap 5 && "$VIRTBACK" backup -d $VM -o "$B" -l inc -n
  # point 6: sda shrunk below the data written at 150M (point 3)
  vsh blockresize $VM sda 96M >/dev/null
  vb_guest_io $VM sda "write -P 0x44 90M 1M"
  snap 6 && "$VIRTBACK" backup -d $VM -o "$B" -l inc -n
  # point 7: grown again; the range past 96M reads as zeros, not as the old data
  vsh blockresize $VM sda 176M >/dev/null
  vb_guest_io $VM sda "write -P 0x45 170M 64K"
  snap 7 && "$VIRTBACK" backup -d $VM -o "$B" -l inc -n
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
}

teardown_file () {
  vb_destroy_vm $VM
}

@test "virtback's own chain verifies, checksums included" {
  run "$VIRTBACK" verify -i "$B"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"OK: 16 data files of 2 disks"*"16 checksum files matched"* ]]
}

@test "virtback restores its own backups at every point" {
  for p in 0 1 2 3 4 5 6 7; do
    rb_restore_check "$B" virtback.$p "$S/sda.$p.qcow2" "$S/sdb.$p.qcow2"
  done
}

@test "--to after a shrink and a growth leaves none of the target's old content" {
  raw=$BATS_TEST_TMPDIR/target.raw q=$BATS_TEST_TMPDIR/target.qcow2
  dd if=/dev/urandom of="$raw" bs=1M count=176 status=none
  "$VIRTBACK" restore -i "$B" -o "$BATS_TEST_TMPDIR" -d sda --to "$raw"
  qemu-img compare -q -f raw -F qcow2 "$raw" "$S/sda.7.qcow2"
  # A qcow2 file keeps its format without --format; writing it as raw would
  # destroy it and the compare would fail.
  qemu-img create -q -f qcow2 "$q" 176M
  qemu-io -f qcow2 -c "write -P 0x99 0 176M" "$q" >/dev/null
  run "$VIRTBACK" restore -i "$B" -o "$BATS_TEST_TMPDIR/q" -d sda --to "$q" -c
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"(qcow2, "* ]]
  [ "$(qemu-img info --output=json "$q" | jq -r .format)" = qcow2 ]
  rb_compare "$q" "$S/sda.7.qcow2"
  # the adjusted VM definition opens it as qcow2 too
  [ "$(xmllint --xpath "string(//disk[target/@dev='sda']/driver/@type)" \
       "$BATS_TEST_TMPDIR/q/vmconfig.virtback.7.xml")" = qcow2 ]
  # a qcow2 naming a backing file may be a guest's bytes in a raw image:
  # refused unless --format says how to take it
  qemu-img create -q -f qcow2 -b "$raw" -F raw "$BATS_TEST_TMPDIR/b.qcow2" 176M
  run "$VIRTBACK" restore -i "$B" -o "$BATS_TEST_TMPDIR/b" -d sda --to "$BATS_TEST_TMPDIR/b.qcow2"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"backing or data file: give --format qcow2"* ]]
}

@test "virtnbdrestore restores virtback's backups where it can (no zeroing)" {
  for p in 0 1; do
    for d in sda sdb; do
      out=$BATS_TEST_TMPDIR/peer.$p.$d
      virtnbdrestore -i "$B" -o "$out" -d $d --until virtback.$p >"$out.log" 2>&1 ||
        { tail -20 "$out.log"; false; }
      img=$(ls "$out"/*$d*.qcow2 "$out/$d" 2>/dev/null | head -1)
      [ -n "$img" ]
      rb_compare "$S/$d.$p.qcow2" "$img"
    done
  done
}
