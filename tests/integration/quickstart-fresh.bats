#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# tests/run: alone (the demo VM virtback-demo is host-wide, and a whole Debian root)
# The README's first command as a new user runs it: scripts/quickstart.sh in
# a fresh Debian 12 root (scripts/fresh-root.sh: debootstrap minbase, cached
# under /var/cache/virtback-test, unpacked anew, its own /dev, mount and PID
# namespaces), where nothing is installed but what the quickstart installs.
# The host must not notice: its /dev/kvm, libvirtd, virtlogd, network
# devices, cgroups and VMs (a VM of this file, vqf-*, runs throughout) stay
# as they were, and no mount, process or root directory is left.
# Needs network to the Debian mirror of /etc/apt/sources.list.d/debian.sources.
# The quickstart's whole output goes to tests/out/quickstart-fresh.log.

setup_file () {
  source "$BATS_TEST_DIRNAME/backup_helpers.bash"
  bk_setup_file
}

setup () {
  source "$BATS_TEST_DIRNAME/backup_helpers.bash"
  bk_setup vqf
}

teardown () { bk_teardown; }

# What the host shows of the things a root could disturb.
host_state () {
  echo "kvm: $(stat -c '%U:%G %a %t:%T' /dev/kvm)"
  echo "libvirtd: $(pgrep -x libvirtd | sort | tr '\n' ' ')"
  echo "virtlogd: $(pgrep -x virtlogd | sort | tr '\n' ' ')"
  echo "net: $(ls /sys/class/net | tr '\n' ' ')"
  echo "demo cgroups: $(find /sys/fs/cgroup -maxdepth 3 -name '*virtback-demo*' | sort | tr '\n' ' ')"
  echo "demo qemu: $(pgrep -f -- '-name guest=virtback-demo,' | tr '\n' ' ')"
  echo "roots: $(ls -d /var/tmp/vb-fresh.* 2>/dev/null | tr '\n' ' ')"
  echo "mounts: $(findmnt -rn -o TARGET | grep -c vb-fresh || true)"
}

@test "scripts/quickstart.sh passes in a fresh Debian 12 root, and the host is untouched" {
  command -v debootstrap || { echo "debootstrap is missing: scripts/packages.sh --install test"; false; }
  vb_make_vm "$VM" 64M
  local qpid before
  qpid=$(pgrep -f -- "-name guest=$VM,")
  [ -n "$qpid" ]
  before=$(host_state)

  run timeout -k 20 600 "$VB_ROOT/scripts/fresh-root.sh" scripts/quickstart.sh
  mkdir -p "$VB_ROOT/tests/out"
  echo "$output" >"$VB_ROOT/tests/out/quickstart-fresh.log"
  echo "$output" | tail -60
  [ "$status" -eq 0 ]
  # It went all the way: both backups, then dump and verify of them.
  grep -q 'build/virtback backup -d virtback-demo .* -l inc' <<<"$output"
  grep -q 'chain consistent' <<<"$output"
  [ "$(grep -c 'backup is application-consistent' <<<"$output")" = 2 ]

  # The host: as before, its libvirtd answers, and this file's VM still runs
  # in the same QEMU.
  diff <(echo "$before") <(host_state)
  virsh -c qemu:///system list >/dev/null
  [ "$(vsh domstate "$VM")" = running ]
  [ "$(pgrep -f -- "-name guest=$VM,")" = "$qpid" ]
}

@test "a fresh root ended by SIGTERM mid-command leaves no root, mount or process on the host" {
  local before pid
  before=$(host_state)
  vb_bg_start "$T/bg" "$VB_ROOT/scripts/fresh-root.sh" bash -c \
    'mkdir -p /mnt/t && mount -t tmpfs t /mnt/t && touch /mnt/t/in-root && echo entered && exec sleep 601'
  pid=$(cat "$T/bg/pid")
  for _ in $(seq 600); do grep -q entered "$T/bg/out" && break; sleep 0.1; done
  cat "$T/bg/out"
  grep -q entered "$T/bg/out"
  pgrep -fx 'sleep 601' >/dev/null
  kill -TERM "$pid"
  [ "$(vb_bg_rc "$T/bg")" -ne 0 ]
  # Neither the command nor the namespace's PID 1, unshare or the script.
  not pgrep -fx 'sleep 601'
  not pgrep -f 'exec sleep 601'
  diff <(echo "$before") <(host_state)
}
