#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# The threaded parts under ThreadSanitizer, on a real VM: two disks backed
# up in parallel (the copy engine's reader, writer and transform workers;
# zstd and lz4), a restore decompressing on its worker pool, and SIGINT in
# the middle of both.  Uses the build-tsan/ virtback that tests/run builds
# ($VIRTBACK_TSAN); TSAN_OPTIONS there makes any report fail the run
# (halt_on_error=1, exitcode=66).

load backup_helpers

setup_file () { bk_setup_file; }
setup () {
  [ -n "${VIRTBACK_TSAN:-}" ] || skip "no ThreadSanitizer build (tests/run builds build-tsan/)"
  bk_setup vbz
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}
}
teardown () { [ -z "${VM:-}" ] || bk_teardown; }

# tsan ARGS...: run the TSan build like bats' run, and show what it said.
tsan () {
  run "$VIRTBACK_TSAN" "$@"
  echo "virtback(tsan) $*: status $status"
  echo "$output"
  [[ "$output" != *ThreadSanitizer* ]] || { echo "ThreadSanitizer reported"; return 1; }
}

@test "tsan: two disks in parallel, zstd full, lz4 inc, both restores" {
  vb_make_vm "$VM" 256M 2
  vb_guest_io "$VM" sda "write -P 0x11 0 32M" "write -P 0x22 100M 40M"
  vb_guest_io "$VM" sdb "write -P 0x33 0 16M" "write -P 0x44 200M 8M"
  tsan backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l full -n --compress-method zstd
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/sda.0.qcow2"
  vb_guest_io "$VM" sda "write -P 0x55 1M 3M"
  vb_guest_io "$VM" sdb "write -P 0x66 201M 1M"
  tsan backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l inc -n -z
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/sda.1.qcow2"
  vb_snapshot_disk "$VM" sdb "$T/sdb.1.qcow2"
  tsan restore -i "$T/b" -o "$T/r0" --until virtback.0
  [ "$status" -eq 0 ]
  vb_compare "$T/sda.0.qcow2" "$T/r0/sda.qcow2"
  tsan restore -i "$T/b" -o "$T/r1"
  [ "$status" -eq 0 ]
  vb_compare "$T/sda.1.qcow2" "$T/r1/sda.qcow2"
  vb_compare "$T/sdb.1.qcow2" "$T/r1/sdb.qcow2"
  assert_clean "$VM" "$T/b"
}

@test "tsan: SIGINT in the middle of a backup and of a restore" {
  vb_make_vm "$VM" 1G 2
  vb_guest_io "$VM" sda "write -P 0x11 0 256M"
  vb_guest_io "$VM" sdb "write -P 0x22 0 256M"
  # small requests, one in flight: the copy is still running when the signal comes
  vb_bg_start "$T/bg1" "$VIRTBACK_TSAN" backup -S "$SCRATCH" -d "$VM" -o "$T/c" -l copy -n \
    --compress-method zstd --request-size 4096 --inflight 1
  sleep 1
  kill -INT "$(cat "$T/bg1/pid")" 2>/dev/null || true
  rc=$(vb_bg_rc "$T/bg1")
  cat "$T/bg1/out"
  [ "$rc" -eq 1 ]
  not grep -q ThreadSanitizer "$T/bg1/out"
  assert_clean "$VM"
  tsan backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l copy -n --compress-method zstd
  [ "$status" -eq 0 ]
  vb_bg_start "$T/bg2" "$VIRTBACK_TSAN" restore -i "$T/b" -o "$T/r"
  for i in $(seq 200); do
    [ -e "$T/r/sda.qcow2.partial" ] && break
    sleep 0.05
  done
  kill -INT "$(cat "$T/bg2/pid")" 2>/dev/null || true
  rc=$(vb_bg_rc "$T/bg2")
  cat "$T/bg2/out"
  [ "$rc" -eq 1 ] || [ "$rc" -eq 0 ]    # 0: it finished first
  not grep -q ThreadSanitizer "$T/bg2/out"
}
