# shellcheck shell=bash
# Organisation-wide delivery over NATS JetStream, on three routed subnets with no WINS and a
# 3-node cluster (replicas 3) with one node per subnet (lib/organisation.sh): directed
# messages, broadcasts, the gateway for NetBIOS senders, receipts, an offline user, a node
# killed under load, the cluster down and back.

# The first nats-server on PATH, else Debian's: put another release first on PATH to test it.
NATS_SERVER_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
# The user who logs in and out in the offline check (an account every Debian system has).
ORG_USER=nobody

org_log() { printf '%s\n' "$(md_dir "$1")/messengerd.log"; }

# org_logged HOST PATTERN: the service on HOST has logged a line matching PATTERN.
org_logged() { grep -q -- "$2" "$(org_log "$1")"; }

org_network() {
	local bad=0
	# Routed: every subnet reaches the others' hosts.
	host_reachable orga1 "${HOST_IP[orgb1]}" || bad=1
	host_reachable orga1 "${HOST_IP[orgc1]}" || bad=1
	host_reachable orgb1 "$(nats_addr 3)" || bad=1
	return "$bad"
}

ORG_SERVICES=(orga1 orga2 orgb1 orgb2 orgc1)

org_start_services() {
	local h extra
	for h in "${ORG_SERVICES[@]}"; do
		extra=$(nats_toml)
		# orgb1 answers for names held on other subnets (a WINS proxy), for orgwin.
		[ "$h" = orgb1 ] && extra="$extra"$'\n'"wins_proxy = true"
		start_messengerd "$h" "${HOST_NB[$h]}" "$ORG_WORKGROUP" "$extra" || return 1
	done
	for h in "${ORG_SERVICES[@]}"; do
		wait_until 30 "${HOST_NB[$h]} in the organisation's directory" \
			org_logged "$h" "name registered in the organisation's directory.*${HOST_NB[$h]}" ||
			{ tail -n 30 "$(org_log "$h")"; return 1; }
	done
}

org_directed() {
	local out text="across the router, $RUN_ID"
	# Without the cluster, SITEC1 is not found from subnet 1: no WINS, and broadcasts stop
	# at the router.
	out=$(in_host orga1 nmblookup -s "$(client_conf orga1)" -B 10.78.1.255 "SITEC1#03" 2>&1)
	printf '%s\n' "$out" | grep -q "name_query failed to find name SITEC1#03" ||
		{ echo "SITEC1 answered a broadcast query on subnet 1:"; echo "$out"; return 1; }
	messenger_cli orga1 send SITEC1 "$text" || return 1
	wait_inbox orgc1 --text "$text" --to SITEC1 --transport nats
}

# org_count HOST TEXT N: exactly N copies of TEXT in HOST's inbox.
org_count() {
	local host=$1
	inbox_has "$host" --text "$2" --count "$3"
}

org_broadcast() {
	local text="the file server goes down in 5 minutes ($RUN_ID)" h
	messenger_cli orga1 send '*' "$text" || return 1
	# Over NATS on the other subnets; on the sender's subnet by mailslot and over NATS both.
	wait_inbox orgb1 --text "$text" --transport nats || return 1
	wait_inbox orgc1 --text "$text" --transport nats || return 1
	wait_inbox orga2 --text "$text" || return 1
	# Each host's broadcasts arrive in order: once a later one is in, the twin of the first
	# had its chance to arrive too.
	messenger_cli orga1 send '*' "marker after the broadcast ($RUN_ID)" || return 1
	for h in orga2 orgb1 orgb2 orgc1; do
		wait_inbox "$h" --text "marker after the broadcast ($RUN_ID)" || return 1
	done
	sleep 1
	for h in "${ORG_SERVICES[@]}"; do
		org_count "$h" "$text" 1 || { echo "on $h"; return 1; }
	done
	# On the sender's subnet both copies came, and the second was recognised.
	org_logged orga2 "a broadcast that came .* too is already in the inbox" ||
		{ echo "orga2 did not get the broadcast both ways"; return 1; }
}

org_gateway() {
	local file
	file=$(save_text org-gateway "from a Windows PC on subnet 2 to SITEC1 on subnet 3 ($RUN_ID)")
	# The sender is pointed at its own subnet's service (10.78.2.1), which holds no SITEC1.
	smbclient_message orgwin SITEC1 "${HOST_IP[orgb1]}" 139 winuser WINPC "$file" || return 1
	wait_inbox orgc1 --text-file "$file" --from WINUSER --transport nats || return 1
	# A name nobody holds is refused, as without the gateway.
	file=$(save_text org-gateway-nowhere "to nobody at all ($RUN_ID)")
	if smbclient_message orgwin NOSUCHNAME "${HOST_IP[orgb1]}" 139 winuser WINPC "$file" >"$WORK/org-nowhere.out" 2>&1; then
		echo "a message to a name in no directory was accepted:"
		cat "$WORK/org-nowhere.out"
		return 1
	fi
	smbclient_refused "$(cat "$WORK/org-nowhere.out")"
}

# org_nmblookup_bcast HOST NAME: nmblookup's broadcast query on HOST's subnet, its output.
org_nmblookup_bcast() {
	local subnet
	subnet=${HOST_IP[$1]%.*}
	in_host "$1" nmblookup -s "$(client_conf "$1")" -B "$subnet.255" "$2#03" 2>&1
}

org_wins_proxy() {
	local out file
	# SITEC1 is on subnet 3: orgb1 answers for it, with its own address.
	out=$(org_nmblookup_bcast orgwin SITEC1)
	printf '%s\n' "$out"
	printf '%s\n' "$out" | grep -q "^${HOST_IP[orgb1]} SITEC1<03>" ||
		{ echo "orgb1 did not answer for SITEC1"; return 1; }
	# So a sender on subnet 2 reaches SITEC1 by name alone, with no -I.
	file=$(save_text org-proxy "found by broadcast, sent through the gateway ($RUN_ID)")
	out=$(in_host orgwin smbclient -s "$(client_conf orgwin)" -M SITEC1 -U winuser -N -n WINPC <"$file" 2>&1)
	printf '%s\n' "$out"
	wait_inbox orgc1 --text-file "$file" --from WINUSER --transport nats || return 1
	# SITEB2 is on subnet 2 itself: only SITEB2 answers, never the proxy.
	out=$(org_nmblookup_bcast orgwin SITEB2)
	printf '%s\n' "$out"
	printf '%s\n' "$out" | grep -q "^${HOST_IP[orgb2]} SITEB2<03>" || { echo "SITEB2 did not answer"; return 1; }
	if printf '%s\n' "$out" | grep -q "^${HOST_IP[orgb1]} SITEB2"; then
		echo "the proxy answered for a name held on its own subnet"
		return 1
	fi
	# A name in no directory: nobody answers.
	out=$(org_nmblookup_bcast orgwin NOSUCHNAME)
	printf '%s\n' "$out"
	printf '%s\n' "$out" | grep -q "name_query failed to find name NOSUCHNAME#03" ||
		{ echo "someone answered for a name nobody holds"; return 1; }
	# Even after a while, it has not answered for those two.
	sleep 2
	if org_logged orgb1 "answered for a name held on another subnet.*\(SITEB2\|NOSUCHNAME\)"; then
		echo "orgb1 answered for SITEB2 or NOSUCHNAME:"
		grep "WINS proxy" "$(org_log orgb1)"
		return 1
	fi
}

org_wait() {
	local text="read me on subnet 2 ($RUN_ID)" out
	messenger_cli orga1 send --wait=25 SITEB1 "$text" >"$WORK/org-wait.out" 2>&1 &
	local sender=$!
	# Listing the inbox as root reads the message (it is for everyone on SITEB1).
	wait_inbox orgb1 --text "$text" || return 1
	wait "$sender"
	local rc=$?
	out=$(cat "$WORK/org-wait.out")
	printf '%s\n' "$out"
	[ "$rc" -eq 0 ] || { echo "send --wait exited $rc"; return 1; }
	printf '%s\n' "$out" | grep -q "SITEB1 has read the message" ||
		{ echo "no read receipt reported"; return 1; }
}

org_offline() {
	local text="for $ORG_USER, who is out ($RUN_ID)" out upper
	upper=$(printf '%s' "$ORG_USER" | tr '[:lower:]' '[:upper:]')
	set_logged_in orgb1 "$ORG_USER:pts/org" || return 1
	wait_until 30 "$upper registered from orgb1" \
		org_logged orgb1 "name registered in the organisation's directory.*$upper" || return 1
	set_logged_in orgb1 "-:pts/org" || return 1
	wait_until 30 "the logout on orgb1 recorded" \
		org_logged orgb1 "logout recorded in the organisation's directory" || return 1
	out=$(messenger_cli orga1 send "$ORG_USER" "$text" 2>&1) || { echo "$out"; return 1; }
	printf '%s\n' "$out"
	printf '%s\n' "$out" | grep -q "$upper is not logged on; the message will be delivered when $upper logs on" ||
		{ echo "the sender was not told the message waits"; return 1; }
	# The next login, on another subnet.
	set_logged_in orgc1 "$ORG_USER:pts/org2" || return 1
	# Each user lists only their own inbox: as the user, as they would.
	wait_inbox orgc1 --as "$ORG_USER" --text "$text" --transport nats || return 1
	inbox_lacks orgb1 --as "$ORG_USER" --text "$text"
}

# org_all_arrived_once HOST ACKED_FILE PREFIX: every text listed in ACKED_FILE is in HOST's
# inbox exactly once, and no text with PREFIX that was not acknowledged is there twice.
org_all_arrived_once() {
	local host=$1
	inbox_json | python3 -c '
import collections, json, sys
acked = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
prefix = sys.argv[2]
seen = collections.Counter()
for line in sys.stdin:
    line = line.strip()
    if line:
        t = json.loads(line).get("text", "")
        if t.startswith(prefix):
            seen[t] += 1
missing = [t for t in acked if seen[t] == 0]
doubled = [t for t, n in seen.items() if n > 1]
print(f"{len(acked)} acknowledged, {len(seen)} arrived, {len(missing)} missing, {len(doubled)} doubled")
sys.exit(0 if not missing and not doubled else 1)' "$2" "$3"
}

ORG_LOAD_MESSAGES=120
ORG_KILL_AFTER=40

org_node_killed() {
	local i acked="$WORK/org-acked" failed=0 prefix="load $RUN_ID #"
	: >"$acked"
	for ((i = 1; i <= ORG_LOAD_MESSAGES; i++)); do
		if [ "$i" = "$ORG_KILL_AFTER" ]; then
			echo "killing nats node n1 after $((i - 1)) messages"
			stop_nats_node 1
		fi
		if messenger_cli orga1 send SITEC1 "$prefix$i" >/dev/null 2>&1; then
			printf '%s\n' "$prefix$i" >>"$acked"
		else
			failed=$((failed + 1))
		fi
	done
	echo "$failed of $ORG_LOAD_MESSAGES sends failed while the node died"
	wait_until 60 "every acknowledged message in SITEC1's inbox, once" \
		org_all_arrived_once orgc1 "$acked" "$prefix" || return 1
	org_all_arrived_once orgc1 "$acked" "$prefix"
	# Two of three nodes keep a quorum: the cluster kept taking messages.
	[ "$(wc -l <"$acked")" -ge $((ORG_LOAD_MESSAGES - 10)) ] ||
		{ echo "too few messages acknowledged with one node dead"; return 1; }
	start_nats_node 1
}

org_cluster_down() {
	local n t0 t1 out rc
	for n in "${ORG_SUBNETS[@]}"; do
		stop_nats_node "$n"
	done
	# Past the services' reconnect grace (2 s), the cluster counts as down.
	sleep 3
	t0=$(date +%s%N)
	out=$(messenger_cli orga1 send SITEC1 "while the cluster is down" 2>&1)
	rc=$?
	t1=$(date +%s%N)
	printf '%s\n' "$out"
	echo "the send took $(((t1 - t0) / 1000000)) ms and exited $rc"
	[ "$rc" -ne 0 ] || { echo "a send to another subnet succeeded with no cluster"; return 1; }
	[ $(((t1 - t0) / 1000000)) -lt 10000 ] || { echo "the send did not fail at once"; return 1; }
	printf '%s\n' "$out" | grep -qi "NATS" ||
		{ echo "the error does not say the organisation's network is unreachable"; return 1; }
	# The LAN works as without [nats].
	messenger_cli orga1 send SITEA2 "on the LAN while the cluster is down ($RUN_ID)" || return 1
	wait_inbox orga2 --text "on the LAN while the cluster is down ($RUN_ID)" --transport session
}

org_reconnect() {
	local n
	for n in "${ORG_SUBNETS[@]}"; do
		start_nats_node "$n" || return 1
	done
	wait_until 60 "a send across subnets to work again" \
		messenger_cli orga1 send SITEC1 "the cluster is back ($RUN_ID)" || return 1
	wait_inbox orgc1 --text "the cluster is back ($RUN_ID)" --transport nats
}

run_organisation_checks() {
	if [ "$HAVE_MESSENGERD" != 1 ]; then
		skip_check "organisation checks" "$MESSENGERD_MISSING"
		return 0
	fi
	if [ ! -x "$NATS_SERVER_BIN" ]; then
		skip_check "organisation checks" "nats-server is not installed (Debian package nats-server)"
		return 0
	fi
	info "organisation: three routed subnets, no WINS, a 3-node JetStream cluster ($("$NATS_SERVER_BIN" --version 2>/dev/null || echo "nats-server, version unknown"))"
	create_router || die "cannot create the router"
	#               host    subnet address      NetBIOS name  workgroup
	add_routed_host orga1   1      10.78.1.1    SITEA1        "$ORG_WORKGROUP" || die "cannot create orga1"
	add_routed_host orga2   1      10.78.1.2    SITEA2        "$ORG_WORKGROUP" || die "cannot create orga2"
	add_routed_host orgb1   2      10.78.2.1    SITEB1        "$ORG_WORKGROUP" || die "cannot create orgb1"
	add_routed_host orgb2   2      10.78.2.2    SITEB2        "$ORG_WORKGROUP" || die "cannot create orgb2"
	add_routed_host orgwin  2      10.78.2.50   WINPC         "$ORG_WORKGROUP" || die "cannot create orgwin"
	add_routed_host orgc1   3      10.78.3.1    SITEC1        "$ORG_WORKGROUP" || die "cannot create orgc1"
	local n
	for n in "${ORG_SUBNETS[@]}"; do
		add_routed_host "nats$n" "$n" "$(nats_addr "$n")" "NATS$n" "$ORG_WORKGROUP" || die "cannot create nats$n"
	done
	check "organisation: three subnets joined by a router" org_network
	check "organisation: a 3-node JetStream cluster, one node on each subnet" start_nats_cluster
	if [ "$FAILED" -gt 0 ] && ! nats_cluster_ready; then
		skip_check "organisation delivery checks" "no cluster"
		return 0
	fi
	check "organisation: services on three subnets hold their names in the directory" org_start_services
	check "organisation: a directed message crosses the router through JetStream, with no WINS" org_directed
	check "organisation: * reaches the workgroup on every subnet, once per host (mailslot and NATS on the sender's subnet)" org_broadcast
	check "organisation: smbclient -M to a name on another subnet, through the service of the sender's subnet" org_gateway
	check "organisation: the WINS proxy answers for a name on another subnet, never for one on its own (smbclient -M by name alone)" org_wins_proxy
	check "organisation: send --wait across subnets reports the read" org_wait
	check "organisation: a user logged in nowhere gets the message at the next login, on another subnet" org_offline
	check "organisation: a NATS node killed under load loses and doubles no acknowledged message" org_node_killed
	check "organisation: with the cluster down the LAN works and a remote send fails at once, saying why" org_cluster_down
	check "organisation: the services reconnect by themselves when the cluster is back" org_reconnect
}
