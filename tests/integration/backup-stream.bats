#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# zstd round trips, and "-o -": a zip archive on stdout that unzips into a restorable directory.

load backup_helpers

setup_file () { bk_setup_file; }
setup () { bk_setup vbs; }
teardown () { bk_teardown; }

@test "zstd: full and incrementals with extents larger than a request verify and restore identical" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x11 0 4M" "write -P 0x22 100M 40M" "write -P 0x23 150M 4k"
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l full -n --compress-method zstd
  [ "$status" -eq 0 ]
  grep -a -q '"compressionMethod": "zstd"' "$T/b/sda.full.data"
  # 44 MiB of data in far fewer bytes, and several pieces for the 40 MiB extent
  [ "$(stat -c %s "$T/b/sda.full.data")" -lt 1000000 ]
  tail -c 4000 "$T/b/sda.full.data" | grep -a -q '{"'
  vb_snapshot_disk "$VM" sda "$T/p0.qcow2"
  vb_guest_io "$VM" sda "write -P 0x33 101M 3M" "write -z 120M 1M"
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l inc -n --compress-method zstd -z 9
  [ "$status" -eq 0 ]
  grep -a -q '"compressed": 9,' "$T/b/sda.inc.virtback.1.data"
  vb_snapshot_disk "$VM" sda "$T/p1.qcow2"
  run "$VIRTBACK" verify -i "$T/b"
  echo "$output"
  [ "$status" -eq 0 ]
  for i in 0 1; do
    rm -rf "$T/r"
    "$VIRTBACK" restore -i "$T/b" -o "$T/r" --until virtback.$i
    vb_compare "$T/p$i.qcow2" "$T/r/sda.qcow2"
  done
  # a flipped byte in a zstd frame is caught by verify
  f="$T/b/sda.inc.virtback.1.data"
  off=$(( $(grep -a -b -o '^data ' "$f" | head -1 | cut -d: -f1) + 60 ))
  printf '\xff' | dd of="$f" bs=1 seek=$off conv=notrunc 2>/dev/null
  run "$VIRTBACK" verify -i "$T/b"
  [ "$status" -ne 0 ]
  # ... and by restore (decompressing on its worker pool), which names the
  # file and leaves no image
  rm -f "$f.chksum"               # so that the frame check, not the checksum, finds it
  run "$VIRTBACK" restore -i "$T/b" -o "$T/bad"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"sda.inc.virtback.1.data"*"piece"* ]]
  [ -z "$(ls -A "$T/bad" 2>/dev/null | grep qcow2)" ]
}

@test "zstd restore stopped by SIGTERM while writing: no image, no server, no socket directory" {
  vb_make_vm "$VM" 2G
  for i in 0 1 2 3 4 5; do vb_guest_io "$VM" sda "write -P 0x5a $((i * 256))M 256M"; done
  vbk backup -S "$SCRATCH" -d "$VM" -o "$T/b" -l copy -n --compress-method zstd
  [ "$status" -eq 0 ]
  mkdir -p "$T/tmp"
  vb_bg_start "$T/bg" env TMPDIR="$T/tmp" "$VIRTBACK" restore -i "$T/b" -o "$T/r"
  pid=$(cat "$T/bg/pid")
  # Signal it only once the image has grown: the workers are then busy.
  for i in $(seq 600); do
    kill -0 $pid 2>/dev/null || break
    [ "$(du -k "$T/r/sda.qcow2.partial" 2>/dev/null | cut -f1)" -gt 65536 ] 2>/dev/null && break
    sleep 0.05
  done
  kill -TERM $pid || true
  rc=$(vb_bg_rc "$T/bg")
  echo "exit status $rc: $(cat "$T/bg/out")"
  [ "$rc" -eq 1 ]                           # it was still writing: interrupted
  [ -z "$(ls -A "$T/r" | grep -E 'qcow2')" ]
  [ -z "$(pgrep -f "qemu-nbd.*$T/r")" ]
  [ -z "$(ls -A "$T/tmp")" ]
}

@test "-o - streams a zip that unzips into a directory that verifies and restores" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x11 0 4M" "write -P 0x22 100M 40M"
  run bash -c "'$VIRTBACK' backup -S '$SCRATCH' -d '$VM' -o - -l full -n -z > '$T/b.zip'"
  echo "$output"
  [ "$status" -eq 0 ]
  unzip -t "$T/b.zip"
  unzip -q "$T/b.zip" -d "$T/d"
  [ -f "$T/d/sda.full.data" ] && [ -f "$T/d/$VM.cpt" ] && [ -f "$T/d/checkpoints/virtback.0.xml" ]
  run "$VIRTBACK" verify -i "$T/d"
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/p.qcow2"
  "$VIRTBACK" restore -i "$T/d" -o "$T/r"
  vb_compare "$T/p.qcow2" "$T/r/sda.qcow2"
  virtnbdrestore -i "$T/d" -o "$T/pr" >/dev/null 2>&1
  vb_compare "$T/p.qcow2" "$T/pr/$VM-sda.qcow2"
  assert_clean "$VM"
}

@test "-o -: an interrupted stream is never a valid zip; inc is refused" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x42 0 256M"
  "$VIRTBACK" backup -S "$SCRATCH" -d "$VM" -o - -l copy -n --request-size 4096 --inflight 1 > "$T/b.zip" 2>/dev/null &
  pid=$!
  for i in $(seq 100); do [ "$(stat -c %s "$T/b.zip")" -gt 100000 ] && break; sleep 0.1; done
  kill -TERM $pid
  st=0; wait $pid || st=$?
  [ "$st" -eq 1 ]
  not unzip -t "$T/b.zip" >/dev/null 2>&1
  assert_clean "$VM"
  run bash -c "'$VIRTBACK' backup -d '$VM' -o - -l inc -n > /dev/null"
  [ "$status" -ne 0 ]
  [[ "$output" == *"copy and full backups only"* ]]
}
