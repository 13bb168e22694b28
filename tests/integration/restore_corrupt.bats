#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# A damaged backup makes verify and restore fail, naming the file and the
# byte offset, and restore leaves no image behind.

load restore_helpers

VM=vbrst-corrupt

# $B: full + 2 incs (uncompressed, with .chksum files as virtnbdbackup 2.x
# writes them); $Z: a compressed full.
setup_file () {
  rb_load
  export B=$BATS_FILE_TMPDIR/b Z=$BATS_FILE_TMPDIR/z
  vb_make_vm $VM 64M
  vb_guest_io $VM sda "write -P 0x11 0 2M" "write -P 0x22 32M 1M"
  rb_peer_backup $VM full "$B"
  vb_guest_io $VM sda "write -P 0x33 1M 1M"
  rb_peer_backup $VM inc "$B"
  vb_guest_io $VM sda "write -P 0x44 40M 2M"
  rb_peer_backup $VM inc "$B"
  rb_add_chksums "$B"
  rb_peer_backup $VM full "$Z" -z
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  D=$BATS_TEST_TMPDIR/d
  OUT=$BATS_TEST_TMPDIR/out
  rb_private_tmpdir
}

teardown_file () {
  vb_destroy_vm $VM
}

# Both commands fail, their messages name FILE (and an offset), and no
# image is left in OUT.
both_fail () {
  local file=$1
  run "$VIRTBACK" verify -i "$D"
  echo "verify: $output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"$file"*offset* ]]
  [[ "$output" != *"OK:"* ]]
  run "$VIRTBACK" restore -i "$D" -o "$OUT"
  echo "restore: $output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"virtback restore: "*"$file"*offset* ]]
  [[ "$output" != *"restored to"* ]]
  rb_no_image "$OUT"
}

@test "the intact backups verify and restore" {
  run "$VIRTBACK" verify -i "$B"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"3 checksum files matched"* ]]
  run "$VIRTBACK" verify -i "$Z"
  [ "$status" -eq 0 ]
}

@test "a flipped byte in a frame header" {
  cp -a "$B" "$D"
  f=$D/sda.inc.virtnbdbackup.2.data
  rm "$f.chksum"                         # the header check alone must catch it
  off=$(rb_frame_at "$f" data $((40 << 20)))
  rb_flip "$f" $((off + 7))              # a hex digit of the start offset
  both_fail sda.inc.virtnbdbackup.2.data
}

@test "a flipped byte in uncompressed payload (caught by .chksum)" {
  cp -a "$B" "$D"
  f=$D/sda.inc.virtnbdbackup.1.data
  off=$(rb_frame_at "$f" data $((1 << 20)))
  rb_flip "$f" $((off + 40 + 4096))
  both_fail sda.inc.virtnbdbackup.1.data
}

@test "a flipped byte in compressed payload" {
  cp -a "$Z" "$D"
  f=$D/sda.full.data
  off=$(rb_frame_at "$f" data 0)
  rb_flip "$f" $((off + 40 + 200))
  both_fail sda.full.data
}

@test "a flipped byte in the meta JSON" {
  cp -a "$B" "$D"
  rm "$D"/*.chksum
  rb_flip "$D/sda.inc.virtnbdbackup.1.data" 60
  both_fail sda.inc.virtnbdbackup.1.data
}

@test "a truncated file" {
  cp -a "$B" "$D"
  rm "$D"/*.chksum
  truncate -s -100 "$D/sda.inc.virtnbdbackup.2.data"
  both_fail sda.inc.virtnbdbackup.2.data
}

@test "a missing incremental" {
  cp -a "$B" "$D"
  rm "$D/sda.inc.virtnbdbackup.1.data"
  both_fail sda.inc.virtnbdbackup.2.data
  [[ "$output" == *"missing"* ]]
}

@test "a reordered chain: data files swapped" {
  cp -a "$B" "$D"
  rm "$D"/*.chksum
  mv "$D/sda.inc.virtnbdbackup.1.data" "$D/x"
  mv "$D/sda.inc.virtnbdbackup.2.data" "$D/sda.inc.virtnbdbackup.1.data"
  mv "$D/x" "$D/sda.inc.virtnbdbackup.2.data"
  both_fail sda.inc.virtnbdbackup.1.data
  [[ "$output" == *"reordered"* ]]
}

@test "a reordered chain: .cpt out of order" {
  cp -a "$B" "$D"
  printf '["virtnbdbackup.0", "virtnbdbackup.2", "virtnbdbackup.1"]' > "$D/$VM.cpt"
  both_fail sda.inc.virtnbdbackup.1.data
  [[ "$output" == *"reordered"* ]]
}

@test "--keep-partial keeps the failed image under a .partial name only" {
  cp -a "$Z" "$D"
  off=$(rb_frame_at "$D/sda.full.data" data 0)
  rb_flip "$D/sda.full.data" $((off + 40 + 200))
  run "$VIRTBACK" restore -i "$D" -o "$OUT" --keep-partial
  echo "$output"
  [ "$status" -eq 1 ]
  [ -f "$OUT/sda.qcow2.partial" ]
  [ ! -e "$OUT/sda.qcow2" ]
}

@test "an unknown restore point fails before writing anything" {
  run "$VIRTBACK" restore -i "$B" -o "$OUT" --until virtnbdbackup.7
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"no restore point 'virtnbdbackup.7'"* ]]
  rb_no_image "$OUT"
}
