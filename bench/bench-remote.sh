#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-remote.sh: a full backup of a remote hypervisor over a veth, against nbdcopy
# over the same link, plain and with TLS, interleaved round by round in one run:
#   nbdcopy        the backup job's export on TCP (nbd://) copied to a sparse raw file
#   nbdcopy-tls    the same export served with tls='yes', read with nbds:// and a client cert
#   virtback       virtback backup -U qemu+ssh://... --nbd-ip ... -l full
#   virtback-tls   the same with --tls
# and once more on a link limited to 400 mbit/s (tc tbf): nbdcopy and virtback, whose rate
# should be the link's.  virtback runs in the namespace xr-bench, which reaches this one (the
# "remote host": libvirtd, QEMU, an sshd) over the veth only (tests/netns.bash).
#
# Usage: bench/bench-remote.sh [-r ROUNDS]     (default 3)
# Needs: root, /usr/bin/time, nbdcopy, sshd, certtool; no /etc/pki/qemu of someone else's.
set -u
ROUNDS=3
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift 2 ;;
    *) echo "usage: $0 [-r ROUNDS]" >&2; exit 2 ;;
  esac
done

export BENCH_VM=xrbench BENCH_IMG_DIR=/var/lib/libvirt/images/xrbench
export BENCH_WORK=${BENCH_WORK:-/var/tmp/xrbench}
export BENCH_LOG=$BENCH_WORK/bench-remote.log
. "$(dirname "$0")/lib-bench.sh"
. "$VB_ROOT/tests/netns.bash"

NS=xr-bench HOST=10.200.0.242 PEER=10.200.0.241
XR=$BENCH_WORK/xr
bench_check_tools certtool /usr/sbin/sshd tc
[ ! -e /etc/pki/qemu ] || bench_die "/etc/pki/qemu exists: the benchmark puts its own server certificate there"
[ -x "$VIRTBACK" ] || bench_die "$VIRTBACK is missing: ninja -C build"

cleanup () {
  bench_job_end 2>/dev/null
  netns_sshd_stop "$XR/ssh"
  netns_down $NS
  [ ! -e /etc/pki/qemu/.xr-bench ] || rm -rf /etc/pki/qemu
  [ ! -e "$XR/made-etc-pki" ] || rmdir /etc/pki 2>/dev/null
  vb_destroy_vm "$BENCH_VM"
  rm -rf "$BENCH_WORK/out" "$BENCH_WORK/out.raw" "$XR"
  rm -f "$BENCH_WORK/.running"
}
trap cleanup EXIT

# A 2 GiB disk holding 1 GiB of random data in 4 extents (random: TLS and the copy pay for
# every byte; nothing compresses or dedups on the way).
make_vm () {
  local i cmds=()
  vb_daemons_up || bench_die "libvirtd did not start"
  mkdir -p "$BENCH_WORK/data" "$VB_IMG_DIR"
  for i in 0 1 2 3; do
    [ -s "$BENCH_WORK/data/r$i" ] || head -c 256M /dev/urandom >"$BENCH_WORK/data/r$i"
    cmds+=(-c "write -q -s $BENCH_WORK/data/r$i $((i * 512 + 64))M 256M")
  done
  vb_destroy_vm "$BENCH_VM"
  qemu-img create -q -f qcow2 "$BENCH_DISK" 2G && qemu-io -f qcow2 "${cmds[@]}" "$BENCH_DISK" ||
    bench_die "cannot make $BENCH_DISK"
  cat >"$VB_IMG_DIR/$BENCH_VM.xml" <<XML
<domain type='$(vb_domain_type)'>
  <name>$BENCH_VM</name><memory unit='MiB'>128</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
    <source file='$BENCH_DISK'/><target dev='sda' bus='sata'/></disk></devices>
</domain>
XML
  vsh define "$VB_IMG_DIR/$BENCH_VM.xml" >/dev/null && vsh start "$BENCH_VM" >/dev/null ||
    bench_die "cannot start $BENCH_VM"
  cat "$BENCH_DISK" >/dev/null
}

set_up_hosts () {
  mkdir -p "$XR"
  netns_up $NS xrbh0 xrbb0 $HOST/30 $PEER/30 || bench_die "cannot make namespace $NS"
  netns_sshd_start "$XR/ssh" $HOST 2201 || bench_die "sshd did not start"
  netns_certs "$XR/pki" $HOST || bench_die "certtool failed"
  [ -e /etc/pki ] || touch "$XR/made-etc-pki"
  mkdir -p /etc/pki/qemu && touch /etc/pki/qemu/.xr-bench
  cp "$XR/pki/server/"*.pem /etc/pki/qemu/
  chgrp -R libvirt-qemu /etc/pki/qemu && chmod 0750 /etc/pki/qemu && chmod 0640 /etc/pki/qemu/*.pem
  URI="qemu+ssh://root@$HOST:2201/system?command=$XR/ssh/ssh"
}

# A backup job on TCP made by hand (TLS when $1 is yes), as virtback makes its own.
tcp_job_begin () {
  BENCH_JOBDIR=$(mktemp -d /var/tmp/xrbench-job.XXXXXX) || return 1
  chgrp libvirt-qemu "$BENCH_JOBDIR" && chmod 0770 "$BENCH_JOBDIR" || return 1
  cat >"$BENCH_JOBDIR/backup.xml" <<XML
<domainbackup mode='pull'>
  <server transport='tcp' name='$HOST' port='10990' tls='$1'/>
  <disks><disk name='sda' backup='yes' type='file'>
    <scratch file='$BENCH_JOBDIR/scratch-sda.qcow2'/></disk></disks>
</domainbackup>
XML
  vsh backup-begin "$BENCH_VM" "$BENCH_JOBDIR/backup.xml" >/dev/null
}

run_nbdcopy () {  # NAME ROUND TLS
  local uri="nbd://$HOST:10990/sda"
  [ "$3" = yes ] && uri="nbds://$HOST:10990/sda?tls-certificates=$XR/pki/client"
  rm -f "$BENCH_WORK/out.raw"
  tcp_job_begin "$3" || { echo "bench: backup-begin failed" >&2; bench_job_end; return 1; }
  bench_time "$1" "$2" ip netns exec $NS nbdcopy "$uri" "$BENCH_WORK/out.raw"
  bench_job_end
  rm -f "$BENCH_WORK/out.raw"
}

run_virtback () {  # NAME ROUND OPTIONS...
  local name=$1 round=$2
  shift 2
  rm -rf "$BENCH_WORK/out"
  bench_time "$name" "$round" ip netns exec $NS "$VIRTBACK" backup -U "$URI" -d "$BENCH_VM" \
    -l full -n --nbd-ip $HOST --nbd-port 10980-10989 -o "$BENCH_WORK/out" "$@"
  vb_no_job "$BENCH_VM" || bench_job_end
  vsh checkpoint-delete "$BENCH_VM" virtback.0 >/dev/null 2>&1
  rm -rf "$BENCH_WORK/out"
}

mkdir -p "$BENCH_WORK"
export BENCH_RESULTS=$BENCH_WORK/remote-results.txt
: >"$BENCH_RESULTS"
: >"$BENCH_LOG"
make_vm
set_up_hosts
echo "bench: $ROUNDS rounds, VM $BENCH_VM (2 GiB disk, 1 GiB random data), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "bench: code $(bench_code_version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  run_nbdcopy nbdcopy "$r" no
  run_virtback virtback "$r"
  run_nbdcopy nbdcopy-tls "$r" yes
  run_virtback virtback-tls "$r" --tls --tls-dir "$XR/pki/client"
done
tc qdisc add dev xrbh0 root tbf rate 400mbit burst 256kb latency 50ms
run_nbdcopy nbdcopy-400mbit 1 no
run_virtback virtback-400mbit 1
tc qdisc del dev xrbh0 root

echo
echo "Medians over $ROUNDS rounds (seconds: the command alone, and until its data is synced):"
bench_table virtback:nbdcopy virtback-tls:nbdcopy-tls virtback-400mbit:nbdcopy-400mbit
awk '$1 == "virtback-400mbit" && $6 == 0 {
  printf "\nvirtback at 400 mbit/s: %.1f MiB/s for 1 GiB (the link: %.1f MiB/s)\n", 1024 / $3, 400e6 / 8 / 1048576 }' \
  "$BENCH_RESULTS"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -q ' [1-9][0-9]*$' "$BENCH_RESULTS"; then
  echo
  echo "Some runs failed; their output is in $BENCH_LOG"
fi
