# SPDX-License-Identifier: GPL-3.0-or-later
# replica_hosts.bash: the standby host of replicate.bats and bench-replicate.sh.  It is the
# network namespace xp-standby, joined to the root namespace (libvirtd, the VMs, the source) by
# the veth xp-root (10.200.1.1) / xp-sb (10.200.1.2), with an sshd of its own on
# 10.200.1.2:2202 that accepts one key made here.  Its standby directories live on the shared
# filesystem, where the one libvirtd can start a failed-over domain.

XP_NS=xp-standby
XP_SRC_IP=10.200.1.1
XP_IP=10.200.1.2
XP_PORT=2202

# xp_hosts_up DIR: namespace, veth, keys, known_hosts and sshd (config and keys in DIR);
# sets XP_RSH to the ssh command that reaches it.
xp_hosts_up () {
  local d=$1 i
  xp_hosts_down "$d"
  mkdir -p "$d" /run/sshd && chmod 700 "$d"
  ip netns add $XP_NS || return 1
  ip link add xp-root type veth peer name xp-sb netns $XP_NS || return 1
  ip addr add $XP_SRC_IP/24 dev xp-root && ip link set xp-root up || return 1
  ip -n $XP_NS addr add $XP_IP/24 dev xp-sb || return 1
  ip -n $XP_NS link set lo up && ip -n $XP_NS link set xp-sb up || return 1
  rm -f "$d"/hostkey* "$d"/key*
  ssh-keygen -q -t ed25519 -N '' -f "$d/hostkey" && ssh-keygen -q -t ed25519 -N '' -f "$d/key" || return 1
  cp "$d/key.pub" "$d/authorized_keys"
  cat > "$d/sshd_config" <<CONF
ListenAddress $XP_IP:$XP_PORT
HostKey $d/hostkey
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
# a cut link ends the session (and the receiver) within seconds
ClientAliveInterval 2
ClientAliveCountMax 3
CONF
  echo "[$XP_IP]:$XP_PORT $(cut -d' ' -f1,2 "$d/hostkey.pub")" > "$d/known_hosts"
  vb_fresh_root ip netns exec $XP_NS /usr/sbin/sshd -f "$d/sshd_config" || return 1
  XP_RSH="ssh -i $d/key -o UserKnownHostsFile=$d/known_hosts -o StrictHostKeyChecking=yes -o ConnectTimeout=10"
  for i in $(seq 50); do
    $XP_RSH -p $XP_PORT root@$XP_IP true 2>/dev/null && return 0
    sleep 0.1
  done
  echo "sshd in $XP_NS does not answer" >&2
  return 1
}

# xp_hosts_down DIR: sshd (and its sessions), the namespace and the veth.
xp_hosts_down () {
  local d=$1 pid
  pid=$(cat "$d/sshd.pid" 2>/dev/null) && kill "$pid" 2>/dev/null || true
  # the sessions of that sshd run in the namespace: end them with it
  for pid in $(ip netns pids $XP_NS 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  ip netns del $XP_NS 2>/dev/null || true
  ip link del xp-root 2>/dev/null || true
  rm -f "$d/sshd.pid"
}

# xp_rate RATE: limit what the source sends to the standby (tbf), "" to lift it.
xp_rate () {
  tc qdisc del dev xp-root root 2>/dev/null || true
  [ -z "$1" ] || tc qdisc add dev xp-root root tbf rate "$1" burst 32kb latency 400ms
}

# xp_link up|down: cut the link (and mend it).
xp_link () { ip link set xp-root "$1"; }
