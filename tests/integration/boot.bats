#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# Backups that boot: the bootable tiny guest (tests/guest/build-tiny-guest.sh
# --boot: SYSLINUX, kernel, initramfs with qemu-ga, ext4 data partition, all
# on its one disk) is backed up after it wrote a file; then the backup
# itself boots, through virtback verify --boot (a transient isolated VM over
# a read-only map) and through restore --instant, and the file is there.
# verify --boot fails when no agent answers (a firmware-only VM), and when
# --exec fails.  After each run nothing is left: no domain, no map, no
# private directory, the backup's files unchanged, the original VM untouched.

load backup_helpers
load guest_helpers
bats_require_minimum_version 1.5.0

VM=xbboot
FW=xbfw

# boot_vm NAME DISK: a TCG domain that boots from DISK (SATA sda), with the
# agent channel; started, back once the agent answers.  Its console is a
# pty, not a file: restore --instant keeps the saved definition's console,
# and virtlogd refuses a file another running domain logs to.
boot_vm () {
  local name=$1 disk=$2 i
  cat >"$VB_IMG_DIR/$name.xml" <<XML
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'>
    <model>qemu64</model><feature policy='require' name='rdrand'/>
  </cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$disk'/><target dev='sda' bus='sata'/></disk>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
  </devices>
</domain>
XML
  vsh define "$VB_IMG_DIR/$name.xml" >/dev/null && vsh start "$name" >/dev/null || return 1
  wait_agent "$name"
}

wait_agent () {
  local i
  for ((i = 0; i < ${VB_GUEST_WAIT:-180}; i++)); do
    tg_agent "$1" '{"execute":"guest-ping"}' >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "guest $1: no agent" >&2
  return 1
}

# Checksums of every file of a backup directory.
sums () { (cd "$1" && find . -type f | sort | xargs md5sum); }

setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  source "$BATS_TEST_DIRNAME/guest_helpers.bash"
  vb_daemons_up
  local img
  img=$("$VB_ROOT/tests/guest/build-tiny-guest.sh" --boot "$(tg_dir)")
  export B=$BATS_FILE_TMPDIR/b BFW=$BATS_FILE_TMPDIR/bfw MARK=xb-marker-$$
  vb_destroy_vm $VM
  qemu-img convert -q -O qcow2 "$img" "$(vb_disk_path $VM sda)"
  boot_vm $VM "$(vb_disk_path $VM sda)"
  tg_exec $VM "echo $MARK > /mnt/sda2/marker && sync" >/dev/null
  "$VIRTBACK" backup -d $VM -o "$B" -l full -n >/dev/null 2>&1
  # Written after the backup: a VM booted from it must not see this.
  tg_exec $VM "echo later > /mnt/sda2/after && sync" >/dev/null
  export ORIG_ID=$(vsh domid $VM)
  export SUMS=$(sums "$B")
  vb_make_vm $FW 64M 1
  "$VIRTBACK" backup -d $FW -o "$BFW" -l full -n >/dev/null 2>&1
  export SUMSFW=$(sums "$BFW")
}

teardown_file () {
  # Only a failed test leaves a transient VM of verify --boot.
  for d in $(vsh list --name | grep -E -- "^($VM|$FW)-verify-"); do vsh destroy "$d" >/dev/null 2>&1; done
  vb_destroy_vm $VM
  vb_destroy_vm $FW
  vb_destroy_vm $VM-inst
  rm -f "$VB_IMG_DIR/$VM.xml"
  rm -rf /var/tmp/xb-inst-out
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  source "$BATS_TEST_DIRNAME/guest_helpers.bash"
  boot_dirs >"$BATS_TEST_TMPDIR/dirs.before"
}

boot_dirs () { ls -d /var/tmp/virtback-boot.* /var/tmp/virtback-map.* 2>/dev/null | sort; }

# New directories since setup that are this file's: every verify --boot
# run directory, and map directories whose nbdkit is gone or serves one of
# our backups (maps of other runs on this host are theirs).
left_dirs () {
  local d pid cmd
  for d in $(comm -13 "$BATS_TEST_TMPDIR/dirs.before" <(boot_dirs)); do
    case $d in */virtback-boot.*) echo "$d"; continue ;; esac
    pid=$(cat "$d/nbdkit.pid" 2>/dev/null) || true
    # A gone nbdkit leaves no command line (a zombie keeps its /proc).
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || true
    if [ -z "$pid" ] || [[ $cmd != nbdkit* ]] || echo "$cmd" | grep -qE "dir=($B|$BFW)( |$)"; then
      echo "$d"
    fi
  done
}

# Nothing of a verify --boot run is left, and nothing it must not touch
# changed.
assert_clean () {
  local left
  left=$(vsh list --all --name | grep -- '-verify-' || true)
  [ -z "$left" ] || { echo "domain left: $left"; return 1; }
  left=$(left_dirs)
  [ -z "$left" ] || { echo "directory left: $left"; return 1; }
  ! pgrep -f "nbdkit.*dir=($B|$BFW)( |$)" >/dev/null || { echo "map left"; return 1; }
  [ "$(sums "$B")" = "$SUMS" ] || { echo "backup $B changed"; return 1; }
  [ "$(sums "$BFW")" = "$SUMSFW" ] || { echo "backup $BFW changed"; return 1; }
  [ "$(vsh domid $VM)" = "$ORIG_ID" ] || { echo "original VM restarted"; return 1; }
}

@test "verify --boot: the backup boots, the agent answers, --exec sees the file written before the backup" {
  run --separate-stderr "$VIRTBACK" verify --boot -i "$B" --timeout 240 --json \
    --exec "cat /mnt/sda2/marker && test ! -e /mnt/sda2/after"
  echo "$output"
  echo "$stderr"
  [ "$status" -eq 0 ]
  j=$output
  [ "$(tg_json 'j["ok"]' <<<"$j")" = True ]
  [ "$(tg_json 'j["agent"]' <<<"$j")" = True ]
  [ "$(tg_json 'j["point"]' <<<"$j")" = virtback.0 ]
  [[ "$(tg_json 'j["domain"]' <<<"$j")" == $VM-verify-* ]]
  [ "$(tg_json '[f["mountpoint"] + " " + f["type"] for f in j["filesystems"]]' <<<"$j")" = '["/mnt/sda2 ext4"]' ]
  [ "$(tg_json 'j["exec"]["exitcode"]' <<<"$j")" = 0 ]
  [ "$(tg_json 'j["exec"]["stdout"]' <<<"$j")" = "$MARK" ]
  assert_clean
}

@test "verify --boot --exec that fails: one result line, exit 1 with the command's status; the plain line otherwise" {
  run --separate-stderr "$VIRTBACK" verify --boot -i "$B" --timeout 240 --exec 'echo oops >&2; exit 3'
  echo "$output"
  echo "$stderr"
  [ "$status" -eq 1 ]
  [ -z "$output" ]
  errs=$(grep -c 'error\|failed' <<<"$stderr")
  [ "$errs" -eq 1 ]
  [[ "$stderr" == *"'echo oops >&2; exit 3' failed in the VM $VM-verify-"*"with exit status 3: oops"* ]]
  assert_clean
}

@test "verify --boot without a guest agent fails within --timeout and says so" {
  run --separate-stderr "$VIRTBACK" verify --boot -i "$BFW" --timeout 10
  echo "$output"
  echo "$stderr"
  [ "$status" -eq 1 ]
  [ -z "$output" ]
  [ "$(tail -1 <<<"$stderr" | grep -c "guest agent did not answer within 10 s")" -eq 1 ]
  [[ "$stderr" == *"check that qemu-guest-agent is installed"* ]]
  run --separate-stderr "$VIRTBACK" verify --boot -i "$BFW" --timeout 5 --json
  [ "$status" -eq 1 ]
  [ "$(tg_json 'j["ok"]' <<<"$output")" = False ]
  [ "$(tg_json 'j["booted"]' <<<"$output")" = True ]
  [ "$(tg_json 'j["agent"]' <<<"$output")" = False ]
  assert_clean
}

# wait_verify_vm P: the run of vb_bg_start P has its transient VM running.
wait_verify_vm () {
  local i
  for i in $(seq 600); do
    grep -q "runs; waiting for its guest agent" "$1/out" &&
      [ "$(vsh list --state-running --name | grep -c -- '-verify-')" = 1 ] && return 0
    [ -s "$1/rc" ] && break
    sleep 0.1
  done
  cat "$1/out"
  return 1
}

@test "verify --boot: SIGTERM ends it, nothing left; after kill -9 libvirt destroys the VM and the next run removes the rest" {
  P=$BATS_TEST_TMPDIR/p
  vb_bg_start "$P" "$VIRTBACK" verify --boot -i "$BFW" --timeout 120
  wait_verify_vm "$P"
  kill -TERM "$(cat "$P/pid")"
  [ "$(vb_bg_rc "$P")" -eq 1 ]
  cat "$P/out"
  grep -q "virtback verify: interrupted" "$P/out"
  assert_clean
  vb_bg_start "$P" "$VIRTBACK" verify --boot -i "$BFW" --timeout 120
  wait_verify_vm "$P"
  kill -9 "$(cat "$P/pid")"
  vb_bg_rc "$P"
  # libvirtd destroys it once it sees the connection closed (seconds
  # under load).
  for i in $(seq 600); do
    vsh list --all --name | grep -q -- '-verify-' || pgrep -f "nbdkit.*dir=$BFW( |$)" >/dev/null || break
    sleep 0.1
  done
  [ -z "$(vsh list --all --name | grep -- '-verify-')" ]
  not pgrep -f "nbdkit.*dir=$BFW( |$)"
  # Only the run's directory is left, with its overlay ...
  left=$(left_dirs | grep virtback-boot)
  ls "$left"/sda.qcow2
  # ... and the next run removes it.
  run "$VIRTBACK" verify --boot -i "$BFW" --timeout 2
  [ "$status" -eq 1 ]
  [ ! -e "$left" ]
  assert_clean
}

@test "verify: --boot options without --boot, a bad --timeout: usage errors" {
  run "$VIRTBACK" verify -i "$B" --exec true
  [ "$status" -eq 2 ]
  [[ "$output" == *"go with --boot"* ]]
  run "$VIRTBACK" verify --boot -i "$B" --timeout 0
  [ "$status" -eq 2 ]
  [ "${#lines[@]}" -eq 1 ]
}

@test "restore --instant of the bootable guest: it boots from the backup and holds the file" {
  O=/var/tmp/xb-inst-out
  rm -rf "$O"
  run "$VIRTBACK" restore --instant -i "$B" -o "$O" -N $VM-inst
  echo "$output"
  [ "$status" -eq 0 ]
  wait_agent $VM-inst
  [ "$(tg_exec $VM-inst 'cat /mnt/sda2/marker')" = "$MARK" ]
  not tg_exec $VM-inst 'test -e /mnt/sda2/after'
  ! qemu-img info -U "$O/sda.qcow2" | grep -q 'backing file'
  vb_destroy_vm $VM-inst
  rm -rf "$O"
  assert_clean
}
