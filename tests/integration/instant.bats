#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# virtback restore --instant: a backup point runs as a new VM at once, on
# qcow2 overlays backed by the map; the data moves in with a block pull
# while "guest" writes (HMP qemu-io) go on; at the end the VM runs with no
# backing left, each disk equals the point plus those writes, and nothing
# of the run is left.  kill -9 mid-move leaves the VM running, --resume
# finishes.  The original VM runs untouched throughout.

load restore_helpers
load backup_helpers

VM=vbi

setup_file () {
  rb_load
  export B=$BATS_FILE_TMPDIR/b
  vb_make_vm $VM 64M 2
  vb_guest_io $VM sda "write -P 0x11 0 4M" "write -P 0x12 40M 4M"
  vb_guest_io $VM sdb "write -P 0x13 8M 6M"
  "$VIRTBACK" backup -d $VM -o "$B" -l full -n >/dev/null 2>&1
  vb_guest_io $VM sda "write -P 0x21 2M 4M" "write -z 40M 1M"
  vb_guest_io $VM sdb "write -P 0x22 20M 4M"
  "$VIRTBACK" backup -d $VM -o "$B" -l inc -n -z >/dev/null 2>&1
  export ORIG_ID=$(vsh domid $VM)
}

teardown_file () {
  vb_destroy_vm $VM
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  NEW=$VM-new-$BATS_TEST_NUMBER
  O=/var/tmp/vbi-out-$BATS_TEST_NUMBER
  R=$BATS_TEST_TMPDIR/ref
  P=$BATS_TEST_TMPDIR/p
  rm -rf "$O"
}

# The run directories this test's runs made (other files run at the same
# time and have their own).
own_dirs () {
  find /var/tmp -maxdepth 1 \( -name 'virtback-instant.*' -o -name 'virtback-map.*' \) \
    -newer "$BATS_TEST_TMPDIR" "$@" 2>/dev/null
}

teardown () {
  [ -s "$P/pid" ] && kill -9 "$(cat "$P/pid")" 2>/dev/null || true
  vsh destroy "$NEW" >/dev/null 2>&1 || true
  vsh undefine "$NEW" >/dev/null 2>&1 || true
  for d in /var/tmp/virtback-map.* ; do
    [ -s "$d/nbdkit.pid" ] && grep -q "$B" /proc/"$(cat "$d/nbdkit.pid")"/cmdline 2>/dev/null &&
      { kill "$(cat "$d/nbdkit.pid")"; sleep 1; rm -rf "$d"; }
  done
  rm -rf "$O"
  # A socket directory only a failed run leaves (the test then fails already).
  own_dirs -name 'virtback-instant.*' -exec rm -rf {} +
  # The original VM is untouched: the very same QEMU process still runs.
  [ "$(vsh domid $VM)" = "$ORIG_ID" ]
}

# The reference: the point restored the plain way, plus the same writes.
reference () {
  "$VIRTBACK" restore -i "$B" -o "$R" >/dev/null
}
ref_io () {
  local img=$1 out
  shift
  for c in "$@"; do
    out=$(qemu-io -f qcow2 -c "$c" "$img" 2>&1) || { echo "$out"; return 1; }
  done
}

# Both writes into the running new VM and into the reference.
both_io () {
  local d=$1
  shift
  vb_guest_io "$NEW" "$d" "$@"
  ref_io "$R/$d.qcow2" "$@"
}

# No backing anywhere, VM running, each disk equal to its reference, no
# map, no socket directory, no instant.json, no job.
assert_done () {
  [ "$(vsh domstate "$NEW")" = running ]
  ! vsh dumpxml "$NEW" | grep -q "protocol='nbd'"
  for d in sda sdb; do
    ! qemu-img info -U "$O/$d.qcow2" | grep -q 'backing file'
    vb_guest_io "$NEW" "$d"
    rb_compare "$R/$d.qcow2" "$O/$d.qcow2"
  done
  [ ! -e "$O/instant.json" ]
  [ -z "$(own_dirs -name 'virtback-instant.*')" ]
  ! pgrep -f "nbdkit.*dir=$B" >/dev/null
  vb_no_job "$NEW"
  [ -z "$(vsh blockjob "$NEW" sda 2>&1 | grep -v 'No current')" ]
}

# wait_running NAME: the new VM is up (the instant run printed so).
wait_running () {
  local i
  for i in $(seq 300); do
    grep -q "is running" "$P/out" 2>/dev/null && return 0
    [ -s "$P/rc" ] && break
    sleep 0.1
  done
  cat "$P/out"
  return 1
}

@test "two disks: the VM runs at once, guest writes during the move stay, no backing at the end" {
  reference
  vb_bg_start "$P" "$VIRTBACK" restore --instant -i "$B" -o "$O" -N "$NEW" --bandwidth 2M
  wait_running
  [ "$(vsh domstate "$NEW")" = running ]
  # The move is still on: the overlays are backed by the backup.
  vsh dumpxml "$NEW" | grep -q "protocol='nbd'"
  qemu-img info -U "$O/sda.qcow2" | grep -q 'backing file: nbd+unix'
  [ "$(stat -c '%a %G' "$(own_dirs -name 'virtback-instant.*')")" = "770 libvirt-qemu" ]
  both_io sda "write -P 0x55 1M 8k" "write -P 0x56 41M 64k"
  both_io sdb "write -P 0x57 9M 4k" "write -z 21M 64k"
  [ "$(vb_bg_rc "$P")" -eq 0 ] || { cat "$P/out"; false; }
  cat "$P/out"
  grep -q "moved" "$P/out"
  grep -q "^restored domain $NEW: it runs on its own disks" "$P/out"
  assert_done
}

@test "kill -9 mid-move: the VM keeps running and reading; --resume finishes and says so" {
  reference
  vb_bg_start "$P" "$VIRTBACK" restore --instant -i "$B" -o "$O" -N "$NEW" --bandwidth 1M
  wait_running
  both_io sda "write -P 0x65 3M 4k"
  kill -9 "$(cat "$P/pid")"
  vb_bg_rc "$P"
  sleep 1
  # Still mid-move, still running, still reading what is not moved yet.
  [ "$(vsh domstate "$NEW")" = running ]
  qemu-img info -U "$O/sdb.qcow2" | grep -q 'backing file: nbd+unix'
  both_io sdb "write -P 0x66 22M 4k"
  out=$(vsh qemu-monitor-command "$NEW" --hmp 'qemu-io -d sata0-0-1 "read -P 0x22 23M 64k"')
  [[ "$out" != *rror* && "$out" != *mismatch* ]]
  run "$VIRTBACK" restore --instant --resume -i "$B" -o "$O" -N "$NEW"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"resuming the instant recovery of domain $NEW"* ]]
  [[ "$output" == *"finished the interrupted instant recovery of domain $NEW"* ]]
  assert_done
}

@test "SIGTERM mid-move: one line says the VM keeps running and how to resume; --resume finishes" {
  reference
  vb_bg_start "$P" "$VIRTBACK" restore --instant -i "$B" -o "$O" -N "$NEW" --bandwidth 1M
  wait_running
  kill -TERM "$(cat "$P/pid")"
  [ "$(vb_bg_rc "$P")" -ne 0 ]
  cat "$P/out"
  [ "$(grep -c 'error\|interrupted' "$P/out")" -eq 1 ]
  grep -q "keeps running on its overlays in $O; finish with 'virtback restore --instant --resume -N $NEW" "$P/out"
  [ "$(vsh domstate "$NEW")" = running ]
  both_io sda "write -P 0x75 5M 4k"
  run "$VIRTBACK" restore --instant --resume -o "$O"
  echo "$output"
  [ "$status" -eq 0 ]
  assert_done
}

@test "bad input: an existing -N name, a missing point: one line, nothing defined, nothing left" {
  vbk restore --instant -i "$B" -o "$O" -N $VM
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"a domain named '$VM' exists already"*"-N NAME"* ]]
  vbk restore --instant -i "$B" -o "$O" -N "$NEW" --until virtback.7
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  not vsh dominfo "$NEW"
  [ -z "$(ls -A "$O" 2>/dev/null)" ]
  [ -z "$(own_dirs)" ]
  ! pgrep -f "nbdkit.*dir=$B" >/dev/null
  vbk restore --instant --resume -o "$O" -N "$NEW"
  [ "$status" -eq 1 ]
  [[ "$output" == *"no instant recovery to resume"* ]]
}
