# SPDX-License-Identifier: GPL-3.0-or-later
# Helpers for guest.bats: VMs that boot the tiny Linux guest of
# tests/guest/build-tiny-guest.sh and are driven through its guest agent.
# The functions use tests/lib.sh.
# VB_GUEST_DIR: where the guest is built (default $VB_IMG_DIR/tinyguest).
# VB_GUEST_WAIT: seconds a boot may take before a test gives up.
# VB_GUEST_CMDLINE: more kernel options (vbtest.debug shows the boot).

tg_dir () { echo "${VB_GUEST_DIR:-$VB_IMG_DIR/tinyguest}"; }

tg_build () { "$VB_ROOT/tests/guest/build-tiny-guest.sh" "$(tg_dir)" >/dev/null; }

# tg_make_vm NAME [noagent|nochannel]: a TCG guest (KVM here cannot boot
# Linux) with direct kernel boot, a blank 256 MiB qcow2 data disk on SATA sda
# and the agent channel; started, and back when /mnt/sda is mounted.
# noagent: the channel is there but the guest runs no agent.
# nochannel: no agent channel at all.
tg_make_vm () {
  local name=$1 mode=${2:-} cmdline="console=ttyS0 panic=-1 quiet ${VB_GUEST_CMDLINE:-}" channel
  channel="<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
  [ "$mode" = noagent ] && cmdline+=" vbtest.noagent"
  [ "$mode" = nochannel ] && channel=""
  vb_destroy_vm "$name"
  rm -f "$VB_IMG_DIR/$name.console.log"
  qemu-img create -q -f qcow2 "$(vb_disk_path "$name" sda)" 256M || return 1
  cat >"$VB_IMG_DIR/$name.xml" <<XML
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>$(tg_dir)/vmlinux</kernel>
    <initrd>$(tg_dir)/initrd.img</initrd>
    <cmdline>$cmdline</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'>
    <model>qemu64</model><feature policy='require' name='rdrand'/>
  </cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$(vb_disk_path "$name" sda)'/><target dev='sda' bus='sata'/></disk>
    $channel
    <serial type='file'><source path='$VB_IMG_DIR/$name.console.log'/><target port='0'/></serial>
    <console type='file'><source path='$VB_IMG_DIR/$name.console.log'/><target type='serial' port='0'/></console>
  </devices>
</domain>
XML
  vsh define "$VB_IMG_DIR/$name.xml" >/dev/null && vsh start "$name" >/dev/null || return 1
  tg_wait_up "$name"
}

tg_console () { cat "$VB_IMG_DIR/$1.console.log" 2>/dev/null; }

# Wait until the guest's init has mounted the data disks, and the agent
# answers if the guest runs one.
tg_wait_up () {
  local name=$1 xml i
  xml=$(vsh dumpxml "$name")
  for ((i = 0; i < ${VB_GUEST_WAIT:-180} * 5; i++)); do
    if tg_console "$name" | grep -q 'tinyguest: up'; then
      [[ $xml == *org.qemu.guest_agent.0* && $xml != *vbtest.noagent* ]] || return 0
      tg_agent "$name" '{"execute":"guest-ping"}' >/dev/null 2>&1 && return 0
    fi
    sleep 0.2
  done
  echo "guest $name did not come up; console:" >&2
  tg_console "$name" | tail -30 >&2
  return 1
}

tg_agent () { vsh qemu-agent-command "$1" "$2"; }

# tg_json EXPR: evaluate a Python expression over the JSON document on stdin
# (bound to j).
tg_json () { python3 2>/dev/null -c 'import json,sys; j=json.load(sys.stdin); r=eval(sys.argv[1]); print(r if isinstance(r,(str,int)) else json.dumps(r))' "$1"; }

# tg_exec NAME SCRIPT [STDIN-FILE]: run SCRIPT with /bin/sh in the guest
# through guest-exec, with STDIN-FILE as its input (virsh takes it as one
# argument: keep it under ~90 KiB).  Prints the guest's
# stdout (stderr goes to ours) and returns its exit code.
tg_exec () {
  local name=$1 script=$2 input=${3:-} req pid st i
  req=$(python3 -c '
import base64, json, sys
a = {"path": "/bin/sh", "arg": ["-c", sys.argv[1]], "capture-output": True}
if sys.argv[2]:
    a["input-data"] = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
print(json.dumps({"execute": "guest-exec", "arguments": a}))' "$script" "$input") || return 1
  pid=$(tg_agent "$name" "$req" | tg_json 'j["return"]["pid"]') || return 1
  for ((i = 0; i < ${VB_GUEST_WAIT:-180} * 10; i++)); do
    st=$(tg_agent "$name" "{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":$pid}}") || return 1
    if [ "$(tg_json 'j["return"]["exited"]' <<<"$st")" = True ]; then
      python3 -c '
import base64, json, sys
r = json.load(sys.stdin)["return"]
sys.stdout.buffer.write(base64.b64decode(r.get("out-data", "")))
sys.stderr.buffer.write(base64.b64decode(r.get("err-data", "")))
sys.exit(r.get("exitcode", 255))' <<<"$st"
      return
    fi
    sleep 0.1
  done
  echo "guest-exec $script: still running" >&2
  return 1
}

tg_fsfreeze_status () { tg_agent "$1" '{"execute":"guest-fsfreeze-status"}' | tg_json 'j["return"]'; }

# tg_restore DIR OUT DISK [CHECKPOINT]: a raw image of DISK as of CHECKPOINT
# (default: the newest backup) at OUT.
tg_restore () {
  local dir=$1 out=$2 disk=$3 cpt=${4:-} tmp
  tmp=$(mktemp -d "$BATS_TEST_TMPDIR/rst.XXXXXX")
  "$VIRTBACK" restore -i "$dir" -o "$tmp" -d "$disk" --format raw ${cpt:+--until "$cpt"} >&2 || return 1
  mv "$tmp/$disk.raw" "$out"
}

# tg_fsck IMAGE: a forced, read-only check of the ext4 filesystem in IMAGE.
tg_fsck () { e2fsck -fn "$1" >&2; }

# tg_cat IMAGE PATH: a file of the ext4 filesystem in IMAGE, without mounting.
tg_cat () { debugfs -R "cat $2" "$1" 2>/dev/null; }
