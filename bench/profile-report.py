#!/usr/bin/env python3
"""Instruction profile of the bench windows (bench/bench --profile).

Inputs: the VM console log (vbench's "vbench-ksym" lines: module text
symbols after each module load; "vbench-profile" lines: which dump belongs
to which row and how many packets it moved), the plugin's dumps PREFIX.N
(bench/tbprof.c: "vaddr insns executions" per translation block)
and the kernel's System.map for the core kernel's symbols.

Prints, per row (test, size), the guest kernel instructions per packet by
function, C beside ours, the largest first, and totals by module; with
--calls, calls (runs of a function's first block) instead of instructions.
The nested QEMU rows (bench/bench --qemu-only, tests "qemu_*") count per MiB,
and user space too, as one line (the plugin's user=on). Under TCG
an instruction count is the closest thing to CPU time there is, and it is
exact: the rows differ between C and ours only where the code differs.
"""
import argparse
import bisect
import collections
import os
import re
import subprocess
import sys

# The C module's code lives in three modules; ours in one.
C_MODS = {"vhost_net", "vhost", "vhost_iotlb"}
OURS_MODS = {"vhost_net_rs"}


def read_system_map(path):
    syms = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 3 and p[1] in ("t", "T"):
                syms.append((int(p[0], 16), p[2], "kernel"))
    return syms


def parse_log(path):
    """Yields (dump number, round, impl, test, size, packets, module symbols)."""
    current = []  # the module symbol table in force
    in_block = False
    rows = []
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.strip().replace("\r", "")
            if line.startswith("vbench-ksym,"):
                if not in_block:
                    current = []
                    in_block = True
                _, addr, name, mod = line.split(",", 3)
                current.append((int(addr, 16), name, mod))
                continue
            in_block = False
            if line.startswith("vbench-profile,"):
                _, n, rnd, imp, test, size, pkts = line.split(",")
                rows.append((int(n), int(rnd), imp, test, int(size), int(pkts), current))
    return rows


class Symbolizer:
    def __init__(self, kernel_syms, module_syms):
        syms = sorted(kernel_syms + module_syms)
        self.addrs = [s[0] for s in syms]
        self.syms = syms

    def lookup_at(self, addr):
        """(symbol, module, offset in the symbol)"""
        if addr == 0:  # tbprof.c's bucket of user-space blocks
            return ("(user space)", "user", 0)
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0:
            return ("?", "?", 0)
        return (self.syms[i][1], self.syms[i][2], addr - self.syms[i][0])


def demangle(names):
    """Rust (v0 and legacy) and C++ names through c++filt, when it is there."""
    names = list(names)
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True,
                             text=True, check=True).stdout.split("\n")
        return dict(zip(names, out))
    except (OSError, subprocess.CalledProcessError):
        return {n: n for n in names}


def short(name, width=70):
    # Crate hashes say nothing here.
    name = re.sub(r"\[[0-9a-f]{16}\]", "", name)
    if len(name) > width:
        name = name[: width - 3] + "..."
    return name


def profile(dump, sym, calls=False):
    """Instructions (or calls) by (module, symbol) in one dump."""
    by = collections.Counter()
    with open(dump) as f:
        for line in f:
            a, n, c = line.split()
            name, mod, off = sym.lookup_at(int(a, 16))
            if not calls:
                by[(mod, name)] += int(n) * int(c)
            elif off == 0 and mod != "user":
                by[(mod, name)] += int(c)
    return by


def in_modules(by, mods):
    """The part of a profile ({(module, symbol): count}) in modules `mods`."""
    return sum(v for (m, _), v in by.items() if m in mods)


def print_blocks(dump, sym, text, title, pkts):
    """The blocks of matching functions: offset, length, runs per packet."""
    rows = []
    with open(dump) as f:
        for line in f:
            a, n, c = line.split()
            name, mod, off = sym.lookup_at(int(a, 16))
            if text in name:
                rows.append((name, off, int(n), int(c) / pkts))
    if not rows:
        return
    print(f"\n-- blocks of functions matching {text!r}: {title}")
    print(f"{'function':<50} {'offset':>8} {'insns':>5} {'runs/pkt':>9} {'insns/pkt':>9}")
    for name, off, n, r in sorted(rows, key=lambda x: (x[0], x[1])):
        if r * n >= 0.5:
            print(f"{name[-50:]:<50} {off:>#8x} {n:>5} {r:>9.2f} {r * n:>9.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--dumps", required=True, help="prefix of the plugin's dump files")
    ap.add_argument("--system-map", required=True)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--blocks", metavar="TEXT",
                    help="also list the blocks of functions whose name holds TEXT")
    ap.add_argument("--check", action="store_true",
                    help="fail unless every row has a dump, for C and ours, with"
                         " instructions counted in both modules (make check)")
    ap.add_argument("--calls", action="store_true",
                    help="count calls (runs of each function's first block),"
                         " not instructions")
    ap.add_argument("--by-diff", action="store_true",
                    help="order functions by the difference between C and ours")
    ap.add_argument("--csv", metavar="PATH",
                    help="also write each window's totals per packet (or per MiB):"
                         " round,impl,test,size,packets,kernel_insns,module_insns"
                         " (make bench's instruction rows, bench/report.py)")
    a = ap.parse_args()

    ksyms = read_system_map(a.system_map)
    rows = parse_log(a.log)
    if not rows:
        print("profile: no profiled rows in the log", file=sys.stderr)
        return 1
    # (test, size) -> impl -> list of (per-packet Counter)
    per = collections.defaultdict(lambda: collections.defaultdict(list))
    windows = []  # (round, impl, test, size, packets, total, module) per packet
    missing = 0
    for n, rnd, imp, test, size, pkts, mods in rows:
        path = f"{a.dumps}.{n}"
        if not os.path.exists(path) or pkts == 0:
            missing += 1
            continue
        sym = Symbolizer(ksyms, mods)
        prof = profile(path, sym, a.calls)
        per[(test, size)][imp].append({k: v / pkts for k, v in prof.items()})
        if not a.calls:
            windows.append((rnd, imp, test, size, pkts, sum(prof.values()) / pkts,
                            in_modules(prof, C_MODS if imp == "c" else OURS_MODS) / pkts))
        if a.blocks:
            print_blocks(path, sym, a.blocks, f"{test} {size} B, {imp}, round {rnd}", pkts)
    if missing:
        print(f"profile: {missing} rows without a dump or packets", file=sys.stderr)
    bad = missing
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("round,impl,test,size,packets,kernel_insns,module_insns\n")
            for w in windows:
                f.write("%d,%s,%s,%d,%d,%.1f,%.1f\n" % w)

    names = set()
    for rowd in per.values():
        for lst in rowd.values():
            for d in lst:
                names.update(k[1] for k in d)
    dm = demangle(sorted(names))

    def mean(lst):
        tot = collections.Counter()
        for d in lst:
            tot.update(d)
        return {k: v / len(lst) for k, v in tot.items()} if lst else {}

    for (test, size) in sorted(per):
        rowd = per[(test, size)]
        c = mean(rowd.get("c", []))
        o = mean(rowd.get("ours", []))
        what = "calls" if a.calls else "instructions"
        if test.startswith("qemu_"):
            head = f"{test} {size} MiB: test VM {what} per MiB"
        else:
            head = f"{test} {size} B: guest kernel {what} per packet"
        print(f"\n== {head} "
              f"(C: {len(rowd.get('c', []))} windows, ours: {len(rowd.get('ours', []))})")

        ct, ot = sum(c.values()), sum(o.values())
        cm, om = in_modules(c, C_MODS), in_modules(o, OURS_MODS)
        if a.check and not (cm > 0 and om > 0):
            print(f"profile: {test} {size}: no instructions counted in the "
                  f"C modules ({cm:.0f}) or ours ({om:.0f})", file=sys.stderr)
            bad += 1
        print(f"{'total':<72} {ct:>9.0f} {ot:>9.0f}  {ot / ct if ct else 0:5.2f}")
        print(f"{'  vhost module(s)':<72} {cm:>9.0f} {om:>9.0f}  {om / cm if cm else 0:5.2f}")
        print(f"{'  everything else':<72} {ct - cm:>9.0f} {ot - om:>9.0f}  "
              f"{(ot - om) / (ct - cm) if ct - cm else 0:5.2f}")
        print(f"{'function [module]':<72} {'C':>9} {'ours':>9}")
        keys = set(c) | set(o)
        if a.by_diff:
            order = lambda k: -abs(o.get(k, 0) - c.get(k, 0))  # noqa: E731
        else:
            order = lambda k: -max(c.get(k, 0), o.get(k, 0))  # noqa: E731
        top = sorted(keys, key=order)[: a.top]
        for k in top:
            label = short(f"{dm.get(k[1], k[1])} [{k[0]}]")
            print(f"{label:<72} {c.get(k, 0):>9.1f} {o.get(k, 0):>9.1f}")
    if a.check and bad:
        print(f"profile: FAILED ({bad} problems)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
