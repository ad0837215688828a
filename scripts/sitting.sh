#!/usr/bin/env bash
# One sitting: rouse and the peers measured in turn, several rounds, then the ratio tables.
#   scripts/sitting.sh [ROUNDS] [OUTDIR] [WORKLOADS...]
#   scripts/sitting.sh 3 /tmp/sitting                 # W1a W1b W2 W3 W4 W5, then W6 pinned
#   scripts/sitting.sh 3 /tmp/sitting W4 W6 W7        # only these (W7: TCP echo, both CPUs)
#
# Needs the peers' harness (`../shared/peers` beside this checkout, or PEERS=dir): its
# run-all.sh builds and runs libevent, libev, libuv, mio, polling, calloop (tokio for W7) and
# the floor. Each round runs the peers, then rouse (`cargo bench --bench workloads`), so the
# two see the same machine; W6 runs with the whole process on CPU 0 (`taskset -c 0`), for
# both alike, as the workload defines, and each of rouse's W6 variants (default, fixed spin,
# no spin) in its own process, first in it as each peer's W6 is. compare.py merges the
# rounds (a cell is the median, with [min..max]) and prints project / best peer (< 1.0:
# rouse wins).
# Output: OUTDIR/{peers,rouse,peers-w6,rouse-w6}.jsonl, OUTDIR/compare.md (also printed),
# with the load average before each round in OUTDIR/load.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=${2:-${TMPDIR:-/tmp}/rouse-sitting}
shift $(($# > 2 ? 2 : $#))
peers=${PEERS:-../shared/peers}
[[ -x $peers/run-all.sh ]] || { echo "sitting.sh: no peers harness at $peers (set PEERS=dir)" >&2; exit 2; }
command -v taskset >/dev/null || { echo "sitting.sh: needs taskset (util-linux)" >&2; exit 2; }

wl=("$@")
((${#wl[@]})) || wl=(W1a W1b W2 W3 W4 W5 W6)
main=() w6=0
for w in "${wl[@]}"; do
	if [[ $w == W6 ]]; then w6=1; else main+=("$w"); fi
done

mkdir -p "$out"
: >"$out/peers.jsonl" && : >"$out/rouse.jsonl" && : >"$out/peers-w6.jsonl" && : >"$out/rouse-w6.jsonl"
: >"$out/load.txt"
cargo bench --bench workloads --no-run -q 2>/dev/null || cargo bench --bench workloads --no-run

for ((r = 1; r <= rounds; r++)); do
	echo "round $r: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt" >&2
	if ((${#main[@]})); then
		"$peers/run-all.sh" "${main[@]}" >>"$out/peers.jsonl"
		cargo bench -q --bench workloads -- "${main[@]}" >>"$out/rouse.jsonl"
	fi
	if ((w6)); then
		taskset -c 0 "$peers/run-all.sh" W6 >>"$out/peers-w6.jsonl"
		# Each variant first in a fresh process, as each peer's W6 runs (ROUSE_W6).
		for v in default fixed off; do
			ROUSE_W6=$v taskset -c 0 cargo bench -q --bench workloads -- W6 >>"$out/rouse-w6.jsonl"
		done
	fi
done

{
	if ((${#main[@]})); then
		python3 "$peers/compare.py" "$out/peers.jsonl" --project "$out/rouse.jsonl"
	fi
	if ((w6)); then
		echo
		echo "W6 with the whole process on CPU 0:"
		python3 "$peers/compare.py" "$out/peers-w6.jsonl" --project "$out/rouse-w6.jsonl"
	fi
} | tee "$out/compare.md"
