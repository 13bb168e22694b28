#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# virtback backup against real libvirtd + QEMU VMs (no guest OS needed).

load backup_helpers

setup_file () { bk_setup_file; }
setup () { bk_setup vbt; }
teardown () { bk_teardown; }

@test "full backup writes the layout with private modes and a valid checksum" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x11 0 1M" "write -P 0x22 64M 3M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  echo "$output"
  [ "$status" -eq 0 ]
  assert_clean "$VM" "$T/b"
  [ -f "$T/b/sda.full.data" ]
  [ "$(stat -c %a "$T/b/sda.full.data")" = 600 ]
  [ "$(stat -c %a "$T/b")" = 700 ]
  [ "$(stat -c %a "$T/b/checkpoints")" = 700 ]
  [ "$(cat "$T/b/$VM.cpt")" = '["virtback.0"]' ]
  [ -f "$T/b/checkpoints/virtback.0.xml" ]
  [ -f "$T/b/vmconfig.virtback.0.xml" ]
  [ -f "$T/b/sda.virtback.0.qcow.json" ]
  ls "$T/b"/backup.full.*.log
  [ "$(cat "$T/b/sda.full.data.chksum")" = "$(adler "$T/b/sda.full.data")" ]
  # only allocated data is saved: 4 MiB of data, not 256 MiB
  [ "$(stat -c %s "$T/b/sda.full.data")" -lt $((5 * 1024 * 1024)) ]
  grep -a -q '"dataSize": 4194304,' "$T/b/sda.full.data"
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
}

@test "the peer's virtnbdrestore restores virtback full backups, plain and -z" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x31 0 2M" "write -P 0x32 40M 40M"
  vb_snapshot_disk "$VM" sda "$T/snap.qcow2"
  for z in "" "-z"; do
    rm -rf "$T/b" "$T/r"
    vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n $z
    [ "$status" -eq 0 ]
    virtnbdrestore -i "$T/b" -o "$T/r" >"$T/peer.log" 2>&1 || { tail -20 "$T/peer.log"; false; }
    vb_compare "$T/snap.qcow2" "$T/r/$VM-sda.qcow2" || { tail -20 "$T/peer.log"; false; }
  done
  # the 40 MiB extent spans two 32 MiB lz4 pieces
  tail -c 200 "$T/b/sda.full.data" | grep -a -q ', {"'
}

@test "full then incrementals: dirty extents only, zeroed ranges become zero frames" {
  vb_make_vm "$VM" 256M
  vb_guest_io "$VM" sda "write -P 0x11 0 8M" "write -P 0x12 100M 8M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -P 0x21 1M 1M" "write -z 100M 2M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  f="$T/b/sda.inc.virtback.1.data"
  [ -f "$f" ]
  grep -a -q '"parentCheckpoint": "virtback.0"' "$f"
  grep -a -q '"incremental": true' "$f"
  grep -a -q '^data 0000000000100000 0000000000100000' "$f"
  grep -a -q '^zero 0000000006400000 0000000000200000' "$f"
  [ "$(grep -a -c '^data ' "$f")" -eq 1 ]
  [ "$(cat "$T/b/$VM.cpt")" = '["virtback.0", "virtback.1"]' ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  # nothing changed: no data frame at all
  [ "$(grep -a -c '^data ' "$T/b/sda.inc.virtback.2.data")" -eq 0 ]
  [ "$(vb_checkpoints "$VM" | tr '\n' ' ')" = "virtback.0 virtback.1 virtback.2 " ]
  assert_clean "$VM" "$T/b"
}

@test "diff backups do not create checkpoints; auto picks full then inc" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x11 0 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l auto -n
  [ "$status" -eq 0 ]
  [ -f "$T/b/sda.full.data" ]
  vb_guest_io "$VM" sda "write -P 0x12 2M 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l diff -n
  [ "$status" -eq 0 ]
  ls "$T/b"/sda.diff.*.data
  [ "$(vb_checkpoints "$VM")" = virtback.0 ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l auto -n
  [ "$status" -eq 0 ]
  [ -f "$T/b/sda.inc.virtback.1.data" ]
}

@test "copy makes no checkpoint; -t raw writes a sparse image equal to the disk" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x55 3M 5M"
  vb_snapshot_disk "$VM" sda "$T/snap.qcow2"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/c" -l copy -n
  [ "$status" -eq 0 ]
  [ -f "$T/c/sda.copy.data" ]
  [ -z "$(vb_checkpoints "$VM")" ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/r" -l copy -t raw -n
  [ "$status" -eq 0 ]
  qemu-img compare -q -f raw "$T/r/sda.copy.data" "$T/snap.qcow2"
  [ "$(stat -c %s "$T/r/sda.copy.data")" -eq $((64 * 1024 * 1024)) ]
  [ "$(du -k "$T/r/sda.copy.data" | cut -f1)" -lt 10240 ]
}

@test "-p prints the estimate and writes nothing; --json summarises" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x55 0 3M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/p" -l full -p
  [ "$status" -eq 0 ]
  [[ "$output" == *"sda: 3145728 bytes"* ]]
  [ ! -e "$T/p" ]
  [ -z "$(vb_checkpoints "$VM")" ]
  run bash -c "'$VIRTBACK' backup $VB_SCRATCH_OPT -d '$VM' -o '$T/j' -l full --json 2>/dev/null"
  [ "$status" -eq 0 ]
  echo "$output" | python3 -c 'import json,sys; j=json.load(sys.stdin); d=j["disks"][0]; assert d["disk"]=="sda" and d["bytesRead"]==3145728 and d["dataExtents"]==1, j'
}

@test "two disks: -x and -i select, both back up in parallel" {
  vb_make_vm "$VM" 64M 2
  vb_guest_io "$VM" sda "write -P 0x1 0 1M"
  vb_guest_io "$VM" sdb "write -P 0x2 0 2M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l full -n
  [ "$status" -eq 0 ]
  [ -f "$T/a/sda.full.data" ] && [ -f "$T/a/sdb.full.data" ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/x" -l copy -x sda -n
  [ "$status" -eq 0 ]
  [ ! -e "$T/x/sda.copy.data" ] && [ -f "$T/x/sdb.copy.data" ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/i" -l copy -i sda -n
  [ "$status" -eq 0 ]
  [ -f "$T/i/sda.copy.data" ] && [ ! -e "$T/i/sdb.copy.data" ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/n" -l copy -i sdz -n
  [ "$status" -ne 0 ]
  [[ "$output" == *"no disk 'sdz'"* ]]
}

@test "raw disks are skipped with a note unless -r" {
  vb_make_vm "$VM" 64M 2 "" sdb
  vb_guest_io "$VM" sdb "write -P 0x7 1M 1M"
  vb_snapshot_raw () { qemu-img convert -U -f raw -O raw "$VB_IMG_DIR/$VM-sdb.raw" "$T/sdb.raw"; }
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/a" -l full -n
  [ "$status" -eq 0 ]
  [[ "$output" == *"skipping disk sdb"* ]]
  [ ! -e "$T/a/sdb.full.data" ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -r -n
  [ "$status" -eq 0 ]
  [ -f "$T/b/sdb.copy.data" ]
  [ -f "$T/b/sda.full.data" ]
  vb_snapshot_raw
  cmp "$T/b/sdb.copy.data" "$T/sdb.raw"
  # an incremental leaves the raw disk out with a note
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -r -n
  [ "$status" -eq 0 ]
  [[ "$output" == *"skipping raw disk sdb"* ]]
  # a zip on stdout cannot hold a raw image (it is written out of order): refused, no job left
  run bash -c "'$VIRTBACK' backup $VB_SCRATCH_OPT -d '$VM' -o - -l copy -r -n > '$T/c.zip'"
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"disk sdb is in raw format"*"-x sdb"* ]]
  [ "$(echo "$output" | wc -l)" -le 2 ]
  vb_no_job "$VM"
}

@test "--group: files 0640 and directories 0750 owned by the group" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x1 0 1M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/g" -l full -n --group kvm
  [ "$status" -eq 0 ]
  [ "$(stat -c '%a %G' "$T/g")" = "750 kvm" ]
  [ "$(stat -c '%a %G' "$T/g/checkpoints")" = "750 kvm" ]
  for f in "$T/g"/* "$T/g"/checkpoints/*; do
    [ -d "$f" ] || [ "$(stat -c '%a %G' "$f")" = "640 kvm" ] || { echo "$f: $(stat -c '%a %G' "$f")"; false; }
  done
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/x" -l full -n --group no-such-group-here
  [ "$status" -eq 2 ]
}

@test "secrets are never written: a VNC password stays out of the backup and its log" {
  vb_make_vm "$VM" 64M
  vsh destroy "$VM" >/dev/null
  vsh dumpxml --inactive --security-info "$VM" |
    sed "s|</devices>|<graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1' passwd='Vb5ecr3t'/></devices>|" > "$T/dom.xml"
  vsh define "$T/dom.xml" >/dev/null
  vsh dumpxml --security-info "$VM" | grep -q Vb5ecr3t
  vsh start "$VM" >/dev/null
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/s" -l full -n
  [ "$status" -eq 0 ]
  grep -q "<graphics" "$T/s"/vmconfig.*.xml
  not grep -r -q Vb5ecr3t "$T/s"
  [[ "$output" != *Vb5ecr3t* ]]
}

@test "the NBD socket lives in a directory only root and QEMU's group can enter" {
  vb_make_vm "$VM" 512M
  vb_guest_io "$VM" sda "write -P 0x42 0 128M"
  "$VIRTBACK" backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l copy -n --request-size 4096 --inflight 1 --connections 1 2>/dev/null &
  pid=$!
  for i in $(seq 100); do ls "$T/b"/*.partial >/dev/null 2>&1 && break; sleep 0.1; done
  d=$(ls -d "$SCRATCH"/virtback.*)
  perms=$(stat -c '%a %U %G' "$d")
  sock=$(stat -c '%F' "$d/nbd.sock")
  kill -TERM $pid
  wait $pid || true
  [ "$perms" = "770 root libvirt-qemu" ]
  [ "$sock" = socket ]
  assert_clean "$VM" "$T/b"
}
