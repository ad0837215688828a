#!/usr/bin/env bash
# ThreadSanitizer over rouse-std's unit tests and the threaded integration tests (std_*,
# stress, faults): zero reports expected.
#   scripts/tsan.sh [TEST_NAME...] [-- HARNESS_ARGS...]
# e.g. `scripts/tsan.sh stress -- --nocapture`. Default: every test file named above.
#
# Needs nightly with rust-src (scripts/setup.sh installs both): std is rebuilt with TSan
# (-Zbuild-std) in a target dir of its own (target/tsan). Every test binary runs (no fail-fast);
# the script fails if any test fails or TSan reports anything (halt_on_error=1: a report ends
# its test binary with exit code 66).
#
# Suppressions: scripts/tsan.supp, each entry with its reason. The stress tests run at full
# size (8 threads x 100k operations: about 3 s under TSan); ROUSE_STRESS_OPS overrides it.
set -uo pipefail
cd "$(dirname "$0")/.."
T0=$SECONDS
TARGET=x86_64-unknown-linux-gnu
export RUSTFLAGS="-Zsanitizer=thread"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_TSAN:-target/tsan}
# die_after_fork=0: std_fork starts a thread in a child forked from a multi-threaded process,
# which TSan refuses by default ("not supported"); that child runs only rouse's own code.
# handle_sigfpe=0 (and sigill, sigtrap: off by default, said here): a test sends itself fault
# signals that rouse delivers as events (std_signals_chain: what nsd does with SIGILL); TSan's
# own deadly-signal handler would take a sent SIGFPE for a crash and abort the test binary.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 die_after_fork=0 handle_sigfpe=0 handle_sigill=0 handle_sigtrap=0 suppressions=$PWD/scripts/tsan.supp ${TSAN_OPTIONS:-}"
# No backtraces by default: the tests that panic on purpose (faults.rs) would symbolize one
# under TSan, which takes seconds on a loaded machine while a waiting thread's bound runs.
# RUST_BACKTRACE=1 scripts/tsan.sh ... brings them back for a failure being chased.
export RUST_BACKTRACE=${RUST_BACKTRACE:-0}
cargo=(cargo +nightly test -Zbuild-std --target "$TARGET" --no-fail-fast)

tests=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	tests+=("$1")
	shift
done
[ $# -gt 0 ] && shift # the "--"
if [ ${#tests[@]} -eq 0 ]; then
	for f in adapters/std/tests/std_*.rs adapters/std/tests/stress.rs adapters/std/tests/faults.rs; do
		tests+=("$(basename "$f" .rs)")
	done
fi
args=()
for t in "${tests[@]}"; do
	args+=(--test "$t")
done

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
status=0
echo "tsan: rouse-std unit tests; ${tests[*]}"
"${cargo[@]}" -p rouse-std --lib -- "$@" 2>&1 | tee -a "$LOG" || status=1
"${cargo[@]}" -p rouse-std "${args[@]}" -- "$@" 2>&1 | tee -a "$LOG" || status=1
reports=$(grep -c "WARNING: ThreadSanitizer" "$LOG")
failed=$(grep -E "^test .* FAILED$" "$LOG" | sed 's/^test /  /; s/ \.\.\. FAILED$//')
echo "tsan: $reports report(s) in $((SECONDS - T0)) s"
[ -n "$failed" ] && printf 'tsan: failed tests:\n%s\n' "$failed"
[ "$reports" -eq 0 ] && [ "$status" -eq 0 ]
