#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# tests/run: alone (it owns /etc/pki/qemu and cuts links on a timer)
# Remote hypervisors: virtback runs in the namespace xr-backup, joined to this one (the
# "remote host": libvirtd, QEMU, the images, an sshd on 10.200.0.254:2201) by a veth only, with
# the image directory, /run/libvirt and /var/tmp hidden under empty tmpfs.  So libvirt is
# reached over qemu+ssh only, and every byte of a disk comes over NBD/TCP from the host.

load backup_helpers
load ../netns

HOST=10.200.0.254
PORTS=10900-10999
HIDE="/run/libvirt /var/lib/libvirt/images /var/tmp"

setup_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  vb_daemons_up
  export XR=$BATS_FILE_TMPDIR/xr
  mkdir -p "$XR"
  # A checkout under a hidden path (a clone in /var/tmp) would hide the program from the
  # namespace too: run a copy (it needs no file of the build directory).
  local p
  for p in $HIDE; do
    case $VIRTBACK in
      "$p"/*) mkdir -p "$XR/bin" && cp "$VIRTBACK" "$XR/bin/virtback" && export VIRTBACK=$XR/bin/virtback ;;
    esac
  done
  netns_up xr-backup xrh0 xrb0 $HOST/24 10.200.0.1/24
  netns_sshd_start "$XR/ssh" $HOST 2201
  netns_certs "$XR/pki" $HOST
  mkdir -p "$XR/nocert" && cp "$XR/pki/ca-cert.pem" "$XR/nocert/"
  # The host's QEMU TLS set-up, libvirt's default x509 directory: QEMU reads it as its user.
  if [ ! -e /etc/pki/qemu ]; then
    [ -e /etc/pki ] || touch "$XR/made-etc-pki"
    mkdir -p /etc/pki/qemu && touch /etc/pki/qemu/.xr-remote-bats
    cp "$XR/pki/server/"*.pem /etc/pki/qemu/
    chgrp -R libvirt-qemu /etc/pki/qemu && chmod 0750 /etc/pki/qemu && chmod 0640 /etc/pki/qemu/*.pem
  fi
  export U="qemu+ssh://root@$HOST:2201/system?command=$XR/ssh/ssh"
}

teardown_file () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  netns_sshd_stop "$XR/ssh"
  netns_down xr-backup
  [ ! -e /etc/pki/qemu/.xr-remote-bats ] || rm -rf /etc/pki/qemu
  [ ! -e "$XR/made-etc-pki" ] || rmdir /etc/pki
}

setup () {
  load_lib
  export VB_IMG_DIR=/var/lib/libvirt/images/xr
  VM=xr$BATS_TEST_NUMBER
  T=$BATS_TEST_TMPDIR
  # The scratch directory on the host (-S): what a run leaves there shows.
  RS=$(mktemp -d /var/tmp/xr-scratch.XXXXXX)
  chmod 755 "$RS"
  export NETNS_HIDE=$HIDE
}

cut_link () {
  ip netns exec xr-backup nft -f - <<'EOF'
table inet xrcut {
  chain in { type filter hook input priority 0; policy drop; }
  chain out { type filter hook output priority 0; policy drop; }
}
EOF
}
mend_link () { ip netns exec xr-backup nft delete table inet xrcut 2>/dev/null || true; }

teardown () {
  mend_link
  tc qdisc del dev xrh0 root 2>/dev/null || true
  vb_destroy_vm "$VM"
  vsh undefine "$VM-r" >/dev/null 2>&1 || true
  rm -rf "$RS" "/var/tmp/xr-restore-$BATS_TEST_NUMBER"
}

# virtback in the backup namespace, as bats' run.
rvb () {
  run netns_run xr-backup "$VIRTBACK" "$@"
  echo "virtback $*: status $status"
  echo "$output"
}

rbackup () { rvb backup -U "$U" -d "$VM" -S "$RS" --nbd-ip $HOST --nbd-port $PORTS -n "$@"; }

# Nothing of a run left on the host: no job, nothing in -S, no qemu-nbd of ours; no .partial.
remote_clean () {
  vb_no_job "$VM" || { echo "job left on $VM"; return 1; }
  [ -z "$(ls -A "$RS")" ] || { echo "left in $RS:"; ls -la "$RS"; return 1; }
  not pgrep -f "qemu-nbd.*$VB_IMG_DIR/$VM-" >/dev/null
  [ -z "$(ls -d /tmp/virtback-nbd.* 2>/dev/null)" ] || { echo "qemu-nbd dir left"; return 1; }
  [ -z "$(ls -d /tmp/virtback-ssh.* 2>/dev/null)" ] || { echo "ssh master dir left"; return 1; }
  not pgrep -f "ssh.*ControlPath=/tmp/virtback-ssh" >/dev/null
  [ -z "${1:-}" ] || ! ls "$1"/*.partial 2>/dev/null | grep -q . || { echo "partial left"; return 1; }
}

restore_equals () {  # DIR CHECKPOINT IMAGE
  rm -rf "$T/r"
  "$VIRTBACK" restore -i "$1" -o "$T/r" --until "$2" >/dev/null
  vb_compare "$3" "$T/r/sda.qcow2"
}

@test "remote full + inc over the veth, plain: one unencrypted warning, restores equal the disk" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x11 0 8M" "write -P 0x12 64M 4M"
  rbackup -o "$T/b" -l full
  [ "$status" -eq 0 ]
  [ "$(grep -c 'crosses the network from 10.200.0.254 unencrypted' <<<"$output")" -eq 1 ]
  remote_clean "$T/b"
  vb_snapshot_disk "$VM" sda "$T/p0.qcow2"
  vb_guest_io "$VM" sda "write -P 0x21 4M 2M" "write -z 64M 1M"
  rbackup -o "$T/b" -l inc -p
  [ "$status" -eq 0 ]
  [[ "$output" == *"sda: 2097152 bytes (2.00 MiB) of data to save"* ]]
  remote_clean "$T/b"
  rbackup -o "$T/b" -l inc
  [ "$status" -eq 0 ]
  remote_clean "$T/b"
  vb_snapshot_disk "$VM" sda "$T/p1.qcow2"
  [ "$(vb_checkpoints "$VM" | tr '\n' ' ')" = "virtback.0 virtback.1 " ]
  restore_equals "$T/b" virtback.0 "$T/p0.qcow2"
  restore_equals "$T/b" virtback.1 "$T/p1.qcow2"
  # the other levels take the same path
  vb_guest_io "$VM" sda "write -P 0x22 30M 1M"
  rbackup -o "$T/b" -l diff
  [ "$status" -eq 0 ]
  rbackup -o "$T/b" -l auto
  [ "$status" -eq 0 ]
  [ -e "$T/b/sda.inc.virtback.2.data" ]
  rbackup -o "$T/c" -l copy
  [ "$status" -eq 0 ]
  remote_clean "$T/b"
  vb_snapshot_disk "$VM" sda "$T/p2.qcow2"
  restore_equals "$T/b" virtback.2 "$T/p2.qcow2"
  rm -rf "$T/r"
  "$VIRTBACK" restore -i "$T/c" -o "$T/r" >/dev/null
  vb_compare "$T/p2.qcow2" "$T/r/sda.qcow2"
}

@test "remote full + inc with --tls (nbds://, client certificate): restores equal; refused without a client certificate" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x31 1M 6M"
  rbackup -o "$T/b" -l full --tls --tls-dir "$XR/pki/client"
  [ "$status" -eq 0 ]
  [[ "$output" != *unencrypted* ]]
  vb_snapshot_disk "$VM" sda "$T/p0.qcow2"
  vb_guest_io "$VM" sda "write -P 0x32 20M 1M"
  rbackup -o "$T/b" -l inc --tls --tls-dir "$XR/nocert"
  [ "$status" -ne 0 ]
  [[ "$output" == *"host 10.200.0.254: disk sda"*"TLS"* ]]
  [ "$(grep -c 'virtback backup:' <<<"$output")" -eq 1 ]
  remote_clean "$T/b"
  [ "$(vb_checkpoints "$VM" | tr '\n' ' ')" = "virtback.0 " ]
  rbackup -o "$T/b" -l inc --tls --tls-dir "$XR/pki/client"
  [ "$status" -eq 0 ]
  remote_clean "$T/b"
  vb_snapshot_disk "$VM" sda "$T/p1.qcow2"
  restore_equals "$T/b" virtback.0 "$T/p0.qcow2"
  restore_equals "$T/b" virtback.1 "$T/p1.qcow2"
}

@test "a shut-off remote VM: full and inc through a qemu-nbd started on the host, stopped after" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x41 0 4M"
  vsh destroy "$VM" >/dev/null
  rbackup -o "$T/b" -l full
  [ "$status" -eq 0 ]
  [[ "$output" == *"shut off"* ]]
  remote_clean "$T/b"
  cp "$(vb_disk_path "$VM" sda)" "$T/p0.qcow2"
  qemu-io -f qcow2 -c "write -P 0x42 8M 1M" "$(vb_disk_path "$VM" sda)" >/dev/null
  rbackup -o "$T/b" -l inc --tls --tls-dir "$XR/pki/client"
  [ "$status" -eq 0 ]
  remote_clean "$T/b"
  grep -a -q '^data 0000000000800000 0000000000100000' "$T/b/sda.inc.virtback.1.data"
  restore_equals "$T/b" virtback.0 "$T/p0.qcow2"
  restore_equals "$T/b" virtback.1 "$(vb_disk_path "$VM" sda)"
}

@test "restore onto the remote host, without and with -D" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x51 2M 3M"
  rbackup -o "$T/b" -l full
  [ "$status" -eq 0 ]
  vb_snapshot_disk "$VM" sda "$T/p0.qcow2"
  local out=/var/tmp/xr-restore-$BATS_TEST_NUMBER
  rvb restore -U "$U" -i "$T/b" -o "$out/plain" --nbd-ip $HOST --nbd-port $PORTS
  [ "$status" -eq 0 ]
  [[ "$output" == *"crosses the network to 10.200.0.254 unencrypted"* ]]
  vb_compare "$T/p0.qcow2" "$out/plain/sda.qcow2"
  [ -s "$out/plain/vmconfig.virtback.0.xml" ]
  not vsh dominfo "$VM-r" >/dev/null 2>&1
  rvb restore -U "$U" -i "$T/b" -o "$out/def" --nbd-ip $HOST --nbd-port $PORTS --tls \
    --tls-dir "$XR/pki/client" -D -N "$VM-r"
  [ "$status" -eq 0 ]
  vb_compare "$T/p0.qcow2" "$out/def/sda.qcow2"
  vsh dumpxml "$VM-r" | grep -q "<source file='$out/def/sda.qcow2'/>"
  not pgrep -f "qemu-nbd.*$out" >/dev/null
  ! ls "$out"/*/*.partial 2>/dev/null | grep -q .
}

@test "a link cut in the middle of an inc ends in an error naming the host; the next inc (-k) continues the chain" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x61 0 2M"
  rbackup -o "$T/b" -l full
  [ "$status" -eq 0 ]
  cp "$T/b/$VM.cpt" "$T/cpt0"
  vb_guest_io "$VM" sda "write -P 0x62 16M 48M"
  # 48 MiB at 16 mbit/s take about 25 s: long enough to cut the link mid-copy.
  tc qdisc add dev xrh0 root tbf rate 16mbit burst 64kb latency 100ms
  vb_bg_start "$T/bg" netns_run xr-backup timeout 90 "$VIRTBACK" backup -U "$U" -d "$VM" \
    -S "$RS" --nbd-ip $HOST --nbd-port $PORTS -n -o "$T/b" -l inc --timeout 15
  for i in $(seq 300); do
    [ "$(stat -c %s "$T/b/sda.inc.virtback.1.data.partial" 2>/dev/null || echo 0)" -gt 2000000 ] && break
    sleep 0.1
  done
  [ -e "$T/b/sda.inc.virtback.1.data.partial" ]
  # Dropped silently, both ways: no error comes back, only silence (the hard case).
  cut_link
  start=$SECONDS
  rc=$(vb_bg_rc "$T/bg")
  echo "the run ended $((SECONDS - start)) s after the cut"
  cat "$T/bg/out"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
  grep -q "^virtback backup: host 10.200.0.254 did not answer: .*run the backup again (with -k" "$T/bg/out"
  grep -q "host 10.200.0.254 is out of reach" "$T/bg/out"
  ! ls "$T/b"/*.partial 2>/dev/null | grep -q .
  cmp "$T/cpt0" "$T/b/$VM.cpt"
  mend_link
  tc qdisc del dev xrh0 root
  rbackup -o "$T/b" -l inc -k
  [ "$status" -eq 0 ]
  [[ "$output" == *"ending the stale job"* ]]
  remote_clean "$T/b"
  vb_snapshot_disk "$VM" sda "$T/p1.qcow2"
  restore_equals "$T/b" virtback.1 "$T/p1.qcow2"
}

@test "a host that does not answer at the start: the run ends within --timeout naming the host (or at once on SIGINT), and leaves no ssh behind" {
  vb_make_vm "$VM" 64M
  cut_link
  # Bounded from outside: the kernel's SYN retries alone would last minutes.
  run netns_run xr-backup timeout 60 "$VIRTBACK" backup -U "$U" -d "$VM" -S "$RS" \
    --nbd-ip $HOST --nbd-port $PORTS -n -o "$T/b" -l full --timeout 8
  echo "$output"
  [ "$status" -eq 1 ]
  [[ "$output" == *"host 10.200.0.254 did not answer within 8 s"* ]]
  sleep 1
  not pgrep -f "ssh.*libvirt-sock" >/dev/null
  not pgrep -f "ssh.*ControlPath=/tmp/virtback-ssh" >/dev/null
  [ -z "$(ls -d /tmp/virtback-ssh.* 2>/dev/null)" ]
  # SIGINT while it waits ends it at once, not at the timeout.
  vb_bg_start "$T/bg" netns_run xr-backup timeout 50 "$VIRTBACK" backup -U "$U" -d "$VM" \
    -S "$RS" --nbd-ip $HOST --nbd-port $PORTS -n -o "$T/b" -l full --timeout 60
  sleep 2
  pkill -INT -f "^$VIRTBACK backup -U .* -d $VM "
  rc=$(vb_bg_rc "$T/bg")
  cat "$T/bg/out"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
  grep -q "interrupted by a signal" "$T/bg/out"
  sleep 1
  not pgrep -f "ssh.*libvirt-sock" >/dev/null
  [ -z "$(ls -d /tmp/virtback-ssh.* 2>/dev/null)" ]
  mend_link
  rbackup -o "$T/b" -l full
  [ "$status" -eq 0 ]
  remote_clean "$T/b"
}

# A full into $T/b started in the background on a link slowed to 16 mbit/s, once
# its first megabyte is written.
slow_full_started () {
  tc qdisc add dev xrh0 root tbf rate 16mbit burst 64kb latency 100ms
  vb_bg_start "$T/bg" netns_run xr-backup "$VIRTBACK" backup -U "$U" -d "$VM" -S "$RS" \
    --nbd-ip $HOST --nbd-port $PORTS -n -o "$T/b" -l full
  for i in $(seq 300); do
    [ "$(stat -c %s "$T/b/sda.full.data.partial" 2>/dev/null || echo 0)" -gt 1000000 ] && break
    sleep 0.1
  done
}

@test "kill -9 of a shut-off remote backup: the host's qemu-nbd stops by itself, the next run cleans up and succeeds" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x71 0 48M"
  vsh destroy "$VM" >/dev/null
  slow_full_started
  pgrep -f "qemu-nbd.*$VB_IMG_DIR/$VM-sda" >/dev/null
  pkill -9 -f "^$VIRTBACK backup -U .* -d $VM " 
  vb_bg_rc "$T/bg" >/dev/null || true
  # ssh died with virtback: the script on the host read the end of its stdin
  for i in $(seq 100); do pgrep -f "qemu-nbd.*$VB_IMG_DIR/$VM-sda" >/dev/null || break; sleep 0.1; done
  not pgrep -f "qemu-nbd.*$VB_IMG_DIR/$VM-sda" >/dev/null
  [ -n "$(ls -d /tmp/virtback-ssh.* 2>/dev/null)" ]   # what a killed run cannot remove
  tc qdisc del dev xrh0 root
  rbackup -o "$T/b2" -l full
  [ "$status" -eq 0 ]
  remote_clean "$T/b2"
  restore_equals "$T/b2" virtback.0 "$(vb_disk_path "$VM" sda)"
}

@test "kill -9 of a running remote backup: its private directory on the host goes by itself; the next run (-k) ends the job" {
  vb_make_vm "$VM" 128M
  vb_guest_io "$VM" sda "write -P 0x75 0 48M"
  slow_full_started
  [ -n "$(ls -A "$RS")" ]          # the job's directory, while it runs
  pkill -9 -f "^$VIRTBACK backup -U .* -d $VM "
  vb_bg_rc "$T/bg" >/dev/null || true
  # ssh died with virtback: the session holding the directory read the end of its stdin
  for i in $(seq 100); do [ -z "$(ls -A "$RS")" ] && break; sleep 0.1; done
  [ -z "$(ls -A "$RS")" ] || { echo "left in $RS:"; ls -la "$RS"; false; }
  not vb_no_job "$VM"              # the job is the next run's to end
  tc qdisc del dev xrh0 root
  rbackup -o "$T/b2" -l full -k
  [ "$status" -eq 0 ]
  [[ "$output" == *"ending the stale job"* ]]
  remote_clean "$T/b2"
  restore_equals "$T/b2" virtback.0 "$(vb_disk_path "$VM" sda)"
}

@test "--nbd-port P-Q: a port taken on the host is skipped, for the job and for qemu-nbd" {
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda "write -P 0x81 0 1M"
  # SO_REUSEADDR: the earlier tests' connections to 10900 may be in TIME_WAIT
  python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.200.0.254", 10900)); s.listen(); time.sleep(120)' &
  local holder=$!
  for i in $(seq 50); do ss -ltn | grep -q '10.200.0.254:10900 ' && break; sleep 0.1; done
  ss -ltn | grep -q '10.200.0.254:10900 '
  rvb backup -U "$U" -d "$VM" -S "$RS" --nbd-ip $HOST --nbd-port 10900-10901 -n -o "$T/b" -l full
  [ "$status" -eq 0 ]
  grep -q "port 10900 is taken" "$T/b"/backup.full.*.log
  grep -q "the job serves on 10.200.0.254 port 10901" "$T/b"/backup.full.*.log
  vsh destroy "$VM" >/dev/null
  rvb backup -U "$U" -d "$VM" -S "$RS" --nbd-ip $HOST --nbd-port 10900-10901 -n -o "$T/c" -l copy
  [ "$status" -eq 0 ]
  grep -q "served by qemu-nbd on 10.200.0.254 port 10901" "$T/c"/backup.copy.*.log
  rvb backup -U "$U" -d "$VM" -S "$RS" --nbd-ip $HOST --nbd-port 10900-10900 -n -o "$T/d" -l copy
  [ "$status" -ne 0 ]
  [[ "$output" == *"every port of 10900-10900 is taken"* ]]
  kill $holder
  remote_clean "$T/d"
}

@test "a qcow2 v2 disk on the remote host: the v2 error (its image info comes while the job starts), nothing left; copy works" {
  vb_make_vm "$VM" 64M 1 compat=0.10
  rbackup -o "$T/b" -l full
  [ "$status" -eq 1 ]
  [[ "$output" == *"persistent bitmaps need qcow2 v3: use -l copy"* ]]
  remote_clean "$T/b"
  [ -z "$(vb_checkpoints "$VM")" ]
  rbackup -o "$T/c" -l copy
  [ "$status" -eq 0 ]
  remote_clean "$T/c"
  ls "$T/c"/sda.*.qcow.json
}

@test "a remote domain needs --nbd-ip; TLS options need --nbd-ip" {
  vb_make_vm "$VM" 64M
  rvb backup -U "$U" -d "$VM" -o "$T/b" -l full -n
  [ "$status" -ne 0 ]
  [[ "$output" == *"domain '$VM' is on host 10.200.0.254"*"--nbd-ip"* ]]
  [ ! -e "$T/b/$VM.cpt" ]
  run "$VIRTBACK" backup -d "$VM" -o "$T/b" --tls
  [ "$status" -eq 2 ]
  [[ "$output" == *"give --nbd-ip too"* ]]
}
