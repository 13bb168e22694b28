#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# Cross-check virtback serve/download/upload against oVirt's own code:
#   1. oVirt's client library (ovirt_imageio.client) against virtback serve;
#   2. virtback download/upload and curl against the real ovirt-imageio
#      daemon (skipped, and said so, when SRC_DIR has no daemon).
# Usage: tests/compat/ovirt-imageio.sh SRC_DIR [--vm]
#   SRC_DIR: an ovirt-imageio source tree (its ovirt_imageio/_internal/ioutil
#   extension built) or a site-packages dir holding ovirt_imageio.
#   --vm: also back up a throwaway firmware-only VM (xi-compat, on libvirtd,
#   with tests/lib.sh) and download its backup point with oVirt's client.
# Not part of the suite: it needs oVirt's code, which this project does not
# ship.  Needs qemu-img, qemu-nbd, qemu-io, openssl, curl, jq; run as root
# from a built tree (VIRTBACK overrides the binary).  Exits non-zero on the
# first mismatch.
set -euo pipefail

SRC=${1:?usage: $0 OVIRT_IMAGEIO_SRC_DIR [--vm]}
WITH_VM=${2:-}
SRC=$(cd "$SRC" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VIRTBACK=${VIRTBACK:-$ROOT/build/virtback}
HERE=$ROOT/tests/compat
PORT_VB=${PORT_VB:-18510}
PORT_IO=${PORT_IO:-18520}
PORT_IO_HTTP=${PORT_IO_HTTP:-18521}
export PYTHONPATH=$SRC${PYTHONPATH:+:$PYTHONPATH}

python3 -c 'import ovirt_imageio.client' ||
  { echo "$0: cannot import ovirt_imageio.client from $SRC" >&2; exit 2; }

W=$(mktemp -d /tmp/vb-compat.XXXXXX)
PIDS=()
cleanup () {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "$W"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  [ -z "$WITH_VM" ] || vb_destroy_vm xi-compat
  rm -rf "$W"
}
trap cleanup EXIT
PASS=0
ok () { PASS=$((PASS + 1)); echo "ok   $*"; }
fail () { echo "FAIL $*" >&2; exit 1; }
run () { echo "+ $*" >&2; "$@"; }

wait_sock () { local i; for i in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
wait_port () { local i; for i in $(seq 200); do curl -sk -o /dev/null "https://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }

# nbd NAME IMAGE FMT [qemu-nbd options]: a qemu-nbd export on $W/NAME.sock
nbd () {
  local name=$1 img=$2 fmt=$3; shift 3
  qemu-nbd -f "$fmt" -k "$W/$name.sock" --pid-file "$W/$name.pid" -t -e 8 "$@" "$img" 3>&- &
  wait_sock "$W/$name.sock"
}

same () { qemu-img compare -U -q "$1" "$2" || fail "$3: $1 differs from $2"; ok "$3"; }

# --- fixtures: a CA, a certificate for 127.0.0.1, a 64 MiB image ---------
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=vb-compat-ca \
  -keyout "$W/ca.key" -out "$W/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
  -keyout "$W/key.pem" -out "$W/req.pem" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$W/ext"
openssl x509 -req -in "$W/req.pem" -CA "$W/ca.pem" -CAkey "$W/ca.key" \
  -CAcreateserial -days 1 -extfile "$W/ext" -out "$W/cert.pem" 2>/dev/null
SIZE=$((64 << 20))
qemu-img create -q -f qcow2 "$W/src.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x41 1M 3M' -c 'write -P 0x42 40M 1M' \
  -c 'write -z 48M 2M' -c 'write -P 0x43 63M 512K' "$W/src.qcow2" >/dev/null
qemu-img convert -O raw "$W/src.qcow2" "$W/src.raw"

# ctl SOCKET ID URL OPS [EXTRA JSON]: add a ticket on a control socket
ctl () {
  local out
  out=$(curl -s --unix-socket "$1" -w '\n%{http_code}' -X PUT \
    --data "{\"uuid\":\"$2\",\"size\":$SIZE,\"url\":\"$3\",\"timeout\":600,\"ops\":$4${5:+,$5}}" \
    "http://localhost/tickets/$2")
  [ "$(tail -n1 <<<"$out")" = 200 ] || fail "ticket $2 on $1: $out"
}

ovirt () { python3 "$HERE/ovirt_client.py" "$@"; }

# --- 1. oVirt's client against virtback serve -------------------------------
echo "== oVirt's client ($(python3 -c 'import ovirt_imageio.client as c; print(c.__version__)')) against virtback serve"
printf '[file]\nallow = %s\n' "$W" >"$W/serve.ini"
"$VIRTBACK" serve --listen "127.0.0.1:$PORT_VB" --cert "$W/cert.pem" --key "$W/key.pem" \
  --control-socket "$W/vb.sock" --config "$W/serve.ini" >"$W/vb.url" 2>"$W/vb.log" 3>&- &
PIDS+=($!)
wait_sock "$W/vb.sock" || fail "virtback serve did not start: $(cat "$W/vb.log")"
VB=https://127.0.0.1:$PORT_VB/images
CTL=$W/vb.sock

nbd src "$W/src.qcow2" qcow2 -r
ctl "$CTL" src "nbd:unix:$W/src.sock" '["read"]'
ctl "$CTL" srcf "file://$W/src.raw" '["read"]'
for t in src srcf; do
  run ovirt download "$VB/$t" "$W/dl-$t.raw" raw "$W/ca.pem"
  same "$W/dl-$t.raw" "$W/src.qcow2" "ovirt download $t -> raw"
  run ovirt download "$VB/$t" "$W/dl-$t.qcow2" qcow2 "$W/ca.pem"
  same "$W/dl-$t.qcow2" "$W/src.qcow2" "ovirt download $t -> qcow2"
  run ovirt checksum "$VB/$t" "$W/src.qcow2" "$W/ca.pem" >"$W/ck-$t.json"
  ok "ovirt checksum $t == local: $(jq -r .local.checksum "$W/ck-$t.json")"
done
run ovirt extents "$VB/src" "$W/src.qcow2" "$W/ca.pem" >"$W/ext.json"
ok "ovirt ImageioClient.extents == client.extents ($(jq '.remote | length' "$W/ext.json") runs)"

# targets full of 0x55, so the upload's zeroing is checked too
qemu-img create -q -f qcow2 "$W/up-nbd.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x55 0 64M' "$W/up-nbd.qcow2" >/dev/null
nbd upn "$W/up-nbd.qcow2" qcow2
ctl "$CTL" upn "nbd:unix:$W/upn.sock" '["read","write"]'
run ovirt upload "$W/src.qcow2" "$VB/upn" "$W/ca.pem"
same "$W/up-nbd.qcow2" "$W/src.qcow2" "ovirt upload qcow2 -> nbd ticket"
truncate -s 64M "$W/up-file.raw"
qemu-io -f raw -c 'write -P 0x55 0 64M' "$W/up-file.raw" >/dev/null
ctl "$CTL" upf "file://$W/up-file.raw" '["read","write"]'
run ovirt upload "$W/src.raw" "$VB/upf" "$W/ca.pem"
same "$W/up-file.raw" "$W/src.qcow2" "ovirt upload raw -> file ticket"
qemu-io -f raw -c 'write -P 0x55 0 64M' "$W/up-file.raw" >/dev/null
ctl "$CTL" upf2 "file://$W/up-file.raw" '["read","write"]'
run ovirt upload "$W/src.qcow2" "$VB/upf2" "$W/ca.pem"
same "$W/up-file.raw" "$W/src.qcow2" "ovirt upload qcow2 -> file ticket"

if [ "$WITH_VM" = --vm ]; then
  source "$ROOT/tests/lib.sh"
  vb_daemons_up
  vb_make_vm xi-compat 64M
  vb_guest_io xi-compat sda 'write -P 0x61 2M 1M' 'write -P 0x62 50M 512K'
  run "$VIRTBACK" backup -d xi-compat -o "$W/bk" -l full -n >/dev/null
  ctl "$CTL" bk "virtback:$W/bk?disk=sda" '["read"]'
  run ovirt download "$VB/bk" "$W/dl-bk.qcow2" qcow2 "$W/ca.pem"
  run "$VIRTBACK" restore -i "$W/bk" -o "$W/restore" >/dev/null 2>&1
  same "$W/dl-bk.qcow2" "$(ls "$W"/restore/sda.*)" "ovirt download of a virtback: backup point == its restore"
  run ovirt checksum "$VB/bk" "$W/dl-bk.qcow2" "$W/ca.pem" >/dev/null
  ok "ovirt checksum of the backup point == local"
fi

# --- 2. virtback's clients and curl against the real ovirt-imageio daemon ---
if ! python3 -c 'import ovirt_imageio._internal.server' 2>/dev/null; then
  echo "== SKIPPED: $SRC has no ovirt_imageio._internal.server (the daemon)"
  echo "passed $PASS checks"
  exit 0
fi
source "$HERE/ovirt-daemon.sh"
echo "passed $PASS checks"
