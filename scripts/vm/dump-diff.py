#!/usr/bin/env python3
"""Compare what one side of the VM suite observed in two runs, test by test.

Usage: dump-diff.py [--side c|ours] A.out B.out

A.out and B.out are vmcheck.sh outputs of runs with VMTEST_ARGS="--dump"
(every observation printed as "# c: key = value" before its test's TAP
line). Prints, for each test whose observations differ, the lines only in
A (-) and only in B (+). Made to compare the C oracle of two kernels (the
6.12 test kernel and Debian's 7.3: run vmcheck.sh on each without our
module); timings and counts of timed loops differ between any two runs.
"""
import difflib
import re
import sys


def parse(path, side):
    tests, cur = {}, []
    prefix = f"# {side}: "
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            m = re.match(r"^(not ok|ok) \d+ (\S+)", line)
            if m:
                tests[m.group(2)] = (m.group(1), cur)
                cur = []
            elif line.startswith(prefix):
                cur.append(line[len(prefix):])
    return tests


def main():
    args = sys.argv[1:]
    side = "c"
    if len(args) == 4 and args[0] == "--side":
        side, args = args[1], args[2:]
    if len(args) != 2:
        sys.exit(__doc__)
    a, b = parse(args[0], side), parse(args[1], side)
    n = 0
    for name, (ra, la) in a.items():
        if name not in b or b[name][1] == la:
            continue
        n += 1
        print(f"=== {name} ({ra} / {b[name][0]})")
        for d in difflib.unified_diff(la, b[name][1], lineterm="", n=0):
            if not d.startswith(("---", "+++", "@@")):
                print("  " + d)
    print(f"{n} tests differ; only in A: {[k for k in a if k not in b]}; "
          f"only in B: {[k for k in b if k not in a]}", file=sys.stderr)


main()
