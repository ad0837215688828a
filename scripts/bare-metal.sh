#!/usr/bin/env bash
# Builds the bare-metal example (examples/bare-metal: rouse's core with Fixed<16> storage, no
# allocator, CriticalSectionLock, a SysTick clock, a WFI poller, a PendSV notifier and a
# hardware timer's interrupt activating user events) and runs it under qemu-system-arm on two
# boards, each run bounded by `timeout`:
#
#   lm3s6965evb   Cortex-M3, thumbv7m-none-eabi
#   mps2-an386    Cortex-M4F, thumbv7em-none-eabihf
#
# The firmware checks callback order and counts itself and reports through semihosting (its
# exit code is QEMU's). Then the same firmware built with SpinLock (feature `spin-lock`) must
# deadlock on its probe interrupt, caught by its watchdog: the failure CriticalSectionLock
# prevents. Needs Debian's qemu-system-arm and the two rustup targets (scripts/setup.sh).
# Exits 0 with a summary line when all three runs behaved.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/examples/bare-metal"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/bare-metal"
t0=$SECONDS
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# run MACHINE TARGET FEATURES EXPECTED_EXIT EXPECTED_LINE_PREFIX
run() {
	local machine=$1 target=$2 features=$3 want_rc=$4 want=$5 rc=0
	cargo clippy --quiet --locked --target "$target" --features "$features" -- -D warnings
	cargo build --quiet --locked --target "$target" --features "$features"
	timeout 30 qemu-system-arm -machine "$machine" -nographic -monitor none \
		-semihosting-config enable=on,target=native \
		-kernel "$CARGO_TARGET_DIR/$target/debug/rouse-bare-metal" </dev/null >"$out" 2>&1 || rc=$?
	# QEMU's own notices (a board model's unused timer) are not the firmware's output.
	grep -v '^Timer with period zero' "$out" | sed 's/^/  /' || true
	if [[ $rc -ne $want_rc ]] || ! grep -q "^$want" "$out"; then
		echo "bare-metal: FAILED: $machine ($features): exit $rc (expected $want_rc)," \
			"output without a line starting '$want'" >&2
		[[ $rc -eq 124 ]] && echo "bare-metal: (timed out after 30 s)" >&2
		exit 1
	fi
}

cargo fmt --check
run lm3s6965evb thumbv7m-none-eabi lm3s6965evb 0 "bare-metal: ok on lm3s6965evb"
run mps2-an386 thumbv7em-none-eabihf mps2-an386 0 "bare-metal: ok on mps2-an386"
run lm3s6965evb thumbv7m-none-eabi lm3s6965evb,spin-lock 1 "bare-metal: DEADLOCK on lm3s6965evb"
echo "bare-metal: 3 QEMU runs as expected in $((SECONDS - t0)) s: the loop ran and passed its" \
	"checks on Cortex-M3 (lm3s6965evb) and Cortex-M4 (mps2-an386); with SpinLock instead of" \
	"CriticalSectionLock it deadlocked, as it must"
