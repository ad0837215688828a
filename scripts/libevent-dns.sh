#!/usr/bin/env bash
# DNS servers -- Debian's nsd and unbound, unmodified -- on real libevent and on
# rouse-libevent (LD_LIBRARY_PATH), on 127.0.0.1 and free high ports only, bounded in time.
# Each run starts, in the foreground with their own configuration in a temporary directory:
#   nsd      authoritative for a generated zone rouse.test ($DNS_NAMES names with an A and a
#            TXT record each, one 40-record TXT set larger than a UDP answer);
#   unbound  a resolver (2 threads) whose stub zone rouse.test is that nsd, so it queries nsd
#            over UDP and, for the truncated large set, over TCP.
# Against each server, from several dig processes at once: the A and TXT records of half the
# names over UDP, of the other half over TCP (one connection per batch, +keepopen), the
# large set over UDP without EDNS (truncated: dig retries over TCP), and names that do not
# exist (NXDOMAIN). Every answer is compared with the zone. Both daemons must load the
# library under test (/proc/PID/maps of every process), log no errors, and exit 0 on SIGTERM.
# Prints one JSON line per server and library, then a summary line.
# Usage: scripts/libevent-dns.sh [LIBDIR]   (LIBDIR from scripts/libevent-lib.sh; built in a
# temporary directory when omitted). Exits non-zero on any failure.
set -euo pipefail
# shellcheck source=libevent-relink.sh
source "$(dirname "$0")/libevent-relink.sh"
N=${DNS_NAMES:-150}     # names per half: 2N names, 4N A/TXT queries per server
BATCHES=3               # concurrent dig processes per half
relink_setup libevent-dns.sh "install nsd, unbound and bind9-dnsutils (scripts/setup.sh)" nsd unbound dig timeout -- "${1:-}"

# The zone, and what each query must answer (name, type, data; TTL and class left out).
ZONE=$WORK/rouse.test.zone
{
	echo '$ORIGIN rouse.test.'
	echo '$TTL 3600'
	echo '@ IN SOA ns1 hostmaster 1 3600 900 604800 300'
	echo '@ IN NS ns1'
	echo 'ns1 IN A 127.0.0.1'
	for i in $(seq 1 $((2 * N))); do
		echo "h$i IN A 10.$((i / 65536)).$((i / 256 % 256)).$((i % 256))"
		echo "h$i IN TXT \"rouse-$i\""
	done
	for i in $(seq 1 40); do echo "big IN TXT \"record-$i-padding-padding-padding\""; done
} >"$ZONE"
: >"$WORK/udp.q"; : >"$WORK/tcp.q"; : >"$WORK/udp.want"; : >"$WORK/tcp.want"
for i in $(seq 1 $((2 * N))); do
	half=udp; ((i > N)) && half=tcp
	printf 'h%d.rouse.test A\nh%d.rouse.test TXT\n' "$i" "$i" >>"$WORK/$half.q"
	printf 'h%d.rouse.test. A 10.%d.%d.%d\nh%d.rouse.test. TXT "rouse-%d"\n' "$i" \
		$((i / 65536)) $((i / 256 % 256)) $((i % 256)) "$i" "$i" >>"$WORK/$half.want"
done
for half in udp tcp; do
	sort -o "$WORK/$half.want" "$WORK/$half.want"
	split -n "l/$BATCHES" -d "$WORK/$half.q" "$WORK/$half.q."
done
for i in $(seq 1 40); do echo "big.rouse.test. TXT \"record-$i-padding-padding-padding\""; done |
	sort >"$WORK/big.want"

free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	fail "no free port found"
}

# Waits (bounded) until the server on $1 answers a query for $2 over UDP; $3: its pid.
wait_serving() {
	for _ in $(seq 1 100); do
		if dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short "$2" A 2>/dev/null | grep -q .; then
			return 0
		fi
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# Every process of the tree under $1 must have mapped the library $2.
check_loaded() {
	local root=$1 want=$2 what=$3 p
	local all=("$root")
	mapfile -t -O 1 all < <(pgrep -P "$root" || true)
	for p in "${all[@]}"; do
		[[ -r /proc/$p/maps ]] || continue
		grep -q "$want" "/proc/$p/maps" || fail "$what (pid $p) did not load $want"
	done
}

# Answers of dig for queries file $1 with extra options: "name. TYPE data" per line.
ask() {
	local port=$1 qfile=$2; shift 2
	timeout 60 dig @127.0.0.1 -p "$port" +time=2 +tries=2 +noall +answer +nottlid +nocl "$@" \
		-f "$qfile" | awk 'NF >= 3 {print $1, $2, $3}' || true
}

# Runs the queries against the server on port $1 ($2: label): prints "correct total".
query_all() {
	local port=$1 label=$2 f correct=0 total=0
	local out=$WORK/$label
	for f in "$WORK"/udp.q.*; do ask "$port" "$f" >"$out.udp.${f##*.}" & done
	for f in "$WORK"/tcp.q.*; do ask "$port" "$f" +tcp +keepopen >"$out.tcp.${f##*.}" & done
	# The large set: truncated over UDP without EDNS, then retried over TCP by dig.
	timeout 30 dig @127.0.0.1 -p "$port" +time=2 +tries=2 +noall +answer +nottlid +nocl +noedns \
		big.rouse.test TXT | awk 'NF >= 3 {print $1, $2, $3}' | sort >"$out.big" &
	for i in $(seq 1 10); do echo "nope$i.rouse.test A"; done >"$WORK/nx.q"
	timeout 30 dig @127.0.0.1 -p "$port" +time=2 +tries=2 +noall +comments -f "$WORK/nx.q" |
		grep -c 'status: NXDOMAIN' >"$out.nx" &
	wait
	for half in udp tcp; do
		sort "$out.$half".* >"$out.$half"
		local want=$WORK/$half.want
		local got
		got=$(comm -12 "$want" "$out.$half" | wc -l)
		correct=$((correct + got))
		total=$((total + $(wc -l <"$want")))
		if [[ $got -ne $(wc -l <"$want") ]]; then
			echo "libevent-dns.sh: $label: $half answers differ from the zone:" >&2
			diff "$want" "$out.$half" | head -10 >&2 || true
		fi
	done
	total=$((total + 1 + 10))
	cmp -s "$WORK/big.want" "$out.big" && correct=$((correct + 1)) ||
		echo "libevent-dns.sh: $label: the large TXT set (over TCP after truncation) differs" >&2
	correct=$((correct + $(cat "$out.nx")))
	echo "$correct $total"
}

# nsd's configuration for port $1 in directory $2.
nsd_conf() {
	cat <<-EOF
		server:
		    ip-address: 127.0.0.1
		    port: $1
		    do-ip4: yes
		    do-ip6: no
		    server-count: 1
		    database: ""
		    zonelistfile: "$2/zone.list"
		    xfrdfile: "$2/xfrd.state"
		    xfrdir: "$2"
		    pidfile: "$2/nsd.pid"
		    logfile: "$2/nsd.log"
		    username: ""
		    chroot: ""
		    zonesdir: "$WORK"
		remote-control:
		    control-enable: no
		zone:
		    name: rouse.test
		    zonefile: "$ZONE"
	EOF
}

# unbound's configuration for port $1 in directory $2, resolving rouse.test through nsd ($3).
unbound_conf() {
	cat <<-EOF
		server:
		    interface: 127.0.0.1
		    port: $1
		    do-ip6: no
		    do-daemonize: no
		    username: ""
		    chroot: ""
		    directory: "$2"
		    pidfile: "$2/unbound.pid"
		    logfile: "$2/unbound.log"
		    use-syslog: no
		    num-threads: 2
		    access-control: 127.0.0.0/8 allow
		    do-not-query-localhost: no
		    module-config: "iterator"
		    auto-trust-anchor-file: ""
		    local-zone: "test." nodefault
		stub-zone:
		    name: "rouse.test."
		    stub-addr: 127.0.0.1@$3
		remote-control:
		    control-enable: no
	EOF
}

# Starts daemon $1 ("nsd" or "unbound") in $2 with env $4...; $3: nsd's port (for unbound).
# A port found free may be taken before the daemon binds it: up to 5 ports are tried.
# Sets PORT and DAEMON (the pid of its `timeout`).
start() {
	local name=$1 dir=$2 upstream=$3; shift 3
	for _ in 1 2 3 4 5; do
		PORT=$(free_port)
		if [[ $name == nsd ]]; then
			nsd_conf "$PORT" "$dir" >"$dir/nsd.conf"
			env "$@" timeout 120 nsd -d -c "$dir/nsd.conf" >"$dir/nsd.out" 2>&1 &
		else
			unbound_conf "$PORT" "$dir" "$upstream" >"$dir/unbound.conf"
			env "$@" timeout 120 unbound -d -c "$dir/unbound.conf" >"$dir/unbound.out" 2>&1 &
		fi
		DAEMON=$!
		PIDS+=("$DAEMON")
		wait_serving "$PORT" h1.rouse.test "$DAEMON" && return 0
		kill "$DAEMON" 2>/dev/null || true
		wait "$DAEMON" 2>/dev/null || true
	done
	cat "$dir/$name.out" "$dir/$name.log" >&2 2>/dev/null || true
	fail "$name did not start"
}

# Starts nsd then unbound on library $1 (label) with env $2...; queries both; stops them.
SUMMARY=()
STATUS=0
run() {
	local label=$1; shift
	local dir=$WORK/$label
	mkdir -p "$dir"
	start nsd "$dir" - "$@"
	local nsd=$DAEMON nsd_port=$PORT
	start unbound "$dir" "$nsd_port" "$@"
	local unbound=$DAEMON unbound_port=$PORT

	local want_lib=$LIB/libevent_core-2.1.so.7
	[[ $label == libevent ]] && want_lib=/libevent-2.1.so.7
	local p
	for p in $(pgrep -P "$nsd") $(pgrep -P "$unbound"); do
		check_loaded "$p" "$want_lib" "$label: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
		if [[ $label == libevent ]] && grep -q "$LIB/" "/proc/$p/maps"; then
			fail "$label: pid $p loaded rouse-libevent"
		fi
	done

	local server port t0 res ms
	for server in nsd unbound; do
		port=$nsd_port; [[ $server == unbound ]] && port=$unbound_port
		t0=$(date +%s%N)
		res=$(query_all "$port" "$label-$server")
		ms=$((($(date +%s%N) - t0) / 1000000))
		read -r correct total <<<"$res"
		printf '{"workload":"dns","server":"%s","impl":"%s","queries":%d,"correct":%d,"ms":%d}\n' \
			"$server" "$label" "$total" "$correct" "$ms"
		SUMMARY+=("$server on $label $correct/$total")
		[[ $correct -eq $total ]] || STATUS=1
	done

	# A clean stop on SIGTERM (a signal event in both), bounded.
	local pid name st
	for name in unbound nsd; do
		pid=$unbound; [[ $name == nsd ]] && pid=$nsd
		# The daemon is timeout's child (nsd names its processes "nsd: main", ...).
		kill -TERM "$(pgrep -P "$pid" | head -1)" 2>/dev/null || true
		st=0
		wait "$pid" || st=$?
		if [[ $st -ne 0 ]]; then
			echo "libevent-dns.sh: $name on $label exited with $st after SIGTERM" >&2
			tail -5 "$dir/$name.out" "$dir/$name.log" >&2 2>/dev/null || true
			STATUS=1
		fi
	done
	if grep -h -E 'error|fatal|\[warn\]|\[err\]' "$dir"/*.out "$dir"/*.log 2>/dev/null; then
		echo "libevent-dns.sh: $label: the daemons logged the errors above" >&2
		STATUS=1
	fi
}

run libevent
run rouse-libevent LD_LIBRARY_PATH="$LIB"
if [[ $STATUS -eq 0 ]]; then
	echo "libevent-dns.sh: ok: every answer correct (${SUMMARY[*]})"
else
	echo "libevent-dns.sh: FAILED (${SUMMARY[*]})"
fi
exit $STATUS
