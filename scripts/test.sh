#!/bin/bash
# The test command: installs what is missing, builds qlite with warnings as
# errors, builds the test guest (Debian's kernel + the agent's initramfs),
# then runs the tests that need no KVM here and those that do (suite kvm:
# boots, QMP, migration, the benchmark harness's smoke tests) where /dev/kvm
# works: directly on a KVM host, else in one nested KVM host
# (scripts/kvm-host.sh), started once more if it dies. The same again, in
# part, for the sanitizer build (scripts/fuzz.sh): its unit tests, a short
# run of each fuzz target and a boot test of each kind.
# A nested host that dies or is stopped for a kernel fault (QEMU's emulated SVM
# is not flawless) is said so and started again with the tests it did not
# pass, up to five times: a test counts once, with its last result, and
# never fails because its host did.
# Usage: scripts/test.sh [meson test arguments, e.g. --suite unit or a test name]
#   (with arguments, the selection runs once, on /dev/kvm or in the nested host)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
builddir=${QLITE_BUILDDIR:-build}
if [ -d "$builddir" ]; then
    meson configure "$builddir" -Dwerror=true
else
    meson setup "$builddir" -Dwerror=true
fi
ninja -C "$builddir"
tests/guest/build-guest.sh >/dev/null

logs=$builddir/meson-logs
sanlogs=${QLITE_SAN_BUILDDIR:-build-san}/meson-logs
rm -f "$logs"/testlog-*.json "$logs"/console-*.txt "$sanlogs"/testlog-*.json
status=0 died=0 results=(--json "$logs/testlog-kvm.json")
kvm_host() {
    scripts/kvm-host.sh --timeout "${QLITE_KVM_TIMEOUT:-1500}" "$@"
}
# Tests NAMES of suite kvm of build DIR in a nested host, LABEL naming their
# logs; after a host death, again with the tests it did not pass, up to six
# hosts in all (some days QEMU's emulated SVM crashes one every ten minutes).
run_kvm() {
    local label=$1 dir=$2
    shift 2
    local todo=("$@") attempt console rc
    for attempt in 1 2 3 4 5 6; do
        console=$logs/console-$label-$attempt.txt
        rc=0
        kvm_host -- meson test -C "$dir" --no-rebuild --print-errorlogs \
            --logbase "testlog-$label-$attempt" --suite kvm "${todo[@]}" 2>&1 |
            tee "$console" || rc=${PIPESTATUS[0]}
        if [ "$rc" -ne 125 ]; then
            [ "$rc" -ne 0 ] && status=$rc
            results+=(--json "$dir/meson-logs/testlog-$label-$attempt.json")
            return 0
        fi
        results+=(--console "$console")
        mapfile -t todo < <(scripts/test-results.py rerun "$console" "${todo[@]}")
        [ ${#todo[@]} -eq 0 ] && return 0
        # CI allows 90 minutes: no new host after 75.
        [ $SECONDS -lt "${QLITE_TEST_BUDGET:-4500}" ] || break
        [ $attempt -lt 6 ] &&
            echo "test.sh: the nested KVM host died; again with the ${#todo[@]} tests it did not pass" >&2
    done
    died=1 status=125
}
if [ $# -gt 0 ]; then
    kvm_host --retry -- meson test -C "$builddir" --no-rebuild --print-errorlogs \
        --logbase testlog-kvm "$@" || status=$?
    [ $status -eq 125 ] && died=1
else
    # The sanitizer build (clang, ASan+UBSan, the fuzz targets): its unit
    # tests and a few seconds of each fuzz target here, a boot test of each
    # kind (disk, network, QMP, migration) in the nested host.
    scripts/fuzz.sh --build
    sandir=$(dirname "$sanlogs")
    meson test -C "$builddir" --print-errorlogs --logbase testlog-host \
        --no-suite kvm || status=$?
    meson test -C "$sandir" --no-rebuild --print-errorlogs --logbase testlog-san-host \
        --suite unit --suite fuzz --no-suite kvm --no-suite harness || status=$?
    results+=(--json "$sanlogs/testlog-san-host.json")
    mapfile -t all < <(meson test -C "$builddir" --no-rebuild --list --suite kvm 2>/dev/null |
        sed -n 's|^qlite:.* / ||p')
    run_kvm kvm "$builddir" "${all[@]}"
    # LeakSanitizer's exit-time scan needs ptrace, which no qlite thread's filter allows.
    ASAN_OPTIONS=detect_leaks=0 run_kvm san-kvm "$sandir" linux-blk linux-net-user qmp \
        lifecycle linux-migration linux-hostile firmware-qcow2
fi

# One closing line any CI reader understands, over every run: each test's
# last result, from its meson log or from the console of a host that died.
scripts/test-results.py count --json "$logs/testlog-host.json" "${results[@]}" ||
    status=1
if [ $died -eq 1 ]; then
    echo "test.sh: the nested KVM host kept dying (see above): unfinished KVM tests are not counted" >&2
fi
exit $status
