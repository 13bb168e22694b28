# SPDX-License-Identifier: GPL-3.0-or-later
# Part 2 of tests/compat/ovirt-imageio.sh (sourced, uses its helpers and $W):
# virtback download/upload and curl against the real ovirt-imageio daemon,
# tickets added on the daemon's own control socket.

echo "== virtback's clients against the ovirt-imageio daemon"
mkdir -p "$W/io/conf.d" "$W/io/run"
cat >"$W/io/conf.d/50-compat.conf" <<EOF
[daemon]
drop_privileges = false
run_dir = $W/io/run
[tls]
enable = true
key_file = $W/key.pem
cert_file = $W/cert.pem
ca_file = $W/ca.pem
[remote]
host = 127.0.0.1
port = $PORT_IO
[local]
enable = false
[control]
transport = unix
socket = $W/io/ctl.sock
[handlers]
keys = stderr
[logger_root]
handlers = stderr
level = DEBUG
EOF
python3 "$HERE/ovirt_daemon.py" "$W/io" \
  2>"$W/io/daemon.log" 3>&- &
PIDS+=($!)
wait_sock "$W/io/ctl.sock" || fail "ovirt-imageio daemon did not start: $(tail -5 "$W/io/daemon.log")"
IO=https://127.0.0.1:$PORT_IO/images
ICTL=$W/io/ctl.sock
c () { curl -s --cacert "$W/ca.pem" "$@"; }

# The daemon's data API as the notes say, seen by curl.
ctl "$ICTL" cro "nbd:unix:$W/src.sock" '["read"]'
c -D "$W/h" -o /dev/null -X OPTIONS "$IO/cro"
grep -qi '^server: imageio/' "$W/h" || fail "daemon: no server: imageio header"
ok "curl OPTIONS on the daemon: $(c -X OPTIONS "$IO/cro")"
[ "$(c -o /dev/null -w '%{http_code}' -H 'Range: bytes=0-99' "$IO/cro")" = 206 ] || fail "daemon: ranged GET is not 206"
[ "$(c -o /dev/null -w '%{http_code}' -H "Range: bytes=$SIZE-$((SIZE + 9))" "$IO/cro")" = 416 ] || fail "daemon: GET past the end is not 416"
[ "$(c -o /dev/null -w '%{http_code}' "$IO/nosuch")" = 403 ] || fail "daemon: unknown ticket is not 403"
ok "curl GET range 206, past the end 416, unknown ticket 403 (daemon)"
[ "$(c "$IO/cro" | sha256sum)" = "$(sha256sum <"$W/src.raw")" ] || fail "daemon: GET body differs"
ok "curl GET whole image == source (daemon)"

# virtback download from the daemon: nbd and file backends.
ctl "$ICTL" dlf "file://$W/src.raw" '["read"]'
for t in cro dlf; do
  for fmt in raw qcow2; do
    run "$VIRTBACK" download "$IO/$t" "$W/vdl-$t.$fmt" --format "$fmt" --cafile "$W/ca.pem" >/dev/null
    same "$W/vdl-$t.$fmt" "$W/src.qcow2" "virtback download daemon $t -> $fmt"
  done
done

# virtback upload to the daemon: into an nbd export and into a raw file.
qemu-img create -q -f qcow2 "$W/vup.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x55 0 64M' "$W/vup.qcow2" >/dev/null
nbd vup "$W/vup.qcow2" qcow2
ctl "$ICTL" vup "nbd:unix:$W/vup.sock" '["read","write"]'
run "$VIRTBACK" upload "$W/src.qcow2" "$IO/vup" --cafile "$W/ca.pem" >/dev/null
same "$W/vup.qcow2" "$W/src.qcow2" "virtback upload qcow2 -> daemon nbd ticket"
truncate -s 64M "$W/vup.raw"
qemu-io -f raw -c 'write -P 0x55 0 64M' "$W/vup.raw" >/dev/null
ctl "$ICTL" vupf "file://$W/vup.raw" '["read","write"]'
run "$VIRTBACK" upload "$W/src.qcow2" "$IO/vupf" --cafile "$W/ca.pem" >/dev/null
same "$W/vup.raw" "$W/src.qcow2" "virtback upload qcow2 -> daemon file ticket"

# The daemon's checksum equals virtback serve's for the same image.
a=$(c "$IO/cro/checksum" | jq -r .checksum)
b=$(curl -s --cacert "$W/ca.pem" "$VB/src/checksum" | jq -r .checksum)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "checksum: daemon $a, virtback serve $b"
ok "GET /checksum: daemon == virtback serve ($a)"

# Dirty extents: a qemu-nbd export with a bitmap, a dirty ticket.
qemu-img create -q -f qcow2 "$W/dirty.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 8M' "$W/dirty.qcow2" >/dev/null
qemu-img bitmap --add "$W/dirty.qcow2" b0
qemu-io -f qcow2 -c 'write -P 0x22 16M 1M' -c 'write -P 0x23 60M 64K' "$W/dirty.qcow2" >/dev/null
nbd dty "$W/dirty.qcow2" qcow2 -r -B b0
ctl "$ICTL" dty "nbd:unix:$W/dty.sock" '["read"]' '"dirty":true'
c "$IO/dty/extents?context=dirty" >"$W/dirty-io.json"
jq -e 'map(select(.dirty)) | map(.length) | add == (1048576 + 65536)' "$W/dirty-io.json" >/dev/null ||
  fail "daemon dirty extents: $(cat "$W/dirty-io.json")"
ok "daemon dirty extents: $(jq -c 'map(select(.dirty))' "$W/dirty-io.json")"
ctl "$CTL" dty "nbd:unix:$W/dty.sock" '["read"]' '"dirty":true'
curl -s --cacert "$W/ca.pem" "$VB/dty/extents?context=dirty" >"$W/dirty-vb.json"
jq -e --slurpfile io "$W/dirty-io.json" '. == $io[0]' "$W/dirty-vb.json" >/dev/null ||
  fail "dirty extents differ: virtback serve $(cat "$W/dirty-vb.json")"
ok "dirty extents: virtback serve == daemon"
qemu-img create -q -f qcow2 "$W/pre.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 8M' "$W/pre.qcow2" >/dev/null
run "$VIRTBACK" download "$IO/dty" "$W/vinc.qcow2" --incremental --backing-file "$W/pre.qcow2" \
  --cafile "$W/ca.pem" >/dev/null
same "$W/vinc.qcow2" "$W/dirty.qcow2" "virtback download --incremental from the daemon: chain == disk"

# Zero extents of an overlay exported with its allocation depth (holes)
# and without: the same JSON from both servers.
qemu-img create -q -f qcow2 "$W/base.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x41 0 8M' "$W/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$W/base.qcow2" -F qcow2 "$W/top.qcow2"
qemu-io -f qcow2 -c 'write -P 0x42 4M 1M' -c 'write -z 6M 1M' "$W/top.qcow2" >/dev/null
nbd topa "$W/top.qcow2" qcow2 -r -A
nbd top "$W/top.qcow2" qcow2 -r
for t in topa top; do
  ctl "$ICTL" "$t" "nbd:unix:$W/$t.sock" '["read"]'
  ctl "$CTL" "$t" "nbd:unix:$W/$t.sock" '["read"]'
  a=$(c "$IO/$t/extents" | jq -c .)
  b=$(c "$VB/$t/extents" | jq -c .)
  [ "$a" = "$b" ] || fail "extents of $t differ: daemon $a, virtback serve $b"
done
ok "zero extents with and without holes: virtback serve == daemon ($a)"
run "$VIRTBACK" download "$IO/topa" "$W/vtop.qcow2" --cafile "$W/ca.pem" >/dev/null
same "$W/vtop.qcow2" "$W/top.qcow2" "virtback download of an overlay with holes from the daemon"

# The same requests to both servers: the status codes must agree.  Known
# and kept differences, checked below: a PATCH body that is JSON but no
# object, and the algorithms the daemon lists but fails on (500 from the
# daemon, 400 from serve); "Range: bytes=SIZE-" (the daemon: 206 with an
# empty body and "bytes SIZE-(SIZE-1)/SIZE"; serve: 416).
ctl "$ICTL" prw "nbd:unix:$W/upn.sock" '["read","write"]'
ctl "$CTL" prw "nbd:unix:$W/upn.sock" '["read","write"]'
ctl "$CTL" cro "nbd:unix:$W/src.sock" '["read"]'
parity () {
  local a b
  a=$(c -o /dev/null -w '%{http_code}' "${@/URL/$IO}")
  b=$(c -o /dev/null -w '%{http_code}' "${@/URL/$VB}")
  [ "$a" = "$b" ] || fail "status differs for $*: daemon $a, virtback serve $b"
}
n=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  eval "parity $line"
  n=$((n + 1))
done <<EOF
URL/cro
-H 'Range: bytes=0-99' URL/cro
-H 'Range: bytes=100-' URL/cro
-H 'Range: bytes=-100' URL/cro
-H 'Range: bytes=5-1' URL/cro
-H 'Range: bytes=0-1,5-6' URL/cro
-H 'Range: bytes=0-$SIZE' URL/cro
-H 'Range: bytes=$SIZE-$((SIZE + 1))' URL/cro
-H 'Range: items=0-1' URL/cro
-X OPTIONS URL/cro
-X OPTIONS URL/prw
-X OPTIONS 'URL/*'
-X OPTIONS URL/nosuch
URL/
URL/nosuch
URL/cro/extents
'URL/cro/extents?context=dirty'
'URL/cro/extents?context=other'
URL/nosuch/extents
URL/cro/checksum
'URL/cro/checksum?block_size=1048576'
'URL/cro/checksum?block_size=524288'
'URL/cro/checksum?block_size=33554432'
'URL/cro/checksum?block_size=1052672'
'URL/cro/checksum?block_size=abc'
'URL/cro/checksum?algorithm=nope'
URL/cro/checksum/algorithms
URL/nosuch/checksum
-X DELETE URL/cro
-X POST URL/cro
-I URL/cro
-X PUT -H 'Content-Range: bytes 0-3/*' --data-binary abcd URL/cro
-X PUT -H 'Content-Range: bytes 0-3/*' --data-binary abcd 'URL/prw?flush=n'
-X PUT -H 'Content-Range: bytes 0-3/*' --data-binary abcd 'URL/prw?flush=x'
-X PUT -H 'Content-Range: bytes 3-0/*' --data-binary abcd URL/prw
-X PUT -H 'Content-Range: garbage' --data-binary abcd URL/prw
-X PUT -H 'Content-Range: bytes $((SIZE - 2))-$((SIZE + 1))/*' --data-binary abcd URL/prw
-X PUT -H 'Transfer-Encoding: chunked' --data-binary abcd URL/prw
-X PATCH --data '{"op":"zero","offset":0,"size":4096}' URL/prw
-X PATCH --data '{"op":"zero","offset":0}' URL/prw
-X PATCH --data '{"op":"zero","offset":-1,"size":1}' URL/prw
-X PATCH --data '{"op":"zero","offset":0,"size":1,"flush":"no"}' URL/prw
-X PATCH --data '{"op":"zero","offset":$SIZE,"size":1}' URL/prw
-X PATCH --data '{"op":"flush"}' URL/prw
-X PATCH --data '{"op":"flush"}' URL/cro
-X PATCH --data '{"op":"nope"}' URL/prw
-X PATCH --data '{' URL/prw
EOF
ok "the same $n requests get the same status codes from the daemon and virtback serve"

# Every algorithm the daemon lists: where it computes one, serve gives the
# same checksum; where it fails (500), serve does not list it and says 400.
ours=$(c "$VB/cro/checksum/algorithms" | jq -c .algorithms)
computed=()
for a in $(c "$IO/cro/checksum/algorithms" | jq -r '.algorithms[]'); do
  da=$(c -w '\n%{http_code}' "$IO/cro/checksum?algorithm=$a&block_size=1048576")
  vb=$(c -w '\n%{http_code}' "$VB/cro/checksum?algorithm=$a&block_size=1048576")
  if [ "$(tail -n1 <<<"$da")" = 200 ]; then
    computed+=("$a")
    [ "$(head -n1 <<<"$da" | jq -c .)" = "$(head -n1 <<<"$vb" | jq -c .)" ] ||
      fail "checksum $a: daemon $da, virtback serve $vb"
  else
    [ "$(tail -n1 <<<"$da")" = 500 ] && [ "$(tail -n1 <<<"$vb")" = 400 ] ||
      fail "checksum $a: daemon $(tail -n1 <<<"$da"), virtback serve $(tail -n1 <<<"$vb")"
  fi
done
[ "$ours" = "$(printf '%s\n' "${computed[@]}" | jq -R . | jq -sc .)" ] ||
  fail "algorithms: virtback serve lists $ours, the daemon computes ${computed[*]}"
ok "checksum: all ${#computed[@]} algorithms the daemon computes give its checksums; the rest 500 (daemon) / 400"

# 416s: Content-Range only where the daemon sends one.
for r in "bytes=$SIZE-$((SIZE + 1))" "bytes=0-$SIZE" 'bytes=5-1' 'bytes=-100' 'bytes=0-1,5-6' 'items=0-1'; do
  a=$(c -D - -o /dev/null -H "Range: $r" "$IO/cro" | grep -ci '^content-range' || true)
  b=$(c -D - -o /dev/null -H "Range: $r" "$VB/cro" | grep -ci '^content-range' || true)
  [ "$a" = "$b" ] || fail "416 for $r: Content-Range from the daemon $a, from virtback serve $b"
done
ok "416: a Content-Range where the daemon sends one, and only there"

# After a 403 the daemon keeps the connection for /checksum and closes it
# for the image; /checksum/algorithms needs no ticket.
for u in nosuch/checksum nosuch nosuch/extents nosuch/checksum/algorithms; do
  a=$(c -sv "$IO/$u" "$IO/cro/checksum/algorithms" 2>&1 | grep -Ec '^< HTTP/1.1 [0-9]+|^\* Re-using' || true)
  b=$(c -sv "$VB/$u" "$VB/cro/checksum/algorithms" 2>&1 | grep -Ec '^< HTTP/1.1 [0-9]+|^\* Re-using' || true)
  sa=$(c -o /dev/null -w '%{http_code}' "$IO/$u"); sb=$(c -o /dev/null -w '%{http_code}' "$VB/$u")
  [ "$a" = "$b" ] && [ "$sa" = "$sb" ] || fail "$u: daemon $sa (reuse $a), virtback serve $sb (reuse $b)"
done
ok "403 keeps or closes the connection as the daemon does; algorithms without a ticket"

# A PATCH body that is JSON but no object: the daemon's 500 is a bug.
for b in '[1]' '3' 'null'; do
  a=$(c -o /dev/null -w '%{http_code}' -X PATCH --data "$b" "$IO/prw")
  v=$(c -o /dev/null -w '%{http_code}' -X PATCH --data "$b" "$VB/prw")
  [ "$a" = 500 ] && [ "$v" = 400 ] || fail "PATCH $b: daemon $a, virtback serve $v"
done
ok "PATCH with JSON that is no object: daemon 500 (its bug), virtback serve 400"

# GET /tickets/ID: the same keys in the same order, the same values but
# for the clocks (expires, idle_time).
tget () { curl -s --unix-socket "$1" "http://l/tickets/$2" | jq -c 'del(.expires, .idle_time)'; }
for spec in 'g1|["read"]|' 'g2|["write"]|"transfer_id":"tx","filename":"f.raw","inactivity_timeout":7' \
            'g3|["read","write"]|"sparse":true,"dirty":true'; do
  IFS='|' read -r id ops extra <<<"$spec"
  ctl "$ICTL" "$id" "nbd:unix:$W/src.sock" "$ops" "$extra"
  ctl "$CTL" "$id" "nbd:unix:$W/src.sock" "$ops" "$extra"
  a=$(tget "$ICTL" "$id"); b=$(tget "$CTL" "$id")
  [ "$a" = "$b" ] || fail "GET /tickets/$id: daemon $a, virtback serve $b"
done
c -o /dev/null "$IO/g1"; curl -s --cacert "$W/ca.pem" -o /dev/null "$VB/g1"
a=$(tget "$ICTL" g1); b=$(tget "$CTL" g1)
[ "$a" = "$b" ] || fail "GET /tickets/g1 after a download: daemon $a, virtback serve $b"
ok "GET /tickets/ID: the daemon's keys, order and values, also after a download ($b)"
c -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT_IO/info/" | grep -qx 200 || fail "daemon /info/"

# The control APIs, the same way.
cparity () {
  local a b
  a=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$ICTL" "$@")
  b=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$CTL" "$@")
  [ "$a" = "$b" ] || fail "control status differs for $*: daemon $a, virtback serve $b"
}
cparity http://l/tickets/cro
cparity http://l/tickets/nosuch
cparity -X PATCH --data '{"timeout":60}' http://l/tickets/cro
cparity -X PATCH --data '{"timeout":"x"}' http://l/tickets/cro
cparity -X PATCH --data '{"timeout":60}' http://l/tickets/nosuch
cparity -X PUT --data '{"uuid":"x","size":1,"url":"file:///x","timeout":1}' http://l/tickets/x
cparity -X PUT --data '{"uuid":"x","size":"1","url":"file:///x","timeout":1,"ops":["read"]}' http://l/tickets/x
cparity -X PUT --data '{' http://l/tickets/x
cparity -X PUT --data "{\"name\":\"nm\",\"size\":1,\"url\":\"nbd:unix:$W/src.sock\",\"timeout\":60,\"ops\":[\"read\"]}" http://l/tickets/nm
cparity http://l/tickets/nm
cparity -X DELETE http://l/tickets/nosuch
cparity http://l/tickets/
cparity -X DELETE http://l/tickets/
cparity http://l/tickets/cro
ok "the control APIs answer 14 requests with the same status codes (DELETE /tickets/ removes all)"

# Plain HTTP: a second daemon with TLS off (oVirt's client is HTTPS only,
# virtback's clients and curl are not).
mkdir -p "$W/ioh/conf.d" "$W/ioh/run"
sed -e "s|^enable = true|enable = false|" -e "s|^port = $PORT_IO|port = $PORT_IO_HTTP|" \
    -e "s|$W/io/|$W/ioh/|" "$W/io/conf.d/50-compat.conf" >"$W/ioh/conf.d/50-compat.conf"
python3 "$HERE/ovirt_daemon.py" "$W/ioh" 2>"$W/ioh/daemon.log" 3>&- &
PIDS+=($!)
wait_sock "$W/ioh/ctl.sock" || fail "plain-HTTP daemon did not start: $(tail -5 "$W/ioh/daemon.log")"
IOH=http://127.0.0.1:$PORT_IO_HTTP/images
ctl "$W/ioh/ctl.sock" hro "nbd:unix:$W/src.sock" '["read"]'
[ "$(curl -s "$IOH/hro" | sha256sum)" = "$(sha256sum <"$W/src.raw")" ] || fail "plain-HTTP daemon: GET body differs"
run "$VIRTBACK" download "$IOH/hro" "$W/hdl.raw" --format raw >/dev/null
same "$W/hdl.raw" "$W/src.qcow2" "virtback download over plain HTTP from the daemon"
qemu-img create -q -f qcow2 "$W/hup.qcow2" 64M
nbd hup "$W/hup.qcow2" qcow2
ctl "$W/ioh/ctl.sock" hup "nbd:unix:$W/hup.sock" '["read","write"]'
run "$VIRTBACK" upload "$W/src.qcow2" "$IOH/hup" >/dev/null
same "$W/hup.qcow2" "$W/src.qcow2" "virtback upload over plain HTTP to the daemon"
