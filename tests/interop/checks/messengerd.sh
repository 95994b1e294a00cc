# shellcheck shell=bash
# Checks of messengerd and messenger against Samba and against each other. Each starts with
# need_messengerd, so each reports "skipped: messengerd not built yet" until the programs
# exist. Numbers refer to the items of the interop issue:
#   1 smbclient -M -> messengerd      2 messenger send -> smbd     3 nmblookup vs our names
#   4 messenger send resolves nmbd's name by broadcast             5 name conflicts both ways
#   6 broadcasts by workgroup         7 capture decodes cleanly (registered as expectations)
#
# Roles: hostb is the receiver of directed messages (computer name HOSTB, logged-in user
# carol, added name TEAMLEAD, extra raw SMB port); hosta sends; hostc and hostd receive
# broadcasts (hostd is in OTHERGROUP); hoste sends without a daemon; sambahost runs smbd and
# nmbd; samba2 runs an nmbd that tries to take HOSTC.

# The user "logged in" on hostb (fake utmp). Each user reads only their own inbox, so this is
# an account that exists on every Debian machine, whose inbox the suite reads by running
# `messenger inbox` as that user (setpriv). The terminal is one that cannot exist under
# /dev, so messengerd's attempt to show the message never reaches a real terminal.
LOGGED_IN_USER=nobody
LOGGED_IN_TTY=pts/interop
# The name added on hostb with `messenger name`.
ADDED_NAME=TEAMLEAD
# A name nobody registers.
FOREIGN_NAME=NOTMINE

upper() { printf '%s\n' "$1" | tr '[:lower:]' '[:upper:]'; }

# need_daemon HOST: messengerd was started on HOST and is still running.
need_daemon() {
	messengerd_running "$1" && return 0
	echo "messengerd on $1 is not running; its log ends with:"
	tail -n 20 "$(md_dir "$1")/messengerd.log" 2>/dev/null
	return 1
}

# ---------------------------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------------------------
md_start_hosta() {
	need_messengerd
	start_messengerd hosta HOSTA TESTGROUP
}
md_start_hostb() {
	need_messengerd
	set_logged_in hostb "$LOGGED_IN_USER:$LOGGED_IN_TTY" || return 1
	start_messengerd hostb HOSTB TESTGROUP "raw_session_ports = [$RAW_SESSION_PORT]"
}
md_start_hostc() {
	need_messengerd
	start_messengerd hostc HOSTC TESTGROUP
}
md_start_hostd() {
	need_messengerd
	start_messengerd hostd HOSTD OTHERGROUP
}
md_hoste_config() {
	need_messengerd
	write_cli_config hoste HOSTE TESTGROUP
}

# ---------------------------------------------------------------------------------------------
# 3. nmblookup resolves what messengerd registered (run first: the rest relies on the names)
# ---------------------------------------------------------------------------------------------
md_names_bcast() {
	need_messengerd
	need_daemon hostb || return 1
	local ip=${HOST_IP[hostb]} name u
	u=$(upper "$LOGGED_IN_USER")
	for name in HOSTB "$u"; do
		wait_until "$NAME_WAIT_TIMEOUT" "$name<03> to resolve by broadcast" \
			nmb_resolves hosta "$name#03" "$ip" || return 1
		nmb_resolves_only hosta "$name#03" "$ip" || return 1
	done
	expect_fields "messengerd registers HOSTB<03> (unique, its address) by broadcast" \
		"nbns.flags.opcode==5 && nbns.flags.response==0 && nbns.flags.broadcast==1 && ip.src==$ip && ip.dst==$NET_BROADCAST" \
		"nbns.name nbns.nb_flags.group nbns.addr" "^HOSTB<03>.*[[:space:]]0[[:space:]]+${ip//./\\.}\$"
	expect_fields "messengerd registers the logged-in user's name $u<03> by broadcast" \
		"nbns.flags.opcode==5 && nbns.flags.response==0 && ip.src==$ip && ip.dst==$NET_BROADCAST" \
		"nbns.name" "^$u<03>"
	expect_fields "messengerd answers a broadcast query for HOSTB<03> with its address" \
		"nbns.flags.opcode==0 && nbns.flags.response==1 && nbns.flags.rcode==0 && ip.src==$ip && ip.dst==${HOST_IP[hosta]}" \
		"nbns.name nbns.addr" "^HOSTB<03>.*[[:space:]]${ip//./\\.}\$"
}

md_names_unicast() {
	need_messengerd
	need_daemon hostb || return 1
	local ip=${HOST_IP[hostb]}
	nmb_resolves hosta 'HOSTB#03' "$ip" unicast "$ip" || return 1
	nmb_resolves hosta "$(upper "$LOGGED_IN_USER")#03" "$ip" unicast "$ip"
}

md_unknown_name_unicast() {
	need_messengerd
	need_daemon hostb || return 1
	local ip=${HOST_IP[hostb]} out t0
	# It answers for its own name (so it is listening) ...
	nmb_resolves hosta 'HOSTB#03' "$ip" unicast "$ip" || return 1
	t0=$(now_epoch)
	# ... and does not claim one it does not have.
	out=$(in_host hosta nmblookup -s "$(client_conf hosta)" -U "$ip" "$FOREIGN_NAME#03" 2>&1)
	printf '%s\n' "$out"
	printf '%s\n' "$out" | grep -q "name_query failed to find name $FOREIGN_NAME#03" || return 1
	expect_frames "messengerd gives no positive answer for $FOREIGN_NAME<03>, which it does not have" \
		"nbns.flags.response==1 && nbns.flags.rcode==0 && nbns.count.answers > 0 && ip.src==$ip && nbns.name contains \"$FOREIGN_NAME\" && frame.time_epoch >= $t0" 0 0
}

# smbclient_refused OUTPUT: smbclient's output shows the receiver refused the message (not
# that nothing listened or answered, which would make a refusal check pass for no reason).
smbclient_refused() {
	if printf '%s\n' "$1" | grep -Eq 'CONNECTION_REFUSED|IO_TIMEOUT|HOST_UNREACHABLE|NETWORK_UNREACHABLE'; then
		echo "smbclient could not reach the receiver at all:"
		printf '%s\n' "$1"
		return 1
	fi
}

# ---------------------------------------------------------------------------------------------
# 1. smbclient -M delivers to messengerd
# ---------------------------------------------------------------------------------------------

# smbclient_to_hostb TO_NAME PORT TEXT_FILE [READER]: send from hosta as alice/ALICEPC,
# expect the exact text in hostb's inbox (READER's inbox if given, else root's) addressed to
# TO_NAME from alice, and register what the capture must show.
smbclient_to_hostb() {
	local to=$1 port=$2 file=$3 reader=${4:-} ip=${HOST_IP[hostb]} t0 as=()
	[ -n "$reader" ] && as=(--as "$reader")
	t0=$(now_epoch)
	smbclient_message hosta "$to" "$ip" "$port" alice ALICEPC "$file" || return 1
	wait_inbox hostb "${as[@]}" --text-file "$file" --to "$to" --from alice || return 1
	expect_smb_text "smbclient's text to $to on $ip:$port is the one the inbox holds" \
		"$ip" "$port" alice "$to" "$file"
	expect_frames "messengerd answers the 0xD5 to $to (port $port) with WordCount 1 (a group id), no error" \
		"smb.cmd==0xd5 && smb.flags.response==1 && smb.wct==1 && smb.error_class==0 && ip.src==$ip && tcp.srcport==$port && frame.time_epoch >= $t0" 1
	expect_frames "messengerd acknowledges the 0xD7 and 0xD6 to $to (port $port) without error" \
		"smb.cmd in {0xd6 0xd7} && smb.flags.response==1 && smb.error_class==0 && ip.src==$ip && tcp.srcport==$port && frame.time_epoch >= $t0" 2
	if [ "$port" = 139 ]; then
		expect_fields "messengerd accepts smbclient's session request for $to<03>" \
			"nbss.type==0x82 && ip.src==$ip && frame.time_epoch >= $t0" "ip.dst" "^${HOST_IP[hosta]//./\\.}\$"
	fi
}

md_smbclient_computer_name() {
	need_messengerd
	need_daemon hostb || return 1
	smbclient_to_hostb HOSTB 139 "$(save_text to-computer-name "To the computer name HOSTB, run $RUN_ID")"
}

md_smbclient_user_name() {
	need_messengerd
	need_daemon hostb || return 1
	local u
	u=$(upper "$LOGGED_IN_USER")
	wait_until "$NAME_WAIT_TIMEOUT" "$u<03> registered" nmb_resolves hosta "$u#03" "${HOST_IP[hostb]}" || return 1
	smbclient_to_hostb "$u" 139 "$(save_text to-user-name "To the logged-in user $u, run $RUN_ID")" "$LOGGED_IN_USER"
}

md_smbclient_added_name() {
	need_messengerd
	need_daemon hostb || return 1
	messenger_cli hostb name "$ADDED_NAME" --add || { echo "messenger name $ADDED_NAME --add failed"; return 1; }
	local listing
	listing=$(messenger_cli hostb name) || { echo "messenger name failed: $listing"; return 1; }
	printf '%s\n' "$listing" | grep -qw "$ADDED_NAME" || { echo "messenger name does not list $ADDED_NAME:"; echo "$listing"; return 1; }
	wait_until "$NAME_WAIT_TIMEOUT" "$ADDED_NAME<03> registered" \
		nmb_resolves hosta "$ADDED_NAME#03" "${HOST_IP[hostb]}" || return 1
	smbclient_to_hostb "$ADDED_NAME" 139 "$(save_text to-added-name "To the added name $ADDED_NAME, run $RUN_ID")"
}

md_smbclient_raw_port() {
	need_messengerd
	need_daemon hostb || return 1
	local t0
	t0=$(now_epoch)
	smbclient_to_hostb HOSTB "$RAW_SESSION_PORT" \
		"$(save_text to-raw-port "No session request, port $RAW_SESSION_PORT, run $RUN_ID")" || return 1
	expect_frames "smbclient sent no session request on port $RAW_SESSION_PORT (SMB straight away)" \
		"tcp.port==$RAW_SESSION_PORT && nbss.type==0x81 && frame.time_epoch >= $t0" 0 0
}

md_smbclient_longest() {
	need_messengerd
	need_daemon hostb || return 1
	local file
	file=$(save_text to-longest "$(gen_text "$SMBCLIENT_MAX_TEXT" "longest-smbclient-$RUN_ID")")
	smbclient_to_hostb HOSTB 139 "$file"
}

# Design rule: only messages to one of our names are accepted (Samba takes anything).
md_smbclient_foreign_name_refused() {
	need_messengerd
	need_daemon hostb || return 1
	local file out
	file=$(save_text to-foreign "To a name hostb does not have, run $RUN_ID")
	if out=$(smbclient_message hosta "$FOREIGN_NAME" "${HOST_IP[hostb]}" 139 alice ALICEPC "$file"); then
		echo "smbclient reported success for a message to $FOREIGN_NAME:"
		echo "$out"
		return 1
	fi
	smbclient_refused "$out" || return 1
	still_true_for "$BROADCAST_SETTLE" inbox_lacks hostb --text-file "$file"
}

# ---------------------------------------------------------------------------------------------
# 2. messenger send -> smbd
# ---------------------------------------------------------------------------------------------

# send_to_samba HOW TEXT_FILE [SEND_OPTIONS...]: HOW is "daemon" (hosta, through its
# messengerd) or "nodaemon" (hoste, `messenger --config`).
send_to_samba() {
	local how=$1 file=$2 text from out
	shift 2
	text=$(cat "$file")
	if [ "$how" = daemon ]; then
		need_daemon hosta || return 1
		from=hosta
		out=$(messenger_cli hosta send "$@" SAMBAHOST "$text" 2>&1) || { echo "messenger send $* failed:"; echo "$out"; return 1; }
	else
		from=hoste
		out=$(messenger_cfg hoste send "$@" SAMBAHOST "$text" 2>&1) || { echo "messenger --config send $* failed:"; echo "$out"; return 1; }
	fi
	samba_wait_message sambahost "$file" || return 1
	expect_smb_text "the text $from sent to smbd is exactly what smbd stored ($(wc -c <"$file") bytes)" \
		"${HOST_IP[sambahost]}" 139 '*' SAMBAHOST "$file"
	expect_fields "$from's session request to smbd calls SAMBAHOST<03>" \
		"nbss.type==0x81 && ip.src==${HOST_IP[$from]} && ip.dst==${HOST_IP[sambahost]}" \
		"nbss.called_name" '^SAMBAHOST<03>$'
}

md_send_to_samba() {
	need_messengerd
	send_to_samba daemon "$(save_text send-to-samba "From messenger send to smbd, run $RUN_ID")"
}

md_send_to_samba_windows_limit() {
	need_messengerd
	send_to_samba daemon "$(save_text send-to-samba-652 "$(gen_text "$WINDOWS_TEXT_LIMIT" "windows-limit-$RUN_ID")")"
}

md_send_to_samba_long() {
	need_messengerd
	send_to_samba daemon "$(save_text send-to-samba-long "$(gen_text "$LONG_TEXT_LEN" "long-to-samba-$RUN_ID")")" --long
}

md_send_to_samba_no_daemon() {
	need_messengerd
	send_to_samba nodaemon "$(save_text send-no-daemon "Sent without a daemon from hoste, run $RUN_ID")"
}

# ---------------------------------------------------------------------------------------------
# 4. messenger send resolves a name only nmbd registered, by broadcast
# ---------------------------------------------------------------------------------------------
md_send_resolves_nmbd_name() {
	need_messengerd
	need_daemon hosta || return 1
	local file t0 out
	file=$(save_text send-to-alias "To nmbd's alias $SAMBA_ALIAS, run $RUN_ID")
	t0=$(now_epoch)
	out=$(messenger_cli hosta send "$SAMBA_ALIAS" "$(cat "$file")" 2>&1) || { echo "messenger send failed:"; echo "$out"; return 1; }
	samba_wait_message sambahost "$file" || return 1
	expect_fields "messenger send asks for $SAMBA_ALIAS<03> by broadcast" \
		"nbns.flags.opcode==0 && nbns.flags.response==0 && nbns.flags.broadcast==1 && ip.src==${HOST_IP[hosta]} && ip.dst==$NET_BROADCAST && frame.time_epoch >= $t0" \
		"nbns.name" "^$SAMBA_ALIAS<03>"
	expect_fields "nmbd answers hosta's query for $SAMBA_ALIAS<03> with ${HOST_IP[sambahost]}" \
		"nbns.flags.opcode==0 && nbns.flags.response==1 && nbns.flags.rcode==0 && ip.src==${HOST_IP[sambahost]} && ip.dst==${HOST_IP[hosta]} && frame.time_epoch >= $t0" \
		"nbns.name nbns.addr" "^$SAMBA_ALIAS<03>.*[[:space:]]${HOST_IP[sambahost]//./\\.}\$"
	expect_smb_text "the text to $SAMBA_ALIAS went to the address nmbd gave" \
		"${HOST_IP[sambahost]}" 139 '*' "$SAMBA_ALIAS" "$file"
}

# ---------------------------------------------------------------------------------------------
# 3 (continued). Node status, deleted names, logged-out users
# ---------------------------------------------------------------------------------------------
md_node_status() {
	need_messengerd
	need_daemon hostb || return 1
	local ip=${HOST_IP[hostb]} name
	for name in HOSTB "$(upper "$LOGGED_IN_USER")" "$ADDED_NAME"; do
		# Unique, active, B-node (no WINS server is configured).
		node_status_has hosta "$ip" "$name" 03 unique B || return 1
		expect_node_status "messengerd's node status lists $name<03> unique, B-node, active" \
			"ip.src==$ip" "$name<03>" 0x0400
	done
}

md_deleted_name_gone() {
	need_messengerd
	need_daemon hostb || return 1
	local ip=${HOST_IP[hostb]} t0 file
	t0=$(now_epoch)
	messenger_cli hostb name "$ADDED_NAME" --delete || { echo "messenger name $ADDED_NAME --delete failed"; return 1; }
	wait_until "$NAME_WAIT_TIMEOUT" "$ADDED_NAME<03> no longer resolving" \
		nmb_not_resolves hosta "$ADDED_NAME#03" || return 1
	node_status_lacks hosta "$ip" "$ADDED_NAME" 03 || return 1
	expect_fields "messengerd releases $ADDED_NAME<03> by broadcast when it is deleted" \
		"nbns.flags.opcode==6 && nbns.flags.response==0 && ip.src==$ip && frame.time_epoch >= $t0" \
		"nbns.name" "^$ADDED_NAME<03>"
	expect_node_status "messengerd's last node status no longer lists $ADDED_NAME<03>" \
		"ip.src==$ip" "$ADDED_NAME<03>" - absent
	# And a message to the deleted name is no longer accepted.
	file=$(save_text to-deleted-name "To the deleted name $ADDED_NAME, run $RUN_ID")
	local out
	if out=$(smbclient_message hosta "$ADDED_NAME" "$ip" 139 alice ALICEPC "$file"); then
		echo "smbclient reported success for a message to the deleted name $ADDED_NAME"
		return 1
	fi
	smbclient_refused "$out" || return 1
	still_true_for "$BROADCAST_SETTLE" inbox_lacks hostb --text-file "$file"
}

md_logged_out_user_gone() {
	need_messengerd
	need_daemon hostb || return 1
	local ip=${HOST_IP[hostb]} u t0
	u=$(upper "$LOGGED_IN_USER")
	t0=$(now_epoch)
	set_logged_in hostb "-:$LOGGED_IN_TTY" || return 1
	wait_until "$UTMP_WAIT_TIMEOUT" "$u<03> gone after $LOGGED_IN_USER logged out" \
		nmb_not_resolves hosta "$u#03" || return 1
	node_status_lacks hosta "$ip" "$u" 03 || return 1
	# The computer name stays.
	nmb_resolves hosta 'HOSTB#03' "$ip" >/dev/null || { echo "HOSTB<03> vanished too"; return 1; }
	expect_fields "messengerd releases $u<03> by broadcast when $LOGGED_IN_USER logs out" \
		"nbns.flags.opcode==6 && nbns.flags.response==0 && ip.src==$ip && frame.time_epoch >= $t0" \
		"nbns.name" "^$u<03>"
}

# ---------------------------------------------------------------------------------------------
# 5. Conflicts both ways
# ---------------------------------------------------------------------------------------------
md_refuses_nmbd_name() {
	need_messengerd
	need_daemon hosta || return 1
	local out rc t0 listing
	t0=$(now_epoch)
	out=$(messenger_cli hosta name "$SAMBA_ALIAS" --add 2>&1)
	rc=$?
	printf '%s\n' "$out"
	[ "$rc" -ne 0 ] || { echo "messenger name $SAMBA_ALIAS --add succeeded although nmbd holds it"; return 1; }
	# NERR_DuplicateName (2297) is what Windows reports; any clear wording will do.
	printf '%s\n' "$out" | grep -Eqi '2297|duplicate|already|in use|conflict|exists|taken' ||
		{ echo "the error does not say the name is taken"; return 1; }
	listing=$(messenger_cli hosta name 2>&1)
	if printf '%s\n' "$listing" | grep -qw "$SAMBA_ALIAS"; then
		echo "messenger name still lists $SAMBA_ALIAS:"
		echo "$listing"
		return 1
	fi
	nmb_resolves_only hosta "$SAMBA_ALIAS#03" "${HOST_IP[sambahost]}" || return 1
	expect_fields "nmbd defends $SAMBA_ALIAS<03> against hosta (negative registration response, ACT_ERR)" \
		"nbns.flags.opcode==5 && nbns.flags.response==1 && nbns.flags.rcode==6 && ip.src==${HOST_IP[sambahost]} && ip.dst==${HOST_IP[hosta]} && frame.time_epoch >= $t0" \
		"nbns.name" "^$SAMBA_ALIAS<03>"
}

md_nmbd_cannot_take_our_name() {
	need_messengerd
	need_daemon hostc || return 1
	local t0 file
	wait_until "$NAME_WAIT_TIMEOUT" "HOSTC<03> registered by messengerd" \
		nmb_resolves hosta 'HOSTC#03' "${HOST_IP[hostc]}" || return 1
	t0=$(now_epoch)
	# nmbd on samba2 (name SAMBA2) also wants HOSTC as an alias: it registers HOSTC<00>,
	# HOSTC<03> and HOSTC<20>; messengerd holds HOSTC<03> and must defend it.
	start_nmbd samba2 "  netbios aliases = HOSTC" || return 1
	wait_until "$NMBD_CONFLICT_WAIT" "nmbd on samba2 to give up HOSTC<03>" \
		nmbd_failed_to_register samba2 'HOSTC<03>' || return 1
	nmb_resolves_only hosta 'HOSTC#03' "${HOST_IP[hostc]}" || return 1
	expect_fields "messengerd defends HOSTC<03> against nmbd (negative registration response, ACT_ERR)" \
		"nbns.flags.opcode==5 && nbns.flags.response==1 && nbns.flags.rcode==6 && ip.src==${HOST_IP[hostc]} && ip.dst==${HOST_IP[samba2]} && frame.time_epoch >= $t0" \
		"nbns.name" '^HOSTC<03>'
	# messengerd still has its name and its messages.
	file=$(save_text to-hostc-after-conflict "To HOSTC after nmbd tried to take it, run $RUN_ID")
	smbclient_message hosta HOSTC "${HOST_IP[hostc]}" 139 alice ALICEPC "$file" || return 1
	wait_inbox hostc --text-file "$file" --to HOSTC
}

# ---------------------------------------------------------------------------------------------
# 6. Broadcasts reach the sender's workgroup, or the one named, and no other
# ---------------------------------------------------------------------------------------------

# broadcast_from_hosta "args to messenger send" TEXT RECEIVERS... -- NON_RECEIVERS...
broadcast_from_hosta() {
	local target=$1 text=$2 dest h t0 out
	shift 2
	local receivers=() others=() seen_sep=0
	for h in "$@"; do
		if [ "$h" = -- ]; then seen_sep=1; elif [ "$seen_sep" = 0 ]; then receivers+=("$h"); else others+=("$h"); fi
	done
	for h in hosta "${receivers[@]}" "${others[@]}"; do need_daemon "$h" || return 1; done
	t0=$(now_epoch)
	if [ "$target" = '*' ]; then
		dest=TESTGROUP
		out=$(messenger_cli hosta send '*' "$text" 2>&1) || { echo "messenger send '*' failed:"; echo "$out"; return 1; }
	else
		dest=$target
		out=$(messenger_cli hosta send --domain="$target" "$text" 2>&1) ||
			{ echo "messenger send --domain=$target failed:"; echo "$out"; return 1; }
	fi
	for h in "${receivers[@]}"; do
		wait_inbox "$h" --text "$text" || return 1
	done
	for h in "${others[@]}"; do
		still_true_for "$BROADCAST_SETTLE" inbox_lacks "$h" --text "$text" || return 1
	done
	expect_mailslot "hosta's broadcast is a \\MAILSLOT\\MESSNGR write to $dest<00> with the text" \
		"ip.src==${HOST_IP[hosta]} && ip.dst==$NET_BROADCAST && frame.time_epoch >= $t0" \
		'*' "$dest" "$text" "$dest<00>"
	expect_fields "tshark reads hosta's broadcast as a datagram to $dest<00> for mailslot MESSNGR" \
		"nbdgm && ip.src==${HOST_IP[hosta]} && ip.dst==$NET_BROADCAST && frame.time_epoch >= $t0" \
		"nbdgm.destination_name mailslot.name" "^$dest<00>.*MAILSLOT.MESSNGR"
}

md_broadcast_workgroup() {
	need_messengerd
	broadcast_from_hosta '*' "To all of TESTGROUP, run $RUN_ID" hostb hostc -- hostd
}

md_broadcast_other_domain() {
	need_messengerd
	broadcast_from_hosta OTHERGROUP "To all of OTHERGROUP, run $RUN_ID" hostd -- hostb hostc
}

# ---------------------------------------------------------------------------------------------
md_no_panics() {
	need_messengerd
	local f bad=0
	for f in "$WORK"/messengerd/*/messengerd.log; do
		[ -f "$f" ] || continue
		if grep -n -B2 -A8 'panicked at' "$f"; then
			echo "^ in $f"
			bad=1
		fi
	done
	return "$bad"
}

# ---------------------------------------------------------------------------------------------
# 7. Beside Samba: nmbd and smbd own the NetBIOS ports of sambabeside, messengerd runs there
#    with `netbios = false`, and smbd's `message command` hands messages to `messenger deliver`.
# ---------------------------------------------------------------------------------------------

# The smb.conf lines the README gives, with this run's binary and control socket.
beside_samba_conf() {
	printf '%s\n' \
		"message command = $MESSENGER_BIN --socket=$(md_socket sambabeside) deliver --file=%s --from=%f --to=%L --machine=%m --address=%I" \
		"netbios aliases = $(upper "$LOGGED_IN_USER")"
}

md_start_beside_samba() {
	need_messengerd
	set_logged_in sambabeside "$LOGGED_IN_USER:$LOGGED_IN_TTY" || return 1
	start_samba sambabeside "$(beside_samba_conf)" || return 1
	start_messengerd sambabeside FILESRV TESTGROUP \
		"netbios = false
samba_config = \"$(samba_dir sambabeside)/smb.conf\"" || return 1
	# nmbd and smbd still hold the ports: messengerd took none of them.
	if in_host sambabeside ss -Hlnptu | grep -E ':(137|138|139) ' | grep -q messengerd; then
		echo "messengerd bound a NetBIOS port although netbios = false"
		return 1
	fi
}

md_beside_samba_computer_name() {
	need_messengerd
	need_daemon sambabeside || return 1
	local file
	file=$(save_text beside-samba "Through smbd to FILESRV, run $RUN_ID")
	smbclient_message hosta FILESRV "${HOST_IP[sambabeside]}" 139 admin ADMINPC "$file" || return 1
	wait_inbox sambabeside --text-file "$file" --to FILESRV --from admin --transport session \
		--source "${HOST_IP[hosta]}:0" || return 1
	# messenger deliver removed smbd's temporary file.
	if grep -rlsF "run $RUN_ID" /tmp/msg.* 2>/dev/null | grep -q .; then
		echo "smbd's temporary message file was left behind"
		return 1
	fi
}

md_beside_samba_user_alias() {
	need_messengerd
	need_daemon sambabeside || return 1
	local u file
	u=$(upper "$LOGGED_IN_USER")
	file=$(save_text beside-samba-user "Through smbd to $u, run $RUN_ID")
	smbclient_message hosta "$u" "${HOST_IP[sambabeside]}" 139 admin ADMINPC "$file" || return 1
	wait_inbox sambabeside --as "$LOGGED_IN_USER" --text-file "$file" --to "$u" --from admin || return 1
	# Addressed to the user alone: root, another user, does not see it.
	inbox_lacks sambabeside --text-file "$file"
}

md_beside_samba_messenger_send() {
	need_messengerd
	need_daemon hosta || return 1
	local file
	file=$(save_text beside-samba-send "messenger send to FILESRV through smbd, run $RUN_ID")
	messenger_cli hosta send "${HOST_IP[sambabeside]}" "$(cat "$file")" || return 1
	wait_inbox sambabeside --text-file "$file" --transport session
}

# ---------------------------------------------------------------------------------------------
# 8. /USERS on a Samba host: every client with an SMB session to smbd gets a copy, sent to the
#    client by address with its machine name, as well as the users logged in there.
# ---------------------------------------------------------------------------------------------

# smb_session_listed HOST: sambabeside's smbstatus lists a session from HOST.
smb_session_listed() {
	in_host sambabeside smbstatus --configfile="$(samba_dir sambabeside)/smb.conf" -b 2>/dev/null |
		grep -qF "(ipv4:${HOST_IP[$1]}:"
}

# md_hold_smb_session HOST: an anonymous smbclient session from HOST to sambabeside's IPC$,
# calling itself by HOST's NetBIOS name, held open (smbclient waits for commands on a pipe)
# until teardown.
md_hold_smb_session() {
	need_messengerd
	need_daemon sambabeside || return 1
	local host=$1
	in_host_bg "$host" "$WORK/smbclient-session-$host.log" sh -c \
		"sleep $SMB_SESSION_HOLD | exec smbclient -s '$(client_conf "$host")' \
			'//${HOST_IP[sambabeside]}/IPC\$' -p 139 -N -n '${HOST_NB[$host]}'" >/dev/null
	wait_until "$SMB_SESSION_TIMEOUT" "smbstatus on sambabeside to list $host's session" \
		smb_session_listed "$host" || { cat "$WORK/smbclient-session-$host.log"; return 1; }
}

md_users_reaches_smb_clients() {
	need_messengerd
	need_daemon sambabeside || return 1
	need_daemon hostb || return 1
	need_daemon hostc || return 1
	local file out rc=0 host
	file=$(save_text users-smb "To everyone with a session to FILESRV, run $RUN_ID")
	# The configuration names the instance's smb.conf (samba_config), whose smbd has the
	# sessions; root runs smbstatus.
	out=$(messenger_cfg sambabeside send --verbose /USERS "$(cat "$file")" 2>&1) || rc=$?
	printf '%s\n' "$out"
	[ "$rc" -eq 0 ] || { echo "messenger send /USERS exited $rc"; return 1; }
	for host in hostb hostc; do
		if ! printf '%s\n' "$out" | grep -qF "on ${HOST_NB[$host]} (${HOST_IP[$host]})."; then
			echo "no result for $host's session"
			return 1
		fi
		wait_inbox "$host" --text-file "$file" --transport session || return 1
	done
	# The user logged in on the Samba host itself gets it too.
	wait_inbox sambabeside --as "$LOGGED_IN_USER" --text-file "$file" || return 1
}

run_messengerd_checks() {
	check "messengerd starts on hosta (HOSTA, TESTGROUP)" md_start_hosta
	check "messengerd starts on hostb (HOSTB, TESTGROUP, $LOGGED_IN_USER logged in, raw SMB on $RAW_SESSION_PORT)" md_start_hostb
	check "messengerd starts on hostc (HOSTC, TESTGROUP)" md_start_hostc
	check "messengerd starts on hostd (HOSTD, OTHERGROUP)" md_start_hostd
	check "hoste has a config for messenger without a daemon" md_hoste_config

	check "3: nmblookup -B finds HOSTB<03> and $(upper "$LOGGED_IN_USER")<03> (logged in) at ${HOST_IP[hostb]}" md_names_bcast
	check "3: nmblookup -U ${HOST_IP[hostb]} (unicast) finds them too" md_names_unicast
	check "3: messengerd answers a unicast query for its name, and claims no name it does not have" md_unknown_name_unicast

	check "1: smbclient -M HOSTB (port 139) lands in hostb's inbox with the exact text" md_smbclient_computer_name
	check "1: smbclient -M $(upper "$LOGGED_IN_USER") (logged-in user) lands in the inbox" md_smbclient_user_name
	check "1: messenger name $ADDED_NAME --add, then smbclient -M $ADDED_NAME lands in the inbox" md_smbclient_added_name
	check "1: smbclient -M HOSTB -p $RAW_SESSION_PORT (no session request) lands in the inbox" md_smbclient_raw_port
	check "1: a $SMBCLIENT_MAX_TEXT-byte smbclient message arrives whole" md_smbclient_longest
	check "1: a message to a name hostb does not have is refused and not stored" md_smbclient_foreign_name_refused

	check "3: nmblookup -A ${HOST_IP[hostb]} lists HOSTB, $(upper "$LOGGED_IN_USER"), $ADDED_NAME <03> unique, active" md_node_status
	check "3: messenger name $ADDED_NAME --delete: the name no longer resolves nor takes messages" md_deleted_name_gone
	check "3: after $LOGGED_IN_USER logs out, $(upper "$LOGGED_IN_USER")<03> disappears" md_logged_out_user_gone

	check "2: messenger send SAMBAHOST (hosta's daemon) reaches smbd with the exact text" md_send_to_samba
	check "2: a $WINDOWS_TEXT_LIMIT-byte messenger send (the Windows limit) reaches smbd whole" md_send_to_samba_windows_limit
	check "2: a $LONG_TEXT_LEN-byte messenger send --long reaches smbd whole" md_send_to_samba_long
	check "2: messenger --config send SAMBAHOST (no daemon, hoste) reaches smbd" md_send_to_samba_no_daemon
	check "4: messenger send $SAMBA_ALIAS resolves nmbd's name by broadcast and delivers" md_send_resolves_nmbd_name

	check "5: messenger name $SAMBA_ALIAS --add fails: nmbd holds it" md_refuses_nmbd_name
	check "5: nmbd cannot take HOSTC, which messengerd holds" md_nmbd_cannot_take_our_name

	check "6: messenger send '*' from hosta reaches hostb and hostc, not hostd (OTHERGROUP)" md_broadcast_workgroup
	check "6: messenger send --domain=OTHERGROUP reaches hostd only" md_broadcast_other_domain

	check "7: beside Samba: nmbd and smbd on sambabeside, messengerd there with netbios = false" md_start_beside_samba
	check "7: smbclient -M FILESRV reaches smbd, whose message command delivers it to the inbox" md_beside_samba_computer_name
	check "7: smbclient -M to a user's netbios alias lands in that user's inbox only" md_beside_samba_user_alias
	check "7: messenger send to the Samba host lands in the inbox beside Samba" md_beside_samba_messenger_send

	check "8: hostb holds an SMB session to sambabeside" md_hold_smb_session hostb
	check "8: hostc holds an SMB session to sambabeside" md_hold_smb_session hostc
	check "8: messenger send /USERS on sambabeside reaches both SMB clients and its own user" md_users_reaches_smb_clients

	check "messengerd logs show no panic" md_no_panics
}
