#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-chain.sh: restore of the newest point of a long chain, with
# three tools interleaved over several rounds in one run:
#   nbdcopy         the final disk, from a sparse raw copy of it, into a
#                   fresh qcow2 served by qemu-nbd (the write limit)
#   virtback        build/virtback restore -i CHAIN -o OUT (each byte of the
#                   point written once, read through the view)
#   virtnbdrestore  virtnbdrestore -i CHAIN -o OUT (replays every file)
# The VM vbchain has a 2 GiB disk: a full backup of 768 MiB of data, then
# INCS incrementals that each rewrite the same 256 MiB.  Each restore is
# checked once with qemu-img compare against the VM's disk.  It prints
# medians, peak RSS and the ratios virtback/nbdcopy and
# virtback/virtnbdrestore.
#
# Usage: bench/bench-chain.sh [-r ROUNDS] [-n INCS] [-z]
#   -r N   rounds (default 3)
#   -n N   incrementals after the full (default 10)
#   -z     the chain is lz4-compressed (-z), restored by both tools
set -u
BENCH_VM=vbchain
BENCH_LOG=${BENCH_WORK:-/var/tmp/vbbench}/bench-chain.log
. "$(dirname "${BASH_SOURCE[0]}")/lib-bench.sh"

ROUNDS=3 INCS=10 Z=()
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift ;;
    -n) INCS=$2; shift ;;
    -z) Z=(-z) ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) bench_die "unknown option $1 (see --help)" ;;
  esac
  shift
done

bench_check_tools virtnbdrestore
mkdir -p "$BENCH_WORK"
export BENCH_RESULTS=$BENCH_WORK/chain-results.txt
: >"$BENCH_RESULTS"
: >"$BENCH_LOG"
CHAIN=$BENCH_WORK/chain
OUT=$BENCH_WORK/chain-out
DISK=$VB_IMG_DIR/$BENCH_VM-sda.qcow2

# The VM and its chain: 768 MiB of random data in three 256 MiB extents,
# a full, then each incremental after the guest rewrote the middle one.
make_chain () {
  vb_daemons_up || bench_die "libvirtd did not start"
  bench_make_data
  vb_destroy_vm "$BENCH_VM"
  mkdir -p "$VB_IMG_DIR"
  qemu-img create -q -f qcow2 "$DISK" 2G || bench_die "qemu-img create failed"
  qemu-io -f qcow2 -c "write -q -s $BENCH_WORK/data/random-0 0 256M" \
    -c "write -q -s $BENCH_WORK/data/random-1 512M 256M" \
    -c "write -q -s $BENCH_WORK/data/random-2 1280M 256M" "$DISK" ||
    bench_die "qemu-io write failed"
  cat >"$VB_IMG_DIR/$BENCH_VM.xml" <<XML
<domain type='$(vb_domain_type)'>
  <name>$BENCH_VM</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
    <source file='$DISK'/><target dev='sda' bus='sata'/></disk></devices>
</domain>
XML
  vsh define "$VB_IMG_DIR/$BENCH_VM.xml" >/dev/null && vsh start "$BENCH_VM" >/dev/null ||
    bench_die "could not start $BENCH_VM"
  rm -rf "$CHAIN"
  "$VIRTBACK" backup -d "$BENCH_VM" -l full -n -o "$CHAIN" "${Z[@]}" >>"$BENCH_LOG" 2>&1 ||
    bench_die "full backup failed, see $BENCH_LOG"
  for i in $(seq 1 "$INCS"); do
    vsh qemu-monitor-command "$BENCH_VM" --hmp \
      "qemu-io -d sata0-0-0 \"write -q -P $((i % 250 + 1)) 512M 256M\"" >/dev/null &&
      vsh qemu-monitor-command "$BENCH_VM" --hmp 'qemu-io -d sata0-0-0 "flush"' >/dev/null ||
      bench_die "guest write $i failed"
    "$VIRTBACK" backup -d "$BENCH_VM" -l inc -n -o "$CHAIN" "${Z[@]}" >>"$BENCH_LOG" 2>&1 ||
      bench_die "inc $i failed, see $BENCH_LOG"
  done
  rm -f "$BENCH_WORK/chain-disk.raw"
  qemu-img convert -U -O raw "$DISK" "$BENCH_WORK/chain-disk.raw" ||
    bench_die "could not copy the final disk"
}

fresh_out () { rm -rf "$OUT" && mkdir -p "$OUT"; }

check () {
  local img
  img=$(find "$OUT" -name '*.qcow2' | head -1)
  if [ -n "$img" ] && qemu-img compare -U -q "$img" "$DISK"; then
    echo "  check $1: $(basename "$img") is identical to the VM's disk"
  else
    echo "  CHECK $1: ${img:-no image} DIFFERS from the VM's disk"
  fi
}

nbdcopy_restore () {
  qemu-img create -q -f qcow2 "$OUT/sda.qcow2" 2G &&
    nbdcopy --flush --destination-is-zero "$BENCH_WORK/chain-disk.raw" -- \
      [ qemu-nbd --discard=unmap -f qcow2 "$OUT/sda.qcow2" ]
}

make_chain
echo "bench: $ROUNDS rounds, newest point of a full + $INCS incrementals${Z:+ (lz4)}, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "bench: code $(bench_code_version), load average $(cut -d' ' -f1-3 /proc/loadavg), chain $(du -sh --apparent-size "$CHAIN" | cut -f1)"
for r in $(seq 1 "$ROUNDS"); do
  fresh_out
  bench_time nbdcopy "$r" bash -c "$(declare -f nbdcopy_restore); OUT=$OUT BENCH_WORK=$BENCH_WORK nbdcopy_restore"
  [ "$r" = 1 ] && check nbdcopy
  fresh_out
  bench_time virtback "$r" "$VIRTBACK" restore -i "$CHAIN" -o "$OUT"
  [ "$r" = 1 ] && check virtback
  fresh_out
  bench_time virtnbdrestore "$r" virtnbdrestore -n -i "$CHAIN" -o "$OUT" -L "$BENCH_WORK/virtnbdrestore.log"
  [ "$r" = 1 ] && check virtnbdrestore
done
rm -rf "$OUT"
vb_destroy_vm "$BENCH_VM"

echo
echo "Medians over $ROUNDS rounds (seconds: the command alone, and until its data is synced):"
bench_table virtback:nbdcopy virtback:virtnbdrestore
echo "Raw results: $BENCH_RESULTS"
