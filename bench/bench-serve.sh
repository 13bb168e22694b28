#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# bench/bench-serve.sh: virtback serve and its clients against the limits,
# in one run, the cases interleaved round by round (the order rotates):
#   download  of the benchmark disk (by default 8 GiB holding 3 GiB in 16
#             extents, as bench_make_vm lays it out, here written straight
#             into a qcow2: no VM) from one qemu-nbd export, into a sparse
#             raw file:
#               nbdcopy      nbdcopy from the export itself (the limit)
#               curl-get     one curl GET of the whole image through
#                            virtback serve, to /dev/null (imageio's own
#                            figure for a single stream; 8 GiB over HTTP)
#               vb-http      virtback download over plain HTTP (4 workers)
#               vb-https     the same over HTTPS (a CA made here)
#               vb-local     the HTTPS URL of a serve that also has a
#                            --local-socket: after OPTIONS the client
#                            goes through that unix socket (plain HTTP),
#                            as oVirt's client does on the server's host
#   upload    of the same qcow2 into a new qcow2 behind qemu-nbd:
#               nbdcopy-up   nbdcopy from a qemu-nbd of the source (the limit)
#               vb-upload    virtback upload over plain HTTP (4 workers)
#               vb-upload-local  the same through the local socket
#   clients   4 virtback downloads at once (2 workers each), HTTP: the
#             time until all 4 are done
# Target: vb-http within 1.5 x nbdcopy.  Ports 54330 (HTTP), 54331 (HTTPS),
# 54332 (HTTPS with a local socket).  After the rounds, one download of
# each kind and one upload of each kind are compared with the source.
# Usage: bench/bench-serve.sh [-r ROUNDS] [-g GiB]
#   -r N   rounds (default 3)
#   -g N   disk size in GiB, 8 by default; the data is 3/8 of it
set -u
BENCH_LOG=${BENCH_WORK:-/var/tmp/vbbench}/bench-serve.log
. "$(dirname "${BASH_SOURCE[0]}")/lib-bench.sh"

ROUNDS=3 GIB=8
while getopts r:g: o; do
  case $o in
    r) ROUNDS=$OPTARG ;;
    g) GIB=$OPTARG ;;
    *) bench_die "usage: $0 [-r ROUNDS] [-g GiB]" ;;
  esac
done
command -v nbdcopy >/dev/null || bench_die "nbdcopy is missing (package libnbd-bin)"
[ -x "$VIRTBACK" ] || bench_die "build virtback first: meson setup build && ninja -C build"

W=$BENCH_WORK/serve
rm -rf "$W"
mkdir -p "$W"
BENCH_RESULTS=$W/results
: >"$BENCH_RESULTS"
export BENCH_RESULTS
PIDS=()
cleanup () {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  # The source is made anew each run: only the results and logs stay.
  rm -rf "$W/out" "$W/dst.qcow2" "$W/src.qcow2"
  rm -f "$BENCH_WORK/.running"         # lib-bench.sh's lock
}
trap cleanup EXIT

# The source: 16 slots of SIZE/16; even slots hold random data, odd ones
# text, each at an offset inside its slot (3/8 of the disk in all).
make_source () {
  local slot=$((GIB * 1024 / 16)) cmds=() i
  bench_make_data
  qemu-img create -q -f qcow2 "$W/src.qcow2" "${GIB}G"
  for i in $(seq 0 15); do
    if ((i % 2 == 0)); then
      cmds+=(-c "write -q -s $BENCH_WORK/data/random-$((i / 2)) $((i * slot + slot / 16))M $((slot / 2))M")
    else
      cmds+=(-c "write -q -s $BENCH_WORK/data/text-$((i / 2)) $((i * slot + slot / 5))M $((slot / 4))M")
    fi
  done
  qemu-io -f qcow2 "${cmds[@]}" "$W/src.qcow2" || bench_die "qemu-io failed"
}

wait_for () { for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; bench_die "$1 did not appear"; }

start_servers () {
  qemu-nbd -f qcow2 -r -e 16 -t -k "$W/src.sock" "$W/src.qcow2" &
  PIDS+=($!)
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$W/ca.key" -out "$W/ca.pem" -days 1 \
    -subj /CN=bench-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$W/srv.key" -out "$W/srv.csr" -subj /CN=127.0.0.1 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$W/ext"
  openssl x509 -req -in "$W/srv.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial -days 1 \
    -extfile "$W/ext" -out "$W/srv.pem" 2>/dev/null
  "$VIRTBACK" serve --listen 127.0.0.1:54330 --control-socket "$W/ctl.sock" 2>"$W/serve.log" >/dev/null &
  PIDS+=($!)
  "$VIRTBACK" serve --listen 127.0.0.1:54331 --control-socket "$W/ctl-tls.sock" \
    --cert "$W/srv.pem" --key "$W/srv.key" 2>"$W/serve-tls.log" >/dev/null &
  PIDS+=($!)
  "$VIRTBACK" serve --listen 127.0.0.1:54332 --control-socket "$W/ctl-local.sock" \
    --local-socket "$W/local.sock" --cert "$W/srv.pem" --key "$W/srv.key" \
    2>"$W/serve-local.log" >/dev/null &
  PIDS+=($!)
  wait_for "$W/src.sock"; wait_for "$W/ctl.sock"; wait_for "$W/ctl-tls.sock"
  wait_for "$W/ctl-local.sock"
  ticket "$W/ctl.sock" src "nbd:unix:$W/src.sock" read
  ticket "$W/ctl-tls.sock" src "nbd:unix:$W/src.sock" read
  ticket "$W/ctl-local.sock" src "nbd:unix:$W/src.sock" read
}

# ticket CTL ID URL read|write
ticket () {
  local ops='["read"]'
  [ "$4" = write ] && ops='["read","write"]'
  jq -cn --arg id "$2" --arg url "$3" --argjson ops "$ops" --argjson size $((GIB << 30)) \
    '{uuid: $id, size: $size, url: $url, timeout: 3600, ops: $ops}' |
    curl -sf --unix-socket "$1" -X PUT --data-binary @- "http://localhost/tickets/$2" ||
    bench_die "ticket $2 refused"
}

fresh_out () { rm -rf "$W/out"; mkdir -p "$W/out"; }

# A new destination for an upload, behind qemu-nbd at $W/dst.sock.
fresh_dst () {
  [ -z "${DST_PID:-}" ] || { kill "$DST_PID"; wait "$DST_PID" 2>/dev/null; }
  rm -f "$W/dst.qcow2"
  qemu-img create -q -f qcow2 "$W/dst.qcow2" "${GIB}G"
  qemu-nbd -f qcow2 -e 16 -t -k "$W/dst.sock" "$W/dst.qcow2" &
  DST_PID=$!
  PIDS+=($DST_PID)
  wait_for "$W/dst.sock"
}

# 4 downloads at once, as one command /usr/bin/time can run.
write_four () {
  cat >"$W/four.sh" <<SH
#!/bin/bash
rc=0
for i in 1 2 3 4; do
  "$VIRTBACK" download http://127.0.0.1:54330/images/src "$W/out/c\$i.raw" --format raw --workers 2 -n &
done
for i in 1 2 3 4; do wait -n || rc=1; done
exit \$rc
SH
  chmod +x "$W/four.sh"
}

run_case () {
  local c=$1 r=$2
  fresh_out
  case $c in
    nbdcopy) bench_time nbdcopy "$r" nbdcopy "nbd+unix:///?socket=$W/src.sock" "$W/out/n.raw" ;;
    curl-get) bench_time curl-get "$r" curl -sf -o /dev/null http://127.0.0.1:54330/images/src ;;
    vb-http) bench_time vb-http "$r" "$VIRTBACK" download http://127.0.0.1:54330/images/src \
               "$W/out/h.raw" --format raw -n ;;
    vb-https) bench_time vb-https "$r" "$VIRTBACK" download https://127.0.0.1:54331/images/src \
                "$W/out/s.raw" --format raw --cafile "$W/ca.pem" -n ;;
    vb-local) bench_time vb-local "$r" "$VIRTBACK" download https://127.0.0.1:54332/images/src \
                "$W/out/l.raw" --format raw --cafile "$W/ca.pem" -n ;;
    nbdcopy-up) fresh_dst
                bench_time nbdcopy-up "$r" nbdcopy "nbd+unix:///?socket=$W/src.sock" \
                  "nbd+unix:///?socket=$W/dst.sock" ;;
    vb-upload) fresh_dst
               ticket "$W/ctl.sock" "up$r" "nbd:unix:$W/dst.sock" write
               bench_time vb-upload "$r" "$VIRTBACK" upload "$W/src.qcow2" \
                 "http://127.0.0.1:54330/images/up$r" -n ;;
    vb-upload-local) fresh_dst
               ticket "$W/ctl-local.sock" "up$r" "nbd:unix:$W/dst.sock" write
               bench_time vb-upload-local "$r" "$VIRTBACK" upload "$W/src.qcow2" \
                 "https://127.0.0.1:54332/images/up$r" --cafile "$W/ca.pem" -n ;;
    clients4) bench_time clients4 "$r" "$W/four.sh" ;;
  esac
}

echo "bench-serve: $(bench_code_version), ${GIB} GiB disk with $((GIB * 3 * 128)) MiB of data, $ROUNDS rounds"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
make_source
cat "$W/src.qcow2" >/dev/null
start_servers
write_four
CASES=(nbdcopy curl-get vb-http vb-https vb-local nbdcopy-up vb-upload vb-upload-local clients4)
for r in $(seq 1 "$ROUNDS"); do
  n=${#CASES[@]}
  for i in $(seq 0 $((n - 1))); do
    run_case "${CASES[$(( (i + r - 1) % n ))]}" "$r"
  done
done
# Each kind of transfer must give the source's bytes; the local ones must
# have gone through the unix socket (serve logs client=local then).
check () {
  local what=$1
  shift
  if "$@"; then echo "check: $what"; else echo "check FAILED: $what"; CHECK_RC=1; fi
}
download_equal () {
  fresh_out
  "$VIRTBACK" download "$1" "$W/out/check.raw" --format raw --cafile "$W/ca.pem" -n &&
    qemu-img compare -q "$W/src.qcow2" "$W/out/check.raw"
}
upload_equal () {
  fresh_dst
  ticket "$2" check "nbd:unix:$W/dst.sock" write
  "$VIRTBACK" upload "$W/src.qcow2" "$1/images/check" --cafile "$W/ca.pem" -n || return 1
  # qemu-nbd holds the image's write lock until it exits.
  kill "$DST_PID"; wait "$DST_PID" 2>/dev/null; DST_PID=
  qemu-img compare -q "$W/src.qcow2" "$W/dst.qcow2"
}
CHECK_RC=0
check "vb-http output equals the source" download_equal http://127.0.0.1:54330/images/src
check "vb-https output equals the source" download_equal https://127.0.0.1:54331/images/src
check "vb-local output equals the source" download_equal https://127.0.0.1:54332/images/src
check "vb-upload output equals the source" upload_equal http://127.0.0.1:54330 "$W/ctl.sock"
check "vb-upload-local output equals the source" upload_equal https://127.0.0.1:54332 "$W/ctl-local.sock"
check "the local cases read and wrote through the unix socket" \
  grep -q 'CLOSE client=local .*\[read .*MiB' "$W/serve-local.log"
check "the TCP cases did not" bash -c "! grep -q 'client=local' '$W/serve.log' '$W/serve-tls.log'"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
bench_table vb-http:nbdcopy vb-https:nbdcopy vb-local:nbdcopy vb-http:curl-get \
  vb-upload:nbdcopy-up vb-upload-local:nbdcopy-up clients4:vb-http
exit $CHECK_RC
