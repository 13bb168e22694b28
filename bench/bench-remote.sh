#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-remote.sh: a full backup of a remote hypervisor over a veth, against nbdcopy
# over the same link, plain and with TLS, interleaved round by round in one run:
#   nbdcopy        the backup job's export on TCP (nbd://) copied to a sparse raw file
#   nbdcopy-tls    the same export served with tls='yes', read with nbds:// and a client cert
#   virtback       virtback backup -U qemu+ssh://... --nbd-ip ... -l full
#   virtback-tls   the same with --tls
#   script         what a user's own script would do, timed as one command in the namespace:
#                  virsh -c URI backup-begin with a checkpoint (as virtback makes one for -l
#                  full), nbdcopy, virsh domjobabort, virsh checkpoint-delete
#   script-tls     the same with tls='yes' and nbds://
#   before         with VIRTBACK_BEFORE=/path/to/virtback: virtback's cases once more with that
#                  build, in the same rounds (before and after interleaved)
#   virtback-tls-cN  with -c "N ...": virtback --tls --connections N, for each N
# on two disks of one VM: sda, bench-cases' disk (8 GiB holding 3 GiB: random and text in 16
# extents), the size the target is judged at; sdb, 2 GiB holding 1 GiB of random data, where
# the fixed costs (ssh, libvirt, the job) weigh most.  Then once more on a link limited to
# 400 mbit/s (tc tbf), sdb: nbdcopy and virtback, whose rate should be the link's.  virtback
# runs in the namespace xr-bench, which reaches this one (the "remote host": libvirtd, QEMU,
# an sshd) over the veth only (tests/netns.bash).  Round 1 also checks every output: nbdcopy's
# image equals the disk (qemu-img compare), virtback's backup passes virtback verify; every
# virtback run must report all of the disk's data.
#
# Usage: bench/bench-remote.sh [-r ROUNDS] [-c "N ..."]   (default 3 rounds, about 7 minutes)
# Needs: root, /usr/bin/time, nbdcopy, sshd, certtool; no /etc/pki/qemu of someone else's.
set -u
ROUNDS=3 TLS_CONNS=
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift 2 ;;
    -c) TLS_CONNS=$2; shift 2 ;;
    *) echo "usage: $0 [-r ROUNDS] [-c \"N ...\"]" >&2; exit 2 ;;
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
[ -z "${VIRTBACK_BEFORE:-}" ] || [ -x "$VIRTBACK_BEFORE" ] || bench_die "$VIRTBACK_BEFORE is missing"

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

# sda: bench_make_vm's 8 GiB disk holding 3 GiB (bench-cases' disk); sdb: 2 GiB holding
# 1 GiB of random data in 4 extents.  Random data: TLS and the copy pay for every byte.
SMALL_DISK=$VB_IMG_DIR/$BENCH_VM-sdb.qcow2
declare -A DATA=([sda]=3221225472 [sdb]=1073741824)
make_vm () {
  local i cmds=()
  bench_make_vm
  vsh destroy "$BENCH_VM" >/dev/null 2>&1
  vsh undefine "$BENCH_VM" >/dev/null || bench_die "cannot undefine $BENCH_VM to add its disk sdb"
  for i in 0 1 2 3; do
    cmds+=(-c "write -q -s $BENCH_WORK/data/random-$i $((i * 512 + 64))M 256M")
  done
  qemu-img create -q -f qcow2 "$SMALL_DISK" 2G && qemu-io -f qcow2 "${cmds[@]}" "$SMALL_DISK" ||
    bench_die "cannot make $SMALL_DISK"
  cat >"$VB_IMG_DIR/$BENCH_VM.xml" <<XML
<domain type='$(vb_domain_type)'>
  <name>$BENCH_VM</name><memory unit='MiB'>128</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$BENCH_DISK'/><target dev='sda' bus='sata'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='$SMALL_DISK'/><target dev='sdb' bus='sata'/></disk>
  </devices>
</domain>
XML
  vsh define "$VB_IMG_DIR/$BENCH_VM.xml" >/dev/null && vsh start "$BENCH_VM" >/dev/null ||
    bench_die "cannot start $BENCH_VM"
  cat "$SMALL_DISK" >/dev/null
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

# The job directory and pull-backup XML of disk $2 alone (TLS when $1 is yes) on port $3, as
# virtback makes its own; sets BENCH_JOBDIR, and OTHER to the disk left out.
job_xml () {
  OTHER=sda
  [ "$2" = sda ] && OTHER=sdb
  BENCH_JOBDIR=$(mktemp -d /var/tmp/xrbench-job.XXXXXX) || return 1
  chgrp libvirt-qemu "$BENCH_JOBDIR" && chmod 0770 "$BENCH_JOBDIR" || return 1
  cat >"$BENCH_JOBDIR/backup.xml" <<XML
<domainbackup mode='pull'>
  <server transport='tcp' name='$HOST' port='$3' tls='$1'/>
  <disks><disk name='$2' backup='yes' type='file'>
    <scratch file='$BENCH_JOBDIR/scratch-$2.qcow2'/></disk>
    <disk name='$OTHER' backup='no'/></disks>
</domainbackup>
XML
}

# A backup job on TCP made by hand (TLS when $1 is yes) of disk $2.
tcp_job_begin () {
  job_xml "$1" "$2" 10990 && vsh backup-begin "$BENCH_VM" "$BENCH_JOBDIR/backup.xml" >/dev/null
}

# check_copy NAME ROUND IMAGE: in round 1 the raw copy must equal IMAGE; then it is removed.
check_copy () {
  if [ "$2" = 1 ] && ! qemu-img compare -q -U -f qcow2 -F raw "$3" "$BENCH_WORK/out.raw"; then
    echo "bench: $1: the copy differs from $3" >&2
    BAD=1
  fi
  rm -f "$BENCH_WORK/out.raw"
}

run_nbdcopy () {  # NAME ROUND TLS DISK
  local uri="nbd://$HOST:10990/$4" img=$BENCH_DISK
  [ "$3" = yes ] && uri="nbds://$HOST:10990/$4?tls-certificates=$XR/pki/client"
  [ "$4" = sdb ] && img=$SMALL_DISK
  rm -f "$BENCH_WORK/out.raw"
  tcp_job_begin "$3" "$4" || { echo "bench: backup-begin failed" >&2; bench_job_end; return 1; }
  bench_time "$1" "$2" ip netns exec $NS nbdcopy "$uri" "$BENCH_WORK/out.raw"
  bench_job_end
  check_copy "$1" "$2" "$img"
}

# The user's script: one command in the namespace, begun and ended over the same URI.  The
# scratch directory on the host is made before the timing, as for nbdcopy (a script would use
# one that exists).
run_script () {  # NAME ROUND TLS DISK
  local uri="nbd://$HOST:10991/$4" img=$BENCH_DISK
  [ "$3" = yes ] && uri="nbds://$HOST:10991/$4?tls-certificates=$XR/pki/client"
  [ "$4" = sdb ] && img=$SMALL_DISK
  rm -f "$BENCH_WORK/out.raw"
  job_xml "$3" "$4" 10991 || return 1
  cat >"$BENCH_JOBDIR/checkpoint.xml" <<XML
<domaincheckpoint><name>script.0</name>
  <disks><disk name='$4' checkpoint='bitmap'/><disk name='$OTHER' checkpoint='no'/></disks>
</domaincheckpoint>
XML
  bench_time "$1" "$2" ip netns exec $NS bash -ec '
    virsh -q -c "$1" backup-begin "$2" "$3/backup.xml" "$3/checkpoint.xml" >/dev/null
    nbdcopy "$4" "$5"
    virsh -q -c "$1" domjobabort "$2"
    virsh -q -c "$1" checkpoint-delete "$2" script.0 >/dev/null' \
    script "$URI" "$BENCH_VM" "$BENCH_JOBDIR" "$uri" "$BENCH_WORK/out.raw"
  vb_no_job "$BENCH_VM" || bench_job_end
  bench_job_end
  vsh checkpoint-delete "$BENCH_VM" script.0 >/dev/null 2>&1
  check_copy "$1" "$2" "$img"
}

# The whole command; then its output is checked: all of the disk's data in its log line,
# and in round 1 virtback verify over the backup.
run_virtback () {  # NAME ROUND DISK OPTIONS...   (VB: the build, default $VIRTBACK)
  local name=$1 round=$2 disk=$3 got vb=${VB:-$VIRTBACK}
  shift 3
  rm -rf "$BENCH_WORK/out"
  : >"$BENCH_WORK/run.log"
  BENCH_LOG=$BENCH_WORK/run.log bench_time "$name" "$round" ip netns exec $NS "$vb" \
    backup -U "$URI" -d "$BENCH_VM" -i "$disk" -l full -n --nbd-ip $HOST \
    --nbd-port 10980-10989 -o "$BENCH_WORK/out" "$@"
  cat "$BENCH_WORK/run.log" >>"$BENCH_LOG"
  got=$(sed -n "s/.*disk $disk: \([0-9]*\) bytes of data in .*/\1/p" "$BENCH_WORK/run.log")
  if [ "$got" != "${DATA[$disk]}" ]; then
    echo "bench: $name: backed up ${got:-no} bytes of data, not ${DATA[$disk]}" >&2
    BAD=1
  elif [ "$round" = 1 ] && ! "$vb" verify -i "$BENCH_WORK/out" >>"$BENCH_LOG" 2>&1; then
    echo "bench: $name: virtback verify failed on the backup (see $BENCH_LOG)" >&2
    BAD=1
  fi
  vb_no_job "$BENCH_VM" || bench_job_end
  vsh checkpoint-delete "$BENCH_VM" virtback.0 >/dev/null 2>&1
  rm -rf "$BENCH_WORK/out"
}

mkdir -p "$BENCH_WORK"
export BENCH_RESULTS=$BENCH_WORK/remote-results.txt
: >"$BENCH_RESULTS"
: >"$BENCH_LOG"
BAD=0
make_vm
set_up_hosts
echo "bench: $ROUNDS rounds, VM $BENCH_VM (sda: 8 GiB disk, 3 GiB of data; sdb: 2 GiB disk, 1 GiB of random data), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "bench: code $(bench_code_version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "${VIRTBACK_BEFORE:-}" ] || echo "bench: before = $VIRTBACK_BEFORE"
TLSOPT=(--tls --tls-dir "$XR/pki/client")
# BENCH_TRACE=FILE: one virtback run of sdb under strace (execve, connect, exit_group, write, with
# times) into FILE, for where the fixed cost goes; no figures.
if [ -n "${BENCH_TRACE:-}" ]; then
  run_virtback virtback-1g 2 sdb &&
    ip netns exec $NS strace -f -tt -e trace=execve,connect,exit_group,write -o "$BENCH_TRACE" \
      "$VIRTBACK" backup -U "$URI" -d "$BENCH_VM" -i sdb -l full -n \
      --nbd-ip $HOST --nbd-port 10980-10989 -o "$BENCH_WORK/out" >>"$BENCH_LOG" 2>&1
  exit
fi
for r in $(seq 1 "$ROUNDS"); do
  for d in sda sdb; do
    g=3g
    [ $d = sdb ] && g=1g
    run_nbdcopy nbdcopy-$g "$r" no $d
    run_script script-$g "$r" no $d
    run_virtback virtback-$g "$r" $d
    [ -z "${VIRTBACK_BEFORE:-}" ] || VB=$VIRTBACK_BEFORE run_virtback before-$g "$r" $d
    run_nbdcopy nbdcopy-$g-tls "$r" yes $d
    run_script script-$g-tls "$r" yes $d
    run_virtback virtback-$g-tls "$r" $d "${TLSOPT[@]}"
    [ -z "${VIRTBACK_BEFORE:-}" ] || VB=$VIRTBACK_BEFORE run_virtback before-$g-tls "$r" $d "${TLSOPT[@]}"
    for c in $TLS_CONNS; do
      run_virtback virtback-$g-tls-c$c "$r" $d "${TLSOPT[@]}" --connections "$c"
    done
  done
done
tc qdisc add dev xrbh0 root tbf rate 400mbit burst 256kb latency 50ms
run_nbdcopy nbdcopy-1g-400mbit 1 no sdb
run_virtback virtback-1g-400mbit 1 sdb
[ -z "${VIRTBACK_BEFORE:-}" ] || VB=$VIRTBACK_BEFORE run_virtback before-1g-400mbit 1 sdb
tc qdisc del dev xrbh0 root

echo
echo "Medians over $ROUNDS rounds (seconds: the command alone, and until its data is synced):"
pairs=()
for g in 3g 3g-tls 1g 1g-tls; do
  pairs+=(virtback-$g:nbdcopy-$g virtback-$g:script-$g script-$g:nbdcopy-$g)
  [ -z "${VIRTBACK_BEFORE:-}" ] || pairs+=(before-$g:nbdcopy-$g before-$g:script-$g)
done
for c in $TLS_CONNS; do pairs+=(virtback-3g-tls-c$c:nbdcopy-3g-tls virtback-1g-tls-c$c:nbdcopy-1g-tls); done
pairs+=(virtback-1g-400mbit:nbdcopy-1g-400mbit)
[ -z "${VIRTBACK_BEFORE:-}" ] || pairs+=(before-1g-400mbit:nbdcopy-1g-400mbit)
bench_table "${pairs[@]}"
awk '$1 == "virtback-1g-400mbit" && $6 == 0 {
  printf "\nvirtback at 400 mbit/s: %.1f MiB/s for 1 GiB (the link: %.1f MiB/s)\n", 1024 / $3, 400e6 / 8 / 1048576 }' \
  "$BENCH_RESULTS"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -q ' [1-9][0-9]*$' "$BENCH_RESULTS"; then
  echo
  echo "Some runs failed; their output is in $BENCH_LOG"
fi
if [ "$BAD" != 0 ]; then
  echo "Some outputs were wrong (above): the figures do not count"
  exit 1
fi
