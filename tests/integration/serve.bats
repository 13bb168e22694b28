#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-or-later
# virtback serve against curl (and raw sockets): every row of the notes'
# imageio table, byte-exact content, the block checksum against a Python
# reimplementation, concurrency, expiry, HTTPS, and a backup point.
# Images come from qemu-img/qemu-nbd; one test makes a VM (prefix vbv).

load backup_helpers

setup () {
  source "$BATS_TEST_DIRNAME/../lib.sh"
  T=$BATS_TEST_TMPDIR
  CTL=$T/ctl.sock
  qemu-img create -q -f qcow2 "$T/d.qcow2" 64M
  qemu-io -f qcow2 -c 'write -P 0x41 1M 3M' -c 'write -P 0x42 40M 1M' \
    -c 'write -P 0x43 63M 512K' "$T/d.qcow2" >/dev/null
  qemu-img convert -O raw "$T/d.qcow2" "$T/d.raw"
  qemu-nbd -f qcow2 -k "$T/nbd.sock" --pid-file "$T/nbd.pid" -t "$T/d.qcow2" 3>&- &
  for i in $(seq 50); do [ -S "$T/nbd.sock" ] && break; sleep 0.1; done
  SIZE=$((64 << 20))
  printf '[file]\nallow = %s\n' "$T" >"$T/serve.ini"
}

teardown () {
  [ -z "${SRV_PID:-}" ] || kill "$SRV_PID" 2>/dev/null || true
  [ -z "${SRV_PID:-}" ] || wait "$SRV_PID" 2>/dev/null || true
  [ ! -f "$T/nbd.pid" ] || kill "$(cat "$T/nbd.pid")" 2>/dev/null || true
  [ -z "${VM:-}" ] || vb_destroy_vm "$VM"
}

# start_server [OPTIONS...]: serve on a free port; U is the data URL.
start_server () {
  "$VIRTBACK" serve --listen 127.0.0.1:0 --control-socket "$CTL" \
    --config "$T/serve.ini" "$@" \
    >"$T/url" 2>"$T/serve.log" 3>&- &
  SRV_PID=$!
  for i in $(seq 100); do [ -s "$T/url" ] && break; sleep 0.05; done
  U=$(cat "$T/url")
  [ -n "$U" ]
}

ctl () { curl -s --unix-socket "$CTL" -w '\n%{http_code}' "$@"; }
status () { tail -n1 <<<"$1"; }

# ticket ID URL OPS [EXTRA JSON]: add a ticket; fails unless 200.
ticket () {
  local out
  out=$(ctl -X PUT --data "{\"uuid\":\"$1\",\"size\":${SIZE},\"url\":\"$2\",\"timeout\":300,\"ops\":$3${4:+,$4}}" \
        "http://localhost/tickets/$1")
  [ "$(status "$out")" = 200 ] || { echo "ticket $1: $out"; return 1; }
}

code () { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# pyhash FILE [BLOCK [ALGORITHM]]: imageio's block hash, by hashlib (the
# BLAKE2 digests 32 bytes long, as the daemon asks for them)
pyhash () {
  python3 - "$1" "${2:-4194304}" "${3:-blake2b}" <<'PY'
import hashlib, sys
bs, alg = int(sys.argv[2]), sys.argv[3]
kw = {"digest_size": 32} if alg.startswith("blake2") else {}
new = lambda data=b"": hashlib.new(alg, data, **kw)
outer = new()
with open(sys.argv[1], 'rb') as f:
    while True:
        b = f.read(bs)
        if not b:
            break
        outer.update(new(b).digest())
print(outer.hexdigest())
PY
}

@test "control API: PUT, GET with state, PATCH, DELETE twice, bad tickets, mode 0600" {
  start_server
  [ "$(stat -c %a "$CTL")" = 600 ]
  ticket t1 "nbd:unix:$T/nbd.sock" '["read"]'
  out=$(ctl http://localhost/tickets/t1)
  [ "$(status "$out")" = 200 ]
  head -n1 <<<"$out" | jq -e '.uuid == "t1" and .active == false and .transferred == 0 and .size == 67108864' >/dev/null
  curl -s "$U/images/t1" -o /dev/null
  ctl http://localhost/tickets/t1 | head -n1 | jq -e ".transferred == $SIZE" >/dev/null
  [ "$(status "$(ctl -X PATCH --data '{"timeout":600}' http://localhost/tickets/t1)")" = 200 ]
  for bad in '{' '{"uuid":"t2","size":1,"url":"http://x","timeout":1,"ops":["read"]}' \
             '{"uuid":"t2","size":-1,"url":"file:///x","timeout":1,"ops":["read"]}' \
             '{"uuid":"t2","size":1,"url":"file:///a/../etc/shadow","timeout":1,"ops":["read"]}' \
             '{"uuid":"t2","size":1,"url":"file:///x","timeout":1,"ops":["delete"]}' \
             '{"uuid":"other","size":1,"url":"file:///x","timeout":1,"ops":["read"]}'; do
    out=$(ctl -X PUT --data "$bad" http://localhost/tickets/t2)
    [ "$(status "$out")" = 400 ] || { echo "$bad: $out"; false; }
    [ "$(head -n1 <<<"$out" | wc -l)" = 1 ]
  done
  [ "$(status "$(ctl -X PUT --data '{}' 'http://localhost/tickets/a%2Fb')")" = 404 ]
  [ "$(status "$(ctl -X DELETE http://localhost/tickets/t1)")" = 204 ]
  [ "$(status "$(ctl -X DELETE http://localhost/tickets/t1)")" = 204 ]
  [ "$(code "$U/images/t1")" = 403 ]
}

@test "OPTIONS: read-write, read-only, file, and /images/*" {
  start_server
  ticket rw "nbd:unix:$T/nbd.sock" '["read","write"]'
  ticket ro "nbd:unix:$T/nbd.sock" '["read"]'
  ticket f "file://$T/d.raw" '["read","write"]'
  out=$(curl -si -X OPTIONS "$U/images/rw")
  grep -qi '^allow: OPTIONS,GET,PUT,PATCH' <<<"$out"
  grep -qi '^server: imageio/' <<<"$out"
  ! grep -qi '^accept-ranges' <<<"$out"
  tail -n1 <<<"$out" | jq -e '.features == ["checksum","extents","flush","zero"] and .max_readers == 8 and .max_writers == 8' >/dev/null
  out=$(curl -si -X OPTIONS "$U/images/ro")
  grep -qi '^allow: OPTIONS,GET.$' <<<"$out"
  tail -n1 <<<"$out" | jq -e '.features == ["checksum","extents"]' >/dev/null
  curl -s -X OPTIONS "$U/images/f" | jq -e '.max_writers == 1' >/dev/null
  curl -s -X OPTIONS "$U/images/*" | jq -e 'keys == ["features"]' >/dev/null
  curl -s "$U/info/" | jq -e '.version | length > 0' >/dev/null
}

@test "GET: whole image and ranges are byte-exact; 416 with bytes */SIZE" {
  start_server
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  out=$(curl -s -D "$T/h" "$U/images/t" | sha256sum)
  [ "$out" = "$(sha256sum <"$T/d.raw")" ]
  grep -qi '^content-type: application/octet-stream' "$T/h"
  grep -qi '^content-disposition: attachment' "$T/h"
  grep -qi "^content-length: $SIZE" "$T/h"
  out=$(curl -s -D "$T/h" -H 'Range: bytes=1048000-1049999' "$U/images/t" | sha256sum)
  [ "$out" = "$(dd if="$T/d.raw" bs=1000 skip=1048 count=2 status=none | sha256sum)" ]
  grep -q ' 206 ' "$T/h"
  grep -qi '^content-range: bytes 1048000-1049999/67108864' "$T/h"
  for r in "bytes=$SIZE-$((SIZE + 10))" "bytes=0-$SIZE" "bytes=$SIZE-"; do
    curl -s -D "$T/h" -o /dev/null -H "Range: $r" "$U/images/t"
    grep -q ' 416 ' "$T/h" || { echo "$r"; cat "$T/h"; false; }
    grep -qi "^content-range: bytes \*/$SIZE" "$T/h"
  done
  # the daemon sends no Content-Range for a range that is not one range
  for r in 'bytes=9-3' 'bytes=-10' 'bytes=0-1,5-6' 'items=0-1'; do
    curl -s -D "$T/h" -o /dev/null -H "Range: $r" "$U/images/t"
    grep -q ' 416 ' "$T/h" || { echo "$r"; cat "$T/h"; false; }
    ! grep -qi '^content-range' "$T/h" || { echo "$r"; cat "$T/h"; false; }
  done
}

# What ovirt-imageio's own daemon answers (tests/compat/ovirt-imageio.sh
# measured it side by side): a range ending past the image is refused, not
# clipped; a Range that is no byte range is a 416 too; no ticket id is 400.
@test "imageio parity: Range past the end and non-byte Range 416, /images/ 400, /info 404" {
  start_server
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  for r in "bytes=0-$SIZE" "bytes=$((SIZE - 10))-$((SIZE + 99))" 'items=0-1' 'bytes=x-1'; do
    curl -s -D "$T/h" -o /dev/null -H "Range: $r" "$U/images/t"
    grep -q ' 416 ' "$T/h" || { echo "$r"; cat "$T/h"; false; }
  done
  out=$(curl -s -D "$T/h" -H "Range: bytes=$((SIZE - 10))-" "$U/images/t" | wc -c)
  [ "$out" = 10 ] && grep -qi "^content-range: bytes $((SIZE - 10))-$((SIZE - 1))/$SIZE" "$T/h"
  [ "$(code "$U/images/")" = 400 ]
  [ "$(code -X OPTIONS "$U/images/")" = 400 ]
  [ "$(code "$U/info")" = 404 ]
  [ "$(code "$U/images/t/checksum?block_size=524288")" = 400 ]
  [ "$(code "$U/images/t/checksum?block_size=1048576")" = 200 ]
}

@test "imageio parity: DELETE /tickets/ removes every ticket; /tickets/ otherwise 400; legacy name" {
  start_server
  ticket a "nbd:unix:$T/nbd.sock" '["read"]'
  ticket b "file://$T/d.raw" '["read"]'
  [ "$(code -X OPTIONS "$U/images/a")" = 200 ]
  [ "$(status "$(ctl http://localhost/tickets/)")" = 400 ]
  [ "$(status "$(ctl -X DELETE http://localhost/tickets/)")" = 204 ]
  [ "$(status "$(ctl http://localhost/tickets/a)")" = 404 ]
  [ "$(status "$(ctl http://localhost/tickets/b)")" = 404 ]
  [ "$(code -X OPTIONS "$U/images/b")" = 403 ]
  out=$(ctl -X PUT --data "{\"name\":\"n1\",\"size\":$SIZE,\"url\":\"nbd:unix:$T/nbd.sock\",\"timeout\":300,\"ops\":[\"read\"]}" http://localhost/tickets/n1)
  [ "$(status "$out")" = 200 ] || { echo "legacy name: $out"; false; }
  ctl http://localhost/tickets/n1 | head -n1 | jq -e '.uuid == "n1"' >/dev/null
}

@test "imageio parity: transferred is the union of the ranges read, never past size" {
  start_server
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  curl -s -o /dev/null "$U/images/t"
  curl -s -o /dev/null "$U/images/t"
  curl -s -o /dev/null -H 'Range: bytes=0-1048575' "$U/images/t"
  ctl http://localhost/tickets/t | head -n1 | jq -e ".transferred == $SIZE" >/dev/null
  ticket u "nbd:unix:$T/nbd.sock" '["read"]'
  curl -s -o /dev/null -H 'Range: bytes=0-1048575' "$U/images/u"
  curl -s -o /dev/null -H 'Range: bytes=524288-2097151' "$U/images/u"
  curl -s -o /dev/null -H 'Range: bytes=4194304-5242879' "$U/images/u"
  ctl http://localhost/tickets/u | head -n1 | jq -e '.transferred == 3145728' >/dev/null
}

@test "extents: zero context tiles the image; dirty 404 without a dirty ticket; other 400" {
  start_server
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  curl -s "$U/images/t/extents" > "$T/e.json"
  jq -e --argjson s "$SIZE" '(map(.length) | add) == $s and .[0].start == 0 and
      ([.[] | select(.zero == false)] | map([.start, .length])) == [[1048576,3145728],[41943040,1048576],[66060288,524288]]' "$T/e.json" >/dev/null
  jq -e 'all(has("hole"))' "$T/e.json" >/dev/null
  out=$(curl -s -w '\n%{http_code}' "$U/images/t/extents?context=dirty")
  [ "$(status "$out")" = 404 ]
  [ "$(head -n1 <<<"$out")" = "Ticket does not support dirty extents" ]
  [ "$(code "$U/images/t/extents?context=other")" = 400 ]
}

@test "dirty extents: a dirty ticket on an export with a bitmap" {
  qemu-img create -q -f qcow2 "$T/b.qcow2" 64M
  qemu-img bitmap --add "$T/b.qcow2" b0
  qemu-io -f qcow2 -c 'write -P 0x55 8M 1M' "$T/b.qcow2" >/dev/null
  qemu-nbd -f qcow2 -B b0 -k "$T/b.sock" --pid-file "$T/b.pid" -t "$T/b.qcow2" 3>&- &
  for i in $(seq 50); do [ -S "$T/b.sock" ] && break; sleep 0.1; done
  start_server
  ticket d "nbd:unix:$T/b.sock" '["read"]' '"dirty":true'
  curl -s "$U/images/d/extents?context=dirty" > "$T/e.json"
  kill "$(cat "$T/b.pid")"
  jq -e '([.[] | select(.dirty)] | map([.start, .length])) == [[8388608,1048576]] and all(has("zero"))' "$T/e.json" >/dev/null
}

@test "PUT, PATCH zero and flush write the bytes; write errors answer as imageio" {
  qemu-img create -q -f qcow2 "$T/w.qcow2" 64M
  qemu-nbd -f qcow2 -k "$T/w.sock" --pid-file "$T/w.pid" -t "$T/w.qcow2" 3>&- &
  for i in $(seq 50); do [ -S "$T/w.sock" ] && break; sleep 0.1; done
  start_server
  ticket w "nbd:unix:$T/w.sock" '["read","write"]'
  ticket ro "nbd:unix:$T/nbd.sock" '["read"]'
  [ "$(code -X PUT --data-binary @"$T/d.raw" "$U/images/w?flush=n")" = 200 ]
  head -c 65536 /dev/urandom > "$T/blk"
  [ "$(code -X PUT -H 'Content-Range: bytes 131072-196607/*' --data-binary @"$T/blk" "$U/images/w?flush=y")" = 200 ]
  [ "$(code -X PATCH --data '{"op":"zero","offset":1048576,"size":1048576,"flush":false}' "$U/images/w")" = 200 ]
  [ "$(code -X PATCH --data '{"op":"flush"}' "$U/images/w")" = 200 ]
  cp "$T/d.raw" "$T/want"
  dd if="$T/blk" of="$T/want" bs=65536 seek=2 conv=notrunc status=none
  dd if=/dev/zero of="$T/want" bs=1M seek=1 count=1 conv=notrunc status=none
  kill "$(cat "$T/w.pid")"; sleep 0.3
  qemu-img convert -O raw "$T/w.qcow2" "$T/got"
  cmp "$T/want" "$T/got"
  qemu-nbd -f qcow2 -k "$T/w.sock" --pid-file "$T/w.pid" -t "$T/w.qcow2" 3>&- &
  for i in $(seq 50); do [ -S "$T/w.sock" ] && break; sleep 0.1; done
  # PUT without Content-Length (chunked)
  out=$(curl -s -w '\n%{http_code}' -X PUT -H 'Transfer-Encoding: chunked' --data-binary @"$T/blk" "$U/images/w")
  [ "$(status "$out")" = 400 ]
  [ "$(head -n1 <<<"$out")" = "Content-Length header is required" ]
  curl -s -D "$T/h" -o /dev/null -X PUT -H "Content-Range: bytes $((SIZE - 100))-$((SIZE + 65435))/*" --data-binary @"$T/blk" "$U/images/w"
  grep -q ' 416 ' "$T/h" && grep -qi "^content-range: bytes \*/$SIZE" "$T/h"
  [ "$(code -X PATCH --data "{\"op\":\"zero\",\"offset\":$SIZE,\"size\":1}" "$U/images/w")" = 416 ]
  for body in '{"op":"zero"}' '{"op":"zero","size":"x"}' '{"op":"trim"}' '{"op":' 'not json'; do
    [ "$(code -X PATCH --data "$body" "$U/images/w")" = 400 ] || { echo "$body"; false; }
  done
  [ "$(code -X PUT --data-binary @"$T/blk" "$U/images/ro")" = 403 ]
  [ "$(code -X PATCH --data '{"op":"flush"}' "$U/images/ro")" = 403 ]
  for m in DELETE POST; do [ "$(code -X $m "$U/images/w")" = 405 ]; done
  [ "$(curl -s -I -o /dev/null -w '%{http_code}' "$U/images/w")" = 405 ]
  kill "$(cat "$T/w.pid")"
}

@test "keep-alive: one connection serves several requests; PUT gets 100 Continue" {
  start_server
  ticket t "file://$T/d.raw" '["read","write"]'
  curl -sv -o /dev/null -o /dev/null "$U/images/t/extents" "$U/images/t/extents" 2>"$T/v"
  grep -q 'Re-using existing connection' "$T/v"
  head -c $((2 << 20)) /dev/urandom > "$T/blk"
  curl -sv -X PUT -H 'Expect: 100-continue' --data-binary @"$T/blk" "$U/images/t?flush=y" -o /dev/null 2>"$T/v"
  grep -q '^< HTTP/1.1 100 Continue' "$T/v"
  grep -q '^< HTTP/1.1 200 OK' "$T/v"
  cmp -n $((2 << 20)) "$T/blk" "$T/d.raw"
  # the closing line comes once the server sees the client gone
  for i in $(seq 100); do
    grep -q 'CLOSE client=127.0.0.1 \[connection 1 ops, [0-9.]* s\] \[dispatch 2 ops' "$T/serve.log" && break
    sleep 0.05
  done
  grep 'CLOSE client=127.0.0.1 \[connection 1 ops, [0-9.]* s\] \[dispatch 2 ops, [0-9.]* s\] \[extents 2 ops' "$T/serve.log"
}

@test "unknown ticket 403 with connection: close; 414 for a long request line" {
  start_server
  curl -s -D "$T/h" -o "$T/b" "$U/images/nosuch"
  grep -q ' 403 ' "$T/h"
  grep -qi '^connection: close' "$T/h"
  grep -qi '^content-type: text/plain; charset=UTF-8' "$T/h"
  [ "$(wc -l <"$T/b")" = 1 ]
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  [ "$(code "$U/images/t?x=$(head -c 5000 /dev/zero | tr '\0' a)")" = 414 ]
  [ "$(code "$U/images/t?x=$(head -c 3000 /dev/zero | tr '\0' a)")" = 200 ]
}

@test "checksum equals the block hash computed in Python; algorithms; bad block_size 400" {
  start_server
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  ticket f "file://$T/d.raw" '["read"]'
  curl -s "$U/images/t/checksum" | jq -e --arg h "$(pyhash "$T/d.raw")" \
    '.algorithm == "blake2b" and .block_size == 4194304 and .checksum == $h' >/dev/null
  curl -s "$U/images/f/checksum?block_size=1048576" | jq -e --arg h "$(pyhash "$T/d.raw" 1048576)" \
    '.checksum == $h and .block_size == 1048576' >/dev/null
  for b in 1000 4095 33554432 abc; do
    [ "$(code "$U/images/t/checksum?block_size=$b")" = 400 ]
  done
  [ "$(code "$U/images/t/checksum?algorithm=md4")" = 400 ]
}

# The algorithms the ovirt-imageio daemon computes (it also lists the
# hashlib names it fails on with 500: md5-sha1, ripemd160, sha512_224,
# sha512_256, shake_128, shake_256, sm3), each checked against hashlib.
@test "checksum: every algorithm of /checksum/algorithms equals hashlib's block hash" {
  start_server
  ticket f "file://$T/d.raw" '["read"]'
  algs=$(curl -s "$U/images/f/checksum/algorithms" | jq -r '.algorithms | join(" ")')
  [ "$algs" = "blake2b blake2s md5 sha1 sha224 sha256 sha384 sha3_224 sha3_256 sha3_384 sha3_512 sha512" ]
  for a in $algs; do
    got=$(curl -s "$U/images/f/checksum?algorithm=$a&block_size=16777216")
    want=$(pyhash "$T/d.raw" 16777216 "$a")
    jq -e --arg a "$a" --arg h "$want" '.algorithm == $a and .block_size == 16777216 and .checksum == $h' \
      <<<"$got" >/dev/null || { echo "$a: $got, hashlib $want"; false; }
  done
  [ "$(code "$U/images/f/checksum?algorithm=sm3")" = 400 ]
  # like the daemon: the list needs no ticket; a checksum's 403 keeps the
  # connection, an image's closes it
  curl -s "$U/images/nosuch/checksum/algorithms" | jq -e '.algorithms[0] == "blake2b"' >/dev/null
  [ "$(code -X POST "$U/images/nosuch/checksum/algorithms")" = 405 ]
  out=$(curl -sv "$U/images/nosuch/checksum" "$U/images/f/checksum/algorithms" 2>&1)
  grep -q '^< HTTP/1.1 403' <<<"$out" && grep -q '^\* Re-using existing connection' <<<"$out"
  out=$(curl -sv "$U/images/nosuch" "$U/images/f/checksum/algorithms" 2>&1)
  grep -q '^< HTTP/1.1 403' <<<"$out" && ! grep -q '^\* Re-using existing connection' <<<"$out"
}

# The daemon's GET /tickets/ID, key for key (tests/compat compares them).
@test "control GET: the daemon's fields, defaults and order; transferred only for one op" {
  start_server
  ticket r "nbd:unix:$T/nbd.sock" '["read"]'
  ticket w "nbd:unix:$T/nbd.sock" '["write"]' '"transfer_id":"tx","filename":"f.raw","inactivity_timeout":5'
  ticket rw "nbd:unix:$T/nbd.sock" '["read","write"]'
  ctl http://localhost/tickets/r | head -n1 | jq -e '(keys_unsorted | join(",")) ==
    "active,canceled,connections,expires,idle_time,inactivity_timeout,ops,size,sparse,dirty,timeout,url,uuid,transfer_id,transferred"
    and .canceled == false and .inactivity_timeout == 60 and .transfer_id == "(ticket/r)"
    and .transferred == 0 and .ops == ["read"]' >/dev/null
  ctl http://localhost/tickets/w | head -n1 | jq -e '.ops == ["write"] and .transfer_id == "tx"
    and .filename == "f.raw" and .inactivity_timeout == 5 and .transferred == 0' >/dev/null
  ctl http://localhost/tickets/rw | head -n1 | jq -e '(has("transferred") | not) and .ops == ["read","write"]' >/dev/null
}

# The daemon fails with 500 on a PATCH body that is JSON but no object (a
# bug: it indexes the value as a dict); serve answers 400.
@test "PATCH: a JSON body that is no object is a 400" {
  start_server
  ticket w "file://$T/d.raw" '["read","write"]'
  for b in '[1]' '3' '"x"' 'null'; do
    [ "$(code -X PATCH --data "$b" "$U/images/w")" = 400 ] || { echo "$b"; false; }
  done
}

@test "four clients at once each get the right bytes" {
  start_server
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  q=$((SIZE / 4))
  pids=()
  for i in 0 1 2 3; do
    curl -s -H "Range: bytes=$((i * q))-$(((i + 1) * q - 1))" "$U/images/t" -o "$T/part$i" 3>&- &
    pids+=($!)
  done
  wait "${pids[@]}"
  for i in 0 1 2 3; do [ "$(stat -c %s "$T/part$i")" = "$q" ]; done
  cat "$T"/part0 "$T"/part1 "$T"/part2 "$T"/part3 | cmp - "$T/d.raw"
  for i in $(seq 100); do
    [ "$(grep -c 'CLOSE client=' "$T/serve.log")" -ge 4 ] && break
    sleep 0.05
  done
  [ "$(grep -c 'CLOSE client=' "$T/serve.log")" -ge 4 ]
}

# inactivity_timeout is the daemon's: how long an idle connection of the
# ticket stays open; the ticket outlives it.
@test "tickets expire after timeout; PATCH revives them; inactivity_timeout closes idle connections" {
  start_server
  out=$(ctl -X PUT --data "{\"uuid\":\"e\",\"size\":$SIZE,\"url\":\"nbd:unix:$T/nbd.sock\",\"timeout\":1,\"ops\":[\"read\"]}" http://localhost/tickets/e)
  [ "$(status "$out")" = 200 ]
  out=$(ctl -X PUT --data "{\"uuid\":\"i\",\"size\":$SIZE,\"url\":\"nbd:unix:$T/nbd.sock\",\"timeout\":300,\"inactivity_timeout\":1,\"ops\":[\"read\"]}" http://localhost/tickets/i)
  [ "$(status "$out")" = 200 ]
  python3 - "${U##*:}" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"OPTIONS /images/i HTTP/1.1\r\nHost: x\r\n\r\n")
s.settimeout(10)
data = b""
while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
    data += s.recv(4096)
assert data.startswith(b"HTTP/1.1 200"), data
t0 = time.monotonic()
assert s.recv(4096) == b"", "idle connection was not closed"
assert time.monotonic() - t0 < 8, "closed only after the global idle timeout"
PY
  sleep 1.2
  [ "$(code -X OPTIONS "$U/images/e")" = 403 ]
  [ "$(code -X OPTIONS "$U/images/i")" = 200 ]
  [ "$(status "$(ctl -X PATCH --data '{"timeout":300}' http://localhost/tickets/e)")" = 200 ]
  [ "$(code -X OPTIONS "$U/images/e")" = 200 ]
}

@test "HTTPS with a self-signed certificate; a client without the CA refuses" {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" \
    -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null
  start_server --cert "$T/cert.pem" --key "$T/key.pem"
  [[ "$U" == https://* ]]
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  [ "$(curl -s --cacert "$T/cert.pem" "$U/images/t" | sha256sum)" = "$(sha256sum <"$T/d.raw")" ]
  run curl -s -o /dev/null "$U/images/t"
  [ "$status" -ne 0 ]
}

@test "malformed requests get a 4xx or a closed connection, never a crash" {
  start_server
  ticket w "file://$T/d.raw" '["read","write"]'
  port=${U##*:}
  python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
def send(data, shut=False):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    s.settimeout(5)
    try:
        got = s.recv(4096)
    except (socket.timeout, ConnectionResetError):
        got = b""
    s.close()
    return got
for req in [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
            b"PUT /images/w HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
            b"PUT /images/w HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"GET /images/w HTTP/1.1\r\nHost: x\r\nRange: bytes=\xff\xfe-\r\n\r\n",
            b"PATCH /images/w HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"op\"",
            b"GET /images/w HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"a" * 100000 + b"\r\n\r\n"]:
    got = send(req, shut=True)
    # 4xx, or 505 for the unknown HTTP version (libmicrohttpd's answer)
    assert got == b"" or got.split(b" ")[1][:1] == b"4" or \
        (b"9.9" in req and got.split(b" ")[1] == b"505"), (req[:40], got[:80])
PY
  kill -0 "$SRV_PID"
  [ "$(curl -s "$U/images/w" | sha256sum)" = "$(sha256sum <"$T/d.raw")" ]
}

@test "a backup point (virtback:) reads as the disk; it is read-only" {
  bk_setup_file
  VM=vbv-$BATS_TEST_NUMBER
  vb_make_vm "$VM" 64M
  vb_guest_io "$VM" sda 'write -P 0x61 2M 1M' 'write -P 0x62 50M 512K'
  "$VIRTBACK" backup -d "$VM" -o "$T/bk" -l full -n
  qemu-img convert -U -O raw "$(vb_disk_path "$VM" sda)" "$T/vm.raw"
  start_server
  ticket b "virtback:$T/bk?disk=sda" '["read"]'
  [ "$(curl -s "$U/images/b" | sha256sum)" = "$(sha256sum <"$T/vm.raw")" ]
  curl -s "$U/images/b/checksum" | jq -e --arg h "$(pyhash "$T/vm.raw")" '.checksum == $h' >/dev/null
  curl -s "$U/images/b/extents" | jq -e --argjson s "$SIZE" '(map(.length) | add) == $s' >/dev/null
  out=$(ctl -X PUT --data "{\"uuid\":\"bw\",\"size\":$SIZE,\"url\":\"virtback:$T/bk?disk=sda\",\"timeout\":300,\"ops\":[\"read\",\"write\"]}" http://localhost/tickets/bw)
  [ "$(status "$out")" = 400 ]
  out=$(ctl -X PUT --data "{\"uuid\":\"bx\",\"size\":$SIZE,\"url\":\"virtback:$T/bk?disk=sdz\",\"timeout\":300,\"ops\":[\"read\"]}" http://localhost/tickets/bx)
  [ "$(status "$out")" = 400 ]
}

@test "--config: file:// only under allowed directories, resolved (no symlink or .. escape)" {
  mkdir -p "$T/ok" "$T/no"
  truncate -s 1M "$T/ok/a.raw" "$T/no/b.raw"
  ln -s "$T/no/b.raw" "$T/ok/link.raw"
  ln -s "$T/no" "$T/ok/dir"
  printf '[serve]\nlocal_socket = %s\n[file]\nallow = %s\n' "$T/l.sock" "$T/ok" >"$T/ok.ini"
  "$VIRTBACK" serve --listen 127.0.0.1:0 --control-socket "$CTL" --config "$T/ok.ini" \
    >"$T/url" 2>"$T/serve.log" 3>&- &
  SRV_PID=$!
  for i in $(seq 100); do [ -s "$T/url" ] && break; sleep 0.05; done
  [ -S "$T/l.sock" ]                   # a [serve] key took effect
  SIZE=$((1 << 20))
  ticket a "file://$T/ok/a.raw" '["read"]'
  [ "$(code "$(cat "$T/url")/images/a")" = 200 ]
  for bad in "$T/no/b.raw" "$T/ok/link.raw" "$T/ok/dir/b.raw" "$T/ok/../no/b.raw" /etc/shadow; do
    out=$(ctl -X PUT --data "{\"uuid\":\"x\",\"size\":$SIZE,\"url\":\"file://$bad\",\"timeout\":300,\"ops\":[\"read\"]}" \
          http://localhost/tickets/x)
    [[ "$(status "$out")" == 40[03] ]] || { echo "$bad: $out"; false; }
  done
  # the 403 says what to do
  out=$(ctl -X PUT --data "{\"uuid\":\"x\",\"size\":$SIZE,\"url\":\"file://$T/ok/link.raw\",\"timeout\":300,\"ops\":[\"read\"]}" \
        http://localhost/tickets/x)
  [ "$(status "$out")" = 403 ]
  [[ "$out" == *"[file] allow"* ]]
  kill "$SRV_PID"; wait "$SRV_PID" || true; SRV_PID=
  # without an allowlist no file:// ticket at all
  "$VIRTBACK" serve --listen 127.0.0.1:0 --control-socket "$CTL" >"$T/url" 2>"$T/serve.log" 3>&- &
  SRV_PID=$!
  for i in $(seq 100); do [ -s "$T/url" ] && [ -S "$CTL" ] && break; sleep 0.05; done
  out=$(ctl -X PUT --data "{\"uuid\":\"a\",\"size\":$SIZE,\"url\":\"file://$T/ok/a.raw\",\"timeout\":300,\"ops\":[\"read\"]}" \
        http://localhost/tickets/a)
  [ "$(status "$out")" = 403 ]
  kill "$SRV_PID"; wait "$SRV_PID" || true; SRV_PID=
  # a typo in the file is an error naming its line, before anything listens
  printf '[serve]\nlisten = 127.0.0.1:0\nlistne = x\n' >"$T/bad.ini"
  run "$VIRTBACK" serve --control-socket "$T/c2.sock" --config "$T/bad.ini"
  [ "$status" = 2 ]
  [ "${#lines[@]}" = 1 ]
  [[ "$output" == *"line 3"*listne* ]]
  [ ! -e "$T/c2.sock" ]
}

@test "max_readers and max_writers are enforced: 503 past them, a slot frees on close" {
  start_server
  # files: this test's qemu-nbd takes one client at a time
  ticket r "file://$T/d.raw" '["read"]'
  ticket w "file://$T/d.raw" '["read","write"]'
  curl -s -X OPTIONS "$U/images/r" | jq -e '.max_readers == 8' >/dev/null
  curl -s -X OPTIONS "$U/images/w" | jq -e '.max_writers == 1' >/dev/null
  python3 - "${U##*:}" <<'PY'
import http.client, sys, time
port = int(sys.argv[1])
def conn():
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)
def get(c):
    c.request("GET", "/images/r", headers={"Range": "bytes=0-4095"})
    r = c.getresponse(); r.read(); return r.status
held = [conn() for _ in range(8)]
assert [get(c) for c in held] == [206] * 8
extra = conn()
assert get(extra) == 503, "a ninth reader"
extra.close()
# extents and OPTIONS take no slot
o = conn(); o.request("GET", "/images/r/extents"); r = o.getresponse(); r.read()
assert r.status == 200
held[0].close()
for _ in range(50):
    c = conn()
    s = get(c)
    if s == 206:
        break
    c.close(); time.sleep(0.1)
assert s == 206, "the slot of a closed connection"
def put(c):
    c.request("PUT", "/images/w", body=b"x" * 10, headers={"Content-Range": "bytes 0-9/*"})
    r = c.getresponse(); r.read(); return r.status
w1, w2 = conn(), conn()
assert put(w1) == 200
assert put(w2) == 503, "a second writer to a file"
PY
}

@test "the server stops on SIGTERM and removes its sockets" {
  start_server --local-socket "$T/local.sock"
  ticket t "nbd:unix:$T/nbd.sock" '["read"]'
  curl -s -X OPTIONS "$U/images/t" | jq -e --arg p "$T/local.sock" '.unix_socket == $p' >/dev/null
  [ "$(curl -s --unix-socket "$T/local.sock" http://localhost/images/t | sha256sum)" = "$(sha256sum <"$T/d.raw")" ]
  kill "$SRV_PID"; wait "$SRV_PID"; SRV_PID=
  [ ! -e "$CTL" ]
  [ ! -e "$T/local.sock" ]
}
