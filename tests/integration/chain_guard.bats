#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# An incremental never extends a chain it cannot prove: the domain's
# checkpoint must be the very one the directory's chain ends with (not
# another backup's of the same name), and every file the new one depends on
# must be there and whole.  -l auto sets such a chain aside and starts anew;
# verify warns when the next incremental would be refused.

load backup_helpers

setup_file () { bk_setup_file; }
setup () { bk_setup vbg; }
teardown () { bk_teardown; }

one_line () { [ "$(printf '%s\n' "$output" | grep -c 'virtback backup:')" -eq 1 ]; }

# Every name and checksum under DIR, to show that a refused run wrote nothing.
tree_sum () { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r md5sum; find . | sort); }

created () { grep -o '<creationTime>[0-9]*' | cut -d'>' -f2; }

# Full into A, a write, full into B (which replaces checkpoint virtback.0), a write.
two_fulls () {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x11 0 64k"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0xab 10M 64k"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0xcd 20M 64k"
}

@test "D1: an inc on another directory's checkpoint of the same name is refused, nothing written" {
  two_fulls
  # the full into B made a new virtback.0, distinct from A's even within one second
  [ "$(created < "$T/a/checkpoints/virtback.0.xml")" != "$(created < "$T/b/checkpoints/virtback.0.xml")" ]
  before=$(tree_sum "$T/a")
  for l in inc diff; do
    vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l $l -n
    [ "$status" -eq 1 ]
    one_line
    [[ "$output" == *"checkpoint virtback.0 of domain '$VM' was made by another backup"* ]]
    [[ "$output" == *"-l auto"*"full backup into a new directory"* ]]
    [ "$(tree_sum "$T/a")" = "$before" ]
    assert_clean "$VM" "$T/a"
    [ "$(vb_checkpoints "$VM")" = virtback.0 ]
    [ "$(vsh checkpoint-dumpxml "$VM" virtback.0 | created)" = "$(created < "$T/b/checkpoints/virtback.0.xml")" ]
  done
  # B's chain goes on
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
}

@test "D1: -l auto sets the chain aside and starts a new one; its restore has every write" {
  two_fulls
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l auto -n
  [ "$status" -eq 0 ]
  [[ "$output" == *"was made by another backup"*"starts a new chain"* ]]
  [ -f "$T/a/sda.full.data" ] && [ "$(cat "$T/a/$VM.cpt")" = '["virtback.0"]' ]
  old=$(ls -d "$T/a"/chain.*)
  [ -f "$old/sda.full.data" ] && [ -f "$old/$VM.cpt" ]
  vb_snapshot_disk "$VM" sda "$T/now.qcow2"
  "$VIRTBACK" restore -i "$T/a" -o "$T/r"
  vb_compare "$T/now.qcow2" "$T/r/sda.qcow2"
  # and the new chain continues with an inc
  vb_guest_io "$VM" sda "write -P 0xef 30M 64k"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l auto -n
  [ "$status" -eq 0 ]
  [ -f "$T/a/sda.inc.virtback.1.data" ]
  assert_clean "$VM" "$T/a"
}

@test "D1: verify warns when the newest checkpoint is no longer the domain's, exit status unchanged" {
  two_fulls
  run "$VIRTBACK" verify -i "$T/a"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == "OK: "* ]]
  [[ "$output" == *"warning: checkpoint virtback.0 of domain '$VM' is no longer the one"*"-l auto"* ]]
  run "$VIRTBACK" verify -i "$T/b"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" != *"warning"* ]]
  [[ "$output" != *"could not check"* ]]
  # libvirt unreachable: said so, not a failure
  run "$VIRTBACK" verify -i "$T/a" -U qemu+unix:///system?socket=/nonexistent/sock
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"could not check"* ]]
}

@test "D1: without the saved checkpoint XML an inc cannot prove its parent and is refused" {
  vb_make_vm "$VM" 64M
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l full -n
  [ "$status" -eq 0 ]
  mv "$T/a/checkpoints/virtback.0.xml" "$T/saved.xml"
  before=$(tree_sum "$T/a")
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l inc -n
  [ "$status" -eq 1 ]
  one_line
  [[ "$output" == *"virtback.0.xml"*"-C"* ]]
  [ "$(tree_sum "$T/a")" = "$before" ]
  assert_clean "$VM" "$T/a"
  # -C pointing at the saved XML proves it
  mkdir "$T/cp" && mv "$T/saved.xml" "$T/cp/virtback.0.xml"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l inc -n -C "$T/cp"
  [ "$status" -eq 0 ]
}

@test "D1: the peer's chain continues with --checkpoint-prefix virtnbdbackup until the peer starts another" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x11 0 1M"
  virtnbdbackup -d "$VM" -l full -o "$T/p" >/dev/null 2>&1
  vb_guest_io "$VM" sda "write -P 0x21 1M 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/p" -l inc -n --checkpoint-prefix virtnbdbackup
  [ "$status" -eq 0 ]
  [ -f "$T/p/sda.inc.virtnbdbackup.1.data" ]
  virtnbdbackup -d "$VM" -l full -o "$T/q" >/dev/null 2>&1
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/p" -l inc -n --checkpoint-prefix virtnbdbackup
  [ "$status" -eq 1 ]
  [[ "$output" == *"was made by another backup"* ]]
}

# Full, inc, inc of a 64M disk; copies of the directory to damage.
three_files () {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x11 0 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x22 4M 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x33 8M 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x44 12M 1M"
}

# refused DIR FILE: inc and diff into DIR are refused naming FILE; nothing changes.
refused () {
  local before
  before=$(tree_sum "$1")
  for l in inc diff; do
    vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$1" -l $l -n
    [ "$status" -eq 1 ]
    one_line
    [[ "$output" == *"$2"* ]]
    [[ "$output" == *"-l auto"* ]]
    [ "$(tree_sum "$1")" = "$before" ]
    assert_clean "$VM" "$1"
    [ "$(vb_checkpoints "$VM" | tr '\n' ' ')" = "virtback.0 virtback.1 virtback.2 " ]
  done
}

@test "D3: a missing, damaged or truncated file of the chain stops inc and diff before anything is written" {
  three_files
  cp -a "$T/b" "$T/missing"; rm "$T/missing/sda.inc.virtback.2.data"*
  refused "$T/missing" sda.inc.virtback.2.data
  cp -a "$T/b" "$T/damaged"
  head -c "$(stat -c %s "$T/b/sda.inc.virtback.1.data")" /dev/urandom > "$T/damaged/sda.inc.virtback.1.data"
  refused "$T/damaged" sda.inc.virtback.1.data
  cp -a "$T/b" "$T/short"
  truncate -s -100 "$T/short/sda.inc.virtback.1.data"
  refused "$T/short" sda.inc.virtback.1.data
  # the intact directory goes on
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
}

@test "D3: -l auto sets a chain with a missing file aside and starts a new one" {
  three_files
  rm "$T/b/sda.inc.virtback.2.data"*
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l auto -n
  [ "$status" -eq 0 ]
  [[ "$output" == *"sda.inc.virtback.2.data"*"starts a new chain"* ]]
  [ -f "$T/b/sda.full.data" ] && [ "$(cat "$T/b/$VM.cpt")" = '["virtback.0"]' ]
  not ls "$T/b"/sda.inc.* 2>/dev/null
  old=$(ls -d "$T/b"/chain.*)
  [ -f "$old/sda.inc.virtback.1.data" ]
  vb_snapshot_disk "$VM" sda "$T/now.qcow2"
  "$VIRTBACK" restore -i "$T/b" -o "$T/r"
  vb_compare "$T/now.qcow2" "$T/r/sda.qcow2"
  assert_clean "$VM" "$T/b"
}
