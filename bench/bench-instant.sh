#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-instant.sh: instant recovery against a plain restore, for an
# 8 GiB and a 64 GiB virtual disk holding the same little data (256 MiB of
# random bytes in 4 extents, sparse otherwise), interleaved round by round:
#   running  from "virtback restore --instant" to the line saying the VM
#            runs (and virsh domstate running): the time to service
#            (target: at most 5 s, no growth with size)
#   moved    from the same command to its end: the VM runs on its own
#            disks, no backing, map stopped (the whole move)
#   plain    "virtback restore" of the same point into a qcow2: the time
#            before a VM could even be defined
# VMs: xbbi8 and xbbi64 (firmware only; backed up once per run), restored
# as xbbi8-r and xbbi64-r.  Each figure is the median of the rounds; the
# load average is printed before and after.
# Usage: bench/bench-instant.sh [-r ROUNDS] [SIZE...]   (SIZE: 8G 64G)
set -u
BENCH_LOG=${BENCH_WORK:-/var/tmp/vbbench}/bench-instant.log
. "$(dirname "${BASH_SOURCE[0]}")/lib-bench.sh"

ROUNDS=3
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) bench_die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
  shift
done
SIZES=${*:-8G 64G}
bench_check_tools
W=$BENCH_WORK/instant
mkdir -p "$W" "$VB_IMG_DIR"
: >"$BENCH_LOG"
vb_daemons_up || bench_die "libvirtd did not start"
trap 'for s in $SIZES; do vb_destroy_vm xbbi${s%G}-r; vb_destroy_vm xbbi${s%G}; done; rm -rf "$W"; rm -f "$BENCH_WORK/.running"' EXIT

now () { date +%s.%N; }
median () { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

# setup SIZE: the VM, its data, one full backup in $W/bSIZE.
setup () {
  local s=$1 vm=xbbi${1%G} b=$W/b$1
  vb_make_vm "$vm" "$s" 1 >>"$BENCH_LOG" 2>&1 || bench_die "VM $vm"
  local off
  for off in 0 1G 3G 6G; do
    vb_guest_io "$vm" sda "write -P 0x5a $off 64M" || bench_die "writes into $vm"
  done
  rm -rf "$b"
  "$VIRTBACK" backup -d "$vm" -o "$b" -l full -n >>"$BENCH_LOG" 2>&1 || bench_die "backup of $vm"
}

# instant SIZE: prints "RUNNING MOVED" seconds.
instant () {
  local s=$1 vm=xbbi${1%G}-r o=$W/o$1 out=$W/inst.out t0 t1='' t2 pid
  rm -rf "$o"
  t0=$(now)
  "$VIRTBACK" restore --instant -i "$W/b$s" -o "$o" -N "$vm" >"$out" 2>&1 &
  pid=$!
  while kill -0 $pid 2>/dev/null; do
    if [ -z "$t1" ] && grep -q "is running" "$out"; then
      t1=$(now)
      [ "$(vsh domstate "$vm")" = running ] || bench_die "$vm is not running: $(cat "$out")"
    fi
    sleep 0.01
  done
  wait $pid || bench_die "restore --instant of $s failed: $(tail -3 "$out")"
  t2=$(now)
  [ -n "$t1" ] || t1=$t2
  cat "$out" >>"$BENCH_LOG"
  vb_destroy_vm "$vm"
  rm -rf "$o"
  echo "$(echo "$t1 - $t0" | bc) $(echo "$t2 - $t0" | bc)"
}

plain () {
  local s=$1 r=$W/r$1 t0 t1
  rm -rf "$r"
  t0=$(now)
  "$VIRTBACK" restore -i "$W/b$s" -o "$r" >>"$BENCH_LOG" 2>&1 || bench_die "restore of $s failed"
  t1=$(now)
  rm -rf "$r"
  echo "$t1 - $t0" | bc
}

echo "bench-instant: code $(bench_code_version), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for s in $SIZES; do setup "$s"; done
for ((round = 1; round <= ROUNDS; round++)); do
  for s in $SIZES; do
    read -r run moved < <(instant "$s")
    p=$(plain "$s")
    echo "$s $run $moved $p" >>"$W/figures"
    echo "round $round $s: running after $run s, moved after $moved s; plain restore $p s"
  done
done
printf '%-6s %12s %12s %14s\n' size "running (s)" "moved (s)" "plain (s)"
for s in $SIZES; do
  printf '%-6s %12s %12s %14s\n' "$s" \
    "$(awk -v s="$s" '$1 == s {print $2}' "$W/figures" | median)" \
    "$(awk -v s="$s" '$1 == s {print $3}' "$W/figures" | median)" \
    "$(awk -v s="$s" '$1 == s {print $4}' "$W/figures" | median)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
