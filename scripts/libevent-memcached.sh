#!/usr/bin/env bash
# memcached -- Debian's binary, unmodified -- on real libevent and on rouse-libevent
# (LD_LIBRARY_PATH), on 127.0.0.1 only, bounded in time:
#   1. memccapable (libmemcached-tools): every test that passes on libevent passes on rouse;
#   2. memcaslap for $SLAP_TIME (default 5s) with 10% verified gets: 0 verify failures on rouse;
#   3. one JSON line per library with the memcaslap throughput, and their ratio.
# Usage: scripts/libevent-memcached.sh [LIBDIR]   (LIBDIR from scripts/libevent-lib.sh;
# built in a temporary directory when omitted). Exits non-zero on any failure.
set -euo pipefail
# shellcheck source=libevent-relink.sh
source "$(dirname "$0")/libevent-relink.sh"
SLAP_TIME=${SLAP_TIME:-5s}
relink_setup libevent-memcached.sh "install memcached and libmemcached-tools (scripts/setup.sh)" memcached memccapable memcaslap timeout -- "${1:-}"

PORT=
# Starts memcached ($1: label, rest: env assignments); sets PORT, appends to PIDS.
start() {
	local label=$1; shift
	for _ in 1 2 3 4 5 6 7 8; do
		PORT=$((20000 + RANDOM % 30000))
		env "$@" timeout 300 memcached -u nobody -l 127.0.0.1 -p "$PORT" -U 0 -t 4 -m 64 \
			>"$WORK/$label.log" 2>&1 &
		local pid=$!
		for _ in $(seq 1 100); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
				PIDS+=("$pid")
				SERVER=$pid
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill "$pid" 2>/dev/null || true
	done
	echo "libevent-memcached.sh: memcached ($label) did not start:" >&2
	cat "$WORK/$label.log" >&2
	exit 1
}

# Runs the checks against one library: $1 label, rest env.
run() {
	local label=$1; shift
	start "$label" "$@"
	local pid
	pid=$(pgrep -P "$SERVER" memcached || echo "$SERVER")
	if [[ $label == rouse-libevent ]] && ! grep -q "$LIB/libevent_core-2.1.so.7" "/proc/$pid/maps"; then
		echo "libevent-memcached.sh: memcached did not load $LIB/libevent_core-2.1.so.7" >&2
		exit 1
	fi
	timeout 120 memccapable -h 127.0.0.1 -p "$PORT" >"$WORK/$label.capable" 2>&1 || true
	grep '\[pass\]' "$WORK/$label.capable" | awk '{print $1" "$2}' | sort >"$WORK/$label.pass" || true
	timeout 60 memcaslap -s "127.0.0.1:$PORT" -t "$SLAP_TIME" -T 2 -c 16 -v 0.1 >"$WORK/$label.slap" 2>&1 || {
		echo "libevent-memcached.sh: memcaslap failed on $label:" >&2
		tail -20 "$WORK/$label.slap" >&2
		exit 1
	}
	kill "$SERVER" 2>/dev/null || true
	wait "$SERVER" 2>/dev/null || true
}

run libevent
run rouse-libevent LD_LIBRARY_PATH="$LIB"

field() { sed -n "s/^$2: *\([0-9]*\).*/\1/p" "$WORK/$1.slap" | tail -1; }
tps() { sed -n 's/.*TPS: *\([0-9]*\).*/\1/p' "$WORK/$1.slap" | tail -1; }
status=0
for label in libevent rouse-libevent; do
	pass=$(wc -l <"$WORK/$label.pass")
	total=$(grep -c '\[' "$WORK/$label.capable" || true)
	vf=$(field "$label" verify_failed)
	printf '{"workload":"memcached","impl":"%s","memccapable_pass":%d,"memccapable_total":%d,"memcaslap_time":"%s","verify_failed":%s,"ops_per_s":%s}\n' \
		"$label" "$pass" "$total" "$SLAP_TIME" "${vf:-null}" "$(tps "$label")"
	if [[ -z $vf || $vf != 0 ]]; then
		echo "libevent-memcached.sh: $label: verify_failed=${vf:-missing}" >&2
		status=1
	fi
done
missing=$(comm -23 "$WORK/libevent.pass" "$WORK/rouse-libevent.pass")
if [[ -n $missing ]]; then
	echo "libevent-memcached.sh: memccapable tests passing on libevent but not on rouse-libevent:" >&2
	echo "$missing" >&2
	grep -v '\[pass\]' "$WORK/rouse-libevent.capable" >&2 || true
	status=1
fi
if [[ $(wc -l <"$WORK/libevent.pass") -eq 0 ]]; then
	echo "libevent-memcached.sh: no memccapable test passed even on libevent" >&2
	status=1
fi
a=$(tps libevent); b=$(tps rouse-libevent)
if [[ -n $a && -n $b && $a -gt 0 ]]; then
	printf '{"workload":"memcached","impl":"ratio","rouse_over_libevent":%s}\n' "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", b/a}')"
fi
exit $status
