#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# tests/run: alone (it restarts libvirtd)
# Faults during a backup (issue 5): signals, kill -9, a full target, the VM
# destroyed, libvirtd restarted, two runs at once.  Each case ends with no
# job, no socket or scratch file, a DIR that verifies, and a next backup that
# either continues the chain (the restore equals the disk) or says a full is
# needed.

load backup_helpers
load faults_helpers

setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
}

setup () { fl_setup; }
teardown () { fl_teardown; }

vbs () { vbk backup -S "$SCRATCH" "$@"; }

@test "SIGINT and SIGTERM before the job and mid-copy of a full: nothing left, the same DIR takes the full" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x41 0 200M"
  for sig in INT TERM; do
    for point in early mid; do
      echo "== SIG$sig at $point"
      B=$T/b.$sig.$point
      fl_bg full "$B"
      fl_wait_for $point "$B"
      kill -$sig $FL_PID
      fl_reap
      [ "$FL_ST" -eq 1 ]
      [[ "$(fl_error_line)" == *"interrupted"* ]]
      assert_clean "$VM" "$B"
      fl_no_data "$B"
      [ -z "$(fl_cpt "$B")" ]
      [ -z "$(vb_checkpoints "$VM")" ]
    done
  done
  # nothing in the last DIR is a backup: inc asks for a full, and the same
  # command (auto) that was interrupted now makes it there
  vbs -d "$VM" -o "$B" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$output" == *"run a full backup first"* ]]
  vbs -d "$VM" -o "$B" -l auto -n
  [ "$status" -eq 0 ]
  [ -f "$B/sda.full.data" ]
  assert_clean "$VM" "$B"
  fl_verify "$B"
  fl_restore_equals "$B"
}

@test "SIGINT and SIGTERM before the job and mid-copy of an inc: chain unchanged, the next inc continues" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x41 0 16M"
  vbs -d "$VM" -o "$B" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x42 8M 200M"
  for sig in INT TERM; do
    for point in early mid; do
      echo "== SIG$sig at $point"
      fl_bg inc "$B"
      fl_wait_for $point "$B"
      kill -$sig $FL_PID
      fl_reap
      [ "$FL_ST" -eq 1 ]
      [[ "$(fl_error_line)" == *"interrupted"* ]]
      assert_clean "$VM" "$B"
      fl_no_data "$B" "*.inc.*"
      [ "$(fl_cpt "$B")" = '["virtback.0"]' ]
      [ "$(vb_checkpoints "$VM")" = virtback.0 ]
      fl_verify "$B"
    done
  done
  vbs -d "$VM" -o "$B" -l inc -n
  [ "$status" -eq 0 ]
  fl_parent_is "$B/sda.inc.virtback.1.data" virtback.0
  [ "$(fl_cpt "$B")" = '["virtback.0", "virtback.1"]' ]
  assert_clean "$VM" "$B"
  fl_verify "$B"
  fl_restore_equals "$B"
}

@test "kill -9 mid-copy of an inc: a run without -k refuses pointing at -k; inc -k continues, restore equals disk" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x41 0 16M"
  vbs -d "$VM" -o "$B" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x43 4M 200M"
  fl_bg inc "$B"
  fl_wait_for mid "$B"
  kill -9 $FL_PID
  fl_reap
  # the killed run's log got each line as it was logged
  grep -q 'DEBUG backup job started' "$B"/backup.inc.*.log
  vbs -d "$VM" -o "$B" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$(fl_error_line)" == *"-k"* ]]
  [ "$(fl_cpt "$B")" = '["virtback.0"]' ]
  vbs -d "$VM" -o "$B" -l inc -n -k
  [ "$status" -eq 0 ]
  # the killed run's checkpoint never became a parent
  fl_parent_is "$B/sda.inc.virtback.1.data" virtback.0
  [ "$(fl_cpt "$B")" = '["virtback.0", "virtback.1"]' ]
  fl_verify "$B"
  fl_restore_equals "$B"
  # the stale job's socket dir and scratch file are gone too
  assert_clean "$VM" "$B"
}

@test "kill -9 before the job of an inc: the next inc continues, restore equals disk" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x41 0 16M"
  vbs -d "$VM" -o "$B" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x44 1M 100M"
  fl_bg inc "$B"
  fl_wait_for early "$B"
  kill -9 $FL_PID
  fl_reap
  [ "$(fl_cpt "$B")" = '["virtback.0"]' ]
  # the kill may have landed after the job started: then -k is asked for
  vbs -d "$VM" -o "$B" -l inc -n
  if [ "$status" -ne 0 ]; then
    [[ "$(fl_error_line)" == *"-k"* ]]
    vbs -d "$VM" -o "$B" -l inc -n -k
    [ "$status" -eq 0 ]
  fi
  fl_parent_is "$B/sda.inc.virtback.1.data" virtback.0
  [ "$(fl_cpt "$B")" = '["virtback.0", "virtback.1"]' ]
  fl_verify "$B"
  fl_restore_equals "$B"
  assert_clean "$VM" "$B"
}

@test "kill -9 mid-copy of a full: -k clears the stale job, the same DIR takes the full" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x45 0 200M"
  fl_bg full "$B"
  fl_wait_for mid "$B"
  kill -9 $FL_PID
  fl_reap
  vbs -d "$VM" -o "$B" -l auto -n
  [ "$status" -eq 1 ]
  [[ "$(fl_error_line)" == *"-k"* ]]
  vbs -d "$VM" -o "$B" -l auto -n -k
  [ "$status" -eq 0 ]
  [ -f "$B/sda.full.data" ]
  [ "$(fl_cpt "$B")" = '["virtback.0"]' ]
  fl_verify "$B"
  fl_restore_equals "$B"
  assert_clean "$VM" "$B"
}

@test "target full during a full: fails naming the target, nothing left; with space again the full works" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x46 0 64M"
  fl_tmpfs "$T/fs" 16m
  vbs -d "$VM" -o "$T/fs/b" -l full -n
  [ "$status" -eq 1 ]
  [[ "$(fl_error_line)" == *"$T/fs/b"* ]]
  [[ "$(fl_error_line)" == *"full"* ]]
  assert_clean "$VM" "$T/fs/b"
  fl_no_data "$T/fs/b"
  [ -z "$(fl_cpt "$T/fs/b")" ]
  [ -z "$(vb_checkpoints "$VM")" ]
  # another directory works at once
  vbs -d "$VM" -o "$T/other" -l full -n
  [ "$status" -eq 0 ]
  fl_verify "$T/other"
  # freeing space: the same command in the same DIR now works
  mount -o remount,size=128m "$T/fs"
  vbs -d "$VM" -o "$T/fs/b" -l auto -n
  [ "$status" -eq 0 ]
  [ -f "$T/fs/b/sda.full.data" ]
  assert_clean "$VM" "$T/fs/b"
  fl_verify "$T/fs/b"
  fl_restore_equals "$T/fs/b"
}

@test "target full during an inc: .cpt unchanged, after freeing space the inc continues from the last good checkpoint" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x47 0 48M"
  fl_tmpfs "$T/fs" 64m
  vbs -d "$VM" -o "$T/fs/b" -l full -n
  [ "$status" -eq 0 ]
  cpt=$(fl_cpt "$T/fs/b")
  [ "$cpt" = '["virtback.0"]' ]
  vb_guest_io "$VM" sda "write -P 0x48 100M 64M"
  vbs -d "$VM" -o "$T/fs/b" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$(fl_error_line)" == *"$T/fs/b"* ]]
  assert_clean "$VM" "$T/fs/b"
  fl_no_data "$T/fs/b" "*.inc.*"
  [ "$(fl_cpt "$T/fs/b")" = "$cpt" ]
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  fl_verify "$T/fs/b"
  # a second failure in a row changes nothing either
  vb_guest_io "$VM" sda "write -P 0x49 200M 8M"
  vbs -d "$VM" -o "$T/fs/b" -l inc -n
  [ "$status" -eq 1 ]
  [ "$(fl_cpt "$T/fs/b")" = "$cpt" ]
  mount -o remount,size=256m "$T/fs"
  vbs -d "$VM" -o "$T/fs/b" -l inc -n
  [ "$status" -eq 0 ]
  fl_parent_is "$T/fs/b/sda.inc.virtback.1.data" virtback.0
  [ "$(fl_cpt "$T/fs/b")" = '["virtback.0", "virtback.1"]' ]
  assert_clean "$VM" "$T/fs/b"
  fl_verify "$T/fs/b"
  fl_restore_equals "$T/fs/b"
}

@test "VM destroyed during an inc: clear error, nothing left; after start the next inc continues" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x4a 0 16M"
  vbs -d "$VM" -o "$B" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x4b 4M 200M"
  fl_bg inc "$B"
  fl_wait_for mid "$B"
  vsh destroy "$VM"
  fl_reap
  [ "$FL_ST" -eq 1 ]
  # the error says why: the domain is gone, not just a broken connection
  [[ "$(fl_error_line)" == *"not running"* || "$(fl_error_line)" == *"shut"* || "$(fl_error_line)" == *"stopped"* ]]
  assert_clean "$VM" "$B"
  fl_no_data "$B" "*.inc.*"
  [ "$(fl_cpt "$B")" = '["virtback.0"]' ]
  fl_verify "$B"
  vsh start "$VM" >/dev/null
  vbs -d "$VM" -o "$B" -l inc -n
  if [ "$status" -eq 0 ]; then
    fl_parent_is "$B/sda.inc.virtback.1.data" virtback.0
    [ "$(fl_cpt "$B")" = '["virtback.0", "virtback.1"]' ]
  else
    # QEMU's bitmaps may not survive: then a full must be asked for
    [[ "$(fl_error_line)" == *"full"* ]]
    vbs -d "$VM" -o "$T/b2" -l full -n
    [ "$status" -eq 0 ]
    B=$T/b2
  fi
  assert_clean "$VM" "$B"
  fl_verify "$B"
  fl_restore_equals "$B"
}

@test "VM destroyed during a full: nothing left; after start inc asks for a full, which works in the same DIR" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x4c 0 200M"
  fl_bg full "$B"
  fl_wait_for mid "$B"
  vsh destroy "$VM"
  fl_reap
  [ "$FL_ST" -eq 1 ]
  assert_clean "$VM" "$B"
  fl_no_data "$B"
  [ -z "$(fl_cpt "$B")" ]
  vsh start "$VM" >/dev/null
  vbs -d "$VM" -o "$B" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$(fl_error_line)" == *"run a full backup first"* ]]
  vbs -d "$VM" -o "$B" -l auto -n
  [ "$status" -eq 0 ]
  [ "$(fl_cpt "$B")" = '["virtback.0"]' ]
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  assert_clean "$VM" "$B"
  fl_verify "$B"
  fl_restore_equals "$B"
}

# Runs in a mount namespace with a libvirtd of its own (fl_private_libvirt).
# Checks print "FAILED: ..." and the case goes on, to show every problem.
libvirtd_restart_case () {
  local sig st cpt n bad=0
  soft () { echo "FAILED: $*"; bad=1; }
  vb_make_vm "$VM" 512M || fl_fail "make VM"
  vb_guest_io "$VM" sda "write -P 0x4d 0 16M" || fl_fail "guest io"
  "$VIRTBACK" backup -S "$SCRATCH" -d "$VM" -o "$B" -l full -n || fl_fail "full"
  for sig in TERM KILL; do
    echo "== libvirtd killed with SIG$sig during an inc"
    vb_guest_io "$VM" sda "write -P 0x4e 4M 200M" || fl_fail "guest io"
    cpt=$(fl_cpt "$B")
    n=$(echo "$cpt" | tr -cd , | wc -c)
    fl_bg inc "$B"
    fl_wait_for mid "$B" || fl_fail "no copy"
    fl_ns_kill "$FL_NS_LIBVIRTD_PID" $sig
    fl_ns_libvirtd_start || fl_fail "libvirtd restart"
    st=0; wait "$FL_PID" || st=$?
    cat "$T/bg.err"
    echo "run: status $st"
    if [ "$st" -eq 0 ]; then
      [ "$(fl_cpt "$B")" != "$cpt" ] || soft ".cpt not updated by a run that succeeded"
    else
      [ "$(fl_cpt "$B")" = "$cpt" ] || soft ".cpt changed by a run that failed"
      fl_no_data "$B" "*.inc.virtback.$((n + 1))" || soft "a failed run left its data file"
    fi
    # the next run, with -k, ends whatever job is left and continues the chain
    "$VIRTBACK" backup -S "$SCRATCH" -d "$VM" -o "$B" -l inc -n -k || fl_fail "inc -k after the restart"
    fl_parent_is "$B/sda.inc.virtback.$((n + 1)).data" "virtback.$n" || soft "wrong parent"
    vb_no_job "$VM" || soft "job left"
    [ -z "$(ls -A "$SCRATCH")" ] || { ls -laR "$SCRATCH"; soft "scratch dir not empty"; }
    ! ls "$B"/*.partial 2>/dev/null || soft "partial left"
    "$VIRTBACK" verify -i "$B" || soft "verify"
    fl_restore_equals "$B" || fl_fail "restore differs"
  done
  return $bad
}

@test "libvirtd restarted during an inc (SIGTERM, then SIGKILL): no job left after -k, the chain continues" {
  export VM B T SCRATCH VIRTBACK
  export -f libvirtd_restart_case
  run fl_private_libvirt libvirtd_restart_case
  echo "$output"
  [ "$status" -eq 0 ]
  # all that happened in the private libvirtd: the host's never saw the VM
  ! vsh dominfo "$VM" >/dev/null 2>&1
}

@test "two backups of one VM at once: the second is refused at once naming the lock, even with -k" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x4f 0 200M"
  fl_bg full "$B"
  fl_wait_for mid "$B"
  for extra in "" "-k"; do
    vbs -d "$VM" -o "$T/second" -l full -n $extra
    [ "$status" -eq 1 ]
    [[ "$(fl_error_line)" == *"another virtback run is using domain '$VM'"* ]]
    [ ! -e "$T/second/sda.full.data" ]
    kill -0 $FL_PID
  done
  vbs -d "$VM" -o "$B" -l inc -n
  [ "$status" -eq 1 ]
  [[ "$(fl_error_line)" == *"another virtback run"* ]]
  fl_reap
  [ "$FL_ST" -eq 0 ]
  [ "$(fl_cpt "$B")" = '["virtback.0"]' ]
  assert_clean "$VM" "$B"
  fl_verify "$B"
  fl_restore_equals "$B"
}

@test "backups of two different VMs in parallel both succeed" {
  VM2=vbf-$BATS_TEST_NUMBER-b
  vb_make_vm "$VM" 256M
  vb_make_vm "$VM2" 256M
  vb_guest_io "$VM" sda "write -P 0x50 0 100M"
  vb_guest_io "$VM2" sda "write -P 0x51 0 100M"
  fl_bg full "$T/b1"
  p1=$FL_PID
  FL_DOM=$VM2 fl_bg full "$T/b2"
  p2=$FL_PID
  FL_PID=$p1; fl_reap; [ "$FL_ST" -eq 0 ]
  FL_PID=$p2; fl_reap; [ "$FL_ST" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x52 10M 50M"
  vb_guest_io "$VM2" sda "write -P 0x53 20M 50M"
  "$VIRTBACK" backup -S "$SCRATCH" -d "$VM" -o "$T/b1" -l inc -n 2>"$T/inc1.err" &
  p1=$!
  FL_PIDS+=($p1)
  vbs -d "$VM2" -o "$T/b2" -l inc -n
  [ "$status" -eq 0 ]
  wait $p1 || { cat "$T/inc1.err"; false; }
  for d in 1 2; do
    v=$VM; [ $d = 1 ] || v=$VM2
    [ "$(fl_cpt "$T/b$d" "$v")" = '["virtback.0", "virtback.1"]' ]
    assert_clean "$v" "$T/b$d"
    fl_verify "$T/b$d"
    fl_restore_equals "$T/b$d" "$v"
  done
}
