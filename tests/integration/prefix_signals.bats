#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# Issue 10, D6 and D7: checkpoint prefixes are checked before anything is
# touched, a start that fails half-way takes back what it did (bitmaps,
# checkpoint, job), and SIGHUP and SIGQUIT clean up as SIGINT and SIGTERM do,
# in backup and in restore.

load backup_helpers
load faults_helpers

setup_file () { bk_setup_file; }
setup () {
  bk_setup vbq
  FL_PIDS=()
  HOLD_PID=
}
teardown () {
  local p
  [ ! -d "$(cp_meta_dir)" ] || chattr -i "$(cp_meta_dir)"
  for p in "${FL_PIDS[@]}" $HOLD_PID; do
    [ "$(awk '{print $4}' /proc/$p/stat 2>/dev/null)" = "$BASHPID" ] && kill -9 "$p"
  done
  for p in "${FL_PIDS[@]}" $HOLD_PID; do wait "$p" 2>/dev/null || true; done
  bk_teardown
}

vbs () { vbk backup -S "$SCRATCH" "$@"; }

# Names of the persistent bitmaps in a qcow2 image (none: empty).
bitmaps () {
  qemu-img info -U --output=json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin).get("format-specific", {}).get("data", {})
print(" ".join(b["name"] for b in d.get("bitmaps", [])))'
}

@test "bad checkpoint prefixes are refused in one line before anything is touched, running or shut off" {
  vb_make_vm "$VM" 64M
  for state in running off; do
    [ $state = running ] || vsh destroy "$VM" >/dev/null
    for p in "a'b" 'x<y' 'a&b' 'p]]>' '.hidden' 'a/b' 'a b' ''; do
      echo "== $state: prefix [$p]"
      vbs -d "$VM" -o "$T/b" -l full -n --checkpoint-prefix "$p"
      [ "$status" -eq 2 ]
      [ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
      [[ "$output" == *"invalid checkpoint prefix"*"letters, digits"* ]]
      [ ! -e "$T/b" ]
      [ -z "$(vb_checkpoints "$VM")" ]
      [ -z "$(bitmaps "$(vb_disk_path "$VM" sda)")" ]
    done
  done
}

@test "a prefix with a dot inside makes a chain, running and shut off, that restores" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x11 0 2M"
  vbs -d "$VM" -o "$T/b" -l full -n --checkpoint-prefix my.chain-1
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x22 4M 1M"
  vbs -d "$VM" -o "$T/b" -l inc -n --checkpoint-prefix my.chain-1
  [ "$status" -eq 0 ]
  vsh destroy "$VM" >/dev/null
  qemu-io -f qcow2 -c "write -P 0x33 8M 1M" "$(vb_disk_path "$VM" sda)" >/dev/null
  vbs -d "$VM" -o "$T/b" -l inc -n --checkpoint-prefix my.chain-1
  [ "$status" -eq 0 ]
  [ "$(vb_checkpoints "$VM" | tr '\n' ' ')" = "my.chain-1.0 my.chain-1.1 my.chain-1.2 " ]
  [ -f "$T/b/sda.inc.my.chain-1.2.data" ]
  # the default prefix sees another prefix's checkpoints and refuses
  vbs -d "$VM" -o "$T/c" -l full -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"not made with prefix 'virtback'"* ]]
  run "$VIRTBACK" verify -i "$T/b"
  [ "$status" -eq 0 ]
  "$VIRTBACK" restore -i "$T/b" -o "$T/r"
  vb_compare "$(vb_disk_path "$VM" sda)" "$T/r/sda.qcow2"
}

# qemu-nbd holds the image with a write lock: qemu-img bitmap --add fails on it.
hold_image () {
  qemu-nbd -f qcow2 -k "$T/hold.sock" "$1" &
  HOLD_PID=$!
  local i
  for i in $(seq 100); do [ -S "$T/hold.sock" ] && return 0; sleep 0.05; done
  echo "qemu-nbd did not start"
  return 1
}
release_image () { kill "$HOLD_PID"; wait "$HOLD_PID" || true; HOLD_PID=; }

@test "shut off: a full and an inc that fail at the second disk leave no bitmap in the first, and the chain goes on" {
  vb_make_vm "$VM" 64M 2
  vsh destroy "$VM" >/dev/null
  sda=$(vb_disk_path "$VM" sda)
  sdb=$(vb_disk_path "$VM" sdb)
  hold_image "$sdb"
  vbs -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 1 ]
  [[ "$output" == *sdb* ]]
  [ -z "$(bitmaps "$sda")" ]
  [ -z "$(bitmaps "$sdb")" ]
  [ -z "$(vb_checkpoints "$VM")" ]
  assert_clean "$VM" "$T/b"
  release_image
  vbs -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  [ "$(bitmaps "$sda")" = virtback.0 ]
  qemu-io -f qcow2 -c "write -P 0x44 1M 1M" "$sda" >/dev/null
  hold_image "$sdb"
  vbs -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 1 ]
  [ "$(bitmaps "$sda")" = virtback.0 ]
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  assert_clean "$VM" "$T/b"
  release_image
  vbs -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  [ "$(bitmaps "$sda")" = "virtback.0 virtback.1" ]
  "$VIRTBACK" restore -i "$T/b" -o "$T/r"
  vb_compare "$sda" "$T/r/sda.qcow2"
  vb_compare "$sdb" "$T/r/sdb.qcow2"
}

# Where libvirt keeps the domain's checkpoint metadata: made immutable, the
# redefinition of an offline checkpoint fails ("unable to save metadata").
cp_meta_dir () { echo "/var/lib/libvirt/qemu/checkpoint/$VM"; }

@test "shut off: a failed redefinition of the checkpoint metadata removes the bitmaps of every disk" {
  vb_make_vm "$VM" 64M 2
  vsh destroy "$VM" >/dev/null
  sda=$(vb_disk_path "$VM" sda)
  sdb=$(vb_disk_path "$VM" sdb)
  mkdir -p "$(cp_meta_dir)"
  chattr +i "$(cp_meta_dir)"
  vbs -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"redefine checkpoint 'virtback.0'"* ]]
  [ -z "$(bitmaps "$sda")" ]
  [ -z "$(bitmaps "$sdb")" ]
  [ -z "$(vb_checkpoints "$VM")" ]
  assert_clean "$VM" "$T/b"
  chattr -i "$(cp_meta_dir)"
  vbs -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  [ "$(bitmaps "$sda")" = virtback.0 ]
  [ "$(bitmaps "$sdb")" = virtback.0 ]
}

# libvirt makes the job and the checkpoint in one QEMU transaction; a start
# that fails in it leaves neither, and the chain goes on.
@test "running: a start that QEMU refuses (a stray bitmap of the new name) leaves no job and no checkpoint" {
  vb_make_vm "$VM" 64M
  vbs -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  node=$(vsh qemu-monitor-command "$VM" '{"execute":"query-block"}' |
         python3 -c 'import json,sys; print(json.load(sys.stdin)["return"][0]["inserted"]["node-name"])')
  bm () { vsh qemu-monitor-command "$VM" "{\"execute\":\"block-dirty-bitmap-$1\",\"arguments\":{\"node\":\"$node\",\"name\":\"virtback.1\"}}" >/dev/null; }
  bm add
  vb_guest_io "$VM" sda "write -P 0x55 1M 1M"
  vbs -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"Bitmap already exists"* ]]
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  [ "$(fl_cpt "$T/b")" = '["virtback.0"]' ]
  assert_clean "$VM" "$T/b"
  fl_no_data "$T/b" "*.inc.*"
  bm remove
  vbs -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  fl_restore_equals "$T/b"
}

@test "SIGHUP and SIGQUIT mid-copy of a full and of an inc: nothing left, the message says why" {
  vb_make_vm "$VM" 1G
  for sig in HUP QUIT; do
    echo "== SIG$sig mid-copy of a full"
    vb_guest_io "$VM" sda "write -P 0x41 0 256M"
    fl_bg full "$T/b.$sig"
    fl_wait_for mid "$T/b.$sig"
    kill -$sig $FL_PID
    fl_reap
    [ "$FL_ST" -eq 1 ]
    [[ "$(fl_error_line)" == *"interrupted by a signal"* ]]
    assert_clean "$VM" "$T/b.$sig"
    fl_no_data "$T/b.$sig"
    [ -z "$(fl_cpt "$T/b.$sig")" ]
    [ -z "$(vb_checkpoints "$VM")" ]

    echo "== SIG$sig mid-copy of an inc"
    rm -rf "$T/chain"
    vbs -d "$VM" -o "$T/chain" -l full -n
    [ "$status" -eq 0 ]
    vb_guest_io "$VM" sda "write -P 0x42 0 200M"
    fl_bg inc "$T/chain"
    fl_wait_for mid "$T/chain"
    kill -$sig $FL_PID
    fl_reap
    [ "$FL_ST" -eq 1 ]
    [[ "$(fl_error_line)" == *"interrupted by a signal"* ]]
    assert_clean "$VM" "$T/chain"
    fl_no_data "$T/chain" "*.inc.*"
    [ "$(fl_cpt "$T/chain")" = '["virtback.0"]' ]
    [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  done
  # the interrupted inc's chain goes on
  vbs -d "$VM" -o "$T/chain" -l inc -n
  [ "$status" -eq 0 ]
  fl_parent_is "$T/chain/sda.inc.virtback.1.data" virtback.0
  assert_clean "$VM" "$T/chain"
  fl_restore_equals "$T/chain"
}

@test "SIGHUP and SIGQUIT mid-restore: no partial image, no server, the message says why" {
  vb_make_vm "$VM" 1G
  vb_guest_io "$VM" sda "write -P 0x41 0 900M"
  vbs -d "$VM" -o "$T/b" -l copy -n
  [ "$status" -eq 0 ]
  mkdir "$T/tmp"
  for sig in HUP QUIT; do
    echo "== SIG$sig mid-restore"
    out=$T/r.$sig
    TMPDIR=$T/tmp "$VIRTBACK" restore -i "$T/b" -o "$out" 2>"$T/bg.err" &
    FL_PID=$!
    FL_PIDS+=("$FL_PID")
    for i in $(seq 600); do
      s=$(stat -c %s "$out"/*.partial 2>/dev/null | head -1)
      [ "${s:-0}" -ge 33554432 ] && break
      kill -0 $FL_PID || break
      sleep 0.05
    done
    kill -$sig $FL_PID
    fl_reap
    [ "$FL_ST" -eq 1 ]
    [[ "$(printf '%s\n' "$output" | grep '^virtback restore:')" == *"interrupted"* ]]
    [ -z "$(ls -A "$out" 2>/dev/null)" ]
    [ -z "$(ls -A "$T/tmp")" ]
    not pgrep -f "qemu-nbd.*$out" >/dev/null
  done
}
