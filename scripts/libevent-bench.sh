#!/usr/bin/env bash
# The peers' libevent benchmark (bench_libevent.c, W1-W6 through the libevent API), built
# once against the system's libevent, run twice in one sitting: on libevent, then relinked
# onto rouse-libevent through LD_LIBRARY_PATH. One JSON line per result on stdout, each with
# "lib":"libevent" or "lib":"rouse-libevent" added (the binary's own "impl" field reports
# event_get_version(), the same for both); progress on stderr.
# Usage: scripts/libevent-bench.sh [WORKLOAD...]   (default: W1a W1b W2 W3 W4 W6 W5 W4late,
#   each in its own process). W4late is this repository's benches/libevent/timer_lateness.c
#   (how far from their deadlines W4a's timers fire, at 1 000 and 10 000 timers: the
#   precision that W4scale's CPU figure is paid with), built the same way. W6 runs with the
#   whole process on one CPU (`taskset -c 0`, the figure WORKLOADS.md compares: on two vCPUs
#   a halted one adds kernel time to every wake), its lines marked "cpus":"0"; W6unpinned is
#   the same without taskset (an extra).
# Environment: PEERS_C  the directory of bench_libevent.c (default: ../shared/peers/c next to
#   the repository); LIBDIR  a directory from scripts/libevent-lib.sh (built when unset);
#   BENCH_DIR  where the binary is built (default: target/libevent-bench; the sources may be
#   read-only).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS_C=${PEERS_C:-$ROOT/../shared/peers/c}
[[ -f $PEERS_C/bench_libevent.c ]] || { echo "libevent-bench.sh: no bench_libevent.c in $PEERS_C (set PEERS_C)" >&2; exit 1; }
CC=${CC:-cc}
command -v "$CC" >/dev/null || { echo "libevent-bench.sh: no C compiler" >&2; exit 1; }
[[ -f /usr/include/event2/event.h ]] || { echo "libevent-bench.sh: install libevent-dev" >&2; exit 1; }
BENCH_DIR=${BENCH_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/libevent-bench}
mkdir -p "$BENCH_DIR"
BIN=$BENCH_DIR/bench_libevent
if [[ ! -x $BIN || $PEERS_C/bench_libevent.c -nt $BIN || $PEERS_C/common.h -nt $BIN ]]; then
	echo "# building $BIN against the system libevent" >&2
	"$CC" -O2 -g -Wall -Wextra -std=gnu11 -I"$PEERS_C" -o "$BIN" "$PEERS_C/bench_libevent.c" \
		-levent_core -levent_pthreads -lpthread
fi
LATE=$BENCH_DIR/timer_lateness
LATE_SRC=$ROOT/benches/libevent/timer_lateness.c
if [[ ! -x $LATE || $LATE_SRC -nt $LATE ]]; then
	"$CC" -O2 -g -Wall -Wextra -std=gnu11 -o "$LATE" "$LATE_SRC" -levent_core
fi
LIBDIR=${LIBDIR:-$BENCH_DIR/lib}
[[ -n ${KEEP_LIB:-} && -f $LIBDIR/libevent_core-2.1.so.7 ]] || "$ROOT/scripts/libevent-lib.sh" "$LIBDIR" >&2
if [[ $# -gt 0 ]]; then WL=("$@"); else WL=(W1a W1b W2 W3 W4 W6 W5 W4late); fi
# Each workload in its own process (W5 measures RSS growth, as the peers' run.sh does).
run() {
	local lib=$1; shift
	local start=$SECONDS
	for w in "${WL[@]}"; do
		local mark= pin=()
		if [[ $w == W6 ]] && command -v taskset >/dev/null; then
			mark='"cpus":"0",' pin=(taskset -c 0)
		fi
		if [[ $w == W4late ]]; then
			env "$@" timeout 600 "$LATE"
		elif [[ ${#pin[@]} -gt 0 ]]; then
			env "$@" timeout 600 "${pin[@]}" "$BIN" W6
		else
			env "$@" timeout 600 "$BIN" "${w%unpinned}"
		fi | sed "s/^{/{\"lib\":\"$lib\",$mark/"
	done
	echo "# $lib finished in $((SECONDS - start)) s" >&2
}
run libevent -u LD_LIBRARY_PATH
run rouse-libevent LD_LIBRARY_PATH="$LIBDIR"
