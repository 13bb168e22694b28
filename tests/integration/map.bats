#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# virtback map: every point of a mixed chain (plain full, lz4 inc, zstd inc)
# served over NBD by nbdkit with virtback's plugin equals the disk at that
# moment; holes show in nbdinfo --map; corrupt data fails with EIO naming
# the file; --writable never changes the backup; nothing is left behind.

load restore_helpers

VM=vbmap

# One chain of two disks, with a snapshot of each disk at each point.
setup_file () {
  rb_load
  export B=$BATS_FILE_TMPDIR/b S=$BATS_FILE_TMPDIR/snap
  mkdir -p "$S"
  vb_make_vm $VM 64M 2
  vb_guest_io $VM sda "write -P 0x11 0 2M" "write -P 0x12 40M 1M"
  vb_guest_io $VM sdb "write -P 0x13 8M 3M"
  "$VIRTBACK" backup -d $VM -o "$B" -l full -n >/dev/null 2>&1
  snap 0
  vb_guest_io $VM sda "write -P 0x21 1M 2M" "write -z 40M 512k"
  "$VIRTBACK" backup -d $VM -o "$B" -l inc -n -z >/dev/null 2>&1
  snap 1
  vb_guest_io $VM sda "write -P 0x31 30M 1M"
  vb_guest_io $VM sdb "write -P 0x32 9M 1M"
  "$VIRTBACK" backup -d $VM -o "$B" -l inc -n --compress-method zstd >/dev/null 2>&1
  snap 2
}

snap () {
  local d
  for d in sda sdb; do vb_snapshot_disk $VM $d "$S/$d.$1.qcow2"; done
}

teardown_file () {
  vb_destroy_vm $VM
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  SOCK=$BATS_TEST_TMPDIR/map.sock
  M=$BATS_TEST_TMPDIR/m
  # Maps of others (a concurrent run) are theirs: only new leftovers count.
  map_dirs >"$BATS_TEST_TMPDIR/dirs.before"
}

map_dirs () { ls -d /var/tmp/virtback-map.* 2>/dev/null | sort; }

teardown () {
  [ -s "$M/pid" ] && kill "$(cat "$M/pid")" 2>/dev/null || true
}

# map_start ARGS...: run virtback map in the background until it printed
# its URIs (or ended).
map_start () {
  vb_bg_start "$M" "$VIRTBACK" map -i "$B" "$@"
  local i
  for i in $(seq 300); do
    grep -q '^nbd' "$M/out" 2>/dev/null && return 0
    [ -s "$M/rc" ] && break
    sleep 0.1
  done
  cat "$M/out"
  return 1
}

# map_stop: SIGTERM; it exits 0 and leaves nothing.
map_stop () {
  kill -TERM "$(cat "$M/pid")"
  [ "$(vb_bg_rc "$M")" -eq 0 ] || { cat "$M/out"; return 1; }
  map_clean
}

# New map directories that are this file's: its nbdkit is gone, or it
# serves a backup of this run (maps of other runs on the host are theirs).
our_new_dirs () {
  local d pid cmd
  for d in $(comm -13 "$BATS_TEST_TMPDIR/dirs.before" <(map_dirs)); do
    pid=$(cat "$d/nbdkit.pid" 2>/dev/null) || true
    # A gone nbdkit leaves no command line (a zombie keeps its /proc).
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || true
    if [ -z "$pid" ] || [[ $cmd != nbdkit* ]] || echo "$cmd" | grep -qF "dir=$BATS_RUN_TMPDIR"; then
      echo "$d"
    fi
  done
}

map_clean () {
  [ ! -e "$SOCK" ] || { echo "socket left"; return 1; }
  local left
  left=$(our_new_dirs)
  [ -z "$left" ] || { echo "private dir left: $left"; return 1; }
  ! pgrep -f "nbdkit.*dir=$B" >/dev/null || { echo "nbdkit left"; return 1; }
}

uri () { echo "nbd+unix:///$1?socket=$SOCK"; }

# "! cmd" does not fail a bats test unless it is the last command.
not () { if "$@"; then echo "expected to fail: $*"; return 1; fi; return 0; }

# qemu-io on an export: a read with -P checks the pattern.  qemu-io exits 0
# on a failed request, so its output is checked too.
qio () {
  local out
  out=$(qemu-io -f raw "$@" 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  [[ "$out" != *failed* && "$out" != *rror* && "$out" != *mismatch* ]]
}

@test "every point of a plain/lz4/zstd chain, both disks, equals the disk at that moment" {
  for p in 0 1 2; do
    map_start --socket "$SOCK" --until virtback.$p
    [ "$(grep -c '^nbd+unix' "$M/out")" -eq 2 ]
    [ "$(stat -c '%a %G' "$SOCK")" = "660 libvirt-qemu" ]
    for d in sda sdb; do
      rm -f "$BATS_TEST_TMPDIR/$d.raw"
      nbdcopy "$(uri $d)" "$BATS_TEST_TMPDIR/$d.raw"
      qemu-img compare -U -q "$S/$d.$p.qcow2" "$BATS_TEST_TMPDIR/$d.raw"
    done
    map_stop
  done
}

@test "holes show in nbdinfo --map; qemu-img reads the export; -d serves one disk" {
  map_start --socket "$SOCK" -d sdb
  [ "$(grep -c '^nbd+unix' "$M/out")" -eq 1 ]
  nbdinfo --list "nbd+unix://?socket=$SOCK" | grep -q 'export="sdb"'
  list=$(nbdinfo --list "nbd+unix://?socket=$SOCK")
  [[ "$list" != *'export="sda"'* ]]
  map=$(nbdinfo --map "$(uri sdb)")
  echo "$map"
  grep -q 'hole,zero' <<<"$map"
  grep -q ' data$' <<<"$map"
  qemu-img compare -U -q "$S/sdb.2.qcow2" "$(uri sdb)"
  map_stop
}

@test "a flipped byte in a compressed piece: that read fails with EIO naming the file, others work" {
  D=$BATS_TEST_TMPDIR/d
  cp -a "$B" "$D"
  f=$D/sda.inc.virtback.1.data
  off=$(rb_frame_at "$f" data $((1 << 20)))
  rb_flip "$f" $((off + 40 + 300))
  vb_bg_start "$M" "$VIRTBACK" map -i "$D" --socket "$SOCK" --until virtback.1
  for i in $(seq 300); do grep -q '^nbd' "$M/out" && break; sleep 0.1; done
  run qemu-io -f raw -r -c "read 1M 4k" "$(uri sda)"
  echo "$output"
  [[ "$output" == *"Input/output error"* ]]
  qio -r -c "read -P 0x11 0 4k" "$(uri sda)"
  sleep 0.3
  grep -q "sda.inc.virtback.1.data: offset" "$M/out"
  kill -TERM "$(cat "$M/pid")"
  vb_bg_rc "$M"
  map_clean
}

@test "--writable takes writes into an overlay; the backup files never change" {
  before=$(cd "$B" && md5sum *.data)
  map_start --socket "$SOCK" --writable
  qio -c "write -P 0xee 1M 64k" -c flush "$(uri sda)"
  qio -r -c "read -P 0xee 1M 64k" "$(uri sda)"
  map_stop
  [ "$(cd "$B" && md5sum *.data)" = "$before" ]
  map_start --socket "$SOCK"
  run qemu-io -f raw -c "write -P 0x1 0 512" "$(uri sda)"
  echo "$output"
  [[ "$output" != *"wrote 512"* ]]
  qemu-img compare -U -q "$S/sda.2.qcow2" "$(uri sda)"
  map_stop
}

@test "--listen on TCP warns that the data is unencrypted and serves" {
  port=$((20000 + RANDOM % 20000))
  map_start --listen 127.0.0.1:$port --until virtback.0
  grep -q "warning: without --tls the disk data crosses the network unencrypted" "$M/out"
  grep -q "^nbd://127.0.0.1:$port/sda$" "$M/out"
  qemu-img compare -U -q "$S/sda.0.qcow2" "nbd://127.0.0.1:$port/sda"
  kill -INT "$(cat "$M/pid")"
  [ "$(vb_bg_rc "$M")" -eq 0 ]
  map_clean
}

@test "--tls requires TLS of every client: nbds:// with the CA reads, plain NBD is refused" {
  C=$BATS_TEST_TMPDIR/pki
  vb_test_ca "$C" vbtest-ca
  port=$((20000 + RANDOM % 20000))
  map_start --listen 127.0.0.1:$port --tls --tls-dir "$C" -d sda
  grep -q "^nbds://127.0.0.1:$port/sda$" "$M/out"
  not grep -q "unencrypted" "$M/out"
  [ "$(nbdinfo --size "nbds://127.0.0.1:$port/sda?tls-certificates=$C")" = 67108864 ]
  run nbdinfo --size "nbd://127.0.0.1:$port/sda"
  [ "$status" -ne 0 ]
  [[ "$output" == *"requires TLS"* ]]
  kill -TERM "$(cat "$M/pid")"
  [ "$(vb_bg_rc "$M")" -eq 0 ]
  map_clean
}

@test "kill -9 of virtback map takes nbdkit down; the next map removes what it left" {
  map_start --socket "$SOCK" -d sda
  kill -9 "$(cat "$M/pid")"
  vb_bg_rc "$M" >/dev/null
  for i in $(seq 50); do pgrep -f "nbdkit.*dir=$B" >/dev/null || break; sleep 0.1; done
  not pgrep -f "nbdkit.*dir=$B"
  [ -n "$(our_new_dirs)" ]
  rm -f "$SOCK"
  map_start --socket "$SOCK" -d sda
  map_stop
}

@test "wrong options and a missing point fail in one line, leaving nothing" {
  run "$VIRTBACK" map -i "$B"
  [ "$status" -eq 2 ]
  run "$VIRTBACK" map -i "$B" --socket "$SOCK" --listen 127.0.0.1:1
  [ "$status" -eq 2 ]
  run "$VIRTBACK" map -i "$B" --socket "$SOCK" --until virtback.9
  echo "$output"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"virtback.9"* ]]
  run "$VIRTBACK" map -i "$B" --socket "$SOCK" -d sdz
  [ "$status" -eq 1 ]
  [[ "$output" == *"no disk sdz"* ]]
  map_clean
}

@test "--writable --overlay keeps a qcow2 holding the writes over the point; it opens with qemu-img" {
  before=$(cd "$B" && md5sum *.data)
  F=$BATS_TEST_TMPDIR/sda-ov.qcow2
  map_start --socket "$SOCK" --until virtback.1 -d sda --writable --overlay "$F"
  qio -c "write -P 0xee 1M 64k" -c "write -z 2M 64k" -c flush "$(uri sda)"
  qio -r -c "read -P 0xee 1M 64k" -c "read -P 0x21 2093056 4k" "$(uri sda)"
  map_stop
  grep -q "kept $F: the writes" "$M/out"
  [ ! -e "$F.sock" ]
  [ "$(stat -c %a "$F")" = 600 ]
  info=$(qemu-img info "$F")
  echo "$info"
  grep -q "file format: qcow2" <<<"$info"
  grep -q "backing file: nbd+unix:///sda?socket=$F.sock" <<<"$info"
  # The file alone holds the writes ...
  out=$(qemu-io -r -c "read -P 0xee 1M 64k" -c "read -P 0 2M 64k" \
    "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$F\"},\"backing\":null}")
  echo "$out"
  [[ "$out" == *"read 65536/65536 bytes at offset 2097152"* && "$out" != *rror* && "$out" != *mismatch* ]]
  # ... and over the point, served again on its backing socket, it is the
  # point plus the writes.
  SOCK=$F.sock map_start --socket "$F.sock" --until virtback.1 -d sda
  qemu-img check -q "$F"
  qemu-img convert -O raw "$F" "$BATS_TEST_TMPDIR/got.raw"
  qemu-img convert -U -O raw "$S/sda.1.qcow2" "$BATS_TEST_TMPDIR/want.raw"
  qemu-io -f raw -c "write -P 0xee 1M 64k" -c "write -z 2M 64k" "$BATS_TEST_TMPDIR/want.raw" >/dev/null
  cmp "$BATS_TEST_TMPDIR/want.raw" "$BATS_TEST_TMPDIR/got.raw"
  kill -TERM "$(cat "$M/pid")"
  [ "$(vb_bg_rc "$M")" -eq 0 ]
  [ ! -e "$F.sock" ]
  map_clean
  [ "$(cd "$B" && md5sum *.data)" = "$before" ]
}

@test "--overlay: two disks, no --writable, an existing file: one line each, no file made" {
  F=$BATS_TEST_TMPDIR/ov.qcow2
  run "$VIRTBACK" map -i "$B" --socket "$SOCK" --writable --overlay "$F"
  [ "$status" -eq 1 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"give -d DISK"* ]]
  run "$VIRTBACK" map -i "$B" --socket "$SOCK" -d sda --overlay "$F"
  [ "$status" -eq 1 ]
  [[ "$output" == *"--overlay goes with --writable"* ]]
  [ ! -e "$F" ]
  touch "$F"
  run "$VIRTBACK" map -i "$B" --socket "$SOCK" -d sda --writable --overlay "$F"
  [ "$status" -eq 1 ]
  [[ "$output" == *"exists: remove it"* ]]
  [ ! -s "$F" ]
  map_clean
}
