#!/usr/bin/env bash
# Runs the rouse-std test suite, and the core's unit and loop tests, for another architecture
# on an x86_64 Linux host:
#
#   scripts/cross-test.sh aarch64   aarch64-unknown-linux-gnu under qemu-aarch64 (user mode),
#                                   linked by aarch64-linux-gnu-gcc (Debian: qemu-user,
#                                   gcc-aarch64-linux-gnu); ROUSE_TEST_EMULATED=qemu is set
#   scripts/cross-test.sh i686      i686-unknown-linux-gnu natively (32-bit usize, time_t,
#                                   timespec), linked by gcc -m32 (Debian: libc6-dev-i386,
#                                   lib32gcc-12-dev)
#
# Extra arguments go to the test binaries (a filter, --test-threads=1, ...). The packages and
# rustup targets come from scripts/setup.sh. Under qemu, the tests that measure wake-up or
# timer latency against x86 figures skip themselves when ROUSE_TEST_EMULATED is set (each says
# why, see adapters/std/tests); everything else runs as on x86_64.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-}
[[ $# -gt 0 ]] && shift
case $arch in
aarch64)
	target=aarch64-unknown-linux-gnu
	linker=aarch64-linux-gnu-gcc
	# The target's root (lib/ld-linux-aarch64.so.1, lib/libc.so.6) for qemu's -L, from the
	# cross compiler itself.
	libc=$("$linker" -print-file-name=libc.so.6)
	sysroot=$(realpath "$(dirname "$libc")/..")
	export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$linker
	export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
	export ROUSE_TEST_EMULATED=qemu
	# Child-process tests re-run their own binary: under qemu too (no binfmt_misc here).
	export ROUSE_TEST_RUNNER="qemu-aarch64 -L $sysroot"
	# Tests that cannot pass under qemu-user for reasons of the emulator, not of rouse (each
	# still runs natively on x86_64 and i686):
	# - the two fork tests fork a multi-threaded process while another thread is blocked (in
	#   its poller, or parked in a signal handler); under qemu-user the child exits with
	#   status 127, none of the test's own codes (0, 20-23, 99): the emulator's, not rouse's;
	# - the clock identity test bounds the std/core clock offset by 2 us, but under qemu each
	#   clock_gettime is an emulated syscall (back-to-back reads 4 us apart, up to 42 us), so
	#   the origin's two readings are microseconds apart.
	skips=(--skip fork_reinit_wakes_the_child_and_leaves_the_parent_alone
		--skip a_child_forked_while_the_loop_runs_in_another_thread_takes_the_base_over
		--skip clock::tests::the_clock_is_the_one_std_instant_reads)
	;;
i686)
	target=i686-unknown-linux-gnu
	skips=()
	;;
*)
	echo "usage: scripts/cross-test.sh aarch64|i686 [test binary args...]" >&2
	exit 2
	;;
esac

t0=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The core's own tests (cheap): unit tests and the loop tests on the mocks, not the loom model,
# the compile-fail UI tests or the examples (host tools).
core_tests=()
for f in tests/core_*.rs; do core_tests+=(--test "$(basename "$f" .rs)"); done
run() {
	if ! "$@" >"$log" 2>&1; then
		cat "$log"
		# A digest last, so that the end of the output says what failed.
		echo "---- cross-test $arch: failures"
		grep -E -A3 "panicked at|^error: .*failed" "$log" | grep -v "^stack backtrace:" || true
		echo "cross-test $arch: FAILED: $*" >&2
		exit 1
	fi
	grep -E '^test result:' "$log" | awk -v what="$*" '
		{ p += $4; f += $6; i += $8 } END { printf "  %d passed, %d failed, %d ignored: %s\n", p, f, i, what }'
}
run cargo test --no-fail-fast --target "$target" -p rouse-core --lib "${core_tests[@]}" -- "$@"
run cargo test --no-fail-fast --target "$target" -p rouse-std -- ${skips[@]+"${skips[@]}"} "$@"
echo "cross-test $arch ($target): all tests passed in $((SECONDS - t0)) s"
