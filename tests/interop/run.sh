#!/usr/bin/env bash
# Interoperability suite: messengerd / messenger against Samba (smbd, nmbd, smbclient,
# nmblookup) on a private test network of network namespaces, with every packet captured and
# decoded by tshark. See README.md beside this file.
#
#   sudo tests/interop/run.sh
#
# Needs root (namespaces, ports 137-139). Without root, or where `ip netns add` fails, it
# says "SKIPPED: not root / no namespaces" and exits 0. Otherwise the last line is
# "N passed, N failed[, N skipped]" and the exit status is non-zero if anything failed.
#
# Environment (all optional): INTEROP_KEEP=1 keeps the work directory (logs, capture) even
# when everything passed; INTEROP_NO_BUILD=1 with MESSENGERD_BIN/MESSENGER_BIN uses given
# binaries without cargo; INTEROP_ONLY=organisation runs only the organisation checks (NATS
# on routed subnets); the timeouts in lib/common.sh can be overridden likewise.
set -u

INTEROP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$INTEROP_DIR/../.." && pwd)
RUN_ID=$$
# Every namespace of this run is named "$NS_PREFIX-<host>", so runs never collide and
# teardown removes only what this run made.
NS_PREFIX=${INTEROP_NS_PREFIX:-msgr$RUN_ID}

skip_whole_run() {
	{
		echo "#################################################################"
		echo "# interop suite NOT RUN: $1"
		echo "# it needs root and network namespaces: sudo tests/interop/run.sh"
		echo "#################################################################"
	} >&2
	echo "SKIPPED: not root / no namespaces ($1)"
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip_whole_run "not root"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/messenger-interop.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }
# Samba's message command runs as nobody and must reach directories below this one.
chmod 0755 "$WORK"
: >"$WORK/pids" # every background process we start, for the leftover check

# shellcheck source=lib/common.sh
. "$INTEROP_DIR/lib/common.sh"
# shellcheck source=lib/net.sh
. "$INTEROP_DIR/lib/net.sh"
# shellcheck source=lib/capture.sh
. "$INTEROP_DIR/lib/capture.sh"
# shellcheck source=lib/samba.sh
. "$INTEROP_DIR/lib/samba.sh"
# shellcheck source=lib/messengerd.sh
. "$INTEROP_DIR/lib/messengerd.sh"
# shellcheck source=checks/samba.sh
. "$INTEROP_DIR/checks/samba.sh"
# shellcheck source=checks/messengerd.sh
. "$INTEROP_DIR/checks/messengerd.sh"
# shellcheck source=lib/organisation.sh
. "$INTEROP_DIR/lib/organisation.sh"
# shellcheck source=checks/organisation.sh
. "$INTEROP_DIR/checks/organisation.sh"

# ---------------------------------------------------------------------------------------------
# Teardown, run on every exit path (normal end, failure, Ctrl-C, SIGTERM).
# ---------------------------------------------------------------------------------------------
TORN_DOWN=0
teardown() {
	[ "$TORN_DOWN" = 1 ] && return 0
	TORN_DOWN=1
	local h
	for h in "${HOSTS[@]}"; do
		stop_messengerd "$h"
		stop_samba "$h"
	done
	stop_nats_cluster
	stop_capture
	kill_namespace_processes
	delete_namespaces
}

remove_work_dir() {
	if [ "${INTEROP_KEEP:-0}" = 1 ] || [ "$FAILED" -gt 0 ]; then
		log "logs and capture kept in $WORK"
	else
		rm -rf "$WORK"
	fi
}

on_exit() {
	teardown
	remove_work_dir
}

on_signal() {
	trap - INT TERM HUP
	log "run.sh: interrupted by SIG$1; cleaning up"
	FAILED=$((FAILED + 1))
	FAILED_CHECKS+=("run interrupted by SIG$1")
	teardown
	print_summary
	exit 130
}

trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

# ---------------------------------------------------------------------------------------------
# Nothing left behind: checked after teardown.
# ---------------------------------------------------------------------------------------------
nothing_left_behind() {
	local bad=0 pid ns
	ns=$(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS_PREFIX-")
	[ -z "$ns" ] || { echo "namespaces left: $ns"; bad=1; }
	while read -r pid; do
		[ -n "$pid" ] || continue
		if kill -0 "$pid" 2>/dev/null; then
			echo "process left: $(ps -o pid=,args= -p "$pid")"
			bad=1
		fi
	done <"$WORK/pids"
	return "$bad"
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
ensure_packages

# The one probe that decides whether this machine can run the suite at all.
if ! ip netns add "$(BRIDGE_NS)" 2>"$WORK/netns.err"; then
	skip_whole_run "ip netns add failed: $(cat "$WORK/netns.err")"
fi
ip netns del "$(BRIDGE_NS)"

info "interop suite, run $RUN_ID, work directory $WORK"
create_bridge || die "cannot create the bridge namespace"

# The test network. Hosts are named here once; checks refer to them by these names.
#        host       address     NetBIOS name  workgroup
add_host hosta      10.77.0.1   HOSTA         TESTGROUP  || die "cannot create hosta"
add_host hostb      10.77.0.2   HOSTB         TESTGROUP  || die "cannot create hostb"
add_host hostc      10.77.0.3   HOSTC         TESTGROUP  || die "cannot create hostc"
add_host hostd      10.77.0.4   HOSTD         OTHERGROUP || die "cannot create hostd"
# hoste runs no daemon: it sends with `messenger --config FILE send`.
add_host hoste      10.77.0.5   HOSTE         TESTGROUP  || die "cannot create hoste"
add_host sambahost  10.77.0.10  SAMBAHOST     TESTGROUP  || die "cannot create sambahost"
# samba2: an nmbd that tries to take a name messengerd holds (check 5).
add_host samba2     10.77.0.11  SAMBA2        TESTGROUP  || die "cannot create samba2"
# sambabeside: nmbd and smbd own the NetBIOS ports; messengerd runs beside them (check 7).
add_host sambabeside 10.77.0.12 FILESRV       TESTGROUP  || die "cannot create sambabeside"

if [ "${INTEROP_ONLY:-}" != organisation ]; then
	start_capture || die "cannot start the capture"
	for h in "${HOSTS[@]}"; do
		info "$(printf '%-10s %-12s %-10s %-10s namespace %s' "$h" "${HOST_IP[$h]}" "${HOST_NB[$h]}" "${HOST_WG[$h]}" "$(ns_of "$h")")"
	done

	check "network: hosta reaches every other host over the bridge" network_reachable
	run_samba_checks
	find_binaries
	run_messengerd_checks

	# Stop everything that sends, then read the capture.
	for h in "${HOSTS[@]}"; do
		stop_messengerd "$h"
		stop_samba "$h"
	done
	stop_capture
	run_capture_checks
else
	find_binaries
fi

# The organisation's network: a topology of its own (routed subnets), after the LAN's.
run_organisation_checks

teardown
check "teardown: no namespace or process of this run is left" nothing_left_behind

print_summary
[ "$FAILED" -eq 0 ]
