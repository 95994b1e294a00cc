# shellcheck shell=bash
# The test network: one namespace per host, all on one bridge (in a namespace of its own),
# 10.77.0.0/24, broadcast 10.77.0.255; and the packet capture on every bridge port.
#
# Hosts are referred to by a short name (hosta, sambahost, ...). Lookups:
#   ${HOST_IP[hosta]}   10.77.0.1
#   ${HOST_NB[hosta]}   HOSTA       (NetBIOS computer name)
#   ${HOST_WG[hosta]}   TESTGROUP   (workgroup)
#   ns_of hosta         the namespace's name
#   in_host hosta cmd...  run a command inside it (bounded by CMD_TIMEOUT)

NET_PREFIX_LEN=24
NET_BROADCAST=10.77.0.255
# Inside every host namespace the veth end has this name (namespaces keep names apart).
HOST_IFACE=eth0
BRIDGE_IFACE=br0

declare -A HOST_IP HOST_NB HOST_WG
HOSTS=()         # hosts in creation order
NAMESPACES=()    # every namespace we created (host ones and the bridge one)
CAPTURE_PIDS=()  # tcpdump processes

ns_of() { printf '%s-%s\n' "$NS_PREFIX" "$1"; }
BRIDGE_NS() { ns_of bridge; }

# in_host HOST command [args...]: run inside HOST's namespace, bounded by CMD_TIMEOUT.
# --foreground keeps the command in this script's process group, so Ctrl-C reaches it and
# the script's trap runs at once (a command in a group of its own would hold the script
# until it ends).
in_host() {
	local host=$1
	shift
	timeout --foreground -k "$KILL_GRACE" "$CMD_TIMEOUT" ip netns exec "$(ns_of "$host")" "$@"
}

# in_host_bg HOST LOGFILE command [args...]: start a long-running program inside HOST in its
# own session (setsid: signals meant for this script's process group never reach it, and its
# own group-wide kills never reach us). Prints its PID. stdin is /dev/null and all output goes
# to LOGFILE, so it holds no pipe of a check's output open.
in_host_bg() {
	local host=$1 logfile=$2
	shift 2
	ip netns exec "$(ns_of "$host")" setsid "$@" </dev/null >>"$logfile" 2>&1 &
	printf '%s\n' "$!"
}

# create_namespace NAME: create a namespace with lo up and IPv6 off (no router solicitations
# or DAD noise in the capture).
create_namespace() {
	local ns=$1
	ip netns add "$ns" || return 1
	NAMESPACES+=("$ns")
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1
	ip netns exec "$ns" sysctl -q -w net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1
	return 0
}

# create_bridge: the namespace holding the bridge every host is plugged into.
create_bridge() {
	local ns
	ns=$(BRIDGE_NS)
	create_namespace "$ns" || return 1
	ip -n "$ns" link add "$BRIDGE_IFACE" type bridge || return 1
	# Forward at once: no STP listening/learning delay.
	ip -n "$ns" link set "$BRIDGE_IFACE" type bridge stp_state 0 forward_delay 0 || return 1
	ip -n "$ns" link set "$BRIDGE_IFACE" up
}

# add_host NAME ADDRESS NETBIOS_NAME WORKGROUP
# Creates namespace, veth pair (eth0 inside the host, p-NAME on the bridge), address with
# broadcast, and starts capturing that bridge port if the capture is running.
add_host() {
	local host=$1 addr=$2 nbname=$3 wg=$4
	plug_host "$host" "$(BRIDGE_NS)" "$BRIDGE_IFACE" "$addr/$NET_PREFIX_LEN" "$NET_BROADCAST" || return 1
	register_host "$host" "$addr" "$nbname" "$wg"
	if [ "${CAPTURE_RUNNING:-0}" = 1 ]; then
		start_capture_port "p-$host" || return 1
	fi
	return 0
}

# plug_host NAME BRIDGE_NAMESPACE BRIDGE ADDRESS/PREFIX BROADCAST: the host's namespace, with
# eth0 holding the address, plugged into BRIDGE (port p-NAME) in BRIDGE_NAMESPACE.
plug_host() {
	local host=$1 brns=$2 bridge=$3 cidr=$4 brd=$5
	local ns port
	ns=$(ns_of "$host")
	port="p-$host"
	[ "${#port}" -le 15 ] || die "interface name $port too long (host name $host)"
	create_namespace "$ns" || return 1
	ip -n "$brns" link add "$port" type veth peer name "$HOST_IFACE" netns "$ns" || return 1
	ip -n "$brns" link set "$port" master "$bridge" || return 1
	ip -n "$brns" link set "$port" up || return 1
	ip -n "$ns" addr add "$cidr" brd "$brd" dev "$HOST_IFACE" || return 1
	ip -n "$ns" link set "$HOST_IFACE" up
}

# register_host NAME ADDRESS NETBIOS_NAME WORKGROUP: the lookups and the client smb.conf.
register_host() {
	local host=$1
	HOSTS+=("$host")
	HOST_IP[$host]=$2
	HOST_NB[$host]=$3
	HOST_WG[$host]=$4
	mkdir -p "$WORK/hosts/$host"
	write_client_conf "$host"
}

# A client-side smb.conf per host for smbclient and nmblookup, so that they never read the
# machine's /etc/samba/smb.conf nor write to its cache directories.
write_client_conf() {
	local host=$1 d="$WORK/hosts/$1"
	mkdir -p "$d/samba-client/lock" "$d/samba-client/state" "$d/samba-client/cache" \
		"$d/samba-client/private"
	cat >"$d/client.conf" <<-EOF
		[global]
		  workgroup = ${HOST_WG[$host]}
		  netbios name = ${HOST_NB[$host]}-C
		  interfaces = $HOST_IFACE
		  bind interfaces only = yes
		  name resolve order = bcast
		  lock directory = $d/samba-client/lock
		  state directory = $d/samba-client/state
		  cache directory = $d/samba-client/cache
		  private dir = $d/samba-client/private
		  log file = $d/samba-client/log.%m
		  client min protocol = NT1
	EOF
}
client_conf() { printf '%s\n' "$WORK/hosts/$1/client.conf"; }

# host_of_ip ADDRESS: the host name that has this address.
host_of_ip() {
	local h
	for h in "${HOSTS[@]}"; do
		[ "${HOST_IP[$h]}" = "$1" ] && printf '%s\n' "$h" && return 0
	done
	return 1
}

# ---------------------------------------------------------------------------------------------
# Capture: one tcpdump per bridge port, inbound direction only, so every frame is recorded
# exactly once (when it enters the bridge from its sender), unicast frames between two hosts
# included (those never pass the bridge device itself). Merged into one file at the end.
# ---------------------------------------------------------------------------------------------
CAPTURE_DIR=""
CAPTURE_FILE=""
CAPTURE_RUNNING=0

start_capture() {
	CAPTURE_DIR="$WORK/capture"
	CAPTURE_FILE="$CAPTURE_DIR/all.pcap"
	mkdir -p "$CAPTURE_DIR"
	CAPTURE_RUNNING=1
	local h
	for h in "${HOSTS[@]}"; do
		start_capture_port "p-$h" || return 1
	done
}

start_capture_port() {
	local port=$1 pid
	# -Z root: write the file as root (Debian's tcpdump would switch to user tcpdump).
	# -U: write each packet at once, so nothing is lost if the run is cut short.
	# -s 0: whole packets. -Q in: only frames entering the bridge on this port.
	# setsid: in a session of its own, so Ctrl-C on the script does not end the capture
	# before the teardown does.
	ip netns exec "$(BRIDGE_NS)" setsid tcpdump -i "$port" -Q in -U -n -s 0 -Z root \
		-w "$CAPTURE_DIR/port-$port.pcap" </dev/null >"$CAPTURE_DIR/tcpdump-$port.log" 2>&1 &
	pid=$!
	CAPTURE_PIDS+=("$pid")
	printf '%s\n' "$pid" >>"$WORK/pids"
	wait_until "$CAPTURE_START_TIMEOUT" "tcpdump listening on $port" \
		grep -q 'listening on' "$CAPTURE_DIR/tcpdump-$port.log" ||
		{ cat "$CAPTURE_DIR/tcpdump-$port.log" >&2; return 1; }
}

# stop_capture: stop every tcpdump (SIGINT: it flushes and prints its counters) and merge
# the per-port files into $CAPTURE_FILE. Safe to call twice.
stop_capture() {
	[ "$CAPTURE_RUNNING" = 1 ] || return 0
	CAPTURE_RUNNING=0
	local pid
	for pid in "${CAPTURE_PIDS[@]}"; do
		stop_pid "$pid" INT
	done
	local files=("$CAPTURE_DIR"/port-*.pcap)
	if [ -e "${files[0]}" ]; then
		mergecap -F pcap -w "$CAPTURE_FILE" "${files[@]}" 2>"$CAPTURE_DIR/mergecap.log"
	fi
}

# ---------------------------------------------------------------------------------------------
# Teardown: everything running in our namespaces (found by `ip netns pids`, so a daemon
# started by a failed check is not missed), then the namespaces (deleting the bridge
# namespace removes the bridge and every veth pair).
# ---------------------------------------------------------------------------------------------
kill_namespace_processes() {
	local ns pids pid deadline
	for ns in "${NAMESPACES[@]}"; do
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -n "$pids" ] || continue
		log "stopping leftover processes in $ns: $(echo $pids)"
		for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
	done
	deadline=$(($(date +%s) + STOP_TIMEOUT))
	for ns in "${NAMESPACES[@]}"; do
		while [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && [ "$(date +%s)" -lt "$deadline" ]; do
			sleep "$POLL_INTERVAL"
		done
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			log "process $pid in $ns ignored SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		done
	done
}

delete_namespaces() {
	local ns
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	NAMESPACES=()
}

# host_reachable FROM_HOST ADDRESS: a TCP connection attempt to a closed port (9, discard)
# is refused, which proves the address answers over the bridge (no ping on the machine).
host_reachable() {
	local out
	out=$(in_host "$1" bash -c "exec 3<>/dev/tcp/$2/9" 2>&1)
	printf '%s\n' "$out" | grep -q 'Connection refused' || { echo "$1 -> $2: $out"; return 1; }
}

network_reachable() {
	local h bad=0
	for h in "${HOSTS[@]}"; do
		[ "$h" = hosta ] && continue
		host_reachable hosta "${HOST_IP[$h]}" || bad=1
	done
	return "$bad"
}
