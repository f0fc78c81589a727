#!/bin/bash
# The sanitizer build and the fuzz targets (tests/fuzz).
#
#   scripts/fuzz.sh --build              set up and build build-san only
#   scripts/fuzz.sh [-t SECONDS] [TARGET]...
#       run each TARGET (default: all of them: cmdline loader virtqueue
#       virtio-pci migration qmp qcow2 fw-cfg) for SECONDS (default 300) from its seed
#       corpus; crashing inputs are kept in build-san/tests/fuzz/artifacts.
#
# build-san is qlite built by clang with AddressSanitizer and
# UndefinedBehaviorSanitizer (any report aborts) and libFuzzer's coverage
# hooks; the unit tests, the fuzz targets' short runs (suite fuzz) and a boot
# test of each kind run against it in scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

builddir=${QLITE_SAN_BUILDDIR:-build-san}
seconds=300 build_only=0 targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build_only=1; shift ;;
        -t) seconds=$2; shift 2 ;;
        -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done

scripts/setup.sh
for p in clang libclang-rt-14-dev; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$p" >&2
    fi
done
if [ ! -d "$builddir" ]; then
    CC=clang meson setup "$builddir" -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dc_args=-fno-sanitize-recover=all -Dwerror=true >/dev/null
fi
ninja -C "$builddir" >/dev/null
[ $build_only -eq 1 ] && exit 0

[ ${#targets[@]} -gt 0 ] || targets=(cmdline loader virtqueue virtio-pci migration qmp qcow2 fw-cfg)
export QLITE_FUZZ_ARTIFACTS=$PWD/$builddir/tests/fuzz/artifacts
status=0
for t in "${targets[@]}"; do
    log=$builddir/tests/fuzz/fuzz-$t.log
    rc=0
    tests/fuzz/run.sh "$builddir/tests/fuzz/fuzz-$t" "tests/fuzz/corpus/$t" "$seconds" >"$log" 2>&1 ||
        rc=$?
    # libFuzzer's closing line: "#RUNS DONE cov: EDGES ft: ... exec/s: N ..."
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1)
    printf 'fuzz-%-11s %s\n' "$t" "${done_line:-no DONE line (status $rc)}"
    if [ $rc -ne 0 ]; then
        status=1
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -n 20
    fi
done
exit $status
