#!/bin/bash
# Runs one fuzz target on its seed corpus, then fuzzes for SECONDS:
#   tests/fuzz/run.sh TARGET SEED_DIR SECONDS [libFuzzer option]...
# New inputs go to a scratch corpus, removed afterwards; a crashing input is
# kept in $QLITE_FUZZ_ARTIFACTS (default: the current directory).
set -euo pipefail
target=$1 seeds=$2 seconds=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=${QLITE_FUZZ_ARTIFACTS:-$PWD}
mkdir -p "$artifacts"
"$target" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$(basename "$target")-" "$@" "$work" "$seeds"
