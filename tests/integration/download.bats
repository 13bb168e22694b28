#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# virtback download and upload against a real virtback serve: a backup
# point against its restore, an NBD export (qemu-nbd) raw and qcow2,
# an incremental chain from a dirty bitmap, upload of a qcow2 with a
# backing chain, four clients at once, HTTPS with a CA made here, and
# errors; a server with a local socket, which the clients switch to.
# One server (port 54321), one VM (xc-dl) used only to make a backup, all
# set up once for the file.

load backup_helpers

PORT=54321
TLS_PORT=54324

setup_file () {
  bk_setup_file
  export D=$BATS_FILE_TMPDIR CTL=$BATS_FILE_TMPDIR/ctl.sock
  export U=http://127.0.0.1:$PORT SIZE=$((64 << 20))
  # The image: data, a zeroed range and holes.
  qemu-img create -q -f qcow2 "$D/img.qcow2" 64M
  qemu-io -f qcow2 -c 'write -P 0x41 1M 5M' -c 'write -P 0x42 40M 1M' \
    -c 'write -z 44M 2M' -c 'write -P 0x43 63M 512K' "$D/img.qcow2" >/dev/null
  qemu-nbd -f qcow2 -k "$D/img.sock" --pid-file "$D/img.pid" -e 8 -r -t \
    "$D/img.qcow2" 3>&- &
  # A backup point of a VM, and its restore.
  vb_make_vm xc-dl 64M
  vb_guest_io xc-dl sda 'write -P 0x61 2M 3M' 'write -P 0x62 50M 512K'
  "$VIRTBACK" backup -d xc-dl -o "$D/bk" -l full -n 3>&-
  vb_destroy_vm xc-dl
  "$VIRTBACK" restore -i "$D/bk" -o "$D/restore" 3>&-
  printf '[serve]\nlisten = 127.0.0.1:%s\ncontrol_socket = %s\n[file]\nallow = %s\n' \
    "$PORT" "$CTL" "$D" >"$D/serve.ini"
  "$VIRTBACK" serve --config "$D/serve.ini" >"$D/url" 2>"$D/serve.log" 3>&- &
  echo $! >"$D/serve.pid"
  for i in $(seq 100); do [ -s "$D/url" ] && [ -S "$D/img.sock" ] && break; sleep 0.05; done
  [ "$(cat "$D/url")" = "$U" ]
}

teardown_file () {
  for p in serve img inc dst tls local; do
    [ ! -f "$D/$p.pid" ] || kill "$(cat "$D/$p.pid")" 2>/dev/null || true
  done
  vb_destroy_vm xc-dl 2>/dev/null || true
}

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  T=$BATS_TEST_TMPDIR
}

# ticket ID URL OPS [EXTRA JSON]
ticket () {
  local out
  out=$(curl -s --unix-socket "$CTL" -w '\n%{http_code}' -X PUT \
    --data "{\"uuid\":\"$1\",\"size\":${SIZE},\"url\":\"$2\",\"timeout\":${TIMEOUT:-300},\"ops\":$3${4:+,$4}}" \
    "http://localhost/tickets/$1")
  [ "$(tail -n1 <<<"$out")" = 200 ] || { echo "ticket $1: $out"; return 1; }
}

# nbd_serve NAME IMAGE [qemu-nbd options]: a writable qemu-nbd export.
nbd_serve () {
  local name=$1 img=$2
  shift 2
  qemu-nbd -f qcow2 -k "$D/$name.sock" --pid-file "$D/$name.pid" -e 8 -t "$@" "$img" 3>&- &
  for i in $(seq 100); do [ -S "$D/$name.sock" ] && break; sleep 0.05; done
}

nbd_stop () {
  kill "$(cat "$D/$1.pid")"
  for i in $(seq 100); do [ -e "$D/$1.sock" ] || break; sleep 0.05; done
  rm -f "$D/$1.pid"
}

allocated () { echo $(( $(stat -c %b "$1") * 512 )); }

@test "a backup point downloads as its restore, raw and qcow2, sparse" {
  ticket bp "virtback:$D/bk?disk=sda" '["read"]'
  "$VIRTBACK" download "$U/images/bp" "$T/bp.raw" --format raw
  "$VIRTBACK" download "$U/images/bp" "$T/bp.qcow2" --format qcow2
  qemu-img compare -q "$D/restore/sda.qcow2" "$T/bp.raw"
  qemu-img compare -q "$D/restore/sda.qcow2" "$T/bp.qcow2"
  [ "$(stat -c %s "$T/bp.raw")" = "$SIZE" ]
  # 3.5 MiB of data in 64 MiB: written sparse
  [ "$(allocated "$T/bp.raw")" -lt $((8 << 20)) ]
  [ "$(allocated "$T/bp.qcow2")" -lt $((8 << 20)) ]
  [ "$(qemu-img info --output=json "$T/bp.qcow2" | jq -r .format)" = qcow2 ]
  ls -a "$T" | grep -c part | grep -qx 0
}

@test "an nbd: ticket downloads equal to the image and to one curl GET; 1 and 8 workers" {
  ticket im "nbd:unix:$D/img.sock" '["read"]'
  curl -s "$U/images/im" -o "$T/curl.raw"
  "$VIRTBACK" download "$U/images/im" "$T/w1.raw" --format raw --workers 1
  "$VIRTBACK" download "$U/images/im" "$T/w8.qcow2" --workers 8
  cmp "$T/curl.raw" "$T/w1.raw"
  qemu-img compare -q "$D/img.qcow2" "$T/w1.raw"
  qemu-img compare -q "$D/img.qcow2" "$T/w8.qcow2"
  [ "$(allocated "$T/w1.raw")" -lt $((10 << 20)) ]
  # only data extents were read: 6.5 MiB of 64, the zeroed range not at all
  ticket once "nbd:unix:$D/img.sock" '["read"]'
  "$VIRTBACK" download "$U/images/once" "$T/once.qcow2"
  curl -s --unix-socket "$CTL" http://localhost/tickets/once | jq -e '.transferred == 6815744' >/dev/null
}

@test "incremental: dirty extents only, a qcow2 chain full <- inc1 <- inc2 that equals the image" {
  qemu-img create -q -f qcow2 "$T/src.qcow2" 64M
  qemu-io -f qcow2 -c 'write -P 0x11 0 8M' -c 'write -P 0x12 20M 4M' "$T/src.qcow2" >/dev/null
  nbd_serve inc "$T/src.qcow2" -r
  ticket full "nbd:unix:$D/inc.sock" '["read"]'
  "$VIRTBACK" download "$U/images/full" "$T/full.qcow2"
  nbd_stop inc
  for n in 1 2; do
    qemu-img bitmap --add "$T/src.qcow2" "b$n"
    [ "$n" = 1 ] || qemu-img bitmap --remove "$T/src.qcow2" b1
    qemu-io -f qcow2 -c "write -P 0x2$n $((n * 2))M 1M" -c "write -z $((20 + n))M 1M" \
      -c "write -P 0x3$n $((40 + n))M 64k" "$T/src.qcow2" >/dev/null
    nbd_serve inc "$T/src.qcow2" -r -B "b$n"
    ticket "inc$n" "nbd:unix:$D/inc.sock" '["read"]' '"dirty":true'
    prev=full.qcow2
    [ "$n" = 1 ] || prev=inc1.qcow2
    (cd "$T" && "$VIRTBACK" download "$U/images/inc$n" "inc$n.qcow2" --incremental \
       --backing-file "$prev" --backing-format qcow2)
    nbd_stop inc
    # the overlay holds the dirty data only (about 1 MiB), not the image
    [ "$(allocated "$T/inc$n.qcow2")" -lt $((4 << 20)) ]
  done
  [ "$(qemu-img info --output=json "$T/inc2.qcow2" | jq -r '."backing-filename"')" = inc1.qcow2 ]
  qemu-img compare -q "$T/src.qcow2" "$T/inc2.qcow2"
  run qemu-img compare -q "$T/src.qcow2" "$T/inc1.qcow2"
  [ "$status" -ne 0 ]                  # inc1 alone is an older point
  # a dirty download needs a dirty ticket: the server's 404, one line
  run "$VIRTBACK" download "$U/images/full" "$T/x.qcow2" --incremental --backing-file full.qcow2
  [ "$status" -ne 0 ]
  [ "${#lines[@]}" = 1 ]
}

@test "upload of a qcow2 with a backing chain into a new image equals the source" {
  qemu-img create -q -f qcow2 "$T/base.qcow2" 64M
  qemu-io -f qcow2 -c 'write -P 0x51 0 4M' -c 'write -P 0x52 30M 2M' "$T/base.qcow2" >/dev/null
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$T/top.qcow2"
  qemu-io -f qcow2 -c 'write -P 0x61 1M 2M' -c 'write -z 30M 1M' "$T/top.qcow2" >/dev/null
  # the target holds old bytes where the source is zero: PATCH zero must clear them
  qemu-img create -q -f qcow2 "$T/dst.qcow2" 64M
  qemu-io -f qcow2 -c 'write -P 0x77 30M 4M' -c 'write -P 0x78 60M 1M' "$T/dst.qcow2" >/dev/null
  nbd_serve dst "$T/dst.qcow2"
  ticket up "nbd:unix:$D/dst.sock" '["read","write"]'
  "$VIRTBACK" upload "$T/top.qcow2" "$U/images/up"
  nbd_stop dst
  qemu-img compare -q "$T/top.qcow2" "$T/dst.qcow2"
  # a raw file through a file:// ticket (max_writers 1) too
  qemu-img convert -O raw "$T/top.qcow2" "$T/top.raw"
  truncate -s 64M "$D/up.raw"
  ticket upf "file://$D/up.raw" '["read","write"]'
  "$VIRTBACK" upload "$T/top.raw" "$U/images/upf" --workers 4
  cmp "$T/top.raw" "$D/up.raw"
  # a read-only ticket refuses, in one line
  ticket ro "nbd:unix:$D/img.sock" '["read"]'
  run "$VIRTBACK" upload "$T/top.qcow2" "$U/images/ro"
  [ "$status" -ne 0 ]
  [ "${#lines[@]}" = 1 ]
  [[ "$output" == *"$U/images/ro"* ]]
}

@test "four clients at once each get the right bytes" {
  ticket four "nbd:unix:$D/img.sock" '["read"]'
  for i in 1 2 3 4; do
    "$VIRTBACK" download "$U/images/four" "$T/c$i.raw" --format raw --workers 2 &
    eval "p$i=\$!"
  done
  for i in 1 2 3 4; do eval "wait \$p$i"; done
  for i in 1 2 3 4; do qemu-img compare -q "$D/img.qcow2" "$T/c$i.raw"; done
}

@test "HTTPS with a CA made here; a wrong certificate is refused, --insecure accepts it" {
  vb_test_ca "$T" xc-test-ca
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/other.key" -out "$T/other.pem" \
    -days 1 -subj /CN=other-ca 2>/dev/null
  "$VIRTBACK" serve --listen 127.0.0.1:$TLS_PORT --control-socket "$T/tls.sock" \
    --cert "$T/server-cert.pem" --key "$T/server-key.pem" >"$T/tls.url" 2>"$T/tls.log" 3>&- &
  echo $! >"$D/tls.pid"
  for i in $(seq 100); do [ -s "$T/tls.url" ] && break; sleep 0.05; done
  [ "$(cat "$T/tls.url")" = "https://127.0.0.1:$TLS_PORT" ]
  CTL=$T/tls.sock ticket tls "nbd:unix:$D/img.sock" '["read"]'
  S=https://127.0.0.1:$TLS_PORT/images/tls
  "$VIRTBACK" download "$S" "$T/tls.raw" --format raw --cafile "$T/ca-cert.pem"
  qemu-img compare -q "$D/img.qcow2" "$T/tls.raw"
  run "$VIRTBACK" download "$S" "$T/bad.raw" --format raw --cafile "$T/other.pem"
  [ "$status" -ne 0 ]
  [ "${#lines[@]}" = 1 ]
  [ ! -e "$T/bad.raw" ]
  [[ "$output" == *"$S"* ]]
  run "$VIRTBACK" download "$S" "$T/bad.raw" --format raw
  [ "$status" -ne 0 ]
  [ ! -e "$T/bad.raw" ]
  "$VIRTBACK" download "$S" "$T/insecure.raw" --format raw --insecure
  cmp "$T/tls.raw" "$T/insecure.raw"
  kill "$(cat "$D/tls.pid")"; rm -f "$D/tls.pid"
}

# local_bytes LOG KIND WANT FROM: the MiB of KIND (read, write) that
# LOG's connections through the local socket moved, in LOG's lines after
# line FROM, once serve has logged WANT of them (it logs at close).
local_bytes () {
  local n
  for i in $(seq 100); do
    n=$(tail -n +"$(($4 + 1))" "$1" |
          grep -o "CLOSE client=local .*\[$2 [0-9]* ops, [0-9.]* s, [0-9.]* MiB" |
          sed 's/.* \([0-9.]*\) MiB$/\1/' | awk '{s += $1} END {print s + 0}')
    [ "$n" = "$3" ] && break
    sleep 0.05
  done
  echo "$n"
}

@test "a server on this host with a local socket: download and upload go through it after OPTIONS, HTTPS too, as oVirt's client does" {
  vb_test_ca "$T" xs-test-ca
  "$VIRTBACK" serve --listen 127.0.0.1:18410 --control-socket "$T/l.sock" \
    --local-socket "$T/local.sock" --cert "$T/server-cert.pem" --key "$T/server-key.pem" \
    >"$T/l.url" 2>"$T/l.log" 3>&- &
  echo $! >"$D/local.pid"
  for i in $(seq 100); do [ -s "$T/l.url" ] && break; sleep 0.05; done
  L=https://127.0.0.1:18410/images/loc
  CTL=$T/l.sock ticket loc "nbd:unix:$D/img.sock" '["read"]'
  # the local socket answers as imageio's local service: plain HTTP, root
  # only, no unix_socket of its own
  [ "$(stat -c %a "$T/local.sock")" = 600 ]
  curl -sf --cacert "$T/ca-cert.pem" -X OPTIONS "$L" | jq -e ".unix_socket == \"$T/local.sock\""
  curl -sf --unix-socket "$T/local.sock" -X OPTIONS http://localhost/images/loc |
    jq -e '.features == ["checksum","extents"] and .max_readers == 8 and (has("unix_socket") | not)'
  [ "$(curl -s --unix-socket "$T/local.sock" -r 1048576-1048579 http://localhost/images/loc)" = AAAA ]
  [ "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$T/local.sock" http://localhost/images/nosuch)" = 403 ]
  from=$(wc -l <"$T/l.log")
  "$VIRTBACK" download "$L" "$T/loc.raw" --format raw --cafile "$T/ca-cert.pem" --workers 2
  qemu-img compare -q "$D/img.qcow2" "$T/loc.raw"
  # every data byte (6.5 MiB) came through the unix socket, none over TCP
  [ "$(local_bytes "$T/l.log" read 6.5 "$from")" = 6.5 ]
  [ -z "$(tail -n +"$((from + 1))" "$T/l.log" | grep 'client=127.0.0.1 .*\[read')" ]
  grep -q 'client=127.0.0.1 .*\[dispatch 1 ops' "$T/l.log"  # OPTIONS over TCP
  # the certificate is still checked first, over TCP
  run "$VIRTBACK" download "$L" "$T/bad.raw" --format raw
  [ "$status" -ne 0 ]
  [ ! -e "$T/bad.raw" ]
  # upload: PUT and PATCH through the socket too
  qemu-img create -q -f qcow2 "$T/ldst.qcow2" 64M
  nbd_serve dst "$T/ldst.qcow2"
  CTL=$T/l.sock ticket lup "nbd:unix:$D/dst.sock" '["read","write"]'
  from=$(wc -l <"$T/l.log")
  "$VIRTBACK" upload "$D/img.qcow2" "https://127.0.0.1:18410/images/lup" --cafile "$T/ca-cert.pem"
  nbd_stop dst
  qemu-img compare -q "$D/img.qcow2" "$T/ldst.qcow2"
  [ "$(local_bytes "$T/l.log" write 6.5 "$from")" = 6.5 ]
  [ -z "$(tail -n +"$((from + 1))" "$T/l.log" | grep 'client=127.0.0.1 .*\[write')" ]
  grep -q 'client=local .*\[flush 1 ops' "$T/l.log"
  kill "$(cat "$D/local.pid")"; rm -f "$D/local.pid"
}

@test "ticket errors (unknown, expired) give one line naming the URL, and no file; OUT is never replaced" {
  run "$VIRTBACK" download "$U/images/nosuch" "$T/n.raw" --format raw
  [ "$status" -ne 0 ]
  [ "${#lines[@]}" = 1 ]
  [ ! -e "$T/n.raw" ]
  [[ "$output" == *"$U/images/nosuch"*"HTTP 403"* ]]
  TIMEOUT=1 ticket exp "nbd:unix:$D/img.sock" '["read"]'
  sleep 1.5
  run "$VIRTBACK" download "$U/images/exp" "$T/e.qcow2"
  [ "$status" -ne 0 ]
  [ "${#lines[@]}" = 1 ]
  [ ! -e "$T/e.qcow2" ]
  [[ "$output" == *"HTTP 403"*"expired"* ]]
  ls -a "$T" | grep -c part | grep -qx 0
  # an existing OUT is never replaced
  echo keep >"$T/keep"
  ticket k "nbd:unix:$D/img.sock" '["read"]'
  run "$VIRTBACK" download "$U/images/k" "$T/keep" --format raw
  [ "$status" -ne 0 ]
  [ "$(cat "$T/keep")" = keep ]
}

@test "a connection dropped mid-download fails in one line and leaves no file behind" {
  # A server that answers the first requests, then closes in the middle of a body.
  python3 - "$T/port" <<'PY' &
import socket, sys, json
s = socket.socket(); s.bind(("127.0.0.1", 54325)); s.listen(4)
open(sys.argv[1], "w").write("54325")
ext = json.dumps([{"start": 0, "length": 8 << 20, "zero": False, "hole": False}]).encode()
opts = json.dumps({"features": ["extents"], "max_readers": 1, "max_writers": 0}).encode()
for _ in range(3):
    c, _a = s.accept()
    f = c.makefile("rb")
    while True:
        line = f.readline()
        if not line:
            break
        req = line
        while f.readline() not in (b"\r\n", b""):
            pass
        if req.startswith(b"OPTIONS"):
            body, code = opts, b"200 OK"
        elif b"/extents" in req:
            body, code = ext, b"200 OK"
        else:
            c.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 4194304\r\n"
                      b"Content-Range: bytes 0-4194303/8388608\r\n\r\n" + b"x" * 1000)
            c.close()
            sys.exit(0)
        c.sendall(b"HTTP/1.1 " + code + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
PY
  py=$!
  for i in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
  run "$VIRTBACK" download "http://127.0.0.1:54325/images/x" "$T/drop.raw" --format raw
  wait "$py" || true
  [ "$status" -ne 0 ]
  [ "${#lines[@]}" = 1 ]
  [[ "$output" == *"http://127.0.0.1:54325/images/x"* ]]
  [ ! -e "$T/drop.raw" ]
  ls -a "$T" | grep -c part | grep -qx 0
  [ -z "$(ls -d /tmp/virtback-client.* 2>/dev/null)" ]
}

@test "progress on a terminal as seed 002 prints it; none with -n or without a terminal" {
  ticket pr "nbd:unix:$D/img.sock" '["read"]'
  script -qec "$VIRTBACK download $U/images/pr $T/p1.raw --format raw" /dev/null >"$T/tty.out"
  grep -aEq '\[ 100\.00% \] 64\.00 MiB, [0-9]+\.[0-9]{2} seconds, [0-9]+\.[0-9]{2} (KiB|MiB|GiB)/s' "$T/tty.out"
  script -qec "$VIRTBACK download $U/images/pr $T/p2.raw --format raw -n" /dev/null >"$T/quiet.out"
  [ ! -s "$T/quiet.out" ]
  "$VIRTBACK" download "$U/images/pr" "$T/p3.raw" --format raw 2>"$T/pipe.err"
  [ ! -s "$T/pipe.err" ]
  cmp "$T/p1.raw" "$T/p3.raw"
}
