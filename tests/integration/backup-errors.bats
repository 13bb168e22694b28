#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# Bad input and interrupted runs: one-line errors, non-zero exits, nothing left behind.

load backup_helpers

setup_file () { bk_setup_file; }
setup () { bk_setup vbe; }
teardown () { bk_teardown; }

one_line () { [ "$(printf '%s\n' "$output" | grep -c 'virtback backup:')" -eq 1 ]; }

@test "wrong options are usage errors (exit 2)" {
  vbk backup $VB_SCRATCH_OPT -o "$T/b"
  [ "$status" -eq 2 ]
  [[ "$output" == *"-d DOMAIN"* ]]
  vbk backup $VB_SCRATCH_OPT -d x -o "$T/b" -l weekly
  [ "$status" -eq 2 ]
  [[ "$output" == *"invalid level"* ]]
  vbk backup $VB_SCRATCH_OPT -d x -o "$T/b" -l inc -t raw
  [ "$status" -eq 2 ]
  vbk backup $VB_SCRATCH_OPT -d x -o "$T/b" -w 0
  [ "$status" -eq 2 ]
  vbk backup $VB_SCRATCH_OPT --help
  [ "$status" -eq 0 ]
  [[ "$output" == *"--checkpoint-prefix"* ]]
}

@test "unknown domain" {
  vbk backup $VB_SCRATCH_OPT -d no-such-vm-here -o "$T/b" -l full
  [ "$status" -eq 1 ]
  one_line
  [[ "$output" == *"does not exist"* ]]
  [ ! -e "$T/b" ]
}

@test "a shut-off domain is backed up offline, with a note saying so" {
  vb_make_vm "$VM" 64M
  vsh destroy "$VM"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l copy -n
  [ "$status" -eq 0 ]
  [[ "$output" == *"is shut off"* ]]
  assert_clean "$VM" "$T/b"
}

@test "inc or diff without a chain asks for a full backup" {
  vb_make_vm "$VM" 64M
  for l in inc diff; do
    vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l $l -n
    [ "$status" -eq 1 ]
    [[ "$output" == *"run a full backup first"* ]]
  done
  [ -z "$(vb_checkpoints "$VM")" ]
}

@test "full or copy into a non-empty directory is refused" {
  vb_make_vm "$VM" 64M
  mkdir -p "$T/b" && echo keep > "$T/b/precious"
  for l in full copy; do
    vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l $l -n
    [ "$status" -eq 1 ]
    [[ "$output" == *"not empty"* ]]
  done
  [ "$(ls "$T/b")" = precious ]
}

@test "qcow2 v2 disks: persistent bitmaps need v3, copy works" {
  vb_make_vm "$VM" 64M 1 compat=0.10
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"persistent bitmaps need qcow2 v3: use -l copy"* ]]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/c" -l copy -n
  [ "$status" -eq 0 ]
}

@test "an active job is refused pointing at -k; -k --force ends another's job and backs up" {
  vb_make_vm "$VM" 64M
  bk_job_dir; d=$BK_JOBDIR
  cat > "$T/job.xml" <<XML
<domainbackup mode='pull'><server transport='unix' socket='$d/s'/>
<disks><disk name='sda' backup='yes' type='file'><scratch file='$d/scratch.qcow2'/></disk></disks></domainbackup>
XML
  vsh backup-begin "$VM" "$T/job.xml"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"-k"* ]]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n -k --force
  [ "$status" -eq 0 ]
  assert_clean "$VM" "$T/b"
}

@test "checkpoints of another prefix are refused and never deleted" {
  vb_make_vm "$VM" 64M
  vsh checkpoint-create-as "$VM" other.1 >/dev/null
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"other.1"* ]]
  [ "$(vb_checkpoints "$VM")" = other.1 ]
}

@test "target not writable: the message names it" {
  vb_make_vm "$VM" 64M
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o /proc/virtback-nope -l full -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"/proc/virtback-nope"* ]]
  assert_clean "$VM"
  [ -z "$(vb_checkpoints "$VM")" ]
}

@test "target full: fails naming the file, leaves no partial file, no checkpoint and no job" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x42 0 64M"
  mkdir -p "$T/small" && mount -t tmpfs -o size=8m tmpfs "$T/small"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/small/b" -l full -n
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"target full"* ]]
  assert_clean "$VM" "$T/small/b"
  not ls "$T/small/b"/*.data 2>/dev/null
  [ -z "$(vb_checkpoints "$VM")" ]
  umount "$T/small"
}

@test "SIGTERM and SIGINT during a backup: job ended, nothing half-written, next run works" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x42 0 256M"
  for sig in TERM INT; do
    rm -rf "$T/b"
    # tiny requests, one in flight: slow enough to be interrupted mid-copy
    "$VIRTBACK" backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n --request-size 4096 --inflight 1 2>"$T/err" &
    pid=$!
    for i in $(seq 100); do ls "$T/b"/*.partial >/dev/null 2>&1 && break; sleep 0.1; done
    kill -$sig $pid
    st=0; wait $pid || st=$?
    [ "$st" -eq 1 ]
    grep -q "interrupted" "$T/err"
    assert_clean "$VM" "$T/b"
    not ls "$T/b"/*.data 2>/dev/null
    [ ! -e "$T/b/$VM.cpt" ]
  done
  rm -rf "$T/b"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
}

@test "kill -9 during an inc: the stale job is cleared with -k, the chain continues" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x42 0 16M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x43 0 256M"
  "$VIRTBACK" backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n --request-size 4096 --inflight 1 2>/dev/null &
  pid=$!
  for i in $(seq 100); do ls "$T/b"/*.partial >/dev/null 2>&1 && break; sleep 0.1; done
  kill -9 $pid
  wait $pid || true
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"-k"* ]]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n -k
  echo "$output"
  [ "$status" -eq 0 ]
  # the killed run's checkpoint never became a parent: the new inc starts at virtback.0
  f="$T/b/sda.inc.virtback.1.data"
  grep -a -q '"parentCheckpoint": "virtback.0"' "$f"
  [ "$(cat "$T/b/$VM.cpt")" = '["virtback.0", "virtback.1"]' ]
  not ls "$T/b"/*.partial 2>/dev/null
  # -k also removed the killed run's private directory
  assert_clean "$VM" "$T/b"
}

@test "a disk added after the full: inc refuses naming it; -x leaves it out" {
  vb_make_vm "$VM" 64M
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  vsh destroy "$VM"
  qemu-img create -q -f qcow2 "$VB_IMG_DIR/$VM-sdb.qcow2" 32M
  vsh attach-disk "$VM" "$VB_IMG_DIR/$VM-sdb.qcow2" sdb --subdriver qcow2 --targetbus sata --config >/dev/null
  vsh start "$VM" >/dev/null
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"disk sdb is not part of checkpoint virtback.0"* ]]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n -x sdb
  [ "$status" -eq 0 ]
}

@test "checkpoints lost by libvirt are redefined from DIR/checkpoints and the chain goes on" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x1 0 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  vsh checkpoint-delete "$VM" virtback.0 --metadata
  [ -z "$(vb_checkpoints "$VM")" ]
  vb_guest_io "$VM" sda "write -P 0x2 2M 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"redefined lost checkpoint virtback.0"* ]]
  grep -a -q '^data 0000000000200000 0000000000100000' "$T/b/sda.inc.virtback.1.data"
}

@test "a lost bitmap makes inc fail naming the fix, with nothing left behind" {
  vb_make_vm "$VM" 64M
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  vsh qemu-monitor-command "$VM" '{"execute":"block-dirty-bitmap-remove","arguments":{"node":"libvirt-1-format","name":"virtback.0"}}'
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"bitmap"*"run a full backup (-l full)"* ]]
  assert_clean "$VM" "$T/b"
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  [ "$(cat "$T/b/$VM.cpt")" = '["virtback.0"]' ]
}

@test "checkpoint metadata lost: a full into a new directory removes the stray bitmaps and succeeds" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x1 0 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l full -n
  [ "$status" -eq 0 ]
  vsh checkpoint-delete "$VM" virtback.0 --metadata
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  [[ "$output" != *"Bitmap already exists"* ]]
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  vb_guest_io "$VM" sda "write -P 0x2 2M 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  grep -a -q '^data 0000000000200000 0000000000100000' "$T/b/sda.inc.virtback.1.data"
}

@test "-l auto with a lost bitmap keeps the old chain in DIR/chain.* and starts a new one" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x1 0 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l auto -n
  [ "$status" -eq 0 ]
  vsh qemu-monitor-command "$VM" '{"execute":"block-dirty-bitmap-remove","arguments":{"node":"libvirt-1-format","name":"virtback.0"}}'
  vb_guest_io "$VM" sda "write -P 0x2 2M 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l auto -n
  [ "$status" -eq 0 ]
  [[ "$output" == *"bitmap of checkpoint virtback.0 is missing"*"starts a new chain"* ]]
  [ -f "$T/b/sda.full.data" ] && [ "$(cat "$T/b/$VM.cpt")" = '["virtback.0"]' ]
  old=$(ls -d "$T/b"/chain.*)
  [ -f "$old/sda.full.data" ] && [ -f "$old/$VM.cpt" ]
  run "$VIRTBACK" verify -i "$old"
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/now.qcow2"
  "$VIRTBACK" restore -i "$T/b" -o "$T/r"
  vb_compare "$T/now.qcow2" "$T/r/sda.qcow2"
  # inc (not auto) with a lost bitmap still fails, naming the fix
  vsh qemu-monitor-command "$VM" '{"execute":"block-dirty-bitmap-remove","arguments":{"node":"libvirt-1-format","name":"virtback.0"}}'
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"run a full backup"* ]]
}
