#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# Application consistency with a real guest: the tiny Linux guest of
# tests/guest/build-tiny-guest.sh boots under TCG, mounts its data disk sda
# as ext4 at /mnt/sda and runs qemu-guest-agent.  The backup must freeze its
# filesystems around the job start and thaw them, and the restored disk must
# pass fsck and hold the files the guest wrote.

load backup_helpers
load guest_helpers

setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  source "$BATS_TEST_DIRNAME/guest_helpers.bash"
  vb_daemons_up
  tg_build
}

setup () {
  load_lib
  VM=vbg-$BATS_TEST_NUMBER
  T=$BATS_TEST_TMPDIR
  # A scratch dir of our own: other suites clear /var/tmp/virtback.*, and an
  # empty dir after each run shows virtback left no socket or scratch file.
  SCR=$VB_IMG_DIR/guest-scratch-$BATS_TEST_NUMBER
  rm -rf "$SCR"
  mkdir -p "$SCR"
}

teardown () {
  vb_destroy_vm "$VM"
  rm -rf "$SCR" "$VB_IMG_DIR/$VM.console.log"
}

# backup LEVEL DIR [OPTIONS]: virtback backup of $VM, output in $output.
backup () {
  local level=$1 dir=$2
  shift 2
  vbk backup -d "$VM" -o "$dir" -l "$level" -n -S "$SCR" "$@"
  echo "$output"
  [ "$status" -eq 0 ] || return 1
  vb_no_job "$VM" || { echo "job left on $VM"; return 1; }
  [ -z "$(ls -A "$SCR")" ] || { echo "left in $SCR: $(ls -A "$SCR")"; return 1; }
}

# A negation that fails the test anywhere in it ("! cmd" only does as the
# last command: errexit ignores it).
not () { ! "$@"; }

freeze_warnings () { grep -c 'guest agent did not freeze the filesystems' <<<"$output" || true; }

# needs_recovery is set while ext4 is mounted and cleared by a freeze, which
# flushes the journal: an image taken while frozen has it clear.
ext4_features () { dumpe2fs -h "$1" 2>/dev/null | sed -n 's/^Filesystem features: *//p'; }
journal_clean () { local f; f=" $(ext4_features "$1") "; [[ $f == *" has_journal "* && $f != *" needs_recovery "* ]]; }
journal_in_use () { [[ " $(ext4_features "$1") " == *" needs_recovery "* ]]; }

@test "a backup freezes the guest filesystems for the job start, then thaws them" {
  tg_make_vm "$VM"
  tg_exec "$VM" 'echo before > /mnt/sda/before && sync && : > /run/qga.log'

  backup full "$T/b"
  [ "$(freeze_warnings)" = 0 ]

  # The agent saw one freeze, and logged the thaw after it (it drops its
  # own log lines while frozen, so the thaw command itself is not there).
  tg_exec "$VM" 'cat /run/qga.log' >"$T/qga.log"
  [ "$(grep -c '"execute":"guest-fsfreeze-freeze"' "$T/qga.log")" = 1 ]
  awk '/"execute":"guest-fsfreeze-freeze"/ {f = NR}
       /disabling logging due to filesystem freeze/ && f {d = NR}
       /logging re-enabled due to filesystem unfreeze/ && d {t = NR}
       END {exit !(f && d > f && t > d)}' "$T/qga.log"

  # Thawed now: the agent says so, runs commands a freeze disables, and the
  # guest can write to the filesystem again.
  [ "$(tg_fsfreeze_status "$VM")" = thawed ]
  vsh domfsinfo "$VM" | grep -q '/mnt/sda .*sda'
  tg_exec "$VM" 'echo after > /mnt/sda/after && sync'

  # The data was taken while frozen: the journal of the restored ext4 is
  # flushed and clean.
  tg_restore "$T/b" "$T/full.raw" sda
  journal_clean "$T/full.raw"
  tg_fsck "$T/full.raw"
  [ "$(tg_cat "$T/full.raw" /before)" = before ]

  # Without the freeze the same check sees a journal in use: it can fail.
  tg_exec "$VM" ': > /run/qga.log'
  backup copy "$T/c" --no-freeze
  tg_restore "$T/c" "$T/copy.raw" sda
  journal_in_use "$T/copy.raw"
  tg_exec "$VM" 'cat /run/qga.log' >"$T/qga-nofreeze.log"
  not grep -q 'guest-fsfreeze' "$T/qga-nofreeze.log"
}

# write_files ROUND: files from the host (random bytes and text through
# guest-exec's stdin) and from the guest itself, then the guest's checksum
# list of everything under /mnt/sda/data, saved as $T/sums.ROUND.
write_files () {
  local r=$1
  head -c $((60 * 1024 + r)) /dev/urandom >"$T/host.$r"
  printf 'round %s\nline two\n' "$r" >"$T/text.$r"
  tg_exec "$VM" "mkdir -p /mnt/sda/data/sub && cat > /mnt/sda/data/host.$r" "$T/host.$r"
  tg_exec "$VM" "cat > /mnt/sda/data/sub/text.$r" "$T/text.$r"
  tg_exec "$VM" "dd if=/dev/urandom of=/mnt/sda/data/guest.$r bs=1M count=6 2>/dev/null"
  tg_exec "$VM" "cd /mnt/sda/data && find . -type f | sort | xargs md5sum && sync" >"$T/sums.$r"
  cat "$T/sums.$r"
}

# check_image IMAGE ROUND: fsck is clean and every file of the round's
# checksum list reads back from IMAGE with that checksum.
check_image () {
  local img=$1 r=$2 sum f n=0
  journal_clean "$img"
  tg_fsck "$img"
  while read -r sum f; do
    [ "$(tg_cat "$img" "/data/${f#./}" | md5sum | cut -d' ' -f1)" = "$sum" ] ||
      { echo "$img: /data/${f#./} differs"; return 1; }
    n=$((n + 1))
  done <"$T/sums.$r"
  [ "$n" -ge 3 ]
}

@test "files written in the guest come back from restored full and incremental backups" {
  tg_make_vm "$VM"

  write_files 1
  backup full "$T/b"
  [ "$(freeze_warnings)" = 0 ]

  # Change, add and remove files, then back up the difference.
  tg_exec "$VM" 'cd /mnt/sda/data &&
    dd if=/dev/urandom of=guest.1 bs=4096 count=3 seek=100 conv=notrunc 2>/dev/null &&
    rm sub/text.1 && sync'
  write_files 2
  backup inc "$T/b"
  [ "$(freeze_warnings)" = 0 ]
  [ -f "$T/b/sda.inc.virtback.1.data" ]

  tg_restore "$T/b" "$T/p0.raw" sda virtback.0
  tg_restore "$T/b" "$T/p1.raw" sda
  check_image "$T/p0.raw" 1
  check_image "$T/p1.raw" 2

  # Host-written bytes, compared byte for byte, and the removed file.
  cmp "$T/host.1" <(tg_cat "$T/p0.raw" /data/host.1)
  cmp "$T/host.1" <(tg_cat "$T/p1.raw" /data/host.1)
  cmp "$T/host.2" <(tg_cat "$T/p1.raw" /data/host.2)
  [ "$(tg_cat "$T/p0.raw" /data/sub/text.1)" = "$(cat "$T/text.1")" ]
  not grep -q 'text.1' "$T/sums.2"
  debugfs -R 'stat /data/sub/text.1' "$T/p1.raw" 2>&1 | grep -q 'File not found'
  # The incremental really changed guest.1.
  [ "$(grep ' ./guest.1$' "$T/sums.1")" != "$(grep ' ./guest.1$' "$T/sums.2")" ]
}

@test "no agent channel: the backup warns once and succeeds" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x5a 0 1M"
  backup full "$T/b"
  [ "$(freeze_warnings)" = 1 ]
  vb_guest_io "$VM" sda "write -P 0x5b 8M 1M"
  backup inc "$T/b"
  [ "$(freeze_warnings)" = 1 ]
  vb_snapshot_disk "$VM" sda "$T/snap.qcow2"
  "$VIRTBACK" restore -i "$T/b" -o "$T/r" -d sda
  vb_compare "$T/snap.qcow2" "$T/r/sda.qcow2"
}

@test "guest agent not running: the backup warns once and succeeds" {
  tg_make_vm "$VM" noagent
  backup full "$T/b"
  [ "$(freeze_warnings)" = 1 ]
  backup inc "$T/b"
  [ "$(freeze_warnings)" = 1 ]
  [ -f "$T/b/sda.full.data" ]
  [ -f "$T/b/sda.inc.virtback.1.data" ]
  tg_restore "$T/b" "$T/r.raw" sda
  [[ " $(ext4_features "$T/r.raw") " == *" has_journal "* ]]
}
