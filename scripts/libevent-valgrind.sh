#!/usr/bin/env bash
# Runs every C test of adapters/libevent/tests/c under valgrind (memcheck, errors fail), linked
# to a debug rouse-libevent laid out by scripts/libevent-lib.sh. Bounded: 300 s per test.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "libevent-valgrind.sh: install valgrind" >&2; exit 1; }
CC=${CC:-cc}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build -q -p rouse-libevent)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$ROOT/scripts/libevent-lib.sh" "$WORK/lib" "$TARGET/debug/librouse_libevent.so"
fail=0
for src in "$ROOT"/adapters/libevent/tests/c/*.c; do
	name=$(basename "$src" .c)
	"$CC" -std=gnu11 -O1 -g -Wno-unused-function "$src" -o "$WORK/$name" -L"$WORK/lib" \
		-Wl,-rpath,"$WORK/lib" -levent_core -levent_pthreads -lpthread
	if (cd "$WORK" && ROUSE_TEST_TIMEOUT_SCALE=10 timeout 300 valgrind -q --error-exitcode=9 --child-silent-after-fork=yes \
		--suppressions="$ROOT/adapters/libevent/tests/valgrind.supp" "./$name" >"$name.out" 2>&1) &&
		grep -qx ok "$WORK/$name.out"; then
		echo "ok    $name"
	else
		echo "FAIL  $name"; grep -v "^--" "$WORK/$name.out" | head -40; fail=1
	fi
done
exit $fail
