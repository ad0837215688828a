#!/usr/bin/env bash
# Instruction counts of the benchmark workloads: the figures that survive a noisy machine.
#   scripts/instructions.sh            # W3 (P=100), W4a (n=100 000), W4b; both bases
#
# Runs the bench binary (`cargo bench --bench workloads`, bench profile) under valgrind's
# callgrind, collecting only inside the measured sections (benches/common `measured_threaded`
# and `measured_local`), and prints one JSON line per workload and base:
#   {"impl":"rouse-0.2.0","workload":"W4a","instr":"callgrind","instructions":...,
#    "units":100000,"per":"timer","instructions_per_unit":...}
# User-space instructions only (the kernel's work in the syscalls is not counted). W3 counts
# every run of the workload (2 warm-ups + 25, each re-arming P events and dispatching
# W = 1000), so a unit is one dispatched event with its share of the re-arm. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }

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
		python3 -c 'import json, sys
n, w, ir, units, per = sys.argv[1:6]
print(json.dumps({"impl": n, "workload": w, "instr": "callgrind", "instructions": int(ir),
                  "units": int(units), "per": per,
                  "instructions_per_unit": round(int(ir) / int(units), 1)}))' \
			"$name" "$w" "$ir" "$units" "$per"
	done
}

run W3 "ROUSE_W3_P=100" $((27 * 1000)) "dispatched event (with its re-arm)"
run W4a "ROUSE_W4_TIMERS=100000" 100000 "timer (add + fire)"
run W4b "" 1000000 "op (add + delete)"
