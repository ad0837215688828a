#!/usr/bin/env bash
# Model-based fuzzing of the core for millions of operations (see tests/core_model.rs):
#   scripts/fuzz.sh [OPS=10000000] [FIRST_SEED=1]
# A mismatch prints its seed and step; add the seed to REGRESSIONS in tests/core_model.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUSE_FUZZ_OPS=${1:-10000000} ROUSE_FUZZ_SEED=${2:-1} \
	cargo test --release -p rouse-core --test core_model -- --ignored long_run --nocapture
