# SPDX-License-Identifier: GPL-3.0-or-later
# tests/netns.bash: other "hosts" on this one machine, for tests of remote and networked
# features (see ../shared/notes/netns-hosts.md).  Sourced by bats files; every helper undoes
# what it made, and each takes the names and addresses from its caller so that several
# files can use it side by side.
#
#   netns_up NS HOSTIF NSIF HOSTADDR/LEN NSADDR/LEN   a namespace joined to this one by a veth
#   netns_down NS                                       remove it (and its veth)
#   netns_run NS CMD...                                 CMD in NS, in a private mount namespace
#                                                       with $NETNS_HIDE (paths) under empty tmpfs
#   netns_sshd_start DIR ADDR PORT                      sshd here on ADDR:PORT with its own keys;
#                                                       DIR/ssh is a client wrapper using them
#   netns_sshd_stop DIR
#   netns_certs DIR IP                                  a CA, a server certificate for IP and a
#                                                       client certificate: DIR/server, DIR/client

netns_up () {
  local ns=$1 hif=$2 nif=$3 haddr=$4 naddr=$5
  netns_down "$ns"
  ip link del "$hif" 2>/dev/null || true
  ip netns add "$ns" || return 1
  ip link add "$hif" type veth peer name "$nif" netns "$ns" || return 1
  ip addr add "$haddr" dev "$hif" && ip link set "$hif" up || return 1
  ip -n "$ns" addr add "$naddr" dev "$nif" || return 1
  ip -n "$ns" link set lo up && ip -n "$ns" link set "$nif" up
}

netns_down () {
  ip netns pids "$1" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$1" 2>/dev/null || true
}

# The paths in NETNS_HIDE are covered with empty tmpfs for CMD alone: what it reads there
# cannot have come through a local path.
netns_run () {
  local ns=$1
  shift
  # shellcheck disable=SC2016
  ip netns exec "$ns" unshare -m --propagation private bash -c '
    for p in $NETNS_HIDE; do mount -t tmpfs -o size=1m,mode=0755 none "$p" || exit 99; done
    exec "$@"' netns-run "$@"
}

netns_sshd_start () {
  local dir=$1 addr=$2 port=$3
  mkdir -p "$dir" /run/sshd && chmod 0700 "$dir"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" <<<y >/dev/null 2>&1 || return 1
  ssh-keygen -q -t ed25519 -N '' -f "$dir/id" <<<y >/dev/null 2>&1 || return 1
  cp "$dir/id.pub" "$dir/authorized_keys" && chmod 0600 "$dir/authorized_keys"
  cat >"$dir/sshd_config" <<EOF
ListenAddress $addr:$port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
  echo "[$addr]:$port $(cat "$dir/host_key.pub")" >"$dir/known_hosts"
  cat >"$dir/ssh" <<EOF
#!/bin/sh
exec ssh -F /dev/null -i $dir/id -o IdentitiesOnly=yes -o UserKnownHostsFile=$dir/known_hosts \
  -o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null "\$@"
EOF
  chmod 0700 "$dir/ssh"
  vb_fresh_root /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" || return 1
  local i
  for i in $(seq 50); do
    [ -s "$dir/sshd.pid" ] && return 0
    sleep 0.1
  done
  return 1
}

netns_sshd_stop () {
  local pid
  pid=$(cat "$1/sshd.pid" 2>/dev/null) || return 0
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -f "$1/sshd.pid"
}

# certtool templates in DIR/tmpl; DIR/server holds ca-cert.pem server-cert.pem
# server-key.pem (what QEMU's x509 directory wants), DIR/client ca-cert.pem client-cert.pem
# client-key.pem (what libnbd's tls-certificates= wants).
netns_certs () {
  local dir=$1 ip=$2
  mkdir -p "$dir/tmpl" "$dir/server" "$dir/client" || return 1
  printf 'cn = virtback test CA\nca\ncert_signing_key\nexpiration_days = 30\n' >"$dir/tmpl/ca"
  printf 'cn = %s\nip_address = %s\ndns_name = localhost\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 30\n' \
    "$ip" "$ip" >"$dir/tmpl/server"
  printf 'cn = client\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 30\n' \
    >"$dir/tmpl/client"
  certtool -q --generate-privkey --outfile "$dir/ca-key.pem" 2>/dev/null &&
  certtool -q --generate-self-signed --load-privkey "$dir/ca-key.pem" \
    --template "$dir/tmpl/ca" --outfile "$dir/ca-cert.pem" 2>/dev/null || return 1
  local side
  for side in server client; do
    certtool -q --generate-privkey --outfile "$dir/$side/$side-key.pem" 2>/dev/null &&
    certtool -q --generate-certificate --load-privkey "$dir/$side/$side-key.pem" \
      --load-ca-certificate "$dir/ca-cert.pem" --load-ca-privkey "$dir/ca-key.pem" \
      --template "$dir/tmpl/$side" --outfile "$dir/$side/$side-cert.pem" 2>/dev/null || return 1
    cp "$dir/ca-cert.pem" "$dir/$side/ca-cert.pem"
  done
}
