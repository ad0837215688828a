#!/usr/bin/env bash
# Instruction counts of the benchmark workloads: the figures that survive a noisy machine.
#   scripts/instructions.sh            # W3 (P=100), W4a (n=100 000), W4b; both bases
#   scripts/instructions.sh --peers    # the same for the C peers (libevent, libev, libuv,
#                                      # floor), W4a at their n = 1 000 000; see below
#
# Runs the bench binary (`cargo bench --bench workloads`, bench profile) under valgrind's
# callgrind, collecting only inside the measured sections (benches/common `measured_threaded`
# and `measured_local`), and prints one JSON line per workload and base:
#   {"impl":"rouse-0.2.0","workload":"W4a","instr":"callgrind","instructions":...,
#    "units":100000,"per":"timer","instructions_per_unit":...}
# User-space instructions only (the kernel's work in the syscalls is not counted). W3 counts
# every run of the workload (2 warm-ups + 25, each re-arming P events and dispatching
# W = 1000), so a unit is one dispatched event with its share of the re-arm. Needs valgrind.
#
# --peers builds the peers' C programs (../shared/peers/c, or $PEERS_C) with their Makefile in
# a temporary directory (their sources are not touched) and counts the same sections. Their
# programs take no sizes and run W4a and W4b in one function, so the sections are told apart
# by callgrind dumps, not by editing them: a dump after the call that makes the loop
# (event_base_new_with_config, ev_loop_new, uv_loop_init, epoll_create1 for the floor) and one
# before every printf (each section ends by printing its JSON line). Between the loop's
# creation and the first printf: W3 at P=100 (the first of its three sizes: 27 runs of the
# re-arm of P events and W = 1000 dispatches, as rouse's) or W4a (n = W4_TIMERS = 1 000 000:
# the adds and the loop that fires them); between that printf and the next: W4b (1 000 000
# add + delete pairs, plus the printing of the W4a line and the freeing of its timers, a few
# thousand instructions: under 0.01 per op). libevent runs W4 without and with locking
# (EVENT_BASE_FLAG_NOLOCK; evthread_use_pthreads): "-nolock" and plain in "impl", as rouse's
# local and threaded bases. The same bench_libevent binary also runs relinked onto
# rouse-libevent (scripts/libevent-lib.sh, LD_LIBRARY_PATH): "rouse-libevent-VERSION" lines,
# what a libevent program's calls cost on rouse. Needs valgrind, a C compiler, make,
# libevent-dev, libev-dev, libuv1-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }

line() { # impl workload instructions units per
	python3 -c 'import json, sys
n, w, ir, units, per = sys.argv[1:6]
print(json.dumps({"impl": n, "workload": w, "instr": "callgrind", "instructions": int(ir),
                  "units": int(units), "per": per,
                  "instructions_per_unit": round(int(ir) / int(units), 1)}))' "$@"
}

if [[ ${1-} == --peers ]]; then
	PEERS_C=${PEERS_C:-../shared/peers/c}
	[[ -f $PEERS_C/Makefile && -f $PEERS_C/common.h ]] ||
		{ echo "instructions.sh: no peers' C programs in $PEERS_C (set PEERS_C)" >&2; exit 1; }
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
	cp "$PEERS_C"/*.c "$PEERS_C"/*.h "$PEERS_C"/Makefile "$out/"
	make -s -C "$out" >&2 || { echo "instructions.sh: building the peers failed (libevent-dev, libev-dev, libuv1-dev?)" >&2; exit 1; }
	timers=$(sed -n 's/^#define W4_TIMERS \([0-9]*\).*/\1/p' "$out/common.h")
	churn=$(sed -n 's/^#define W4_CHURN \([0-9]*\).*/\1/p' "$out/common.h")
	# Counts dump $3 of a run of peer binary $1 on workload $2 (its loop maker: $4).
	part() {
		local f=$out/cg.${1#bench_}.$2.$3
		[[ -f $f ]] || { echo "instructions.sh: $1 $2: no dump $3" >&2; exit 1; }
		sed -n 's/^totals: \([0-9]*\).*/\1/p' "$f"
	}
	scripts/libevent-lib.sh "$out/lib" >&2
	relinked=rouse-libevent-$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
	for peer in libevent:event_base_new_with_config libev:ev_loop_new libuv:uv_loop_init \
		floor:epoll_create1 rouse-libevent:event_base_new_with_config; do
		name=${peer%%:*} maker=${peer#*:}
		bin=bench_$name envs=()
		if [[ $name == rouse-libevent ]]; then
			bin=bench_libevent envs=(LD_LIBRARY_PATH="$out/lib")
		fi
		for w in W3 W4a; do
			(cd "$out" && env "${envs[@]}" valgrind --tool=callgrind --dump-instr=no \
				--callgrind-out-file="$out/cg.$name.$w" --dump-after="$maker" \
				--dump-before=printf "./$bin" "$w" >"$out/$name.$w.out" 2>"$out/$name.$w.err") || {
				echo "instructions.sh: $name $w failed under valgrind:" >&2
				tail -n 20 "$out/$name.$w.err" >&2
				exit 1
			}
		done
		impl=$(sed -n 's/^{"impl":"\([^"]*\)".*/\1/p' "$out/$name.W3.out" | head -1)
		[[ $name == rouse-libevent ]] && impl=$relinked
		bin=bench_$name
		# Dumps: 1 up to the loop, 2 the section, 3 the next printf; for W4 then W4b (3) and,
		# for libevent, the locked base's W4a (5) and W4b (6).
		line "$impl" W3 "$(part "$bin" W3 2)" $((27 * 1000)) "dispatched event (with its re-arm)"
		if [[ $bin == bench_libevent || $bin == bench_rouse-libevent ]]; then
			line "$impl-nolock" W4a "$(part "$bin" W4a 2)" "$timers" "timer (add + fire)"
			line "$impl-nolock" W4b "$(part "$bin" W4a 3)" "$churn" "op (add + delete)"
			line "$impl" W4a "$(part "$bin" W4a 5)" "$timers" "timer (add + fire)"
			line "$impl" W4b "$(part "$bin" W4a 6)" "$churn" "op (add + delete)"
		else
			line "$impl" W4a "$(part "$bin" W4a 2)" "$timers" "timer (add + fire)"
			line "$impl" W4b "$(part "$bin" W4a 3)" "$churn" "op (add + delete)"
		fi
	done
	exit 0
fi

exe=$(cargo bench --bench workloads --no-run --message-format=json 2>/dev/null |
	python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "workloads":
        print(m["executable"])' | tail -n 1)
[[ -x $exe ]] || { echo "instructions.sh: no bench binary" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# workload, env, units per base, what a unit is: one valgrind run per base, each collecting
# only inside that base's measured sections.
run() {
	local w=$1 envs=$2 units=$3 per=$4 base name ir
	for base in threaded local; do
		name=rouse-$version
		[[ $base == local ]] && name=$name-local
		env $envs valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
			--toggle-collect="*measured_$base*" --dump-instr=no \
			"$exe" "$w" >"$out/stdout" 2>"$out/stderr" || {
			echo "instructions.sh: $w failed under valgrind:" >&2
			tail -n 20 "$out/stderr" >&2
			exit 1
		}
		ir=$(sed -n 's/^==[0-9]*== Collected : \([0-9]*\)$/\1/p' "$out/stderr" | tail -n 1)
		[[ -n $ir && $ir -gt 0 ]] || { echo "instructions.sh: $w ($base): nothing collected" >&2; exit 1; }
		line "$name" "$w" "$ir" "$units" "$per"
	done
}

run W3 "ROUSE_W3_P=100" $((27 * 1000)) "dispatched event (with its re-arm)"
run W4a "ROUSE_W4_TIMERS=100000" 100000 "timer (add + fire)"
run W4b "" 1000000 "op (add + delete)"
