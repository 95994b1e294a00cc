# shellcheck shell=bash
# Checks that need only Samba: they prove the harness (network, capture, Samba peers, the
# tools' output as the suite parses it) before our programs are involved.

# Extra name nmbd registers on sambahost (as NAME<00>/<03>/<20>), resolved by
# `messenger send` in check 4: only our CLI ever asks for it, so the capture shows whose
# query it was.
SAMBA_ALIAS=SAMBAALIAS

samba_start_sambahost() {
	start_samba sambahost "  netbios aliases = $SAMBA_ALIAS"
}

# smbclient -M from hosta to smbd: the message file holds exactly the text.
samba_smbclient_delivers() {
	local text file t0
	text="Harness check: smbclient to smbd, run $RUN_ID"
	file=$(save_text samba-smbclient "$text")
	t0=$(now_epoch)
	smbclient_message hosta SAMBAHOST "${HOST_IP[sambahost]}" 139 alice ALICEPC "$file" || return 1
	samba_wait_message sambahost "$file" || return 1
	grep -qx 'from=alice' "$(samba_dir sambahost)"/msgs/meta.* || { echo "no meta file says from=alice"; return 1; }
	expect_fields "smbclient's session request calls SAMBAHOST<03> from ALICEPC<00>" \
		"nbss.type==0x81 && ip.src==${HOST_IP[hosta]} && frame.time_epoch >= $t0" \
		"nbss.called_name nbss.calling_name" '^SAMBAHOST<03>[[:space:]]+ALICEPC<00>$'
	expect_fields "smbclient's 0xD5 names originator alice and destination SAMBAHOST" \
		"smb.cmd==0xd5 && smb.flags.response==0 && ip.src==${HOST_IP[hosta]} && frame.time_epoch >= $t0" \
		"smb.originator_name smb.destination_name" '^alice[[:space:]]+SAMBAHOST$'
	expect_frames "smbd answers smbclient's 0xD5, 0xD7 and 0xD6 without error" \
		"smb.cmd in {0xd5 0xd6 0xd7} && smb.flags.response==1 && smb.error_class==0 && ip.src==${HOST_IP[sambahost]} && frame.time_epoch >= $t0" 3
	expect_smb_text "the SMB text smbclient sent to smbd is exactly the harness text" \
		"${HOST_IP[sambahost]}" 139 alice SAMBAHOST "$file"
}

# The longest text smbclient sends arrives whole at smbd (baseline for check 1's
# 1598-byte message to messengerd).
samba_smbclient_long() {
	local text file
	text=$(gen_text "$SMBCLIENT_MAX_TEXT" "samba-long-$RUN_ID")
	file=$(save_text samba-smbclient-long "$text")
	[ "$(wc -c <"$file")" -eq "$SMBCLIENT_MAX_TEXT" ] || { echo "generated text has the wrong length"; return 1; }
	smbclient_message hosta SAMBAHOST "${HOST_IP[sambahost]}" 139 alice ALICEPC "$file" || return 1
	samba_wait_message sambahost "$file" || return 1
	expect_smb_text "the $SMBCLIENT_MAX_TEXT-byte smbclient text went out whole (to smbd)" \
		"${HOST_IP[sambahost]}" 139 alice SAMBAHOST "$file"
}

samba_nmblookup_bcast() {
	local t0
	t0=$(now_epoch)
	nmb_resolves_only hosta 'SAMBAHOST#03' "${HOST_IP[sambahost]}" || return 1
	expect_fields "nmblookup's broadcast query for SAMBAHOST<03> from hosta" \
		"nbns.flags.response==0 && nbns.flags.opcode==0 && nbns.flags.broadcast==1 && ip.src==${HOST_IP[hosta]} && ip.dst==$NET_BROADCAST && frame.time_epoch >= $t0" \
		"nbns.name" '^SAMBAHOST<03>'
	expect_fields "nmbd's positive answer gives SAMBAHOST<03> at ${HOST_IP[sambahost]}" \
		"nbns.flags.response==1 && nbns.flags.rcode==0 && ip.src==${HOST_IP[sambahost]} && ip.dst==${HOST_IP[hosta]} && frame.time_epoch >= $t0" \
		"nbns.name nbns.addr" "^SAMBAHOST<03>.*[[:space:]]${HOST_IP[sambahost]//./\\.}\$"
}

samba_nmblookup_unicast() {
	nmb_resolves hosta 'SAMBAHOST#03' "${HOST_IP[sambahost]}" unicast "${HOST_IP[sambahost]}"
}

samba_node_status() {
	node_status_has hosta "${HOST_IP[sambahost]}" SAMBAHOST 03 unique || return 1
	node_status_has hosta "${HOST_IP[sambahost]}" TESTGROUP 00 group >/dev/null || { echo "no TESTGROUP<00> <GROUP>"; return 1; }
	expect_node_status "nmbd's node status lists SAMBAHOST<03> unique, B-node, active" \
		"ip.src==${HOST_IP[sambahost]}" 'SAMBAHOST<03>' 0x0400
	expect_node_status "nmbd's node status lists TESTGROUP<00> as a group name" \
		"ip.src==${HOST_IP[sambahost]}" 'TESTGROUP<00>' 0x8400
}

samba_alias_registered() {
	wait_until "$NAME_WAIT_TIMEOUT" "$SAMBA_ALIAS<03> to resolve" \
		nmb_resolves hosta "$SAMBA_ALIAS#03" "${HOST_IP[sambahost]}" || return 1
	nmb_resolves_only hosta "$SAMBA_ALIAS#03" "${HOST_IP[sambahost]}"
}

samba_unknown_name_fails() {
	nmb_not_resolves hosta 'NOSUCHNAME#03'
}

run_samba_checks() {
	check "samba: smbd and nmbd start in sambahost (${HOST_IP[sambahost]})" samba_start_sambahost
	check "samba: smbclient -M SAMBAHOST from hosta delivers the text to smbd's message command" \
		samba_smbclient_delivers
	check "samba: a $SMBCLIENT_MAX_TEXT-byte smbclient message reaches smbd whole" samba_smbclient_long
	check "samba: nmblookup -B $NET_BROADCAST 'SAMBAHOST#03' from hosta finds ${HOST_IP[sambahost]}" \
		samba_nmblookup_bcast
	check "samba: nmblookup -U ${HOST_IP[sambahost]} 'SAMBAHOST#03' (unicast) finds it" samba_nmblookup_unicast
	check "samba: nmblookup -A ${HOST_IP[sambahost]} lists SAMBAHOST<03> (unique, active)" samba_node_status
	check "samba: nmbd also registered its alias $SAMBA_ALIAS<03>" samba_alias_registered
	check "samba: nmblookup reports an unregistered name as not found" samba_unknown_name_fails
}
