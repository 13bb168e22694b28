#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# dump, verify and the options of restore, on a two-disk VM backed up by
# virtnbdbackup (full + 2 inc).

load restore_helpers

VM=vbrst-opts

setup_file () {
  rb_load
  export S=$BATS_FILE_TMPDIR/snap B=$BATS_FILE_TMPDIR/b
  mkdir -p "$S"
  vb_make_vm $VM 64M 2
  vb_guest_io $VM sda "write -P 0x11 0 2M" "write -P 0x12 60M 1M"
  vb_guest_io $VM sdb "write -P 0x21 1M 1M"
  vb_snapshot_disk $VM sda "$S/sda.0.qcow2" && vb_snapshot_disk $VM sdb "$S/sdb.0.qcow2"
  rb_peer_backup $VM full "$B"
  vb_guest_io $VM sda "write -P 0x13 1M 2M" "write -z 60M 64K"
  vb_snapshot_disk $VM sda "$S/sda.1.qcow2" && vb_snapshot_disk $VM sdb "$S/sdb.1.qcow2"
  rb_peer_backup $VM inc "$B"
  vb_guest_io $VM sda "write -P 0x14 30M 1M"
  vb_guest_io $VM sdb "write -P 0x22 10M 1M"
  vb_snapshot_disk $VM sda "$S/sda.2.qcow2" && vb_snapshot_disk $VM sdb "$S/sdb.2.qcow2"
  rb_peer_backup $VM inc "$B"
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  OUT=$BATS_TEST_TMPDIR/out
  rb_private_tmpdir
}

teardown_file () {
  vsh destroy restore_$VM >/dev/null 2>&1
  vsh undefine restore_$VM >/dev/null 2>&1
  vsh destroy vbrst-defined >/dev/null 2>&1
  vsh undefine vbrst-defined >/dev/null 2>&1
  rm -rf "$VB_IMG_DIR/vbrst-restored"
  vb_destroy_vm $VM
}

@test "dump shows each disk's files in chain order, then the chain" {
  run "$VIRTBACK" dump -i "$B"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"domain $VM, 6 data files, 2 disks"* ]]
  files=$(awk '/^disk sda/ {on=1; next} /^$/ {on=0} on && /\.data/ {print $1}' <<<"$output" | xargs)
  [ "$files" = "sda.full.data sda.inc.virtnbdbackup.1.data sda.inc.virtnbdbackup.2.data" ]
  grep -E '^  sda.inc.virtnbdbackup.1.data +inc +virtnbdbackup.1 +virtnbdbackup.0 +[0-9T:.-]+ +67108864 +[0-9]+ none$' <<<"$output"
  grep -E '^  virtnbdbackup.2 +depends on virtnbdbackup.1$' <<<"$output"
}

@test "dump --json is one document with the metadata and the chain" {
  run "$VIRTBACK" dump -i "$B" --json
  [ "$status" -eq 0 ]
  [ "$(jq -r .domain <<<"$output")" = $VM ]
  [ "$(jq -r '.disks[1].disk' <<<"$output")" = sdb ]
  [ "$(jq -r '[.disks[0].files[].file] | join(",")' <<<"$output")" = \
    "sda.full.data,sda.inc.virtnbdbackup.1.data,sda.inc.virtnbdbackup.2.data" ]
  [ "$(jq -r '.disks[0].files[0].virtualSize' <<<"$output")" = 67108864 ]
  [ "$(jq -r '.disks[0].files[0].dataSize' <<<"$output")" = $((3 << 20)) ]
  [ "$(jq -r '.disks[0].files[0].compressed' <<<"$output")" = false ]
  [ "$(jq -r '.chain[2].checkpoint + "<" + .chain[2].parent' <<<"$output")" = \
    "virtnbdbackup.2<virtnbdbackup.1" ]
  [ "$(jq -r '.checkpoints | length' <<<"$output")" = 3 ]
  [ "$(jq -r '.problems | length' <<<"$output")" = 0 ]
}

@test "verify says OK and exits 0; a leftover .partial is only noted" {
  run "$VIRTBACK" verify -i "$B"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == "OK: 6 data files of 2 disks"* ]]
  d=$BATS_TEST_TMPDIR/d
  cp -a "$B" "$d"
  echo junk > "$d/sda.inc.virtnbdbackup.3.data.partial"
  run "$VIRTBACK" verify -i "$d"
  [ "$status" -eq 0 ]
  [[ "$output" == *"note: sda.inc.virtnbdbackup.3.data.partial"* ]]
}

@test "restore needs no libvirtd: it never connects to libvirt unless -D" {
  command -v strace >/dev/null || { echo "strace is missing"; false; }
  strace -f -e trace=connect -o "$BATS_TEST_TMPDIR/trace" \
    "$VIRTBACK" restore -i "$B" -o "$OUT" -c
  rb_compare "$S/sda.2.qcow2" "$OUT/sda.qcow2"
  grep -q connect "$BATS_TEST_TMPDIR/trace"      # qemu-nbd's socket at least
  run grep libvirt "$BATS_TEST_TMPDIR/trace"
  echo "$output"
  [ "$status" -eq 1 ]
}

@test "-d restores only the named disk" {
  run "$VIRTBACK" restore -i "$B" -o "$OUT" -d sdb --until virtnbdbackup.1
  echo "$output"
  [ "$status" -eq 0 ]
  [ ! -e "$OUT/sda.qcow2" ]
  rb_compare "$S/sdb.1.qcow2" "$OUT/sdb.qcow2"
  run "$VIRTBACK" restore -i "$B" -o "$OUT/x" -d sdc
  [ "$status" -eq 1 ]
  [[ "$output" == *"no backup of disk sdc"* ]]
}

@test "--sequence applies exactly the files given, and checks their links" {
  run "$VIRTBACK" restore -i "$B" -o "$OUT" --sequence sda.full.data,sda.inc.virtnbdbackup.1.data
  echo "$output"
  [ "$status" -eq 0 ]
  rb_compare "$S/sda.1.qcow2" "$OUT/sda.qcow2"
  [ ! -e "$OUT/sdb.qcow2" ]
  run "$VIRTBACK" restore -i "$B" -o "$OUT/x" --sequence sda.full.data,sda.inc.virtnbdbackup.2.data
  [ "$status" -eq 1 ]
  [[ "$output" == *"cannot follow sda.full.data"* ]]
  rb_no_image "$OUT/x"
}

@test "--format raw writes raw images" {
  run "$VIRTBACK" restore -i "$B" -o "$OUT" --format raw
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(qemu-img info --output=json "$OUT/sda.raw" | jq -r .format)" = raw ]
  qemu-img compare -q -f raw -F qcow2 "$OUT/sda.raw" "$S/sda.2.qcow2"
  qemu-img compare -q -f raw -F qcow2 "$OUT/sdb.raw" "$S/sdb.2.qcow2"
}

@test "--to writes into an existing target, and refuses a smaller one" {
  t=$BATS_TEST_TMPDIR/target
  dd if=/dev/urandom of="$t" bs=1M count=64 status=none   # old content everywhere
  run "$VIRTBACK" restore -i "$B" -o "$OUT" -d sda --to "$t" --until virtnbdbackup.1
  echo "$output"
  [ "$status" -eq 0 ]
  qemu-img compare -q -f raw -F qcow2 "$t" "$S/sda.1.qcow2"
  truncate -s 32M "$BATS_TEST_TMPDIR/small"
  run "$VIRTBACK" restore -i "$B" -o "$OUT" -d sda --to "$BATS_TEST_TMPDIR/small"
  [ "$status" -eq 1 ]
  [[ "$output" == *"less than the 67108864 bytes of disk sda"* ]]
  run "$VIRTBACK" restore -i "$B" -o "$OUT" --to "$t"
  [ "$status" -eq 2 ] || [ "$status" -eq 1 ]
  [[ "$output" == *"-d DISK"* ]]
}

@test "--to a block device (a loop device) writes raw, and -c makes it a block disk" {
  f=$BATS_TEST_TMPDIR/loop.img
  dd if=/dev/urandom of="$f" bs=1M count=64 status=none   # old content everywhere
  dev=$(losetup -f --show "$f" 2>/dev/null) || skip "no loop device here (losetup failed)"
  run "$VIRTBACK" restore -i "$B" -o "$OUT" -d sda --to "$dev" --until virtnbdbackup.1 -c
  echo "$output"
  status_restore=$status
  cmp_rc=0
  qemu-img compare -q -f raw -F qcow2 "$dev" "$S/sda.1.qcow2" || cmp_rc=$?
  losetup -d "$dev"
  [ "$status_restore" -eq 0 ]
  [[ "$output" == *"(raw, "* ]]
  [ "$cmp_rc" -eq 0 ]
  x=$OUT/vmconfig.virtnbdbackup.1.xml
  [ "$(xmllint --xpath "string(//disk[target/@dev='sda']/@type)" "$x")" = block ]
  [ "$(xmllint --xpath "string(//disk[target/@dev='sda']/source/@dev)" "$x")" = "$dev" ]
  [ "$(xmllint --xpath "string(//disk[target/@dev='sda']/driver/@type)" "$x")" = raw ]
}

@test "existing images are kept unless --force" {
  "$VIRTBACK" restore -i "$B" -o "$OUT" -d sda --until virtnbdbackup.0
  run "$VIRTBACK" restore -i "$B" -o "$OUT" -d sda
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"exists"*"--force"* ]]
  rb_compare "$S/sda.0.qcow2" "$OUT/sda.qcow2"
  run "$VIRTBACK" restore -i "$B" -o "$OUT" -d sda --force
  [ "$status" -eq 0 ]
  rb_compare "$S/sda.2.qcow2" "$OUT/sda.qcow2"
  # the VM definition of a restore point is not overwritten either
  x=$(ls "$OUT"/vmconfig.*.xml | head -1)
  echo "keep me" > "$x"
  rm -f "$OUT"/sda.qcow2
  run "$VIRTBACK" restore -i "$B" -o "$OUT" -d sda
  [ "$status" -eq 1 ]
  [[ "$output" == *"vmconfig"*"exists"*"--force"* ]]
  [ "$(cat "$x")" = "keep me" ]
  [ ! -e "$OUT/sda.qcow2" ]
}

@test "-c gives consoles and channels written to files the new name's files" {
  d=$BATS_TEST_TMPDIR/d
  cp -a "$B" "$d"
  # The original's log files: virtlogd refuses a second domain on them.
  sed -i "s|</devices>|<serial type='file'><source path='/var/log/libvirt/qemu/$VM-serial.log'/><target port='0'/></serial><channel type='file'><source path='/var/log/$VM/ch.log'/><target type='virtio' name='x.0'/></channel><console type='pty'><log file='/var/log/console.log'/><target type='serial' port='0'/></console></devices>|" \
    "$d/vmconfig.virtnbdbackup.2.xml"
  run "$VIRTBACK" restore -i "$d" -o "$OUT" -c -N vbrst-new
  echo "$output"
  [ "$status" -eq 0 ]
  x=$OUT/vmconfig.virtnbdbackup.2.xml
  [ "$(xmllint --xpath 'string(//serial/source/@path)' "$x")" = /var/log/libvirt/qemu/vbrst-new-serial.log ]
  [ "$(xmllint --xpath 'string(//channel/source/@path)' "$x")" = /var/log/$VM/vbrst-new-ch.log ]
  [ "$(xmllint --xpath 'string(//console/log/@file)' "$x")" = /var/log/vbrst-new-console.log ]
}

@test "-c adjusts the VM definition: paths, name, no uuid, no other disks, no media" {
  d=$BATS_TEST_TMPDIR/d
  cp -a "$B" "$d"
  # A cdrom with media from the old host.
  sed -i "s|</devices>|<disk type='file' device='cdrom'><source file='/old/host.iso'/><target dev='hdc' bus='ide'/><readonly/></disk></devices>|" \
    "$d/vmconfig.virtnbdbackup.2.xml"
  run "$VIRTBACK" restore -i "$d" -o "$OUT" -d sda -c
  echo "$output"
  [ "$status" -eq 0 ]
  x=$OUT/vmconfig.virtnbdbackup.2.xml
  cat "$x"
  [ "$(xmllint --xpath 'string(/domain/name)' "$x")" = restore_$VM ]
  [ "$(xmllint --xpath 'count(/domain/uuid)' "$x")" = 0 ]
  [ "$(xmllint --xpath "string(//disk[target/@dev='sda']/source/@file)" "$x")" = "$OUT/sda.qcow2" ]
  [ "$(xmllint --xpath "count(//disk[target/@dev='sdb'])" "$x")" = 0 ]
  [ "$(xmllint --xpath "count(//disk[@device='cdrom'])" "$x")" = 1 ]
  [ "$(xmllint --xpath "count(//disk[@device='cdrom']/source)" "$x")" = 0 ]
}

@test "-D defines the restored VM and it starts" {
  out=$VB_IMG_DIR/vbrst-restored
  rm -rf "$out"
  run "$VIRTBACK" restore -i "$B" -o "$out" -D -N vbrst-defined
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"defined domain vbrst-defined"* ]]
  vsh start vbrst-defined
  [ "$(vsh domstate vbrst-defined)" = running ]
  vsh domblklist vbrst-defined | grep "$out/sda.qcow2"
  vsh destroy vbrst-defined
  vsh undefine vbrst-defined
  rb_compare "$S/sda.2.qcow2" "$out/sda.qcow2"
}

@test "SIGTERM during a restore stops qemu-nbd and leaves no image" {
  d=$BATS_TEST_TMPDIR/d
  cp -a "$B" "$d"
  vb_bg_start "$BATS_TEST_TMPDIR/bg" "$VIRTBACK" restore -i "$d" -o "$OUT"
  kill -TERM "$(cat "$BATS_TEST_TMPDIR/bg/pid")" 2>/dev/null || true
  rc=$(vb_bg_rc "$BATS_TEST_TMPDIR/bg")
  # It may have finished before the signal (0), or not yet have set up its
  # handler (143, killed by the signal); otherwise it must fail cleanly (1).
  echo "exit status $rc: $(cat "$BATS_TEST_TMPDIR/bg/out")"
  [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ] || [ "$rc" -eq 143 ]
  if [ "$rc" -ne 0 ]; then
    rb_no_image "$OUT"
  fi
  [ -z "$(pgrep -f "qemu-nbd.*$OUT")" ]
}
