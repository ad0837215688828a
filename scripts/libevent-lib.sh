#!/usr/bin/env bash
# Lays out rouse-libevent as libevent 2.1's shared objects in DIR, so that
#   LD_LIBRARY_PATH=DIR program
# runs a program linked against libevent 2.1 on rouse:
#   DIR/libevent_core-2.1.so.7      the rouse-libevent cdylib (soname libevent_core-2.1.so.7)
#   DIR/libevent-2.1.so.7           empty, DT_NEEDED libevent_core-2.1.so.7
#   DIR/libevent_pthreads-2.1.so.7  empty, DT_NEEDED libevent_core-2.1.so.7
#   DIR/libevent{,_core,_pthreads}.so  link-time names (cc -LDIR -levent_core ...)
# Usage: scripts/libevent-lib.sh DIR [PATH-TO-librouse_libevent.so]
# Without the second argument it builds the release cdylib first. Needs cargo and a C compiler
# (`cc`, or $CC).
set -euo pipefail
DIR=${1:?usage: $0 DIR [librouse_libevent.so]}
SO=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-cc}
command -v "$CC" >/dev/null || { echo "libevent-lib.sh: no C compiler ($CC) found" >&2; exit 1; }
if [[ -z $SO ]]; then
	(cd "$ROOT" && cargo build --release -q -p rouse-libevent)
	TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
	SO=$TARGET/release/librouse_libevent.so
fi
[[ -f $SO ]] || { echo "libevent-lib.sh: $SO not found" >&2; exit 1; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
cp -f "$SO" "$DIR/libevent_core-2.1.so.7.tmp" && mv -f "$DIR/libevent_core-2.1.so.7.tmp" "$DIR/libevent_core-2.1.so.7"
EMPTY=$(mktemp -d)
trap 'rm -rf "$EMPTY"' EXIT
echo "/* depends on libevent_core only */" >"$EMPTY/empty.c"
for name in libevent libevent_pthreads; do
	"$CC" -shared -fPIC -o "$DIR/$name-2.1.so.7.tmp" "$EMPTY/empty.c" -Wl,-soname,"$name-2.1.so.7" \
		-Wl,--no-as-needed -L"$DIR" -l:libevent_core-2.1.so.7
	mv -f "$DIR/$name-2.1.so.7.tmp" "$DIR/$name-2.1.so.7"
done
for name in libevent libevent_core libevent_pthreads; do
	ln -sf "$name-2.1.so.7" "$DIR/$name.so"
done
