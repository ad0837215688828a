#!/usr/bin/env bash
# Installs every toolchain piece the full check suite needs (idempotent):
# rustfmt/clippy, the cross targets (embedded core, FreeBSD/macOS type-checks),
# nightly Miri, the MSRV toolchain, and the Debian packages of rouse-libevent's C tests and
# real-program checks (libevent's headers, memcached, libmemcached-tools).
set -euo pipefail
MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -1)
MSRV_TOOLCHAIN=$MSRV; [[ $MSRV =~ ^[0-9]+\.[0-9]+$ ]] && MSRV_TOOLCHAIN=$MSRV.0
q() { "$@" >/dev/null 2>&1 || "$@"; }   # quiet unless it fails (then show why)
q rustup component add rustfmt clippy
q rustup target add thumbv7em-none-eabihf x86_64-unknown-freebsd aarch64-apple-darwin
q rustup toolchain install nightly --profile minimal
q rustup component add --toolchain nightly miri rust-src
q rustup toolchain install "$MSRV_TOOLCHAIN" --profile minimal
# rouse-libevent: a C compiler, libevent 2.1's headers (and real libevent, to compare
# against), memcached and its test clients, valgrind. Installed only when missing.
DEBS="gcc libc6-dev libevent-dev memcached libmemcached-tools valgrind"
missing=$(for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [[ -n $missing ]]; then
	command -v apt-get >/dev/null || { echo "setup: need $missing (no apt-get here)" >&2; exit 1; }
	SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
	q $SUDO apt-get update -qq
	# shellcheck disable=SC2086
	q env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
echo "setup: stable + targets, nightly miri, MSRV $MSRV ready; C compiler, libevent-dev, memcached, libmemcached-tools, valgrind present"
