#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# What the peer virtnbdrestore (Debian's 1.9.15) can restore of virtback's
# incrementals, --peer-compatible, and which backup jobs -k may end.

load backup_helpers

setup_file () { bk_setup_file; }
setup () { bk_setup vbk; }
teardown () { bk_teardown; }

# A full, then the guest zeroes a range it had written, then an inc.
zeroed_chain () {
  local dir=$1
  shift
  vb_guest_io "$VM" sda "write -P 0x11 0 4M" "write -P 0x12 8M 4M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$dir" -l full -n "$@"
  [ "$status" -eq 0 ]
  vb_guest_io "$VM" sda "write -z 8M 4M" "write -P 0x21 1M 1M"
}

@test "default inc: zeroed range as a zero frame; virtback restores it, dump says the peer cannot" {
  vb_make_vm "$VM" 64M
  zeroed_chain "$T/b"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/snap.qcow2"
  vbk restore -i "$T/b" -o "$T/r"
  [ "$status" -eq 0 ]
  vb_compare "$T/snap.qcow2" "$T/r/sda.qcow2"
  vbk dump -i "$T/b"
  [[ "$output" == *"sda.inc.virtback.1.data"*"virtnbdrestore cannot restore"* ]]
  # ... and that is true: the peer keeps the old bytes in the zeroed range
  virtnbdrestore -i "$T/b" -o "$T/p" >"$T/p.log" 2>&1 || { tail -20 "$T/p.log"; false; }
  not vb_compare "$T/snap.qcow2" "$T/p/$VM-sda.qcow2"
}

@test "--peer-compatible inc (plain and lz4): the peer restores it exactly" {
  vb_make_vm "$VM" 64M
  for z in "" "-z"; do
    rm -rf "$T/b" "$T/p"
    zeroed_chain "$T/b" $z
    vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n --peer-compatible $z
    [ "$status" -eq 0 ]
    vb_snapshot_disk "$VM" sda "$T/snap.qcow2"
    virtnbdrestore -i "$T/b" -o "$T/p" >"$T/p.log" 2>&1 || { tail -20 "$T/p.log"; false; }
    vb_compare "$T/snap.qcow2" "$T/p/$VM-sda.qcow2"  || { cat "$T/p.log"; false; }
    vbk dump -i "$T/b"
    not grep -q "virtnbdrestore cannot" <<<"$output"
    vbk verify -i "$T/b"
    [ "$status" -eq 0 ]
  done
}

@test "--checkpoint-prefix virtnbdbackup implies --peer-compatible, and refuses zstd" {
  vb_make_vm "$VM" 64M
  zeroed_chain "$T/b" --checkpoint-prefix virtnbdbackup
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l inc -n --checkpoint-prefix virtnbdbackup
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/snap.qcow2"
  virtnbdrestore -i "$T/b" -o "$T/p" >"$T/p.log" 2>&1 || { tail -20 "$T/p.log"; false; }
  vb_compare "$T/snap.qcow2" "$T/p/$VM-sda.qcow2"  || { cat "$T/p.log"; false; }
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/z" -l copy -n --checkpoint-prefix virtnbdbackup --compress-method zstd
  [ "$status" -eq 1 ]
  [[ "$output" == *"virtnbdrestore cannot read zstd"* ]]
  [ ! -e "$T/z" ] || [ -z "$(ls -A "$T/z")" ]
}

# A backup job somebody else started: its own socket and scratch file.
foreign_job () {
  bk_job_dir; JD=$BK_JOBDIR
  cat > "$T/job.xml" <<XML
<domainbackup mode='pull'><server transport='unix' socket='$JD/s'/>
<disks><disk name='sda' backup='yes' type='file'><scratch file='$JD/scratch.qcow2'/></disk></disks></domainbackup>
XML
  vsh backup-begin "$VM" "$T/job.xml"
}

@test "-k leaves a backup job virtback did not start, naming it; -k --force ends it" {
  vb_make_vm "$VM" 64M
  foreign_job
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n -k
  [ "$status" -eq 1 ]
  [[ "$output" == *"$JD/s"*"not started by virtback"*"--force"* ]]
  [ "$(echo "$output" | grep -c 'virtback backup:')" -eq 1 ]
  not vb_no_job "$VM"
  [ -z "$(vb_checkpoints "$VM")" ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n --force
  [ "$status" -eq 2 ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l full -n -k --force
  [ "$status" -eq 0 ]
  assert_clean "$VM" "$T/b"
}

@test "sizes take suffixes: --request-size 1M works, 1X is refused in one line" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x11 0 4M"
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/b" -l copy -n --request-size 1M
  [ "$status" -eq 0 ]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/c" -l copy -n --request-size 1X
  [ "$status" -eq 2 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ "$output" == *"invalid request size"*"1X"* ]]
  vbk backup $VB_SCRATCH_OPT -d "$VM" -o "$T/c" -l copy -n --request-size 3K
  [ "$status" -eq 2 ]
}
