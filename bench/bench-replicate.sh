#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-replicate.sh: virtback replicate across a veth to a standby host (the network
# namespace xp-standby of tests/integration/replica_hosts.bash, with its own sshd), on a VM
# xpbench with a 4 GiB disk holding 1.5 GiB of data, in one run, ROUNDS times interleaved:
#   nbdcopy      the disk's allocated data (a copy of the disk served by qemu-nbd -r) into a
#                fresh qcow2 served by qemu-nbd in the standby namespace over plain TCP, with
#                the cache mode the standby's receiver uses (none where O_DIRECT works)
#   via ssh      the same nbdcopy through an ssh tunnel (-L) with virtback's cipher, from the
#                login to the tunnel's end: the floor of any copy that ssh encrypts here
#   first sync   virtback replicate into an empty standby directory
#   whole disk   the seed's method: every byte of the disk copied again over NBD, as its dd
#                over NBD does at each refresh (nbdcopy without extents and without its zero
#                detection, --sparse=0: with it, nbdcopy sends the holes as zero requests and
#                only the 1.5 GiB of data cross the link, which dd never does)
#   incremental  virtback replicate after the guest changed 5 % of the disk (52 writes of
#                4 MiB spread over it, through qemu-io over HMP), timed when the source's
#                command returns; a second line times, from the same start, the end of the
#                standby's fold of that sync (replica status polled every 10 ms; a fold still
#                running after FOLD_MAX_S seconds, default 60, stops the benchmark with an error)
# Each standby image is compared once with the VM's disk.  Prints medians and the ratios the
# issue sets targets for: first sync / nbdcopy (<= 1.3), and incremental / full resync
# (<= 0.15), where the full resync is the first sync (a full one of the same disk, before the
# change: the stricter divisor, as the change adds data).
#
# -p logs where each sync's time goes (VIRTBACK_DEBUG=1 on both ends: "phase" lines, seconds
# since each process started) into $WORK/bench-replicate.log.
# --perf FILE records the first incremental sync system-wide (perf record -a -g) into FILE;
# with PERF_FIRST=1 in the environment, the first full sync instead.
# -i N then compares N one-shot incremental syncs of 5 % with N syncs of one `--interval 20`
# run (one ssh session, one receiver), each after a 5 % change, by the seconds of each sync's
# line (the first line of the --interval run logs in, as a one-shot sync does, and is shown
# apart); and with N one-shot syncs whose --rsh shares one ssh connection (ControlMaster=auto,
# ControlPersist=60: the first of them logs in and is left out).
#
# Usage: bench/bench-replicate.sh [-r ROUNDS] [-p] [--perf FILE] [-i N]   (default 3; needs root, sshd, nbdcopy)
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/integration/replica_hosts.bash"

ROUNDS=3
while [ $# -gt 0 ]; do
  case $1 in
    -r) ROUNDS=$2; shift ;;
    -p) export VIRTBACK_DEBUG=1 ;;
    --perf) PERF=$2; shift ;;
    -i) ISYNCS=$2; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# From a clean checkout: build virtback first (the tests' build directory).
if [ ! -x "$VIRTBACK" ]; then
  { [ -d "$ROOT/build" ] || meson setup "$ROOT/build" >/dev/null; } &&
    ninja -C "$ROOT/build" >/dev/null || { echo "bench: cannot build virtback" >&2; exit 1; }
fi

VM=xpbench
WORK=${BENCH_WORK:-/var/tmp/xpbench}
REMOTE=$WORK/remote-virtback
SBD=$VB_IMG_DIR/xpbench-standby
LOG=$WORK/bench-replicate.log
PORT=11000
die () { echo "bench: $*" >&2; exit 1; }
cleanup () {
  [ -z "${NBDPID:-}" ] || kill "$NBDPID" 2>/dev/null
  [ -z "${MUX:-}" ] || $MUX -O exit -p "$XP_PORT" "root@$XP_IP" 2>/dev/null
  [ ! -S "$WORK/tun.sock" ] || $XP_RSH -S "$WORK/tun.sock" -O exit -p "$XP_PORT" "root@$XP_IP" 2>/dev/null
  vb_destroy_vm "$VM"
  xp_hosts_down "$WORK/hosts"
  rm -rf "$SBD" "$WORK/src.sock" "$WORK/target.qcow2" "$WORK/src.qcow2" "$WORK/now.qcow2" \
    "$WORK/hosts" "$REMOTE" "$WORK/snbd.pid" "$WORK/tnbd.pid" "$WORK/tun.sock"
}
trap cleanup EXIT
mkdir -p "$WORK" && : >"$LOG"
echo "load before: $(uptime)"
vb_daemons_up || die "libvirtd does not come up"
# The standby's notes reach the log through a wrapper (ssh's stderr is the sync's own).
printf '#!/bin/sh\n%sexec %s "$@" 2>>%s\n' "${VIRTBACK_DEBUG:+VIRTBACK_DEBUG=1 }" "$VIRTBACK" "$LOG" >"$REMOTE"
chmod 700 "$REMOTE"
xp_hosts_up "$WORK/hosts" >>"$LOG" 2>&1 || die "the standby namespace does not come up (see $LOG)"

# 1.5 GiB: 24 regions of 64 MiB of patterned bytes (nothing on the way compresses).
vb_make_vm "$VM" 4G || die "cannot make $VM"
for i in $(seq 0 23); do
  vb_guest_io "$VM" sda "write -P $((i + 1)) $((i * 160))M 64M" || die "write"
done

ms () { date +%s%N | cut -c1-13; }
declare -A T
add () { T[$1]="${T[$1]:-} $2"; }
median () { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Each timed step leaves its milliseconds in MS.
sync_into () {   # DIR [perf]: one sync
  local t0=$(ms) rec=()
  [ -z "${2:-}" ] || [ -z "${PERF:-}" ] || rec=(perf record -q -a -g -o "$PERF" --)
  "${rec[@]}" "$VIRTBACK" replicate -d "$VM" --to "ssh://root@$XP_IP:$XP_PORT$1" -e "$XP_RSH" \
    --remote-virtback "$REMOTE" -n --no-freeze >>"$LOG" 2>&1 || die "replicate failed (see $LOG)"
  MS=$(( $(ms) - t0 ))
  T0=$t0
}

# Milliseconds from the start of the last sync until the standby's fold ended (no process holds
# DIR's lock and no base is left), polled every 10 ms after the source returned.  A fold of
# 208 MiB takes well under a second here: one still running after FOLD_MAX_S (default 60) s
# hangs, and the benchmark stops with the last status instead of waiting for ever.
fold_done () {
  local st end=$(( $(ms) + ${FOLD_MAX_S:-60} * 1000 ))
  while :; do
    st=$("$VIRTBACK" replica status "$1" --json) || die "replica status failed"
    jq -e '.busy == false and .fold == null' <<<"$st" >/dev/null && break
    [ "$(ms)" -lt "$end" ] ||
      die "the standby's fold did not end within ${FOLD_MAX_S:-60} s: $(jq -c . <<<"$st")"
    sleep 0.01
  done
  MS=$(( $(ms) - T0 ))
}

# The floor writes as the standby's receiver does: around the page cache where the image
# opens with O_DIRECT (writeback there was the floor's bound, spread 5.4-15.5 s by the
# page cache alone).
TCACHE="--cache=none --aio=threads"
dd if=/dev/zero of="$WORK/odirect.probe" bs=4096 count=1 oflag=direct 2>/dev/null ||
  TCACHE=--cache=writeback
rm -f "$WORK/odirect.probe"
nbd_to_standby () {   # NBDCOPY-OPTIONS...: the copy of the disk into a fresh qcow2 on the standby
  local t0 rc
  rm -f "$WORK/target.qcow2" "$WORK/src.sock"
  qemu-img create -q -f qcow2 "$WORK/target.qcow2" 4G
  ip netns exec $XP_NS qemu-nbd -f qcow2 -b $XP_IP -p $PORT -x disk $TCACHE \
    --pid-file "$WORK/tnbd.pid" --fork "$WORK/target.qcow2" || die "qemu-nbd target"
  qemu-nbd -r -f qcow2 -k "$WORK/src.sock" --pid-file "$WORK/snbd.pid" --fork \
    "$WORK/src.qcow2" || die "qemu-nbd source"
  t0=$(ms)
  nbdcopy "$@" "nbd+unix:///?socket=$WORK/src.sock" "nbd://$XP_IP:$PORT/disk" >>"$LOG" 2>&1
  rc=$?
  MS=$(( $(ms) - t0 ))
  kill "$(cat "$WORK/snbd.pid")" "$(cat "$WORK/tnbd.pid")"
  while kill -0 "$(cat "$WORK/tnbd.pid")" 2>/dev/null; do sleep 0.1; done
  [ $rc = 0 ] || die "nbdcopy failed (see $LOG)"
}

# The same copy through an ssh tunnel to the standby's sshd, with the cipher virtback prefers,
# timed from the login to the tunnel's end: what ssh's encryption costs on this machine, the part
# of the gap to nbdcopy that no sync over ssh avoids.
TUN=$WORK/tun.sock
nbd_through_ssh () {
  local t0 rc
  rm -f "$WORK/target.qcow2" "$WORK/src.sock" "$TUN"
  qemu-img create -q -f qcow2 "$WORK/target.qcow2" 4G
  ip netns exec $XP_NS qemu-nbd -f qcow2 -b $XP_IP -p $PORT -x disk $TCACHE \
    --pid-file "$WORK/tnbd.pid" --fork "$WORK/target.qcow2" || die "qemu-nbd target"
  qemu-nbd -r -f qcow2 -k "$WORK/src.sock" --pid-file "$WORK/snbd.pid" --fork \
    "$WORK/src.qcow2" || die "qemu-nbd source"
  t0=$(ms)
  $XP_RSH -o Ciphers=aes128-gcm@openssh.com -o ExitOnForwardFailure=yes -f -N -M -S "$TUN" \
    -L 127.0.0.1:$((PORT + 1)):$XP_IP:$PORT -p $XP_PORT root@$XP_IP || die "ssh tunnel"
  nbdcopy --destination-is-zero "nbd+unix:///?socket=$WORK/src.sock" \
    "nbd://127.0.0.1:$((PORT + 1))/disk" >>"$LOG" 2>&1
  rc=$?
  $XP_RSH -S "$TUN" -O exit -p $XP_PORT root@$XP_IP 2>/dev/null
  MS=$(( $(ms) - t0 ))
  kill "$(cat "$WORK/snbd.pid")" "$(cat "$WORK/tnbd.pid")"
  while kill -0 "$(cat "$WORK/tnbd.pid")" 2>/dev/null; do sleep 0.1; done
  [ $rc = 0 ] || die "nbdcopy through ssh failed (see $LOG)"
}

for r in $(seq "$ROUNDS"); do
  vb_snapshot_disk "$VM" sda "$WORK/src.qcow2" || die "copy of the disk"
  nbd_to_standby --destination-is-zero; add nbdcopy $MS
  nbd_through_ssh; add nbdssh $MS
  rm -rf "$SBD"
  sync_into "$SBD" $([ "$r" = 1 ] && [ -n "${PERF_FIRST:-}" ] && echo perf); add first $MS
  [ "$r" = 1 ] && { vb_snapshot_disk "$VM" sda "$WORK/now.qcow2"; vb_compare "$WORK/now.qcow2" "$SBD/sda.qcow2" || die "first sync differs"; }
  nbd_to_standby --no-extents --sparse=0; add whole $MS
  # 52 x 4 MiB = 208 MiB, 5 % of the disk
  for i in $(seq 0 51); do
    vb_guest_io "$VM" sda "write -P $((100 + r)) $((i * 78 + 2))M 4M" || die "write"
  done
  sync_into "$SBD" $([ "$r" = 1 ] && [ -z "${PERF_FIRST:-}" ] && echo perf); add inc $MS
  fold_done "$SBD"; add fold $MS
  [ "$r" = 1 ] && { vb_snapshot_disk "$VM" sda "$WORK/now.qcow2"; vb_compare "$WORK/now.qcow2" "$SBD/sda.qcow2" || die "incremental sync differs"; }
done

# The seconds of a sync's line ("... bytes in 1.23 s, lag ...").
secs () { sed -n 's/.* bytes in \([0-9.]*\) s, lag.*/\1/p' <<<"$1"; }
change5 () {   # ROUND: 52 x 4 MiB = 208 MiB, 5 % of the disk
  local i
  for i in $(seq 0 51); do
    vb_guest_io "$VM" sda "write -P $((100 + $1)) $((i * 78 + 2))M 4M" || die "write"
  done
}
if [ "${ISYNCS:-0}" -gt 0 ]; then
  for k in $(seq "$ISYNCS"); do
    change5 $((20 + k))
    sync_into "$SBD"
    add oneshot "$(secs "$(grep '^point ' "$LOG" | tail -1)")"
  done
  # The same one-shot syncs over ssh's own connection sharing (a master that the
  # administrator's --rsh asks for, kept 60 s): what is left without the login.
  CM=$WORK/cm-%C
  MUX="$XP_RSH -o ControlMaster=auto -o ControlPath=$CM -o ControlPersist=60"
  for k in $(seq "$ISYNCS"); do
    change5 $((30 + k))
    "$VIRTBACK" replicate -d "$VM" --to "ssh://root@$XP_IP:$XP_PORT$SBD" -e "$MUX" \
      --remote-virtback "$REMOTE" -n --no-freeze >>"$LOG" 2>&1 || die "replicate over a shared ssh connection failed (see $LOG)"
    [ "$k" = 1 ] || add muxed "$(secs "$(grep '^point ' "$LOG" | tail -1)")"
  done
  $MUX -O exit -p "$XP_PORT" "root@$XP_IP" 2>/dev/null
  change5 40
  "$VIRTBACK" replicate -d "$VM" --to "ssh://root@$XP_IP:$XP_PORT$SBD" -e "$XP_RSH" \
    --remote-virtback "$REMOTE" -n --no-freeze --interval 20 >"$WORK/interval.out" 2>>"$LOG" &
  IPID=$!
  for k in $(seq 0 "$ISYNCS"); do
    until [ "$(grep -c '^point ' "$WORK/interval.out")" -gt "$k" ]; do
      kill -0 $IPID 2>/dev/null || die "replicate --interval ended (see $LOG)"
      sleep 0.1
    done
    [ "$k" = "$ISYNCS" ] || change5 $((41 + k))
  done
  kill -INT $IPID; wait $IPID
  cat "$WORK/interval.out" >>"$LOG"
  ifirst=$(secs "$(grep '^point ' "$WORK/interval.out" | head -1)")
  while read -r l; do
    add kept "$(secs "$l")"
  done < <(grep '^point ' "$WORK/interval.out" | tail -n +2)
fi

printf '%-38s %10s   %s\n' case "median ms" "all rounds (ms)"
for k in nbdcopy nbdssh first whole inc fold; do
  case $k in
    nbdcopy) name="nbdcopy of the data over the link" ;;
    nbdssh) name="nbdcopy through an ssh tunnel" ;;
    first) name="virtback first sync" ;;
    whole) name="whole disk over NBD (seed's method)" ;;
    inc) name="virtback incremental sync, 5 %" ;;
    fold) name="  ... until the standby's fold ended" ;;
  esac
  printf '%-38s %10s  %s\n' "$name" "$(median "${T[$k]}")" "${T[$k]}"
done
awk -v f="$(median "${T[first]}")" -v n="$(median "${T[nbdcopy]}")" -v s="$(median "${T[nbdssh]}")" \
    -v i="$(median "${T[inc]}")" -v w="$(median "${T[whole]}")" \
    'BEGIN { printf "first sync / nbdcopy:          %.2f (target <= 1.3)\n", f / n;
             printf "first sync / nbdcopy via ssh:  %.2f (what is left beside ssh'"'"'s cost)\n", f / s;
             printf "incremental / full resync:     %.3f (target <= 0.15)\n", i / f;
             printf "incremental / whole disk copy: %.3f (the seed method: every byte again)\n", i / w }'
# What the ratio to the first sync cannot go below at equal data rates and no fixed cost
# (round 1: its first sync, then its incremental).
fullb=$(sed -n 's/^point .* (full): \([0-9]*\) bytes.*/\1/p' "$LOG" | head -1)
incb=$(sed -n 's/^point .* (inc since .*): \([0-9]*\) bytes.*/\1/p' "$LOG" | head -1)
[ -z "$fullb" ] || [ -z "$incb" ] ||
  awk -v f="$fullb" -v i="$incb" 'BEGIN { printf "incremental data / first sync data: %.3f (%d of %d bytes)\n", i / f, i, f }'
if [ "${ISYNCS:-0}" -gt 0 ]; then
  printf '%-38s %10s  %s\n' "one-shot incremental, 5 % (s)" "$(median "${T[oneshot]}")" "${T[oneshot]}"
  printf '%-38s %10s  %s\n' "one-shot, shared ssh connection (s)" "$(median "${T[muxed]}")" "${T[muxed]}"
  printf '%-38s %10s  %s\n' "--interval 20, first sync (s)" "$ifirst" ""
  printf '%-38s %10s  %s\n' "--interval 20, later syncs (s)" "$(median "${T[kept]}")" "${T[kept]}"
fi
echo "load after: $(uptime)"
