#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# tests/run: alone (it cuts and rate-limits links on timers)
# virtback replicate / replica / failover: the source is the root namespace (libvirtd, the VM),
# the standby host the namespace xp-standby with its own sshd (replica_hosts.bash).  The VMs sit
# in firmware and are written through qemu-io over HMP, so their disks are quiet between writes.

load backup_helpers
load replica_hosts

setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
  export XP_HOSTS=$BATS_FILE_TMPDIR/hosts
  xp_hosts_up "$XP_HOSTS"
  export XP_RSH
}

teardown_file () {
  xp_hosts_down "$XP_HOSTS"
}

setup () {
  load_lib
  VM=xp$BATS_TEST_NUMBER
  T=$BATS_TEST_TMPDIR
  SB=$VB_IMG_DIR/xp-standby-$BATS_TEST_NUMBER
  rm -rf "$SB"
  SCRATCH=$(mktemp -d /var/tmp/xptest-scratch.XXXXXX)
  chmod 755 "$SCRATCH"
}

teardown () {
  xp_rate ""
  xp_link up
  [ ! -s "$T/bg/pid" ] || kill -9 "$(cat "$T/bg/pid")" 2>/dev/null || true
  [ ! -s "$T/hold.pid" ] || kill "$(cat "$T/hold.pid")" 2>/dev/null || true
  [ -z "${FOLD:-}" ] || kill -9 -- "-$FOLD" 2>/dev/null || true
  vb_destroy_vm "$VM-fo"
  vb_destroy_vm "$VM"
  chattr -i "$SB"/* 2>/dev/null || true
  rm -rf "$SB" "$SCRATCH"
}

REP_TO () { echo "ssh://root@$XP_IP:$XP_PORT$SB"; }
rep_cmd () {
  echo "$VIRTBACK" replicate -d "$VM" --to "$(REP_TO)" --remote-virtback "$VIRTBACK" -S "$SCRATCH" -n \
    --no-freeze
}
# rep [OPTIONS]: one sync with --json; $output holds its JSON line.
rep () { run $(rep_cmd) -e "$XP_RSH" --json "$@"; echo "replicate: status $status"; echo "$output"; }
field () { python3 -c 'import json,sys; print(json.loads(sys.argv[1].splitlines()[-1])[sys.argv[2]])' "$1" "$2"; }
state () { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$SB/state.json"; }

# Nothing of a sync is left once its fold (a detached child of the receiver) ended: no job, no
# private directory, no overlay, no base, no receiver, idle.
rep_clean () {
  receiver_gone || return 1
  vb_no_job "$VM" || { echo "job left on $VM"; return 1; }
  [ -z "$(ls -A "$SCRATCH")" ] || { echo "private dir left"; ls -la "$SCRATCH"; return 1; }
  ! ls "$SB"/*.sync.qcow2 "$SB"/*.new.qcow2 "$SB"/*.base.qcow2 "$SB"/*.tmp 2>/dev/null | grep -q . ||
    { echo "overlay or base left"; ls "$SB"; return 1; }
  ! pgrep -f "replica receive $SB" >/dev/null || { echo "receiver left"; return 1; }
  [ "$(state)" = idle ] || { echo "state $(state)"; return 1; }
  [ -z "$(qemu-img info -U --output=json "$SB/sda.qcow2" | jq -r '."backing-filename" // empty')" ] ||
    { echo "sda.qcow2 still has a backing file"; return 1; }
}

# The pid of the fold (the journal's "folding"), waiting up to 30 s for it.
fold_pid () {
  local i p
  for i in $(seq 3000); do
    p=$(jq -r '.folding // empty' "$SB/state.json" 2>/dev/null) && [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.01
  done
  echo "no fold started" >&2
  return 1
}

# Stop the fold (its whole session: qemu-img with it) once it runs qemu-img commit.
stop_fold_in_commit () {
  local i
  FOLD=$(fold_pid) || return 1
  for i in $(seq 3000); do
    if pgrep -s "$FOLD" -f "qemu-img commit" >/dev/null; then
      kill -STOP -- "-$FOLD"
      return 0
    fi
    kill -0 "$FOLD" 2>/dev/null || { echo "the fold ended before its commit was seen" >&2; return 1; }
    sleep 0.002
  done
  return 1
}

# The standby image of DISK equals the VM's disk now (once a fold has renamed its files).
same_as_vm () { receiver_gone && vb_snapshot_disk "$VM" "$1" "$T/now-$1.qcow2" && vb_compare "$T/now-$1.qcow2" "$SB/$1.qcow2"; }

# rep_inc PARENT BYTES: one sync, an incremental from PARENT that moves BYTES of data; then
# the standby's sda equals the VM's and nothing of the sync is left.
rep_inc () {
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" parent)" = "$1" ]
  [ "$(field "$output" bytes)" -eq "$2" ]
  same_as_vm sda
  rep_clean
}

# Wait (at most 60 s) until no receiver works on the standby directory.
receiver_gone () {
  local i
  for i in $(seq 600); do
    if ! pgrep -f "replica receive $SB" >/dev/null &&
       "$VIRTBACK" replica status "$SB" --json | jq -e '.busy == false' >/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "the receiver is still there" >&2
  return 1
}

# Wait until the standby receives data of the running sync.
wait_receiving () {
  local i
  for i in $(seq 300); do
    [ "$(state 2>/dev/null)" = receiving ] && ls "$SB"/*.sync.qcow2 >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the sync did not start" >&2
  return 1
}

@test "first sync copies the data, the second only the changes; status shows the point" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x11 0 8M" "write -P 0x12 64M 4M"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" level)" = full ]
  [ "$(field "$output" point)" = virtback-replica.0 ]
  [ "$(field "$output" bytes)" -eq $((12 << 20)) ]
  same_as_vm sda
  rep_clean
  [ "$(stat -c %a "$SB")" = 700 ]
  [ "$(stat -c %a "$SB/sda.qcow2")" = 600 ]
  vb_guest_io "$VM" sda "write -P 0x21 1M 1M" "write -z 64M 1M" "write -P 0x22 100M 512K"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" level)" = inc ]
  [ "$(field "$output" parent)" = virtback-replica.0 ]
  # 1.5 MiB of data; the zeroed MiB travels as a zero frame
  [ "$(field "$output" bytes)" -eq $((1536 << 10)) ]
  same_as_vm sda
  rep_clean
  [ "$(vb_checkpoints "$VM")" = virtback-replica.1 ]
  run "$VIRTBACK" replica status "$SB"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"domain:    $VM ("* ]]
  [[ "$output" == *"point:     virtback-replica.1, taken "* ]]
  [[ "$output" == *"state:     idle"* ]]
  # the text line of --interval: point, bytes, seconds, lag
  vb_guest_io "$VM" sda "write -P 0x23 2M 64K"
  run $(rep_cmd) -e "$XP_RSH"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" =~ ^"point virtback-replica.2 (inc since virtback-replica.1): 65536 bytes in "[0-9.]+" s, lag "[0-9.]+" s"$ ]]
  same_as_vm sda
  # A new standby: the job started from virtback-replica.2 while ssh logged in does not fit it
  # and is replaced by a full one.
  rm -rf "$SB"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" level)" = full ]
  [ "$(field "$output" point)" = virtback-replica.3 ]
  # 12 MiB written, the MiB zeroed at 64M is a hole now
  [ "$(field "$output" bytes)" -eq $((11 << 20 | 512 << 10)) ]
  same_as_vm sda
  rep_clean
  [ "$(vb_checkpoints "$VM")" = virtback-replica.3 ]
}

@test "a two-disk VM: both disks follow, each sync moves what changed on each" {
  vb_make_vm "$VM" 64M 2
  vb_guest_io "$VM" sda "write -P 0x31 0 2M"
  vb_guest_io "$VM" sdb "write -P 0x32 8M 3M"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" disks)" -eq 2 ]
  same_as_vm sda
  same_as_vm sdb
  vb_guest_io "$VM" sdb "write -P 0x41 20M 1M"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" bytes)" -eq $((1 << 20)) ]
  same_as_vm sda
  same_as_vm sdb
  rep_clean
}

@test "a sync killed with SIGKILL on a slow link: the standby stays at the previous point, the next sync completes" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x51 0 4M"
  rep
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/before.qcow2"
  vb_guest_io "$VM" sda "write -P 0x52 16M 24M"
  xp_rate 40mbit
  vb_bg_start "$T/bg" $(rep_cmd) -e "$XP_RSH"
  wait_receiving
  sleep 2
  # the standby's qemu-nbd writes around the page cache ($SB is on ext4, which takes O_DIRECT)
  local nbd
  nbd=$(pgrep -af "qemu-nbd.*$SB/")
  echo "$nbd"
  grep -q -- '--cache=none --aio=threads' <<<"$nbd"
  kill -9 "$(cat "$T/bg/pid")"
  receiver_gone
  cat "$SB/state.json"
  [ "$(state)" = idle ]
  vb_compare "$T/before.qcow2" "$SB/sda.qcow2"
  xp_rate ""
  # the killed sync's job is still on the domain: the next sync ends it by itself
  rep_inc virtback-replica.0 "$((24 << 20))"
  [ "$(vb_checkpoints "$VM")" = "$(field "$output" point)" ]
}

@test "a link cut in the middle of a sync: it fails within seconds, the standby stays at the previous point" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x61 0 4M"
  rep
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/before.qcow2"
  vb_guest_io "$VM" sda "write -P 0x62 16M 24M"
  xp_rate 40mbit
  vb_bg_start "$T/bg" $(rep_cmd) -e "$XP_RSH"
  wait_receiving
  sleep 1
  xp_link down
  rc=$(vb_bg_rc "$T/bg")
  cat "$T/bg/out"
  [ "$rc" -eq 1 ]
  [ "$(grep -c . "$T/bg/out")" -eq 1 ]
  grep -q '^virtback replicate: ' "$T/bg/out"
  # the source cleaned up after itself: no job, no checkpoint of the failed sync
  vb_no_job "$VM"
  [ -z "$(ls -A "$SCRATCH")" ]
  [ "$(vb_checkpoints "$VM")" = virtback-replica.0 ]
  receiver_gone
  xp_link up
  xp_rate ""
  cat "$SB/state.json"
  [ "$(state)" = idle ]
  vb_compare "$T/before.qcow2" "$SB/sda.qcow2"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" parent)" = virtback-replica.0 ]
  same_as_vm sda
  rep_clean
}

@test "virtback backup full and inc between syncs: both chains stay correct, syncs stay incremental" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x71 0 4M"
  rep
  [ "$status" -eq 0 ]
  run "$VIRTBACK" backup -d "$VM" -o "$T/b" -l full -n -S "$SCRATCH"
  echo "$output"
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/full.qcow2"
  vb_guest_io "$VM" sda "write -P 0x72 8M 1M"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" parent)" = virtback-replica.0 ]
  [ "$(field "$output" bytes)" -eq $((1 << 20)) ]
  same_as_vm sda
  vb_guest_io "$VM" sda "write -P 0x73 9M 2M"
  run "$VIRTBACK" backup -d "$VM" -o "$T/b" -l inc -n -S "$SCRATCH"
  echo "$output"
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/inc.qcow2"
  vb_guest_io "$VM" sda "write -P 0x74 30M 1M"
  # what changed since the last sync: 2 MiB before the inc backup, 1 MiB after
  rep_inc virtback-replica.1 "$((3 << 20))"
  [ "$(vb_checkpoints "$VM" | tr '\n' ' ')" = "virtback-replica.2 virtback.0 virtback.1 " ]
  run "$VIRTBACK" restore -i "$T/b" -o "$T/r0" --until virtback.0
  [ "$status" -eq 0 ]
  vb_compare "$T/full.qcow2" "$T/r0/sda.qcow2"
  run "$VIRTBACK" restore -i "$T/b" -o "$T/r1"
  [ "$status" -eq 0 ]
  vb_compare "$T/inc.qcow2" "$T/r1/sda.qcow2"
}

@test "failover starts the standby on the last synced point; later syncs into it are refused" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x81 0 2M"
  rep
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x82 4M 1M"
  rep
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/synced.qcow2"
  # written after the last sync: not on the standby
  vb_guest_io "$VM" sda "write -P 0x83 8M 1M"
  run "$VIRTBACK" failover -i "$SB" -N "$VM-fo"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(vsh domstate "$VM-fo")" = running ]
  [ "$(vsh domblklist "$VM-fo" | awk '$1 == "sda" {print $2}')" = "$SB/sda.qcow2" ]
  [ "$(vsh domuuid "$VM-fo")" != "$(vsh domuuid "$VM")" ]
  vb_compare "$T/synced.qcow2" "$SB/sda.qcow2"
  run "$VIRTBACK" replica status "$SB"
  [[ "$output" == *"failed over to domain '$VM-fo'"* ]]
  rep
  [ "$status" -eq 1 ]
  [[ "$output" == *"was failed over to domain '$VM-fo'"*"replicate into another directory"* ]]
  vb_no_job "$VM"
  [ "$(vb_checkpoints "$VM")" = virtback-replica.1 ]
}

@test "failover is refused while a sync runs and after an interrupted apply, until replica apply" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x91 0 1M"
  rep
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x92 16M 24M"
  vb_snapshot_disk "$VM" sda "$T/synced.qcow2"
  xp_rate 40mbit
  vb_bg_start "$T/bg" $(rep_cmd) -e "$XP_RSH"
  wait_receiving
  pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$SB/state.json")
  kill -STOP "$pid"
  run "$VIRTBACK" failover -i "$SB" -N "$VM-fo"
  echo "$output"
  kill -CONT "$pid"
  [ "$status" -eq 1 ]
  [[ "$output" == *"is running (receiving): wait for it to end"* ]]
  [ "$(vb_bg_rc "$T/bg")" -eq 0 ]
  xp_rate ""
  # the sync's fold renames the base over the image: compare once it ended
  receiver_gone
  vb_compare "$T/synced.qcow2" "$SB/sda.qcow2"
  # an immutable image cannot be renamed to the chain's base: the next apply stops after the
  # overlay's rebase, with its data received
  vb_guest_io "$VM" sda "write -P 0x93 50M 2M"
  vb_snapshot_disk "$VM" sda "$T/synced2.qcow2"
  chattr +i "$SB/sda.qcow2"
  rep
  chattr -i "$SB/sda.qcow2"
  [ "$status" -eq 1 ]
  [[ "$output" == *"the standby: apply the sync to $SB: "*"Operation not permitted"* ]]
  vb_compare "$T/synced.qcow2" "$SB/sda.qcow2"
  run "$VIRTBACK" replica status "$SB"
  echo "$output"
  [[ "$output" == *"interrupted while applying virtback-replica.2"* ]]
  run "$VIRTBACK" failover -i "$SB" -N "$VM-fo"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"run 'virtback replica apply $SB' to finish it"* ]]
  not vsh domstate "$VM-fo"
  receiver_gone
  run "$VIRTBACK" replica apply "$SB"
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(state)" = idle ]
  vb_compare "$T/synced2.qcow2" "$SB/sda.qcow2"
  # replica apply folded the chain as well
  [ ! -e "$SB/sda.base.qcow2" ]
  run "$VIRTBACK" failover -i "$SB" -N "$VM-fo"
  [ "$status" -eq 0 ]
  [ "$(vsh domstate "$VM-fo")" = running ]
}

@test "SIGHUP ends a sync through its cleanup: no job, checkpoint, private directory or ssh left" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0xa1 0 1M"
  rep
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/before.qcow2"
  vb_guest_io "$VM" sda "write -P 0xa2 8M 24M"
  xp_rate 40mbit
  vb_bg_start "$T/bg" $(rep_cmd) -e "$XP_RSH"
  wait_receiving
  kill -HUP "$(cat "$T/bg/pid")"
  rc=$(vb_bg_rc "$T/bg")
  cat "$T/bg/out"
  [ "$rc" -eq 1 ]
  [ "$(grep -c . "$T/bg/out")" -eq 1 ]
  [ "$(cat "$T/bg/out")" = "virtback replicate: interrupted by a signal: the standby keeps its last completed point" ]
  vb_no_job "$VM"
  [ -z "$(ls -A "$SCRATCH")" ]
  [ "$(vb_checkpoints "$VM")" = virtback-replica.0 ]
  receiver_gone
  rep_clean
  vb_compare "$T/before.qcow2" "$SB/sda.qcow2"
}

@test "the guest agent freezes the real guest's filesystems for the sync's job start" {
  source "$BATS_TEST_DIRNAME/guest_helpers.bash"
  tg_build
  tg_make_vm "$VM"
  tg_exec "$VM" 'echo synced > /mnt/sda/file && sync && : > /run/qga.log'
  run $(rep_cmd | sed 's/ --no-freeze//') -e "$XP_RSH"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" != *"did not freeze"* ]]
  tg_exec "$VM" 'cat /run/qga.log' >"$T/qga.log"
  [ "$(grep -c '"execute":"guest-fsfreeze-freeze"' "$T/qga.log")" = 1 ]
  [ "$(tg_fsfreeze_status "$VM")" = thawed ]
  # taken while frozen: the standby's ext4 needs no journal recovery and holds the file
  qemu-img convert -O raw "$SB/sda.qcow2" "$T/sda.raw"
  f=" $(dumpe2fs -h "$T/sda.raw" 2>/dev/null | sed -n 's/^Filesystem features: *//p') "
  echo "features: $f"
  [[ $f == *" has_journal "* && $f != *" needs_recovery "* ]]
  [ "$(debugfs -R "cat /file" "$T/sda.raw" 2>/dev/null)" = synced ]
  rm -f "$VB_IMG_DIR/$VM.console.log"
}

@test "a disk grown on the source between syncs: the standby image and the point grow with it" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x51 0 2M" "write -P 0x52 60M 4M"
  rep
  [ "$status" -eq 0 ]
  vsh blockresize "$VM" sda 96M
  # the old end, and data only the grown disk has room for
  vb_guest_io "$VM" sda "write -P 0x53 62M 4M" "write -P 0x54 90M 1M"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" level)" = inc ]
  [ "$(field "$output" bytes)" -eq $((5 << 20)) ]
  [ "$(vb_vsize "$SB/sda.qcow2")" -eq $((96 << 20)) ]
  same_as_vm sda
  rep_clean
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["disks"][0]; assert d["size"] == 96 << 20, d' "$SB/state.json"
  # the next sync starts from the grown point
  vb_guest_io "$VM" sda "write -P 0x55 95M 1M"
  rep
  [ "$status" -eq 0 ]
  [ "$(field "$output" bytes)" -eq $((1 << 20)) ]
  same_as_vm sda
  rep_clean
  # a shrunk disk is refused with the standby's reason, which stays at its point
  vsh blockresize "$VM" sda 80M
  rep
  [ "$status" -ne 0 ]
  [[ "$output" == *"disk sda shrank ("*"replicate into a new directory"* ]]
  [ "$(vb_vsize "$SB/sda.qcow2")" -eq $((96 << 20)) ]
  rep_clean
}

@test "a fold stopped and killed in its commit: the standby stays at the point, status shows it, the next sync folds it" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0xb1 0 8M"
  rep
  [ "$status" -eq 0 ]
  rep_clean
  vb_guest_io "$VM" sda "write -P 0xb2 16M 96M" "write -P 0xb3 128M 96M"
  vb_snapshot_disk "$VM" sda "$T/p1.qcow2"
  rep
  [ "$status" -eq 0 ]
  stop_fold_in_commit
  run "$VIRTBACK" replica status "$SB" --json
  echo "$output"
  [ "$(jq -r .fold <<<"$output")" = running ]
  [ "$(jq -r .busy <<<"$output")" = true ]
  [ "$(jq -r .state <<<"$output")" = idle ]
  run "$VIRTBACK" replica status "$SB"
  [[ "$output" == *"state:     idle, folding the last sync into one image per disk (pid $FOLD)"* ]]
  kill -9 -- "-$FOLD"
  receiver_gone
  # the top masks what the commit wrote into the base so far
  [ -e "$SB/sda.base.qcow2" ]
  vb_compare "$T/p1.qcow2" "$SB/sda.qcow2"
  run "$VIRTBACK" replica status "$SB" --json
  [ "$(jq -r .fold <<<"$output")" = pending ]
  [ "$(jq -r .busy <<<"$output")" = false ]
  run "$VIRTBACK" replica status "$SB"
  [[ "$output" == *"state:     idle, the last sync not folded into one image per disk yet: the next sync or 'virtback replica apply' folds it"* ]]
  # the next sync finishes that fold first, then applies and folds its own
  vb_guest_io "$VM" sda "write -P 0xb4 20M 1M"
  rep_inc virtback-replica.1 "$((1 << 20))"
  # killed before or at the start of its commit, then folded by replica apply; the standby's
  # qemu-img waits 5 s before a commit, so that the fold is surely caught before it ends
  mkdir -p "$T/slow"
  printf '#!/bin/sh\n[ "$1" = commit ] && sleep 5\nexec /usr/bin/qemu-img "$@"\n' >"$T/slow/qemu-img"
  printf '#!/bin/sh\nPATH=%s:$PATH exec %s "$@"\n' "$T/slow" "$VIRTBACK" >"$T/slow/virtback"
  chmod 755 "$T/slow/qemu-img" "$T/slow/virtback"
  vb_guest_io "$VM" sda "write -P 0xb5 16M 96M"
  vb_snapshot_disk "$VM" sda "$T/p3.qcow2"
  rep --remote-virtback "$T/slow/virtback"
  [ "$status" -eq 0 ]
  FOLD=$(fold_pid)
  kill -9 -- "-$FOLD"
  receiver_gone
  [ -e "$SB/sda.base.qcow2" ]
  vb_compare "$T/p3.qcow2" "$SB/sda.qcow2"
  run "$VIRTBACK" replica apply "$SB"
  echo "$output"
  [ "$status" -eq 0 ]
  vb_compare "$T/p3.qcow2" "$SB/sda.qcow2"
  rep_clean
}

@test "failover right after a sync, while its fold runs: the fold is stopped, the domain boots on the point" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0xc1 0 4M"
  rep
  [ "$status" -eq 0 ]
  rep_clean
  vb_guest_io "$VM" sda "write -P 0xc3 16M 96M" "write -P 0xc4 128M 96M"
  vb_snapshot_disk "$VM" sda "$T/p2.qcow2"
  rep
  [ "$status" -eq 0 ]
  stop_fold_in_commit
  vb_guest_io "$VM" sda "write -P 0xc5 8M 1M"
  run "$VIRTBACK" failover -i "$SB" -N "$VM-fo"
  echo "$output"
  [ "$status" -eq 0 ]
  # nothing of the fold's session runs any more (an unreaped zombie holds no lock)
  ps -o pid=,stat=,args= -s "$FOLD" || true
  [ -z "$(ps -o stat= -s "$FOLD" | grep -v Z)" ]
  [ "$(vsh domstate "$VM-fo")" = running ]
  [ "$(vsh domblklist "$VM-fo" | awk '$1 == "sda" {print $2}')" = "$SB/sda.qcow2" ]
  vb_compare "$T/p2.qcow2" "$SB/sda.qcow2"
  # the domain writes into the top: nothing folds it any more
  [ "$(qemu-img info -U --output=json "$SB/sda.qcow2" | jq -r '."backing-filename"')" = sda.base.qcow2 ]
  run "$VIRTBACK" replica apply "$SB"
  [ "$status" -eq 0 ]
  [ -e "$SB/sda.base.qcow2" ]
  run "$VIRTBACK" replica status "$SB"
  [[ "$output" == *"failed over to domain '$VM-fo'"* ]]
}

# Wait (at most 60 s) until the background sync's output holds N lines.
bg_lines () {
  local i
  for i in $(seq 600); do
    [ "$(grep -c . "$T/bg/out")" -ge "$1" ] && return 0
    sleep 0.1
  done
  echo "only $(grep -c . "$T/bg/out") lines" >&2
  cat "$T/bg/out" >&2
  return 1
}

# The pid of the one receiver, once it is idle (it holds no lock between two syncs); the source's
# ssh, whose command line names the receiver's too, does not count.
idle_receiver () {
  local i p
  for i in $(seq 600); do
    p=$(pgrep -f "^$VIRTBACK replica receive $SB\$")
    if [ "$(wc -w <<<"$p")" = 1 ] && "$VIRTBACK" replica status "$SB" --json | jq -e '.busy == false' >/dev/null &&
       [ ! -e "$SB/sda.base.qcow2" ]; then
      echo "$p"
      return 0
    fi
    sleep 0.1
  done
  echo "no idle receiver: $p" >&2
  ps -o pid,ppid,args -p "$(tr "\n" , <<<"$p" | sed "s/,$//")" >&2
  return 1
}

@test "--interval keeps one ssh session and one receiver; a session cut while idle is opened again by the next sync" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0xd1 0 2M"
  vb_bg_start "$T/bg" $(rep_cmd) -e "$XP_RSH" --interval 4
  bg_lines 1
  r1=$(idle_receiver)
  vb_guest_io "$VM" sda "write -P 0xd2 8M 1M"
  bg_lines 2
  r2=$(idle_receiver)
  cat "$T/bg/out"
  [ "$r1" = "$r2" ]
  [[ "$(sed -n 2p "$T/bg/out")" == "point virtback-replica.1 (inc since virtback-replica.0): 1048576 bytes in "* ]]
  # cut the session while the receiver waits: reset its TCP connection on the standby
  ip netns exec $XP_NS ss -K state established '( sport = :'$XP_PORT' )'
  for i in $(seq 100); do kill -0 "$r2" 2>/dev/null || break; sleep 0.1; done
  not kill -0 "$r2" 2>/dev/null
  vb_guest_io "$VM" sda "write -P 0xd3 20M 1M"
  bg_lines 3
  cat "$T/bg/out"
  [[ "$(sed -n 3p "$T/bg/out")" == "point virtback-replica.2 (inc since virtback-replica.1): 1048576 bytes in "* ]]
  r3=$(idle_receiver)
  [ "$r3" != "$r2" ]
  kill -INT "$(cat "$T/bg/pid")"
  [ "$(vb_bg_rc "$T/bg")" -eq 0 ]
  # the source gone, its receiver ends at once
  receiver_gone
  same_as_vm sda
  rep_clean
}

@test "--interval: an idle receiver whose source hangs holds no lock and exits after the announced idle time" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0xe1 0 1M"
  vb_bg_start "$T/bg" $(rep_cmd) -e "$XP_RSH" --interval 5
  bg_lines 1
  # the source stops before its next sync (its ssh keeps the session up): the receiver waits
  # 5 + 60 s, unlocked
  kill -STOP "$(cat "$T/bg/pid")"
  r1=$(idle_receiver)
  t0=$(date +%s)
  for i in $(seq 900); do kill -0 "$r1" 2>/dev/null || break; sleep 0.1; done
  waited=$(( $(date +%s) - t0 ))
  echo "the receiver ended after $waited s"
  not kill -0 "$r1" 2>/dev/null
  [ "$waited" -ge 55 ] && [ "$waited" -le 80 ]
  kill -CONT "$(cat "$T/bg/pid")"
  kill -INT "$(cat "$T/bg/pid")"
  vb_bg_rc "$T/bg"
  receiver_gone
  rep_clean
}
