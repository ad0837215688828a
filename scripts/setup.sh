#!/usr/bin/env bash
# Installs every toolchain piece the full check suite needs (idempotent):
# rustfmt/clippy, the cross targets (embedded core and firmware, FreeBSD/macOS type-checks,
# aarch64 and i686 test runs), nightly Miri, the MSRV toolchain, and the Debian packages of
# the emulated runs (QEMU, the aarch64 cross linker and libc, 32-bit x86 libc and libgcc) and
# of rouse-libevent's C tests and real-program checks (libevent's headers, memcached,
# libmemcached-tools, valgrind, nsd, unbound, dig).
set -euo pipefail
MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -1)
MSRV_TOOLCHAIN=$MSRV; [[ $MSRV =~ ^[0-9]+\.[0-9]+$ ]] && MSRV_TOOLCHAIN=$MSRV.0
q() { "$@" >/dev/null 2>&1 || "$@"; }   # quiet unless it fails (then show why)
q rustup component add rustfmt clippy
q rustup target add thumbv7em-none-eabihf x86_64-unknown-freebsd aarch64-apple-darwin \
	thumbv7m-none-eabi aarch64-unknown-linux-gnu i686-unknown-linux-gnu
q rustup toolchain install nightly --profile minimal
q rustup component add --toolchain nightly miri rust-src
q rustup toolchain install "$MSRV_TOOLCHAIN" --profile minimal
# Debian packages: qemu-system-arm (scripts/bare-metal.sh), qemu-user + the aarch64 cross gcc
# and libc (scripts/cross-test.sh aarch64), 32-bit libc and libgcc for `gcc -m32`
# (scripts/cross-test.sh i686; not gcc-multilib, which Debian makes conflict with the cross
# gcc); for rouse-libevent a C compiler, libevent 2.1's headers (and real libevent, to compare
# against), memcached and its test clients, valgrind, the DNS servers nsd and unbound and
# the client dig (bind9-dnsutils); libev's and libuv's headers for the peers' C programs
# (scripts/instructions.sh --peers, the peers' harness). apt runs only if one is missing. The DNS servers' system
# services are stopped and disabled right after the install (Debian starts them where an init
# runs): scripts/libevent-dns.sh runs its own daemons on 127.0.0.1 and high ports only.
GCC_MAJOR=$(gcc -dumpversion | cut -d. -f1)
DEBS=(qemu-system-arm qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross libc6-dev-i386
	"lib32gcc-$GCC_MAJOR-dev" gcc libc6-dev libevent-dev memcached libmemcached-tools valgrind
	nsd unbound bind9-dnsutils libev-dev libuv1-dev)
if ! dpkg-query -W -f='${Status}\n' "${DEBS[@]}" 2>/dev/null | grep -c '^install ok installed$' |
	grep -qx "${#DEBS[@]}"; then
	command -v apt-get >/dev/null || { echo "setup: need ${DEBS[*]} (no apt-get here)" >&2; exit 1; }
	SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	q $SUDO apt-get update -qq
	q $SUDO apt-get install -y -qq --no-install-recommends "${DEBS[@]}"
	if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
		q $SUDO systemctl disable --now nsd unbound
	elif command -v service >/dev/null; then
		for s in nsd unbound; do $SUDO service "$s" stop >/dev/null 2>&1 || true; done
	fi
fi
echo "setup: stable + targets, nightly miri, MSRV $MSRV, QEMU and cross linkers, C compiler, libevent-dev, memcached, libmemcached-tools, valgrind, nsd, unbound, dig ready"
