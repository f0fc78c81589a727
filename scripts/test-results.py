#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Test results across the runs of scripts/test.sh.

  test-results.py rerun CONSOLE NAME...
      the NAMEs that CONSOLE (meson test's output from a nested host that
      died or was stopped) does not report as passed, one per line: to run
      again on a new host, since a host that failed may have failed them;
  test-results.py count [--json LOG | --console CONSOLE]...
      the closing line "N passed, N failed, N skipped" over meson's JSON logs
      and the consoles of hosts that died (what they reported before), each
      test of a run counted once with its last result; exit status 1 when a
      test failed. A file's name says which run it is of: testlog-RUN.json,
      testlog-RUN-N.json and console-RUN-N.txt (attempt N) are of run RUN.
"""
import json
import os
import re
import sys

# " 3/23 qlite:kvm+boot+boot-tiny / tiny-hello   OK   9.79s" (meson test's progress line)
LINE = re.compile(r"^\s*\d+/\d+\s+(qlite:\S+\s+/\s+\S+)\s+"
                  r"(OK|FAIL|SKIP|EXPECTEDFAIL|UNEXPECTEDPASS|TIMEOUT|INTERRUPT|ERROR)\s")
KIND = {"OK": "passed", "EXPECTEDFAIL": "passed", "SKIP": "skipped"}


def console_results(path):
    """{"qlite:SUITES / NAME": meson result} for every test the console reports as finished."""
    with open(path, errors="replace") as f:
        return {re.sub(r"\s+", " ", m.group(1)): m.group(2)
                for m in map(LINE.match, f.read().replace("\r", "").split("\n")) if m}


def json_results(path):
    """{"qlite:SUITES / NAME": meson result} from meson's JSON log."""
    results = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                test = json.loads(line)
                results[test["name"]] = test["result"]
    return results


def run_of(path):
    """The run a log belongs to: "kvm" for testlog-kvm-2.json or console-kvm-1.txt."""
    name = os.path.splitext(os.path.basename(path))[0]
    name = re.sub(r"^(testlog|console)-", "", name)
    return re.sub(r"-\d+$", "", name)


def main(argv):
    if len(argv) >= 2 and argv[0] == "rerun":
        passed = {name.split(" / ")[-1] for name, result in console_results(argv[1]).items()
                  if KIND.get(result) == "passed"}
        for name in argv[2:]:
            if name not in passed:
                print(name)
        return 0
    if argv and argv[0] == "count":
        results = {}
        args = argv[1:]
        while len(args) >= 2 and args[0] in ("--json", "--console"):
            try:
                found = json_results(args[1]) if args[0] == "--json" else console_results(args[1])
                run = run_of(args[1])
                results.update({(run, name): r for name, r in found.items()})
            except FileNotFoundError:
                pass
            args = args[2:]
        if args:
            print(__doc__, file=sys.stderr)
            return 2
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for r in results.values():
            counts[KIND.get(r, "failed")] += 1
        print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
        return 1 if counts["failed"] else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
