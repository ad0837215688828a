#!/usr/bin/env bash
# Installs every toolchain piece the full check suite needs (idempotent):
# rustfmt/clippy, the cross targets (embedded core, FreeBSD/macOS type-checks),
# nightly Miri, and the MSRV toolchain.
set -euo pipefail
MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -1)
MSRV_TOOLCHAIN=$MSRV; [[ $MSRV =~ ^[0-9]+\.[0-9]+$ ]] && MSRV_TOOLCHAIN=$MSRV.0
q() { "$@" >/dev/null 2>&1 || "$@"; }   # quiet unless it fails (then show why)
q rustup component add rustfmt clippy
q rustup target add thumbv7em-none-eabihf x86_64-unknown-freebsd aarch64-apple-darwin
q rustup toolchain install nightly --profile minimal
q rustup component add --toolchain nightly miri rust-src
q rustup toolchain install "$MSRV_TOOLCHAIN" --profile minimal
echo "setup: stable + targets, nightly miri, MSRV $MSRV ready"
