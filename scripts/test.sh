#!/bin/bash
# The test command: installs what is missing, builds qlite with warnings as
# errors, builds the test guest (Debian's kernel + the agent's initramfs),
# then runs the tests that need no KVM here and those that do (suite kvm:
# boots, QMP, migration, the benchmark harness's smoke tests) where /dev/kvm
# works: directly on a KVM host, else in one nested KVM host
# (scripts/kvm-host.sh), started once more if it dies.
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
rm -f "$logs"/testlog-host.json "$logs"/testlog-kvm.json
status=0 died=0
kvm_run() {
    local rc=0
    scripts/kvm-host.sh --retry --timeout "${QLITE_KVM_TIMEOUT:-1500}" -- \
        meson test -C "$builddir" --no-rebuild --print-errorlogs "$@" || rc=$?
    if [ $rc -eq 125 ]; then
        died=1
    fi
    return $rc
}
if [ $# -gt 0 ]; then
    kvm_run --logbase testlog-kvm "$@" || status=$?
else
    meson test -C "$builddir" --print-errorlogs --logbase testlog-host \
        --no-suite kvm || status=$?
    kvm_run --logbase testlog-kvm --suite kvm || status=$?
fi

# One closing line any CI reader understands, over both runs.
python3 - "$logs"/testlog-host.json "$logs"/testlog-kvm.json <<'PY'
import json, os, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
for path in sys.argv[1:]:
    if not os.path.exists(path):
        continue
    for line in open(path):
        r = json.loads(line)["result"]
        counts[{"OK": "OK", "SKIP": "SKIP", "EXPECTEDFAIL": "OK"}.get(r, "FAIL")] += 1
print(f"{counts['OK']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
PY
if [ $died -eq 1 ]; then
    echo "test.sh: the nested KVM host died twice (see above): the KVM tests are not counted" >&2
fi
exit $status
