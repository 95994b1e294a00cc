# shellcheck shell=bash
# The organisation's network: three subnets joined by a router, with no WINS, and a 3-node
# NATS JetStream cluster with one node on each subnet.
#
#   10.78.1.0/24   orga1 (SITEA1), orga2 (SITEA2), nats1 (10.78.1.100)
#   10.78.2.0/24   orgb1 (SITEB1), orgwin (a Windows-like sender: smbclient only), nats2
#   10.78.3.0/24   orgc1 (SITEC1), nats3
#
# The router namespace holds one bridge per subnet, each with the subnet's gateway address
# (.254), and forwards between them; like any router it forwards no broadcast, so NetBIOS
# name queries and mailslot broadcasts stay on their subnet and only the cluster joins them.
#
#   create_router                 the router namespace and its three bridges
#   add_routed_host NAME SUBNET ADDRESS NETBIOS_NAME WORKGROUP
#   start_nats_cluster            the three nodes (JetStream, cluster routes), waits for them
#   stop_nats_node N / start_nats_node N / stop_nats_cluster
#   nats_toml                     the [nats] table every service of the organisation uses

ORG_SUBNETS=(1 2 3)
ORG_WORKGROUP=ORGGROUP
ROUTER() { ns_of router; }
NATS_CLIENT_PORT=4222
NATS_ROUTE_PORT=6222

nats_addr() { printf '10.78.%s.100\n' "$1"; }

create_router() {
	local ns n
	ns=$(ROUTER)
	create_namespace "$ns" || return 1
	ip netns exec "$ns" sysctl -q -w net.ipv4.ip_forward=1 >/dev/null || return 1
	for n in "${ORG_SUBNETS[@]}"; do
		ip -n "$ns" link add "br$n" type bridge || return 1
		ip -n "$ns" link set "br$n" type bridge stp_state 0 forward_delay 0 || return 1
		ip -n "$ns" addr add "10.78.$n.254/24" brd "10.78.$n.255" dev "br$n" || return 1
		ip -n "$ns" link set "br$n" up || return 1
	done
}

# add_routed_host NAME SUBNET ADDRESS NETBIOS_NAME WORKGROUP: a host on subnet SUBNET (1-3),
# its default route through the router.
add_routed_host() {
	local host=$1 subnet=$2 addr=$3 nbname=$4 wg=$5
	plug_host "$host" "$(ROUTER)" "br$subnet" "$addr/24" "10.78.$subnet.255" || return 1
	ip -n "$(ns_of "$host")" route add default via "10.78.$subnet.254" || return 1
	register_host "$host" "$addr" "$nbname" "$wg"
}

nats_dir() { printf '%s\n' "$WORK/nats/n$1"; }

# The cluster's client URLs, as a TOML array's elements.
nats_urls() {
	local n sep=""
	for n in "${ORG_SUBNETS[@]}"; do
		printf '%s"nats://%s:%s"' "$sep" "$(nats_addr "$n")" "$NATS_CLIENT_PORT"
		sep=", "
	done
}

nats_toml() {
	cat <<-EOF
		[nats]
		servers = [$(nats_urls)]
		replicas = 3
	EOF
}

write_nats_config() {
	local n=$1 d routes="" m
	d=$(nats_dir "$n")
	mkdir -p "$d/store"
	for m in "${ORG_SUBNETS[@]}"; do
		routes="$routes${routes:+, }\"nats-route://$(nats_addr "$m"):$NATS_ROUTE_PORT\""
	done
	cat >"$d/server.conf" <<-EOF
		server_name: n$n
		listen: "$(nats_addr "$n"):$NATS_CLIENT_PORT"
		jetstream { store_dir: "$d/store" }
		cluster {
		  name: messenger-org
		  listen: "$(nats_addr "$n"):$NATS_ROUTE_PORT"
		  routes: [$routes]
		}
	EOF
}

start_nats_node() {
	local n=$1 d pid
	d=$(nats_dir "$n")
	pid=$(in_host_bg "nats$n" "$d/server.log" "$NATS_SERVER_BIN" -c "$d/server.conf")
	printf '%s\n' "$pid" >"$d/pid"
	printf '%s\n' "$pid" >>"$WORK/pids"
	wait_until 20 "nats-server n$n listening" \
		in_host orga1 bash -c "exec 3<>/dev/tcp/$(nats_addr "$n")/$NATS_CLIENT_PORT"
}

stop_nats_node() {
	local f
	f="$(nats_dir "$1")/pid"
	[ -f "$f" ] || return 0
	stop_pid "$(cat "$f")" KILL
	rm -f "$f"
}

# stop_nats_cluster: every node this run started (teardown; safe to call twice).
stop_nats_cluster() {
	local n
	for n in "${ORG_SUBNETS[@]}"; do
		stop_nats_node "$n"
	done
}

# The three nodes see each other and JetStream has a meta leader.
nats_cluster_ready() {
	grep -hq 'JetStream cluster new metadata leader\|Self is new JetStream cluster metadata leader' \
		"$WORK"/nats/n*/server.log
}

start_nats_cluster() {
	local n
	for n in "${ORG_SUBNETS[@]}"; do
		write_nats_config "$n"
	done
	for n in "${ORG_SUBNETS[@]}"; do
		start_nats_node "$n" || return 1
	done
	wait_until 30 "the JetStream cluster to elect a meta leader" nats_cluster_ready || {
		tail -n 20 "$WORK"/nats/n*/server.log
		return 1
	}
}
