#!/usr/bin/env bash
# Instruction counts of the benchmark workloads: the figures that survive a noisy machine.
#   scripts/instructions.sh            # W3 (P=100), W4a (n=100 000), W4b; both bases
#   scripts/instructions.sh --peers    # the same for the C peers (libevent, libev, libuv,
#                                      # floor), W4a at their n = 1 000 000; see below
#   scripts/instructions.sh --w7       # W7: the echo server per round trip, both bases; below
#   scripts/instructions.sh --w7 --peers  # the same for the C peers' W7 servers and the floor
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
#
# --w7 runs the W7 server (`workloads W7server base|local`) under callgrind, collecting only
# inside the core's `run_with` (the whole loop: accept, the callbacks, the poller; not the
# process setup; the pattern is `*::run_with`, not `*run_with*`: callgrind toggles again on
# entering any function the pattern matches, so a closure named `run_with::{{closure}}`
# would be left out), drives it with the peers' load client (50 connections, 0.5 s warm-up + 2 s;
# $ROUSE_W7CLIENT, or built from ../shared/peers/rust as the harness builds it), stops it
# with SIGTERM and divides by the round trips it served: the calls of libc's `write` (or
# `send`) made while collecting (one per 64-byte echo; only a short write would add one, and
# the client's 64-byte messages never come up short). The line also splits the count:
# "server_per_unit" is the bench server's own code (benches/w7: its callbacks, `Echo`, the
# connection cell, its read/write calls and libc's wrappers of them), "loop_per_unit" the
# rest (the core's loop, rouse-std's callback wrapper and poller); "per_wait" is the round
# trips per `epoll_wait` (the fewer, the more loop overhead each carries; it moves between
# runs, and the loop's figure with it). With W7_CALLGRIND_DIR set, the callgrind files are
# kept there (cg.IMPL) for `callgrind_annotate`. `--w7 --peers` counts the C peers' servers
# (../shared/peers/c, or $PEERS_C, built as --peers builds them) the same way, collecting
# inside their loop's run call (event_base_dispatch, ev_run, uv_run; the floor's run_w7):
# the whole server, no split.
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

# Self cost of a callgrind file ($1), split as --w7 describes, and the calls of libc's
# write/send and of the epoll wait: "total server loop writes waits".
w7_split() {
	python3 - "$1" <<'EOF'
import re, sys
names, cost, calls = {}, {"server": 0, "loop": 0}, {}
def name(kind, v):  # "(id) name" defines, "(id)" refers
    m = re.match(r"\((\d+)\)(?: (.*))?", v)
    if not m:
        return v
    if m.group(2) is not None:
        names[(kind, m.group(1))] = m.group(2)
    return names.get((kind, m.group(1)), "?")
def server(file, fn):
    if "benches/w7/" in file or file.endswith("adapters/std/src/loop_cell.rs"):
        return True  # the server's code, and its connection cell
    if re.search(r"/(src|adapters)/", file) and "/rustc/" not in file and "/.cargo/" not in file:
        return False  # rouse's own code (core, rouse-std)
    # std, core, alloc, libc code: by the function it runs in. A callback wrapper holds the
    # server's closure (the std code in it is the server's); the loop's own functions, the
    # poller's and the clock's libc calls are the loop's; the rest (TcpStream, send, recv,
    # closures and shims of the server) is the server's.
    if re.match(r"rouse_std::api::wrap(_local)?::\{\{closure\}\}", fn):
        return True
    return not re.search(r"rouse_core::|rouse_std::|^epoll_|clock_gettime|^__vdso|^syscall$", fn)

fl = fi = fn = cfn = ""
after_call = False
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith(("fl=", "fi=", "fe=")):
        v = name("fl", line[3:])
        if line.startswith("fl="):
            fl = fi = v
        else:
            fi = v
    elif line.startswith("fn="):
        fn, fi = name("fn", line[3:]), fl
    elif line.startswith("cfn="):
        cfn = name("fn", line[4:])
    elif line.startswith(("cfl=", "cfi=")):
        name("fl", line[4:])
    elif line.startswith(("ob=", "cob=")):
        pass
    elif line.startswith("calls="):
        calls[cfn] = calls.get(cfn, 0) + int(line[6:].split()[0])
        after_call = True
    elif line and (line[0].isdigit() or line[0] in "+-*"):
        parts = line.split()
        if len(parts) >= 2:
            if not after_call:
                cost["server" if server(fi, fn) else "loop"] += int(parts[1])
            after_call = False
waits = sum(n for f, n in calls.items() if f.startswith(("epoll_wait", "epoll_pwait")))
writes = sum(calls.get(f, 0) for f in ("write", "send", "writev"))
print(cost["server"] + cost["loop"], cost["server"], cost["loop"], writes, waits)
EOF
}

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

if [[ ${1-} == --w7 ]]; then
	client=${ROUSE_W7CLIENT-}
	if [[ -z $client ]]; then
		# <target>/release/deps/workloads-HASH -> <target>/w7-peers, as the harness builds it
		peers=$(dirname "$exe")/../../w7-peers
		[[ -f ../shared/peers/rust/Cargo.toml ]] ||
			{ echo "instructions.sh: set ROUSE_W7CLIENT or put the peers at ../shared/peers" >&2; exit 1; }
		CARGO_TARGET_DIR=$peers cargo build --release --locked --quiet --bin w7client \
			--manifest-path ../shared/peers/rust/Cargo.toml >&2
		client=$peers/release/w7client
	fi
	# A W7 server under callgrind: $1 its name, $2 the function to collect inside, then its
	# command line; prints its line ("split": the server/loop fields, for rouse's servers).
	w7_count() {
		local name=$1 toggle=$2 split=$3 cg=$out/cg.$1 port= vg ir srv loop rt waits
		shift 3
		rm -f "$out/srv"
		valgrind --tool=callgrind --callgrind-out-file="$cg" --dump-instr=no \
			--toggle-collect="$toggle" "$@" >"$out/srv" 2>"$out/srv.err" &
		vg=$!
		for _ in $(seq 100); do
			port=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$out/srv")
			[[ -n $port ]] && break
			sleep 0.1
		done
		[[ -n $port ]] || { kill "$vg"; echo "instructions.sh: W7 server $name did not start" >&2; exit 1; }
		timeout 20 "$client" --port "$port" --impl "$name" --seconds 2 --warmup 0.5 >"$out/client" ||
			{ kill "$vg"; echo "instructions.sh: W7 client ($name) failed" >&2; exit 1; }
		grep -q '"errors":0,' "$out/client" || { kill "$vg"; cat "$out/client" >&2; exit 1; }
		kill -TERM "$vg"
		wait "$vg" || true # ended by SIGTERM; callgrind writes its file first
		read -r ir srv loop rt waits < <(w7_split "$cg")
		if [[ -n ${W7_CALLGRIND_DIR-} ]]; then
			mkdir -p "$W7_CALLGRIND_DIR" && cp "$cg" "$W7_CALLGRIND_DIR/"
		fi
		[[ $rt -gt 0 ]] || { echo "instructions.sh: W7 ($name): no round trip counted" >&2; exit 1; }
		python3 -c 'import json, sys
n, split, ir, srv, loop, rt, waits = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:8])
d = {"impl": n, "workload": "W7", "instr": "callgrind", "instructions": ir, "units": rt,
     "per": "round trip", "instructions_per_unit": round(ir / rt, 1)}
if split == "split":
    d.update(server_per_unit=round(srv / rt, 1), loop_per_unit=round(loop / rt, 1))
d["per_wait"] = round(rt / max(waits, 1), 1)
print(json.dumps(d))' "$name" "$split" "$ir" "$srv" "$loop" "$rt" "$waits"
	}
	if [[ ${2-} == --peers ]]; then
		PEERS_C=${PEERS_C:-../shared/peers/c}
		[[ -f $PEERS_C/Makefile ]] || { echo "instructions.sh: no peers' C programs in $PEERS_C (set PEERS_C)" >&2; exit 1; }
		cp "$PEERS_C"/*.c "$PEERS_C"/*.h "$PEERS_C"/Makefile "$out/"
		make -s -C "$out" >&2 || { echo "instructions.sh: building the peers failed" >&2; exit 1; }
		# Each collects inside its loop's run call, as rouse's inside `run_with` (the floor's
		# loop is its run_w7 itself).
		for peer in floor:run_w7 libevent:event_base_dispatch libev:ev_run libuv:uv_run; do
			name=${peer%%:*} run=${peer#*:}
			impl=$(cd "$out" && timeout 5 "./bench_$name" W7 | head -n 1 | sed -n 's/^{"impl":"\([^"]*\)".*/\1/p') || true
			w7_count "${impl:-$name}" "$run" whole "$out/bench_$name" W7
		done
		exit 0
	fi
	for base in base local; do
		name=rouse-$version
		[[ $base == local ]] && name=$name-local
		w7_count "$name" '*::run_with' split "$exe" W7server "$base"
	done
	exit 0
fi

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
