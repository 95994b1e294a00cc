# shellcheck shell=bash
# Our programs: building them, running messengerd in a test host, driving the messenger CLI.
#
#   find_binaries                   decide whether messengerd/messenger can be used (and
#                                   build them); sets HAVE_MESSENGERD and MESSENGERD_MISSING
#   need_messengerd                 first line of every check that needs them: reports
#                                   "skipped: ..." (exit $SKIP_RC) when they are not there
#   start_messengerd HOST COMPUTERNAME WORKGROUP [EXTRA_TOML]
#   stop_messengerd HOST
#   messenger_cli HOST args...      `messenger --socket <HOST's control socket> args...`
#   messenger_cfg HOST args...      `messenger --config <HOST's config> args...` (no daemon)
#   set_logged_in HOST [user:tty ...] [-:tty ...]   rewrite HOST's fake utmp file
#   inbox_has HOST [--as USER] [--text T|--text-file F] [--to N] [--from N] [--transport X]
#   wait_inbox HOST ...              inbox_has, polled up to MESSAGE_WAIT_TIMEOUT
#   md_dir HOST                      the daemon's directory (config.toml, data/, log, utmp)

: "${MESSENGERD_BIN:=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/messengerd}"
: "${MESSENGER_BIN:=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/messenger}"
# Cargo packages of the two programs.
MESSENGERD_PACKAGE=messengerd
MESSENGER_PACKAGE=messenger-cli

HAVE_MESSENGERD=0
# Why the checks of our programs are skipped (short, shown on every skipped check) and the
# details (shown once).
MESSENGERD_MISSING="messengerd not built yet"
MESSENGERD_DETAIL=""

md_dir() { printf '%s\n' "$WORK/messengerd/$1"; }
md_socket() { printf '%s\n' "$(md_dir "$1")/control.sock"; }
md_config() { printf '%s\n' "$(md_dir "$1")/config.toml"; }
md_utmp() { printf '%s\n' "$(md_dir "$1")/utmp"; }

# workspace_has_packages: both packages are members of the workspace.
workspace_has_packages() {
	local cargo=$1
	(cd "$REPO_ROOT" && "$cargo" metadata --no-deps --format-version 1 2>/dev/null) |
		python3 -c '
import json, sys
names = {p["name"] for p in json.load(sys.stdin)["packages"]}
sys.exit(0 if set(sys.argv[1:]) <= names else 1)' "$MESSENGERD_PACKAGE" "$MESSENGER_PACKAGE"
}

# find_binaries: decides HAVE_MESSENGERD, recording the build as a check. Rules:
# - INTEROP_NO_BUILD=1: use $MESSENGERD_BIN / $MESSENGER_BIN as they are (if executable).
# - otherwise, when the workspace has both packages, `cargo build --release` them (cargo
#   itself rebuilds only what is stale) and use target/release/; a failed build fails, and
#   the checks that need the programs are skipped.
# - when the workspace does not have them yet, everything that needs them is skipped.
find_binaries() {
	if [ "${INTEROP_NO_BUILD:-0}" = 1 ]; then
		if [ -x "$MESSENGERD_BIN" ] && [ -x "$MESSENGER_BIN" ]; then
			HAVE_MESSENGERD=1
		else
			MESSENGERD_DETAIL="no $MESSENGERD_BIN or $MESSENGER_BIN"
		fi
	else
		local cargo failed_before=$FAILED
		cargo=$(command -v cargo || true)
		[ -z "$cargo" ] && [ -x "${HOME:-/root}/.cargo/bin/cargo" ] && cargo="${HOME:-/root}/.cargo/bin/cargo"
		if [ -z "$cargo" ]; then
			MESSENGERD_DETAIL="no cargo to build it"
			skip_check "build messengerd and messenger" "$MESSENGERD_MISSING: $MESSENGERD_DETAIL"
		elif ! workspace_has_packages "$cargo"; then
			MESSENGERD_DETAIL="packages $MESSENGERD_PACKAGE and $MESSENGER_PACKAGE are not in the workspace"
			skip_check "build messengerd and messenger" "$MESSENGERD_MISSING: $MESSENGERD_DETAIL"
		else
			check "build messengerd and messenger (cargo build --release)" build_binaries "$cargo"
			if [ "$FAILED" -gt "$failed_before" ]; then
				MESSENGERD_MISSING="messengerd failed to build"
			elif [ -x "$MESSENGERD_BIN" ] && [ -x "$MESSENGER_BIN" ]; then
				HAVE_MESSENGERD=1
			else
				MESSENGERD_MISSING="messengerd not found after the build"
				MESSENGERD_DETAIL="no $MESSENGERD_BIN or $MESSENGER_BIN"
			fi
		fi
	fi
	if [ "$HAVE_MESSENGERD" = 1 ]; then
		info "using $MESSENGERD_BIN and $MESSENGER_BIN"
	else
		info "checks of our programs are skipped: $MESSENGERD_MISSING${MESSENGERD_DETAIL:+ ($MESSENGERD_DETAIL)}"
	fi
}

build_binaries() {
	local cargo=$1
	(cd "$REPO_ROOT" && timeout --foreground -k "$KILL_GRACE" "$BUILD_TIMEOUT" "$cargo" build --release \
		-p "$MESSENGERD_PACKAGE" -p "$MESSENGER_PACKAGE" 2>&1 | tail -n 40; exit "${PIPESTATUS[0]}")
}

need_messengerd() {
	if [ "$HAVE_MESSENGERD" != 1 ]; then
		echo "skipped: $MESSENGERD_MISSING"
		exit "$SKIP_RC"
	fi
}

# start_messengerd HOST COMPUTERNAME WORKGROUP [EXTRA_TOML]
# Writes $(md_dir HOST)/config.toml and starts `messengerd --config FILE` inside HOST, logs
# to $(md_dir HOST)/messengerd.log, and waits (MESSENGERD_READY_TIMEOUT) until
# `messenger --socket SOCK status` exits 0. EXTRA_TOML is added after the top-level keys
# written here (put top-level keys first in it; it may add tables, [policy] included, in
# which case the default [policy] below is left out).
start_messengerd() {
	local host=$1 computer=$2 workgroup=$3 extra=${4:-} d pid
	d=$(md_dir "$host")
	mkdir -p "$d/data"
	[ -f "$(md_utmp "$host")" ] || set_logged_in "$host"
	{
		cat <<-EOF
			# written by tests/interop/run.sh
			computer_name = "$computer"
			workgroup = "$workgroup"
			data_dir = "$d/data"
			control_socket = "$(md_socket "$host")"
			listen_addresses = ["${HOST_IP[$host]}"]
			utmp_path = "$(md_utmp "$host")"
			# The tests run as root; the daemon may drop to this account after binding.
			user = "root"
		EOF
		[ -n "$extra" ] && printf '%s\n' "$extra"
		if ! printf '%s\n' "$extra" | grep -q '^\[policy\]'; then
			cat <<-EOF

				[policy]
				# Tests send many messages quickly from the same hosts.
				rate_limit = false
			EOF
		fi
	} >"$(md_config "$host")"
	rm -f "$(md_socket "$host")"
	pid=$(RUST_LOG="${RUST_LOG:-debug}" RUST_BACKTRACE=1 \
		in_host_bg "$host" "$d/messengerd.log" "$MESSENGERD_BIN" --config "$(md_config "$host")")
	printf '%s\n' "$pid" >"$d/pid"
	printf '%s\n' "$pid" >>"$WORK/pids"
	if ! wait_until "$MESSENGERD_READY_TIMEOUT" "messengerd on $host answering on its control socket" \
		md_alive_and_answering "$host"; then
		echo "--- $d/messengerd.log (tail):"
		tail -n 40 "$d/messengerd.log"
		return 1
	fi
}

md_alive_and_answering() {
	local pid
	pid=$(cat "$(md_dir "$1")/pid")
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "messengerd on $1 (pid $pid) has exited"
		# Stop polling at once: nothing will answer any more.
		return 0
	fi
	messenger_cli "$1" status
}

stop_messengerd() {
	local host=$1 f
	f="$(md_dir "$host")/pid"
	[ -f "$f" ] || return 0
	stop_pid "$(cat "$f")" TERM
	rm -f "$f"
}

# messengerd_running HOST: started and still alive.
messengerd_running() {
	local f
	f="$(md_dir "$1")/pid"
	[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

messenger_cli() {
	local host=$1
	shift
	in_host "$host" "$MESSENGER_BIN" --socket "$(md_socket "$host")" "$@"
}

messenger_cfg() {
	local host=$1
	shift
	in_host "$host" "$MESSENGER_BIN" --config "$(md_config "$host")" "$@"
}

# write_cli_config HOST COMPUTERNAME WORKGROUP: a config for daemonless `messenger --config`.
write_cli_config() {
	local host=$1 d
	d=$(md_dir "$host")
	mkdir -p "$d/data"
	cat >"$(md_config "$host")" <<-EOF
		# written by tests/interop/run.sh (no daemon runs on this host)
		computer_name = "$2"
		workgroup = "$3"
		data_dir = "$d/data"
		control_socket = "$(md_socket "$host")"
		listen_addresses = ["${HOST_IP[$host]}"]
	EOF
}

set_logged_in() {
	local host=$1
	shift
	mkdir -p "$(md_dir "$host")"
	python3 "$INTEROP_DIR/tools/fake_utmp.py" "$(md_utmp "$host")" "$@"
}

# inbox_has HOST [--as USER] CONDITIONS...: `messenger inbox --json` (run as root, or as USER
# for the messages of that user's names: each user sees only their own inbox) holds a
# message matching CONDITIONS (see tools/interop_util.py inbox-find). Reading marks messages
# read; the conditions do not look at that.
inbox_has() {
	local host=$1 out
	shift
	out=$(inbox_json "$@") || { echo "messenger inbox --json failed:"; echo "$out"; return 1; }
	[ "${1:-}" = --as ] && shift 2
	printf '%s\n' "$out" | python3 "$INTEROP_DIR/tools/interop_util.py" inbox-find "$@"
}

# inbox_json [--as USER] ...: print the inbox of $host (the caller's local) as JSON lines.
inbox_json() {
	if [ "${1:-}" = --as ]; then
		local user=$2 group
		group=$(id -gn "$user") || return 1
		in_host "$host" setpriv --reuid="$user" --regid="$group" --clear-groups \
			"$MESSENGER_BIN" --socket "$(md_socket "$host")" inbox --json
	else
		messenger_cli "$host" inbox --json
	fi
}

wait_inbox() {
	local host=$1
	shift
	wait_until "$MESSAGE_WAIT_TIMEOUT" "the message in $host's inbox" inbox_has "$host" "$@"
}

# inbox_lacks HOST [--as USER] CONDITIONS...: no message matches (an inbox that cannot be
# read fails).
inbox_lacks() {
	local host=$1 out
	shift
	out=$(inbox_json "$@") || { echo "messenger inbox --json failed:"; echo "$out"; return 1; }
	[ "${1:-}" = --as ] && shift 2
	if printf '%s\n' "$out" | python3 "$INTEROP_DIR/tools/interop_util.py" inbox-find "$@" >/dev/null; then
		echo "$host received a message it must not get ($*)"
		return 1
	fi
}
