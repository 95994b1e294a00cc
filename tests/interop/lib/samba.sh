# shellcheck shell=bash
# Samba peers: smbd (reference receiver of SMB messages, via `message command`) and nmbd
# (reference NetBIOS name service peer), each instance in its own host namespace with every
# directory under $WORK, so nothing of the machine's own Samba is used or touched.
#
#   start_samba HOST [EXTRA_GLOBAL_LINES]      smbd + nmbd, waits until both are ready
#   start_nmbd HOST [EXTRA_GLOBAL_LINES]       nmbd alone, waits until it answers
#   nmbd_failed_to_register HOST 'NAME<TT>'    nmbd's log says another node defended it
#   stop_samba HOST
#   samba_dir HOST                             the instance's directory; messages land in
#                                              $(samba_dir HOST)/msgs/msg.*  (sender in meta.*)
#   samba_wait_message HOST TEXT_FILE          a message file holding exactly that text

# The host whose nmblookup probes whether nmbd is ready.
SAMBA_PROBE_HOST=hosta

samba_dir() { printf '%s\n' "$WORK/samba/$1"; }

# write_samba_conf HOST EXTRA: the smb.conf of SAMBA.md's test peer, plus settings that keep
# it quiet and self-contained (no printers, no browse master elections, no DNS proxy).
write_samba_conf() {
	local host=$1 extra=${2:-} d
	d=$(samba_dir "$host")
	mkdir -p "$d"/{priv,lock,state,cache,log,msgs,ncalrpc}
	# `message command` runs as the guest account (nobody): it must reach and write msgs/.
	chmod 0755 "$WORK" "$WORK/samba" "$d"
	chmod 1777 "$d/msgs"
	cat >"$d/smb.conf" <<-EOF
		[global]
		  workgroup = ${HOST_WG[$host]}
		  netbios name = ${HOST_NB[$host]}
		  server min protocol = NT1
		  smb ports = 139
		  interfaces = $HOST_IFACE
		  bind interfaces only = yes
		  private dir = $d/priv
		  lock directory = $d/lock
		  state directory = $d/state
		  cache directory = $d/cache
		  pid directory = $d/lock
		  ncalrpc dir = $d/ncalrpc
		  log file = $d/log/log.%m
		  log level = 2
		  load printers = no
		  printcap name = /dev/null
		  disable spoolss = yes
		  dns proxy = no
		  local master = no
		  domain master = no
		  preferred master = no
		  usershare max shares = 0
		  message command = /bin/sh -c 'cat %s > $d/msgs/msg.\$\$; echo "from=%f" > $d/msgs/meta.\$\$; rm %s' &
		$extra
	EOF
}

# start_samba HOST [EXTRA_GLOBAL_LINES]: nmbd, then smbd; waits until both are ready.
start_samba() {
	local host=$1 extra=${2:-} d pid
	d=$(samba_dir "$host")
	start_nmbd "$host" "$extra" || return 1
	# smbd: -F foreground, --no-process-group, in a session of its own (in_host_bg uses
	# setsid): Samba 4.17's smbd signals its whole process group when it stops.
	pid=$(in_host_bg "$host" "$d/log/smbd.out" smbd -F --no-process-group -s "$d/smb.conf")
	printf '%s\n' "$pid" >"$d/smbd.pid"
	printf '%s\n' "$pid" >>"$WORK/pids"
	wait_until "$SAMBA_READY_TIMEOUT" "smbd on ${HOST_IP[$host]}:139" \
		samba_listening "$host" 139 || { tail -n 20 "$d/log/smbd.out" "$d"/log/log.smbd 2>/dev/null; return 1; }
}

# start_nmbd HOST [EXTRA_GLOBAL_LINES]: nmbd alone (writes the instance's smb.conf); waits
# until it answers a broadcast query for its own NetBIOS name.
start_nmbd() {
	local host=$1 extra=${2:-} d pid
	d=$(samba_dir "$host")
	write_samba_conf "$host" "$extra"
	pid=$(in_host_bg "$host" "$d/log/nmbd.out" nmbd -F --no-process-group -s "$d/smb.conf")
	printf '%s\n' "$pid" >"$d/nmbd.pid"
	printf '%s\n' "$pid" >>"$WORK/pids"
	# nmbd answers broadcast queries only once its broadcast registration is over (it answers
	# unicast ones earlier), so readiness is a broadcast query from another host.
	wait_until "$SAMBA_READY_TIMEOUT" "nmbd answering a broadcast query for ${HOST_NB[$host]}<03>" \
		nmb_resolves "$SAMBA_PROBE_HOST" "${HOST_NB[$host]}#03" "${HOST_IP[$host]}" ||
		{ tail -n 20 "$d/log/nmbd.out" "$d"/log/log.nmbd 2>/dev/null; return 1; }
}

# nmbd_failed_to_register HOST NAME<TT>: nmbd's log says it could not register the name
# (another node defended it). Samba 4.17 logs
#   "my_name_register_failed: Failed to register my name NAME<03> on subnet ..."
# but keeps listing the name as active in its own node status.
nmbd_failed_to_register() {
	grep -F "Failed to register my name $2 " "$(samba_dir "$1")/log/log.nmbd"
}

stop_samba() {
	local host=$1 d f
	d=$(samba_dir "$host")
	for f in "$d/smbd.pid" "$d/nmbd.pid"; do
		[ -f "$f" ] && stop_pid "$(cat "$f")" TERM
		rm -f "$f"
	done
	return 0
}

# samba_listening HOST PORT: something listens on TCP PORT in HOST.
samba_listening() {
	in_host "$1" ss -Hltn "sport = :$2" | grep -q LISTEN
}

# nmb_resolves FROM_HOST NAME#TYPE EXPECTED_IP [bcast|unicast SERVER_IP]
# nmblookup run in FROM_HOST finds NAME#TYPE at EXPECTED_IP (broadcast query by default).
# Prints nmblookup's output.
nmb_resolves() {
	local from=$1 name=$2 want=$3 mode=${4:-bcast} server=${5:-}
	local out
	if [ "$mode" = unicast ]; then
		out=$(in_host "$from" nmblookup -s "$(client_conf "$from")" -U "$server" "$name" 2>&1)
	else
		out=$(in_host "$from" nmblookup -s "$(client_conf "$from")" -B "$NET_BROADCAST" "$name" 2>&1)
	fi
	printf '%s\n' "$out"
	# Success lines look like "10.77.0.10 SAMBAHOST<03>".
	printf '%s\n' "$out" | grep -q "^$want ${name%#*}<${name#*#}>"
}

# nmb_not_resolves FROM_HOST NAME#TYPE: a broadcast query for the name gets no answer.
nmb_not_resolves() {
	local from=$1 name=$2 out
	out=$(in_host "$from" nmblookup -s "$(client_conf "$from")" -B "$NET_BROADCAST" "$name" 2>&1)
	printf '%s\n' "$out"
	printf '%s\n' "$out" | grep -q "name_query failed to find name $name" &&
		! printf '%s\n' "$out" | grep -q "${name%#*}<${name#*#}>"
}

# nmb_resolves_only FROM_HOST NAME#TYPE IP: a broadcast query finds the name at IP and at no
# other address.
nmb_resolves_only() {
	local from=$1 name=$2 want=$3 out others
	out=$(nmb_resolves "$from" "$name" "$want") || { printf '%s\n' "$out"; return 1; }
	printf '%s\n' "$out"
	others=$(printf '%s\n' "$out" | grep " ${name%#*}<${name#*#}>" | grep -v "^$want ")
	[ -z "$others" ] || { echo "also answered by: $others"; return 1; }
}

# node_status FROM_HOST IP: `nmblookup -A IP` output (the node status name table).
node_status() {
	in_host "$1" nmblookup -s "$(client_conf "$1")" -A "$2" 2>&1
}

# node_status_has FROM_HOST IP NAME TYPE [unique|group] [NODE_TYPE]
# The node status of IP lists NAME<TYPE>, active, unique (default) or group, and of the
# given node type (B, P, M or H; default any). Samba prints
#   "	NAME            <03> -         B <ACTIVE> "    unique
#   "	NAME            <00> - <GROUP> B <ACTIVE> "    group
node_status_has() {
	local from=$1 ip=$2 name=$3 type=$4 kind=${5:-unique} ont=${6:-[BPMH]} out re
	out=$(node_status "$from" "$ip")
	printf '%s\n' "$out"
	if [ "$kind" = group ]; then
		re="^[[:space:]]+$name[[:space:]]+<$type> - <GROUP> $ont <ACTIVE>"
	else
		re="^[[:space:]]+$name[[:space:]]+<$type> -[[:space:]]+$ont <ACTIVE>"
	fi
	printf '%s\n' "$out" | grep -Eq "$re" || { echo "no line matches: $re"; return 1; }
}

# node_status_lacks FROM_HOST IP NAME TYPE: the node status of IP answers, and lists
# NAME<TYPE> no more as a live name: absent, or still shown but marked <DEREGISTERING>
# (RFC 1002 4.2.18 DRG flag: the name is being released).
node_status_lacks() {
	local out live
	out=$(node_status "$1" "$2")
	printf '%s\n' "$out"
	printf '%s\n' "$out" | grep -q "Looking up status of $2" || return 1
	printf '%s\n' "$out" | grep -Eq '<[0-9a-fA-F]{2}>' || { echo "no node status answer"; return 1; }
	live=$(printf '%s\n' "$out" | grep -E "^[[:space:]]+$3[[:space:]]+<$4>" | grep -v '<DEREGISTERING>')
	[ -z "$live" ] || { echo "$3<$4> is still listed as a live name"; return 1; }
}

# smbclient_message FROM_HOST TO_NAME IP [PORT] FROM_USER CALLING_NAME TEXT_FILE
# Sends the file's text with `smbclient -M`; fails if smbclient reports an error (it exits 0
# even when delivery failed, so its output is what tells).
smbclient_message() {
	local from=$1 to=$2 ip=$3 port=$4 user=$5 calling=$6 file=$7 out portargs=()
	[ -n "$port" ] && [ "$port" != 139 ] && portargs=(-p "$port")
	out=$(in_host "$from" smbclient -s "$(client_conf "$from")" -M "$to" -I "$ip" "${portargs[@]}" \
		-U "$user" -N -n "$calling" <"$file" 2>&1)
	local rc=$?
	printf '%s\n' "$out"
	[ "$rc" -eq 0 ] || { echo "smbclient exited $rc"; return 1; }
	if printf '%s\n' "$out" | grep -Eqi 'cli_message returned|NT_STATUS|failed|error'; then
		echo "smbclient reported a failure"
		return 1
	fi
}

# samba_wait_message HOST TEXT_FILE: smbd's message command wrote a file holding exactly
# the text (bounded by MESSAGE_WAIT_TIMEOUT).
samba_wait_message() {
	wait_until "$MESSAGE_WAIT_TIMEOUT" "smbd on $1 to store the message" \
		python3 "$INTEROP_DIR/tools/interop_util.py" dir-find "$(samba_dir "$1")/msgs" msg. --text-file "$2"
}
