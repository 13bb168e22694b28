#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-map.sh: "virtback map" against the servers it has to beat, in
# one run, the servers interleaved round by round (the order rotates):
#   reads   fio (nbd engine, one connection) 4 KiB random reads, IOPS, and
#           1 MiB sequential reads, MiB/s, through
#             virtback  virtback map -i BACKUP --socket ...
#             peer      virtnbdmap's nbdkit python plugin, started with the
#                       command line virtnbdmap gives nbdkit (its defaults:
#                       blocksize filter maxlen=4096, cow filter, -t 1) on
#                       a unix socket, without virtnbdmap's /dev/nbd step
#             qemu-nbd  qemu-nbd -r serving the restored qcow2 of the same
#                       point (the limit)
#           for a full backup of a 1 GiB disk (768 MiB of data in 16
#           extents) and for the newest point of a zstd chain of a full and
#           10 incrementals on the same disk (the peer refuses compressed
#           backups: its refusal is printed instead of figures).
#   open    from the command to the printed URI: virtback map of a 64 GiB
#           disk with 131072 extents of 4 KiB (qcow2 cluster_size=4096)
#           over a full and 3 incrementals (target: serving within 2 s).
#           The peer's open of the full alone is timed in the first round
#           (its block map and nbdkit start, until nbdinfo answers; it gives
#           up after 300 s).
#   memory  peak RSS (VmHWM) of the map's nbdkit at 1 TiB virtual size
#           (1 GiB of data: 4 extents of 64 MiB and 12288 of 64 KiB),
#           after nbdcopy read the whole disk and fio read at random over
#           it (target: at most 64 MiB).
# VMs: vbbmfull, vbbmchain, vbbmopen, vbbmtib (firmware only).  The source
# images are written with qemu-io and cached in $VB_IMG_DIR (case-bm*).
# Usage: bench/bench-map.sh [-r ROUNDS] [-t SECONDS] [CASE...]
#   -r N   rounds (default 3)
#   -t S   seconds each fio run lasts, after 1 s of ramp (default 5)
#   CASE   reads, open, memory (default: all three)
set -u
BENCH_LOG=${BENCH_WORK:-/var/tmp/vbbench}/bench-map.log
. "$(dirname "${BASH_SOURCE[0]}")/lib-bench.sh"

ROUNDS=3 RUNTIME=5
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift ;;
    -t) RUNTIME=$2; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) bench_die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
  shift
done
CASES=${*:-reads open memory}
bench_check_tools fio nbdkit nbdinfo virtnbdmap virtnbd-nbdkit-plugin
[ -e /usr/lib/x86_64-linux-gnu/nbdkit/plugins/nbdkit-python-plugin.so ] ||
  bench_die "nbdkit's python plugin is missing (apt-get install nbdkit-plugin-python)"
W=$BENCH_WORK/map
mkdir -p "$W" "$VB_IMG_DIR"
: >"$BENCH_LOG"
vb_daemons_up || bench_die "libvirtd did not start"
SERVER_PID='' SERVER_FD='' SERVER_URI=''
trap 'server_stop; rm -f "$BENCH_WORK/.running"' EXIT

# bm_vm NAME IMAGE: a firmware-only VM on IMAGE (sda).
bm_vm () {
  cat >"$W/$1.xml" <<XML
<domain type='$(vb_domain_type)'><name>$1</name><memory unit='MiB'>128</memory>
<os><type arch='x86_64'>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='$2'/><target dev='sda' bus='sata'/></disk></devices></domain>
XML
  vsh define "$W/$1.xml" >/dev/null && vsh start "$1" >/dev/null || bench_die "cannot start $1"
}

# hmp_write VM PATTERN OFFSET LENGTH: a write through QEMU, seen by the
# dirty bitmaps.
hmp_write () {
  vsh qemu-monitor-command "$1" --hmp "qemu-io -d sata0-0-0 \"write -q -P $2 $3 $4\"" >/dev/null
}
hmp_flush () { vsh qemu-monitor-command "$1" --hmp 'qemu-io -d sata0-0-0 "flush"' >/dev/null; }

vb_backup () {           # VM LEVEL DIR ARGS...
  local vm=$1 level=$2 dir=$3
  shift 3
  "$VIRTBACK" backup -d "$vm" -l "$level" -n -o "$dir" "$@" >>"$BENCH_LOG" 2>&1 ||
    bench_die "virtback backup -l $level of $vm failed, see $BENCH_LOG"
}

# restored DIR OUT DISK: the newest point of DIR as a qcow2 in OUT, checked
# once against DISK.
restored () {
  rm -rf "$2"
  local img
  "$VIRTBACK" restore -i "$1" -o "$2" >>"$BENCH_LOG" 2>&1 || bench_die "restore of $1 failed"
  img=$(find "$2" -name '*.qcow2' | head -1)
  [ -n "$img" ] || bench_die "the restore of $1 made no qcow2"
  [ "$img" = "$2/sda.qcow2" ] || mv "$img" "$2/sda.qcow2"
  qemu-img compare -U -q "$2/sda.qcow2" "$3" || bench_die "the restore of $1 differs from $3"
}

# --- servers: each sets SERVER_URI once it answers; server_stop ends it.

# wait_uri [TENTHS]: until the server answers (default 10 s).
wait_uri () {
  local i
  for i in $(seq "${1:-100}"); do
    nbdinfo --size "$SERVER_URI" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# virtback map prints its URI once it serves: read it from a fifo, so the
# time to that line is what a user waits.
start_virtback () {
  rm -f "$W/uri.fifo" && mkfifo "$W/uri.fifo"
  "$VIRTBACK" map -i "$1" --socket "$W/vb.sock" >"$W/uri.fifo" 2>>"$BENCH_LOG" &
  SERVER_PID=$!
  exec {SERVER_FD}<"$W/uri.fifo"
  read -r -u "$SERVER_FD" SERVER_URI || { SERVER_URI=; return 1; }
}

# The peer's block map, made by virtnbdmap's own functions.
peer_blockmap () {       # DATAFILE MAPFILE
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, logging, importlib.machinery, importlib.util
logging.basicConfig(format="peer: %(message)s")
loader = importlib.machinery.SourceFileLoader("virtnbdmap", "/usr/bin/virtnbdmap")
spec = importlib.util.spec_from_loader("virtnbdmap", loader)
m = importlib.util.module_from_spec(spec)
loader.exec_module(m)
reader = m.output.openfile(sys.argv[1], "rb")
try:
    ranges, _ = m.getDataRanges(m.streamer.SparseStream(m.types), m.types.SparseStreamTypes(), reader)
except m.RestoreError:
    sys.exit(1)
with open(sys.argv[2], "wb") as f:
    m.dumpBlockMap(f, ranges)
PY
}

# As virtnbdmap's startNbdkitProcess, on a unix socket, in the foreground.
start_peer () {          # DATAFILE
  peer_blockmap "$1" "$W/peer.map" 2>>"$BENCH_LOG" || return 1
  nbdkit -f -U "$W/peer.sock" -e sda --filter=blocksize --filter=cow -v \
    python /usr/bin/virtnbd-nbdkit-plugin maxlen=4096 blockmap="$W/peer.map" \
    disk="$1" debug=0 -t 1 >/dev/null 2>"$W/peer.log" &
  SERVER_PID=$!
  SERVER_URI="nbd+unix:///sda?socket=$W/peer.sock"
  wait_uri 3000                 # its plugin loads and prints the whole block map first
}

start_qemu_nbd () {      # QCOW2
  qemu-nbd -t -r -f qcow2 -x sda --shared=8 -k "$W/qn.sock" "$1" 2>>"$BENCH_LOG" &
  SERVER_PID=$!
  SERVER_URI="nbd+unix:///sda?socket=$W/qn.sock"
  wait_uri
}

server_stop () {
  local i
  if [ -n "$SERVER_PID" ]; then
    kill -INT "$SERVER_PID" 2>/dev/null
    # nbdkit acts on signals only once it serves: the peer still loading
    # its block map is killed.
    for i in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  [ -z "$SERVER_FD" ] || exec {SERVER_FD}<&-
  SERVER_PID='' SERVER_FD='' SERVER_URI=''
  rm -f "$W/uri.fifo" "$W/peer.sock" "$W/qn.sock" "$W/peer.map"
}

# The map's nbdkit: virtback's child.
map_nbdkit_pid () { pgrep -P "$SERVER_PID" -x nbdkit | head -1; }
hwm_mib () { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# --- fio

# fio_run NAME ROUND rand|seq: appends "NAME-rand ROUND IOPS MIB/S EXIT" to
# $W/reads.txt.
fio_run () {
  local name=$1 round=$2 kind=$3 rw=randread bs=4k depth=16 rc
  [ "$kind" = seq ] && rw=read bs=1M depth=8
  rm -f "$W/fio.json"
  fio --name="$name-$kind" --ioengine=nbd --uri="$SERVER_URI" --rw="$rw" --bs="$bs" \
    --iodepth="$depth" --norandommap --randrepeat=0 --ramp_time=1 \
    --runtime="$RUNTIME" --time_based --output-format=json --output="$W/fio.json" \
    >>"$BENCH_LOG" 2>&1
  rc=$?
  /usr/bin/python3 - "$W/fio.json" "$name-$kind" "$round" "$rc" <<'PY' | tee -a "$W/reads.txt" |
import json, sys
path, name, rnd, rc = sys.argv[1:]
try:
    job = json.load(open(path))["jobs"][0]
    r = job["read"]
    err = job["error"] or int(rc)
    print(f"{name} {rnd} {r['iops']:.0f} {r['bw_bytes'] / 1048576:.1f} {err}")
except Exception:
    print(f"{name} {rnd} 0 0 {int(rc) or 1}")
PY
    awk '{ printf "  round %s %-22s %9s IOPS %8s MiB/s  exit %s\n", $2, $1, $3, $4, $5 }'
}

# reads_round SET ROUND SERVER...: each server in turn, both fio runs.
reads_round () {
  local set=$1 round=$2 s
  shift 2
  for s in "$@"; do
    case $s in
      virtback) start_virtback "$W/$set" ;;
      peer) start_peer "$W/$set/sda.full.data" ;;
      qemu-nbd) start_qemu_nbd "$W/$set-restored/sda.qcow2" ;;
    esac || { echo "  round $round $s: the server did not start (see $BENCH_LOG)"; server_stop; continue; }
    fio_run "$set-$s" "$round" rand
    fio_run "$set-$s" "$round" seq
    server_stop
  done
}

reads_table () {
  awk -v pairs="$*" '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
      return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
    }
    { if (!($1 in n)) { order[++k] = $1; n[$1] = 0 } }
    $5 != 0 { bad[$1]++; next }
    { i = ++n[$1]; io[$1, i] = $3; bw[$1, i] = $4 }
    END {
      printf "%-26s %5s %12s %10s\n", "server-set-kind", "runs", "median IOPS", "MiB/s"
      for (j = 1; j <= k; j++) {
        t = order[j]
        for (i = 1; i <= n[t]; i++) { a[i] = io[t, i]; b[i] = bw[t, i] }
        mi[t] = n[t] ? median(a, n[t]) : 0; mb[t] = n[t] ? median(b, n[t]) : 0
        printf "%-26s %5d %12.0f %10.1f%s\n", t, n[t], mi[t], mb[t], bad[t] ? sprintf("  (%d failed runs)", bad[t]) : ""
      }
      np = split(pairs, p, " ")
      if (np) print ""
      for (j = 1; j <= np; j++) {
        split(p[j], q, ":")
        if (mi[q[1]] > 0 && mi[q[2]] > 0)
          printf "%-50s %7.2f\n", q[1] " / " q[2], mi[q[1]] / mi[q[2]]
        else
          printf "%-50s     n/a\n", q[1] " / " q[2]
      }
    }' "$W/reads.txt"
}

# --- the cases

# 1 GiB, 16 slots of 64 MiB, 48 MiB of random data in each.
make_reads_image () {
  local img=$1 cmds=() i
  qemu-img create -q -f qcow2 "$img" 1G || bench_die "qemu-img create failed"
  for i in $(seq 0 15); do
    cmds+=(-c "write -q -s $BENCH_WORK/data/random-$((i % 8)) $((i * 64 + 8))M 48M")
  done
  qemu-io -f qcow2 "${cmds[@]}" "$img" || bench_die "qemu-io write failed"
}

prepare_reads () {
  local d1=$VB_IMG_DIR/vbbmfull-sda.qcow2 d2=$VB_IMG_DIR/vbbmchain-sda.qcow2 i
  bench_make_data
  vb_destroy_vm vbbmfull; vb_destroy_vm vbbmchain
  make_reads_image "$d1"
  make_reads_image "$d2"
  bm_vm vbbmfull "$d1"
  rm -rf "$W/full" "$W/chain"
  vb_backup vbbmfull full "$W/full"
  restored "$W/full" "$W/full-restored" "$d1"
  vb_destroy_vm vbbmfull
  # Each incremental rewrites 24 MiB across an extent's edge, so the newest
  # point reads from all 11 files.
  bm_vm vbbmchain "$d2"
  vb_backup vbbmchain full "$W/chain" -z 3 --compress-method zstd
  for i in $(seq 1 10); do
    hmp_write vbbmchain "$((i + 1))" "$((i * 96 + 48))M" 24M && hmp_flush vbbmchain ||
      bench_die "guest write $i failed"
    vb_backup vbbmchain inc "$W/chain" -z 3 --compress-method zstd
  done
  restored "$W/chain" "$W/chain-restored" "$d2"
  vb_destroy_vm vbbmchain
}

run_reads () {
  local r order=(virtback peer qemu-nbd) corder=(virtback qemu-nbd) refusal
  : >"$W/reads.txt"
  prepare_reads
  echo "bench: reads: full backup $(du -sh --apparent-size "$W/full" | cut -f1), zstd chain of 11 files $(du -sh --apparent-size "$W/chain" | cut -f1), fio ${RUNTIME} s per run, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  if refusal=$(peer_blockmap "$W/chain/sda.full.data" "$W/peer.map" 2>&1); then
    echo "bench: the peer accepted the zstd chain's full backup (unexpected)"
  else
    echo "bench: peer on the zstd chain: ${refusal//$'\n'/ }"
  fi
  rm -f "$W/peer.map"
  for r in $(seq "$ROUNDS"); do
    reads_round full "$r" "${order[@]}"
    reads_round chain "$r" "${corder[@]}"
    order=("${order[@]:1}" "${order[0]}")
    corder=("${corder[@]:1}" "${corder[0]}")
  done
  echo
  echo "== reads: medians over $ROUNDS rounds (rand: 4 KiB random, depth 16; seq: 1 MiB sequential, depth 8)"
  echo "   chain-peer: none, virtnbdmap refuses compressed backups (and serves no incrementals without /dev/nbd)"
  reads_table full-virtback-rand:full-peer-rand full-virtback-rand:full-qemu-nbd-rand \
    full-virtback-seq:full-peer-seq full-virtback-seq:full-qemu-nbd-seq \
    chain-virtback-rand:chain-qemu-nbd-rand chain-virtback-seq:chain-qemu-nbd-seq
}

# 64 GiB, 131072 extents of 4 KiB every 512 KiB (as bench-cases.sh).
open_base () {
  local img=$VB_IMG_DIR/case-bmopen.qcow2
  if [ ! -s "$img.done" ]; then
    echo "bench: writing 131072 extents of 4 KiB (takes minutes)"
    qemu-img create -q -f qcow2 -o cluster_size=4096 "$img" 64G
    /usr/bin/python3 -c 'for i in range(131072): print(f"write -q -P {i % 250 + 1} {i * 512}k 4k")' |
      qemu-io -f qcow2 "$img" >/dev/null || bench_die "qemu-io failed"
    date >"$img.done"
  fi
  echo "$img"
}

# Each incremental: 256 writes of 4 KiB spread over the disk (dirty-bitmap
# granularity 64 KiB), flushed.
prepare_open () {
  local base disk=$VB_IMG_DIR/vbbmopen-sda.qcow2 i j
  base=$(open_base)
  vb_destroy_vm vbbmopen
  cp --sparse=always "$base" "$disk"
  bm_vm vbbmopen "$disk"
  rm -rf "$W/open"
  vb_backup vbbmopen full "$W/open"
  for i in 1 2 3; do
    for j in $(seq 0 255); do
      hmp_write vbbmopen "$((i + 7))" "$(( (j * 256 + i * 37) * 1024 ))k" 4k || bench_die "guest write failed"
    done
    hmp_flush vbbmopen
    vb_backup vbbmopen inc "$W/open"
  done
  vb_destroy_vm vbbmopen
}

run_open () {
  local r t0 t1 hwm kid rc
  export BENCH_RESULTS=$W/open-results.txt
  : >"$BENCH_RESULTS"
  prepare_open
  echo "bench: open: $(find "$W/open" -name 'sda.*.data' | wc -l) data files, $(du -sh --apparent-size "$W/open" | cut -f1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for r in $(seq "$ROUNDS"); do
    sync
    t0=$EPOCHREALTIME
    start_virtback "$W/open" || bench_die "virtback map of $W/open failed, see $BENCH_LOG"
    t1=$EPOCHREALTIME
    kid=$(map_nbdkit_pid)
    nbdinfo --map "$SERVER_URI" >"$W/open-map.txt" || echo "  nbdinfo --map failed"
    hwm=$(hwm_mib "$kid")
    server_stop
    awk -v r="$r" -v a="$t0" -v b="$t1" -v h="$hwm" -v m="$(wc -l <"$W/open-map.txt")" 'BEGIN {
      printf "virtback-open %s %.3f %.3f %d 0\n", r, b - a, b - a, h * 1024 >> ENVIRON["BENCH_RESULTS"]
      printf "  round %s virtback-open %7.2f s to the URI; nbdkit %s MiB after nbdinfo --map (%d lines)\n", r, b - a, h, m }'
    # The peer's open takes minutes here: once is enough.
    [ "$r" = 1 ] || continue
    sync
    t0=$EPOCHREALTIME
    rc=0
    start_peer "$W/open/sda.full.data" || rc=1
    t1=$EPOCHREALTIME
    [ $rc = 0 ] || echo "  round $r: the peer did not start (see $W/peer.log)"
    hwm=$(hwm_mib "$SERVER_PID")
    server_stop
    awk -v r="$r" -v a="$t0" -v b="$t1" -v h="$hwm" -v x="$rc" 'BEGIN {
      printf "peer-open-full-only %s %.3f %.3f %d %d\n", r, b - a, b - a, h * 1024, x >> ENVIRON["BENCH_RESULTS"]
      printf "  round %s peer-open (full only) %7.2f s until it answers; nbdkit %s MiB\n", r, b - a, h }'
  done
  echo
  echo "== open: 64 GiB, 131072 x 4 KiB extents, a full + 3 incrementals (the peer: the full alone)"
  echo "   (seconds from the command to the printed URI, or for the peer until nbdinfo answers; RSS of nbdkit)"
  bench_table virtback-open:peer-open-full-only
}

prepare_memory () {
  local img=$VB_IMG_DIR/case-bmtib.qcow2 disk=$VB_IMG_DIR/vbbmtib-sda.qcow2 i
  bench_make_data
  if [ ! -s "$img.done" ]; then
    echo "bench: writing 1 GiB into a 1 TiB image"
    qemu-img create -q -f qcow2 "$img" 1T
    for i in 0 1 2 3; do
      qemu-io -f qcow2 -c "write -q -s $BENCH_WORK/data/random-$i $((i * 256 + 17))G 64M" "$img" ||
        bench_die "qemu-io failed"
    done
    /usr/bin/python3 -c 'for i in range(12288): print(f"write -q -P {i % 250 + 1} {i * 85}M 64k")' |
      qemu-io -f qcow2 "$img" >/dev/null || bench_die "qemu-io failed"
    date >"$img.done"
  fi
  vb_destroy_vm vbbmtib
  cp --sparse=always "$img" "$disk"
  bm_vm vbbmtib "$disk"
  rm -rf "$W/tib"
  vb_backup vbbmtib full "$W/tib"
  vb_destroy_vm vbbmtib
}

run_memory () {
  local r kid hwm own
  prepare_memory
  echo "bench: memory: 1 TiB disk, $(du -sh --apparent-size "$W/tib" | cut -f1) of backup, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  : >"$W/reads.txt"
  for r in $(seq "$ROUNDS"); do
    start_virtback "$W/tib" || bench_die "virtback map of $W/tib failed, see $BENCH_LOG"
    kid=$(map_nbdkit_pid)
    nbdinfo --map "$SERVER_URI" >/dev/null &&
      nbdcopy "$SERVER_URI" null: || echo "  round $r: reading the whole disk failed"
    fio_run tib-virtback "$r" rand >/dev/null
    hwm=$(hwm_mib "$kid") own=$(hwm_mib "$SERVER_PID")
    server_stop
    echo "  round $r: peak RSS of the map's nbdkit $hwm MiB (virtback itself $own MiB)"
    echo "$r $hwm $own" >>"$W/memory.txt"
  done
  echo
  echo "== memory: 1 TiB virtual, after nbdinfo --map, nbdcopy of the whole disk and ${RUNTIME} s of random 4 KiB reads"
  sort -k2 -n "$W/memory.txt" | tail -1 | awk '{ printf "largest peak RSS of the map'"'"'s nbdkit over the rounds: %s MiB (virtback itself %s MiB)\n", $2, $3 }'
  rm -f "$W/memory.txt"
}

echo "bench: map, $ROUNDS rounds, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), code $(bench_code_version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: fio $(fio --version), nbdkit $(nbdkit --version | cut -d' ' -f2), $(qemu-nbd --version | head -1), virtnbdmap $(dpkg-query -W -f '${Version}' virtnbdbackup)"
for c in $CASES; do
  case $c in
    reads) run_reads ;;
    open) run_open ;;
    memory) run_memory ;;
    *) bench_die "unknown case $c (reads, open, memory)" ;;
  esac
done
echo "bench: done $(date -u '+%H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg); log $BENCH_LOG"
