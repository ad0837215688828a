# Sourced by the scripts that run unmodified programs on rouse-libevent (libevent-dns.sh,
# libevent-memcached.sh): the shared setup. Not run by itself.
#   relink_setup NAME HINT TOOL... -- LIBDIR
# checks that every TOOL is installed (else: "NAME: TOOL not found: HINT"), makes WORK (a
# temporary directory, removed at exit, when every pid in PIDS is also killed), and sets LIB to
# the absolute path of LIBDIR, or of the three libraries built by libevent-lib.sh into WORK when
# LIBDIR is empty. fail MESSAGE exits non-zero with "NAME: MESSAGE".
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RELINK_NAME=relink
fail() { echo "$RELINK_NAME: $*" >&2; exit 1; }
relink_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
relink_setup() {
	RELINK_NAME=$1
	local hint=$2
	shift 2
	while [[ $1 != -- ]]; do
		command -v "$1" >/dev/null || fail "$1 not found: $hint"
		shift
	done
	LIB=${2:-}
	WORK=$(mktemp -d)
	PIDS=()
	trap relink_cleanup EXIT
	if [[ -z $LIB ]]; then
		LIB=$WORK/lib
		"$ROOT/scripts/libevent-lib.sh" "$LIB" >&2
	fi
	[[ -f $LIB/libevent-2.1.so.7 ]] || fail "no libevent-2.1.so.7 in $LIB"
	LIB=$(cd "$LIB" && pwd)
}
