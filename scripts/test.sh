#!/bin/bash
# The test command: installs what is missing, builds qlite with warnings as
# errors, builds the test kernel, runs the unit and boot tests and the
# benchmark harness's smoke test.
# Usage: scripts/test.sh [extra meson test arguments, e.g. --suite unit]
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

status=0
if [ $# -gt 0 ]; then
    meson test -C "$builddir" --print-errorlogs "$@" || status=$?
else
    meson test -C "$builddir" --print-errorlogs --suite unit --suite boot --suite qmp --suite bench || status=$?
fi

# One closing line any CI reader understands.
python3 - "$builddir/meson-logs/testlog.json" <<'PY'
import json, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0}
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    key = {"OK": "OK", "SKIP": "SKIP", "EXPECTEDFAIL": "OK"}.get(r, "FAIL")
    counts[key] += 1
print(f"{counts['OK']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
PY
exit $status
