#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-restore-server.sh: how the NBD server's options and the
# client's shape change the restore's write path, to choose what virtback
# restore uses with numbers.  Every variant writes the same 3 GiB (the
# sparse raw copy of the benchmark disk that bench-restore.sh leaves in
# $BENCH_WORK/disk.raw) with nbdcopy into a fresh qcow2 served by a qemu-nbd
# that nbdcopy starts and stops, flush included, so only the server options
# and the request shape differ.  Variants run interleaved, round by round:
#   ours        --cache=writeback --aio=threads; 1 connection, 16 x 2 MiB
#               (what virtback restore does)
#   io_uring    --cache=writeback --aio=io_uring; 1 x 16 x 2 MiB
#   direct      --cache=none --aio=native (O_DIRECT); 1 x 16 x 2 MiB
#   4conn       ours, over 4 connections (qemu-nbd --shared=4)
#   small       ours, 64 requests of 256 KiB (nbdcopy's default shape)
# Usage: bench/bench-restore-server.sh [-r ROUNDS]   (default 3)
set -u
BENCH_LOG=${BENCH_WORK:-/var/tmp/vbbench}/bench-restore-server.log
. "$(dirname "${BASH_SOURCE[0]}")/lib-bench.sh"

ROUNDS=3
[ "${1:-}" = -r ] && { ROUNDS=${2:?-r needs a number}; shift 2; }
if [ $# -gt 0 ]; then                   # -h, --help, or a mistake
  sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
  case $1 in -h|--help) exit 0 ;; *) exit 2 ;; esac
fi
bench_check_tools
SRC=$BENCH_WORK/disk.raw
[ -s "$SRC" ] || bench_die "$SRC is missing: run bench/bench-restore.sh first"
export BENCH_RESULTS=$BENCH_WORK/restore-server-results.txt
: >"$BENCH_RESULTS"
: >"$BENCH_LOG"
OUT=$BENCH_WORK/restore-server-out
mkdir -p "$OUT"

# variant NAME SERVER-OPTIONS CLIENT-OPTIONS
variant () {
  local name=$1 sopts=$2 copts=$3 round=$4 img=$OUT/sda.qcow2
  rm -f "$img"
  qemu-img create -q -f qcow2 "$img" 8G || bench_die "qemu-img create failed"
  # shellcheck disable=SC2086  # option lists split on purpose
  bench_time "$name" "$round" nbdcopy --flush --destination-is-zero $copts "$SRC" -- \
    [ qemu-nbd --discard=unmap --detect-zeroes=unmap $sopts -f qcow2 "$img" ]
  [ "$round" = 1 ] && { qemu-img compare -q -f raw -F qcow2 "$SRC" "$img" ||
                          echo "  CHECK $name: the image DIFFERS from the source"; }
  rm -f "$img"
}

ONE="--connections=1 --requests=16 --request-size=2097152"
echo "bench: $ROUNDS rounds, nbdcopy of $(du -sh "$SRC" | cut -f1) into qemu-nbd, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
for r in $(seq "$ROUNDS"); do
  variant ours "--cache=writeback --aio=threads" "$ONE" "$r"
  variant io_uring "--cache=writeback --aio=io_uring" "$ONE" "$r"
  variant direct "--cache=none --aio=native" "$ONE" "$r"
  variant 4conn "--cache=writeback --aio=threads --shared=4" \
    "--connections=4 --requests=16 --request-size=2097152" "$r"
  variant small "--cache=writeback --aio=threads" \
    "--connections=1 --requests=64 --request-size=262144" "$r"
done
rmdir "$OUT" 2>/dev/null
echo
echo "Medians over $ROUNDS rounds (the ratios are of each variant to 'ours'):"
bench_table io_uring:ours direct:ours 4conn:ours small:ours
echo "Raw results: $BENCH_RESULTS"
