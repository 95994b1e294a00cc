# shellcheck shell=bash
# Assertions on the capture: what tshark (an independent decoder) reads in it.
#
# Checks register expectations while they run; they are evaluated once the capture has been
# stopped and merged (reading a file tcpdump is still writing can end on a partial packet):
#
#   expect_frames  "desc" FILTER MIN [MAX]      MIN <= frames matching FILTER (<= MAX if given)
#   expect_fields  "desc" FILTER FIELDS REGEX   some line of `tshark -T fields -e F...`
#                                               (fields tab-separated, in FIELDS' order,
#                                               FIELDS space-separated) matches REGEX (grep -E)
#   expect_smb_text "desc" SERVER_IP PORT FROM TO TEXT_FILE
#                                               a TCP stream to SERVER_IP:PORT carried SMB
#                                               messenger requests from FROM to TO whose text
#                                               is exactly the file's (CR/LF shown as \r \n;
#                                               FROM/TO compared case-insensitively, "*"
#                                               for any)
#   expect_mailslot "desc" FILTER FROM TO TEXT DEST_NAME
#                                               a \MAILSLOT\MESSNGR datagram matching FILTER
#                                               carried From/To/Text to DEST_NAME (e.g.
#                                               TESTGROUP<00>; FROM/TO "*" for any)
#
# Filters are Wireshark display filters; combine with `frame.time_epoch >= $(now_epoch)`
# taken before the action to look only at what that action caused. `tshark_read` applies
# the decode-as rules the suite needs (RAW_SESSION_PORT is NBSS).

EXPECTATIONS_FILE() { printf '%s\n' "$WORK/capture-expectations"; }

_expect() {
	printf '%q ' "$@" >>"$(EXPECTATIONS_FILE)"
	printf '\n' >>"$(EXPECTATIONS_FILE)"
}
expect_frames() { _expect "$1" capture_frames "${@:2}"; }
expect_fields() { _expect "$1" capture_fields "${@:2}"; }
expect_smb_text() { _expect "$1" capture_smb_text "${@:2}"; }
expect_mailslot() { _expect "$1" capture_mailslot "${@:2}"; }

# tshark_read [tshark args...]: read the merged capture.
tshark_read() {
	# Debian's tshark warns on stderr when run as root; that is all it says there normally.
	tshark -n -r "$CAPTURE_FILE" -d "tcp.port==$RAW_SESSION_PORT,nbss" "$@" 2>"$WORK/tshark.err"
	local rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "tshark exited $rc:"
		cat "$WORK/tshark.err"
	fi
	return "$rc"
}

capture_frames() {
	local filter=$1 min=$2 max=${3:-} n
	n=$(tshark_read -Y "$filter" -T fields -e frame.number | grep -c .) || true
	if [ "$n" -lt "$min" ] || { [ -n "$max" ] && [ "$n" -gt "$max" ]; }; then
		echo "filter: $filter"
		echo "matched $n frames, expected ${min}..${max:-}"
		tshark_read -Y "$filter" | head -n 20
		return 1
	fi
}

capture_fields() {
	local filter=$1 fields=$2 regex=$3 args=() f out
	for f in $fields; do args+=(-e "$f"); done
	out=$(tshark_read -Y "$filter" -T fields -E separator=/t -E occurrence=a -E aggregator=, "${args[@]}") ||
		{ echo "$out"; return 1; }
	if ! printf '%s\n' "$out" | grep -Eq -- "$regex"; then
		echo "filter: $filter"
		echo "fields: $fields"
		echo "no line matches: $regex"
		echo "tshark read:"
		printf '%s\n' "$out" | sort | uniq -c | head -n 30
		return 1
	fi
}

capture_smb_text() {
	local server=$1 port=$2 from=$3 to=$4 file=$5 want out
	want=$(sed -e 's/\r/\\r/g' "$file" | sed -e ':a;N;$!ba;s/\n/\\n/g')
	out=$(tshark_read -Y "ip.dst==$server && tcp.dstport==$port && tcp.len>0" \
		-T fields -E separator=/t -e tcp.stream -e tcp.srcport -e tcp.dstport -e tcp.payload |
		python3 "$INTEROP_DIR/tools/interop_util.py" smb-texts "$port")
	# Values go through the environment: awk -v would interpret backslashes in them.
	if printf '%s\n' "$out" | F="$from" T="$to" W="$want" awk -F'\t' '
		(ENVIRON["F"] == "*" || toupper($2) == toupper(ENVIRON["F"])) &&
		(ENVIRON["T"] == "*" || toupper($3) == toupper(ENVIRON["T"])) &&
		$4 == ENVIRON["W"] { found = 1 }
		END { exit !found }'; then
		return 0
	fi
	echo "no SMB message $from -> $to to $server:$port with text ($(wc -c <"$file") bytes): ${want:0:80}..."
	echo "streams seen (stream, from, to, text):"
	printf '%s\n' "$out" | cut -c1-200
	return 1
}

capture_mailslot() {
	local filter=$1 from=$2 to=$3 text=$4 dest=$5 out
	out=$(tshark_read -Y "udp.dstport==138 && ($filter)" -T fields -e udp.payload |
		python3 "$INTEROP_DIR/tools/interop_util.py" mailslot-texts)
	if printf '%s\n' "$out" | F="$from" T="$to" W="$text" D="$dest" awk -F'\t' '
		$1 == "\\MAILSLOT\\MESSNGR" && (ENVIRON["F"] == "*" || toupper($2) == toupper(ENVIRON["F"])) &&
		(ENVIRON["T"] == "*" || toupper($3) == toupper(ENVIRON["T"])) && $4 == ENVIRON["W"] &&
		toupper($6) == toupper(ENVIRON["D"]) { found = 1 }
		END { exit !found }'; then
		return 0
	fi
	echo "no \\MAILSLOT\\MESSNGR datagram to $dest with From=$from To=$to Text=$text"
	echo "datagrams seen (mailslot, from, to, text, source name, destination name):"
	printf '%s\n' "$out" | head -n 20
	return 1
}

# The capture-wide checks, then every registered expectation.
run_capture_checks() {
	if [ ! -s "$CAPTURE_FILE" ]; then
		check "capture file was written" false
		return
	fi
	check "capture: tcpdump dropped no packets" capture_no_drops
	check "capture: tshark reads the whole capture" tshark_read -q
	check "capture: nothing malformed or flagged as an error by tshark" capture_clean
	local line
	if [ -f "$(EXPECTATIONS_FILE)" ]; then
		while IFS= read -r line; do
			eval "set -- $line"
			check "capture: $1" "${@:2}"
		done <"$(EXPECTATIONS_FILE)"
	fi
}

capture_no_drops() {
	local f bad=0
	for f in "$CAPTURE_DIR"/tcpdump-*.log; do
		if ! grep -q '^0 packets dropped by kernel' "$f"; then
			echo "$f:"
			cat "$f"
			bad=1
		fi
	done
	return "$bad"
}

capture_clean() {
	local out
	out=$(tshark_read -Y '_ws.malformed || _ws.expert.severity >= error') || { echo "$out"; return 1; }
	if [ -n "$out" ]; then
		echo "tshark flags these frames:"
		printf '%s\n' "$out" | head -n 30
		echo "details of the first:"
		local first
		first=$(printf '%s\n' "$out" | awk 'NR==1 {print $1}')
		tshark_read -Y "frame.number==$first" -V | tail -n 40
		return 1
	fi
	echo "$(tshark_read -T fields -e frame.number | grep -c .) frames decoded"
}

# expect_node_status "desc" FILTER 'NAME<TT>' FLAGS [absent]
# A node status (NBSTAT) response matching FILTER (e.g. "ip.src==10.77.0.2") lists NAME<TT>
# with these name flags (hex as tshark prints them: 0x0400 = unique, B-node, active;
# 0x8400 = group, B-node, active). With "absent": the LAST node status response matching
# FILTER does not list NAME<TT>, or lists it with the DRG flag (0x1000: being released).
expect_node_status() { _expect "$1" capture_node_status "${@:2}"; }

capture_node_status() {
	local filter=$1 name=$2 flags=$3 absent=${4:-} out
	# One line per response: "frame|NAME<TT> 0xFLAGS|NAME<TT> 0xFLAGS|..."
	out=$(tshark_read -Y "($filter) && nbns.flags.response==1 && nbns.type==33" -V | awk '
		/^Frame [0-9]+:/ { if (line != "") print line; line = $2 }
		/^ +Name: / && prev_name == "" { n = $0; sub(/^ +Name: /, "", n); sub(/ \(.*$/, "", n); prev_name = n; next }
		/^ +Name flags: / && prev_name != "" { f = $3; sub(/,$/, "", f); line = line "|" prev_name " " f }
		{ prev_name = "" }
		END { if (line != "") print line }')
	if [ -z "$out" ]; then
		echo "no node status response matching ($filter) in the capture"
		return 1
	fi
	if [ "$absent" = absent ]; then
		local entry
		entry=$(printf '%s\n' "$out" | tail -n 1 | tr '|' '\n' | grep -F "$name " | head -n 1)
		if [ -n "$entry" ] && ! (( ${entry##* } & 0x1000 )); then
			echo "the last node status response matching ($filter) still lists $name as live:"
			printf '%s\n' "$out" | tail -n 1 | tr '|' '\n'
			return 1
		fi
		return 0
	fi
	if printf '%s\n' "$out" | tr '|' '\n' | grep -Fxq "$name $flags"; then
		return 0
	fi
	echo "no node status response matching ($filter) lists '$name' with flags $flags; responses (frame|name flags...):"
	printf '%s\n' "$out" | head -n 10
	return 1
}
