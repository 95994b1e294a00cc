# shellcheck shell=bash
# Settings, the check framework and small utilities of the interop suite.
# Sourced by run.sh; expects REPO_ROOT, INTEROP_DIR and WORK to be set.

# ---------------------------------------------------------------------------------------------
# Limits and timeouts. Every wait in the suite is bounded by one of these (seconds unless
# said otherwise); each can be overridden from the environment.
# ---------------------------------------------------------------------------------------------
# Upper bound for any single foreground command run inside a test host (smbclient, nmblookup,
# messenger ...). These talk to peers on the same bridge: a few seconds is normal.
: "${CMD_TIMEOUT:=30}"
# Grace period after CMD_TIMEOUT before `timeout` sends SIGKILL.
: "${KILL_GRACE:=5}"
# Interval between two attempts of a polling loop (fractional seconds are fine).
: "${POLL_INTERVAL:=0.25}"
# tcpdump must say "listening on" within this time after it is started.
: "${CAPTURE_START_TIMEOUT:=10}"
# smbd must listen on TCP 139 and nmbd must answer for its own <03> name within this time.
# nmbd registers each name by broadcasting three times before it answers queries; 60 s
# covers a slow CI machine.
: "${SAMBA_READY_TIMEOUT:=60}"
# messengerd's control socket must answer `messenger status` within this time of its start.
: "${MESSENGERD_READY_TIMEOUT:=30}"
# A daemon (messengerd, smbd, nmbd, tcpdump) asked to stop with SIGTERM/SIGINT gets this long
# before SIGKILL.
: "${STOP_TIMEOUT:=10}"
# A sent message must appear in the receiver's inbox or message directory within this time.
: "${MESSAGE_WAIT_TIMEOUT:=20}"
# A name registered, added, deleted or released must resolve (or stop resolving) within this
# time. Registration is three broadcasts 250 ms apart plus the daemon's own start-up.
: "${NAME_WAIT_TIMEOUT:=30}"
# After a user logs out (the fake utmp file changes) the user's <03> name must disappear
# within this time; allows for a daemon that polls utmp instead of watching it.
: "${UTMP_WAIT_TIMEOUT:=40}"
# How long to keep watching a host that must NOT receive a broadcast, after the hosts that
# must receive it have it. Broadcasts reach all hosts at once, so a few seconds suffice.
: "${BROADCAST_SETTLE:=3}"
# `cargo build --release` of messengerd and messenger on a cold CI cache.
: "${BUILD_TIMEOUT:=1800}"
# How long the second nmbd (name-conflict check) gets to try to register its names.
: "${NMBD_CONFLICT_WAIT:=15}"
# How long a client holds its SMB session to the Samba host for the /USERS check (seconds);
# teardown ends it sooner.
: "${SMB_SESSION_HOLD:=300}"
# How long smbd gets to list a new client session in smbstatus.
: "${SMB_SESSION_TIMEOUT:=20}"
# Lines of a failing check's output shown in the report (the tail is kept).
: "${CHECK_OUTPUT_LINES:=60}"

# Sizes of test messages (bytes).
# smbclient reads at most this many bytes of message text from stdin (Samba client.c).
: "${SMBCLIENT_MAX_TEXT:=1598}"
# Longest directed message Windows sends ([MS-MSRP] 3.2.4.4); `messenger send`'s default limit.
: "${WINDOWS_TEXT_LIMIT:=652}"
# The "long text" that `messenger send --long` must deliver whole to smbd. Samba's server
# buffers 1600 bytes; this is what smbclient sends at most, well inside that.
: "${LONG_TEXT_LEN:=1598}"
# Broadcast (mailslot) texts are limited to 128 characters by Windows; stay under it.
: "${BROADCAST_TEXT_LEN:=100}"

# An extra TCP port on which messengerd accepts SMB without a NetBIOS session request
# (smbclient sends none on ports other than 139). tshark needs to be told it is NBSS.
: "${RAW_SESSION_PORT:=13139}"

# Exit status of a check function that could not run (counted as skipped, not failed).
SKIP_RC=77

# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
log() { printf '%s\n' "$*" >&2; }
info() { printf '# %s\n' "$*"; }
die() {
	log "run.sh: error: $*"
	exit 1
}

# ---------------------------------------------------------------------------------------------
# Check framework
#
#   check "description" command [args...]
# runs the command (a program or a shell function) in a subshell with stdout and stderr
# captured. Exit 0 = pass; exit $SKIP_RC = skipped (the output is the reason); anything else =
# fail, and the output is shown. Variables set by the command do not survive it: state that
# must outlive a check goes into files under $WORK.
# ---------------------------------------------------------------------------------------------
PASSED=0
FAILED=0
SKIPPED=0
FAILED_CHECKS=()

check() {
	local desc=$1
	shift
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	# A command killed by SIGINT/SIGTERM (exit 130/143) means the run is being interrupted:
	# stop here even where the shell could not trap the signal (a shell started with SIGINT
	# ignored, as background jobs are, cannot trap it).
	if [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; then
		printf 'FAIL - %s (interrupted)\n' "$desc"
		on_signal "$([ "$rc" -eq 130 ] && echo INT || echo TERM)"
	fi
	if [ "$rc" -eq 0 ]; then
		PASSED=$((PASSED + 1))
		printf 'ok   - %s\n' "$desc"
	elif [ "$rc" -eq "$SKIP_RC" ]; then
		SKIPPED=$((SKIPPED + 1))
		printf 'skip - %s (%s)\n' "$desc" "$(printf '%s' "${out:-skipped}" | tail -n 1)"
	else
		FAILED=$((FAILED + 1))
		FAILED_CHECKS+=("$desc")
		printf 'FAIL - %s (exit %s)\n' "$desc" "$rc"
		if [ -n "$out" ]; then
			printf '%s\n' "$out" | tail -n "$CHECK_OUTPUT_LINES" | sed 's/^/    | /'
		fi
	fi
	return 0
}

# skip_check "description" "reason": record a check that cannot run at all.
skip_check() {
	SKIPPED=$((SKIPPED + 1))
	printf 'skip - %s (%s)\n' "$1" "$2"
}

# The closing line; exactly "N passed, N failed" (", N skipped" when any were skipped).
print_summary() {
	if [ "${#FAILED_CHECKS[@]}" -gt 0 ]; then
		printf '# failed checks:\n'
		printf '#   %s\n' "${FAILED_CHECKS[@]}"
	fi
	if [ "$SKIPPED" -gt 0 ]; then
		printf '%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
	else
		printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
	fi
}

# ---------------------------------------------------------------------------------------------
# Utilities
# ---------------------------------------------------------------------------------------------

# wait_until TIMEOUT "what we wait for" command [args...]
# Runs the command every POLL_INTERVAL until it exits 0 or TIMEOUT seconds have passed. On
# timeout prints what it waited for and the command's last output, and returns 1.
wait_until() {
	local timeout=$1 what=$2
	shift 2
	local deadline out
	deadline=$(($(date +%s) + timeout))
	while :; do
		if out=$("$@" 2>&1); then
			return 0
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			printf 'timed out after %ss waiting for: %s\nlast output of `%s`:\n%s\n' \
				"$timeout" "$what" "$*" "$out"
			return 1
		fi
		sleep "$POLL_INTERVAL"
	done
}

# still_true_for SECONDS command [args...]: the command keeps exiting 0 for that long.
still_true_for() {
	local seconds=$1
	shift
	local deadline
	deadline=$(($(date +%s) + seconds))
	while [ "$(date +%s)" -lt "$deadline" ]; do
		"$@" || return 1
		sleep "$POLL_INTERVAL"
	done
	"$@"
}

# gen_text LEN TAG: deterministic printable text of exactly LEN bytes starting with TAG.
gen_text() {
	python3 "$INTEROP_DIR/tools/interop_util.py" text "$1" "$2"
}

# save_text NAME TEXT: keep a text in a file (for long texts and capture expectations);
# prints the file's path.
save_text() {
	local f="$WORK/texts/$1"
	mkdir -p "$WORK/texts"
	printf '%s' "$2" >"$f"
	printf '%s\n' "$f"
}

# now_epoch: current time as seconds.nanoseconds, comparable with tshark's frame.time_epoch
# (the capture timestamps come from the same clock).
now_epoch() { date +%s.%N; }

# stop_pid PID [SIGNAL]: signal a process we started, wait up to STOP_TIMEOUT, then SIGKILL.
stop_pid() {
	local pid=$1 sig=${2:-TERM} deadline
	[ -n "$pid" ] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -s "$sig" "$pid" 2>/dev/null
	deadline=$(($(date +%s) + STOP_TIMEOUT))
	while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
		sleep "$POLL_INTERVAL"
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "process $pid did not stop on SIG$sig within ${STOP_TIMEOUT}s; sending SIGKILL"
		kill -s KILL "$pid" 2>/dev/null
	fi
	# Reap it if it is our child (no-op otherwise).
	wait "$pid" 2>/dev/null
	return 0
}

# ---------------------------------------------------------------------------------------------
# Debian packages the suite needs: command -> package.
# ---------------------------------------------------------------------------------------------
declare -A NEEDED_COMMANDS=(
	[smbd]=samba
	[nmbd]=samba
	[smbclient]=smbclient
	[nmblookup]=samba-common-bin
	[tshark]=tshark
	[mergecap]=tshark
	[tcpdump]=tcpdump
	[ip]=iproute2
	[ss]=iproute2
	[bridge]=iproute2
	[python3]=python3
	[nats-server]=nats-server
)

# Install whatever is missing (root only); `apt-get update` only when something is.
ensure_packages() {
	local missing=() cmd
	for cmd in "${!NEEDED_COMMANDS[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED_COMMANDS[$cmd]}")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	# Deduplicate.
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	log "installing missing packages: ${missing[*]}"
	command -v apt-get >/dev/null 2>&1 || die "packages missing (${missing[*]}) and no apt-get"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >"$WORK/apt.log" 2>&1 ||
		die "apt-get update failed; see $WORK/apt.log"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		samba smbclient samba-common-bin tshark tcpdump iproute2 python3 nats-server >>"$WORK/apt.log" 2>&1 ||
		die "apt-get install failed; see $WORK/apt.log"
	for cmd in "${!NEEDED_COMMANDS[@]}"; do
		command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing packages"
	done
}
