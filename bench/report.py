#!/usr/bin/env python3
"""The report of `make bench` (bench/bench): medians over the rounds,
ours / C ratios, a table on stdout, and optionally the documentation page
(Documentation/performance.rst), its CSV files and its chart.

--check validates the raw CSV instead of judging the numbers: every row
present for both modules, every field well formed (the `make check` stage).
"""
import argparse
import csv
import datetime
import math
import os
import platform
import shutil
import statistics
import sys

COLUMNS = ("round,impl,test,size,packets,seconds,pps,gbps,worker_ns_per_pkt,"
           "worker_stat_ns_per_pkt,lat_p50_us,lat_p99_us,delivered,offered,"
           "worker_runs_per_kpkt,in_order").split(",")
IMPLS = ("c", "ours")
TEST_ORDER = {"tx": 0, "rx": 1, "lat": 2, "qemu_g2h": 3, "qemu_h2g": 4}


def num(s):
    if s is None or s == "":
        return None
    v = float(s)
    return v if math.isfinite(v) else None


def load(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r, None)
        rows, errors = [], []
        # Results from before worker_runs_per_kpkt, or before in_order
        # (VIRTIO_F_IN_ORDER negotiated, 0 or 1), read as if those were empty.
        missing = next((k for k in (0, 1, 2) if header == COLUMNS[:len(COLUMNS) - k]), None)
        if missing is None:
            errors.append(f"header is {header}, expected {COLUMNS}")
            return rows, errors
        for n, rec in enumerate(r, 2):
            if len(rec) == len(COLUMNS) - missing:
                rec = rec + [""] * missing
            if len(rec) != len(COLUMNS):
                errors.append(f"line {n}: {len(rec)} fields, expected {len(COLUMNS)}: {rec}")
                continue
            d = dict(zip(COLUMNS, rec))
            try:
                d["round"] = int(d["round"])
                d["size"] = int(d["size"])
                d["packets"] = int(d["packets"])
                for k in COLUMNS[5:]:
                    d[k] = num(d[k])
            except ValueError as e:
                errors.append(f"line {n}: {e}: {rec}")
                continue
            rows.append(d)
    return rows, errors


def asked(args):
    """(tests vbench was asked for, whether the run is a subset of the
    full bench): from its arguments (`--tests`, `--sizes`, `--only`)."""
    w = args.split()
    tests = ("tx", "rx", "lat")
    if "--tests" in w and w.index("--tests") + 1 < len(w):
        tests = tuple(w[w.index("--tests") + 1].split(","))
    subset = any(o in w for o in ("--tests", "--sizes", "--only"))
    return tests, subset


def check(rows, rounds, tests=("tx", "rx", "lat")):
    """Well-formedness: the errors found (empty when fine)."""
    errs = []
    keys = {}
    for d in rows:
        keys.setdefault((d["test"], d["size"]), {}).setdefault(d["impl"], []).append(d)
    if not rows:
        errs.append("no result rows")
    for t in tests:
        if not any(k[0] == t for k in keys):
            errs.append(f"no {t} row")
    for (t, s), by in sorted(keys.items()):
        if t.startswith("qemu"):
            # The nested QEMU rows: their own rounds (bench/bench --qemu-rounds),
            # one throughput figure each, vhost=off as a third kind.
            for i in IMPLS + ("novhost",):
                for d in by.get(i, []):
                    if not d["seconds"] or not d["gbps"] or d["gbps"] <= 0:
                        errs.append(f"{t} {s} {i} round {d['round']}: no throughput: {d}")
                if not by.get(i):
                    errs.append(f"{t} {s} {i}: no row")
            continue
        for i in IMPLS:
            got = by.get(i, [])
            if len(got) < rounds:
                errs.append(f"{t} {s} {i}: {len(got)} rows, expected {rounds}")
            for d in got:
                where = f"{t} {s} {i} round {d['round']}"
                if d["packets"] <= 0 or not d["seconds"] or not d["pps"] or d["pps"] <= 0:
                    errs.append(f"{where}: no packets or no time: {d}")
                if d["worker_ns_per_pkt"] is None or d["worker_stat_ns_per_pkt"] is None:
                    errs.append(f"{where}: no worker CPU time")
                if t == "lat" and (d["lat_p50_us"] is None or d["lat_p99_us"] is None
                                   or d["lat_p50_us"] > d["lat_p99_us"]):
                    errs.append(f"{where}: bad latency percentiles")
                if t == "tx" and d["delivered"] is not None and d["delivered"] < d["packets"] * 0.9:
                    errs.append(f"{where}: tap accepted {d['delivered']} of {d['packets']}")
    return errs


# Metrics per kind of row: (column, label, unit scale, higher is better).
METRICS = {
    "tx": [("pps", "kpps", 1e-3, True), ("worker_ns_per_pkt", "worker ns/pkt", 1, False),
           ("worker_runs_per_kpkt", "worker runs/kpkt", 1, False)],
    "rx": [("pps", "kpps", 1e-3, True), ("worker_ns_per_pkt", "worker ns/pkt", 1, False),
           ("worker_runs_per_kpkt", "worker runs/kpkt", 1, False)],
    "lat": [("lat_p50_us", "p50 us", 1, False), ("lat_p99_us", "p99 us", 1, False),
            ("worker_ns_per_pkt", "worker ns/trip", 1, False)],
}
METRICS["qemu_g2h"] = METRICS["qemu_h2g"] = [("gbps", "Mbit/s", 1e3, True)]
# The instruction rows (--instr: bench/profile-report.py --csv), per
# packet (per round trip for latency).
for _t, _per in (("tx", "pkt"), ("rx", "pkt"), ("lat", "trip")):
    METRICS[_t] += [("kernel_insns", f"kernel instr/{_per}", 1, False),
                    ("module_insns", f"module instr/{_per}", 1, False)]
INSTR_COLUMNS = "round,impl,test,size,packets,kernel_insns,module_insns".split(",")


def load_instr(path):
    """The instruction rows: dicts like load()'s, with kernel_insns and
    module_insns; (rows, errors)."""
    rows, errors = [], []
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r, None)
        if header != INSTR_COLUMNS:
            return rows, [f"{path}: header is {header}, expected {INSTR_COLUMNS}"]
        for n, rec in enumerate(r, 2):
            try:
                d = dict(zip(INSTR_COLUMNS, rec), round=int(rec[0]), size=int(rec[3]),
                         packets=int(rec[4]), kernel_insns=num(rec[5]),
                         module_insns=num(rec[6]))
            except (ValueError, IndexError) as e:
                errors.append(f"{path} line {n}: {e}: {rec}")
                continue
            if d["packets"] <= 0 or not d["kernel_insns"] or d["module_insns"] is None:
                errors.append(f"{path} line {n}: no packets or no instructions: {rec}")
                continue
            rows.append(d)
    return rows, errors


def label(test, size):
    if test == "lat":
        return f"latency {size} B"
    if test.startswith("qemu"):
        return {"qemu_g2h": "QEMU guest->host", "qemu_h2g": "QEMU host->guest"}[test]
    return f"{test.upper()} {size_text(test, size)}"


def size_text(test, size):
    return "64 KiB GSO" if size > 9000 and test == "tx" else \
        "64 KiB" if size > 9000 else f"{size} B"


def median_ci(v):
    """The median of v and a distribution-free confidence interval for it:
    order statistics x(k) and x(n+1-k), k the largest rank whose interval
    covers the median with at least 95% probability (sign test), or the
    whole range when no k does (n < 6). Returns (median, lo, hi, coverage)."""
    v = sorted(v)
    n = len(v)
    cover = lambda k: 1 - 2 * sum(math.comb(n, j) for j in range(k)) / 2 ** n
    k = 1
    while k + 1 <= (n + 1) // 2 and cover(k + 1) >= 0.95:
        k += 1
    return statistics.median(v), v[k - 1], v[n - k], cover(k)


def paired(rows, t, s, col):
    """ours/C of each round that has both, for (test, size, column)."""
    by = {}
    for d in rows:
        if d["test"] == t and d["size"] == s and d.get(col) is not None and d["impl"] in IMPLS:
            by.setdefault(d["round"], {})[d["impl"]] = d[col]
    return [p["ours"] / p["c"] for p in by.values() if "c" in p and "ours" in p and p["c"]]


def summarize(rows):
    """[(test, size, column, label, scale, higher, {impl: (median, min, max, n)}, ratio,
    paired)]: ratio is the ratio of the medians, paired the median of the
    rounds' own ratios with its confidence interval (median_ci) or None."""
    out = []
    keys = sorted({(d["test"], d["size"]) for d in rows},
                  key=lambda k: (TEST_ORDER.get(k[0], 9), k[1]))
    for t, s in keys:
        for col, lab, scale, higher in METRICS.get(t, []):
            st = {}
            for i in IMPLS + ("novhost",):
                v = [d[col] for d in rows if d["test"] == t and d["size"] == s
                     and d["impl"] == i and d.get(col) is not None]
                if v:
                    st[i] = (statistics.median(v), min(v), max(v), len(v))
            if not st:
                continue
            ratio = None
            if "c" in st and "ours" in st and st["c"][0]:
                ratio = st["ours"][0] / st["c"][0]
            pr = paired(rows, t, s, col) if ratio is not None else []
            if len(pr) < 3:  # no interval to speak of
                pr = []
            out.append((t, s, col, lab, scale, higher, st, ratio,
                        median_ci(pr) if pr else None))
    return out


def fmt(v, scale):
    x = v * scale
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def cell(st, i, scale):
    if i not in st:
        return "-"
    m, lo, hi, _ = st[i]
    if lo == hi:
        return fmt(m, scale)
    return f"{fmt(m, scale)} ({fmt(lo, scale)}-{fmt(hi, scale)})"


def table(summary):
    head = ["row", "metric", "C median (min-max)", "ours median (min-max)", "ours/C",
            "paired ours/C [CI]", "better"]
    novhost = any("novhost" in x[6] for x in summary)
    if novhost:
        head.append("vhost=off (QEMU)")
    body = []
    for t, s, col, lab, scale, higher, st, ratio, pr in summary:
        r = [label(t, s), lab, cell(st, "c", scale), cell(st, "ours", scale),
             f"{ratio:.2f}" if ratio is not None else "-",
             f"{pr[0]:.2f} [{pr[1]:.2f}-{pr[2]:.2f}]" if pr else "-",
             "higher" if higher else "lower"]
        if novhost:
            r.append(cell(st, "novhost", scale))
        body.append(r)
    return head, body


def text_table(head, body):
    w = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r))
    return "\n".join([line(head), "  ".join("-" * x for x in w)] + [line(r) for r in body])


def rst_table(head, body):
    w = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    sep = "  ".join("=" * x for x in w)
    line = lambda r: "  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip()
    return "\n".join([sep, line(head), sep] + [line(r) for r in body] + [sep])


def write_summary(path, summary):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["test", "size", "metric", "higher_is_better", "c_median", "c_min", "c_max",
                    "ours_median", "ours_min", "ours_max", "rounds", "ratio_ours_over_c",
                    "paired_ratio_median", "paired_ci_lo", "paired_ci_hi", "paired_ci_coverage"])
        for t, s, col, lab, scale, higher, st, ratio, pr in summary:
            c = st.get("c", (None,) * 4)
            o = st.get("ours", (None,) * 4)
            w.writerow([t, s, col, int(higher), *c[:3], *o[:3], min(c[3] or 0, o[3] or 0),
                        f"{ratio:.4f}" if ratio is not None else "",
                        *([f"{x:.4f}" for x in pr] if pr else [""] * 4)])


def chart(path, summary):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench-report: no matplotlib (python3-matplotlib): no chart", file=sys.stderr)
        return False
    # A ratio of 0 (a median of 0, as worker runs/kpkt can be) has no
    # inverse to draw.
    rows = [x for x in summary if x[7]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    # left: throughput medians with min/max
    tp = [x for x in rows if x[2] == "pps"]
    ax = axes[0]
    ys = range(len(tp))
    for k, (i, colr) in enumerate((("c", "tab:gray"), ("ours", "tab:orange"))):
        med = [x[6][i][0] for x in tp]
        err = [[x[6][i][0] - x[6][i][1] for x in tp], [x[6][i][2] - x[6][i][0] for x in tp]]
        ax.barh([y + (0.2 if k else -0.2) for y in ys], med, height=0.4, xerr=err,
                color=colr, label={"c": "C vhost_net", "ours": "vhost_net_rs"}[i])
    ax.set_yticks(list(ys))
    ax.set_yticklabels([label(x[0], x[1]) for x in tp])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("packets/s (median, min-max), TCG")
    ax.legend()
    ax.set_title("Throughput")
    # right: ratios, normalised so that > 1 is better for every metric: the
    # headline metric of each row and its instruction count; the paired
    # median with its confidence interval where there is one.
    ax = axes[1]
    rows = [x for x in rows if x[2] in ("pps", "gbps", "lat_p50_us", "kernel_insns")]
    inv = lambda x, v: v if x[5] else 1 / v  # noqa: E731
    labels = [f"{label(x[0], x[1])}: {x[3]}" for x in rows]
    vals, lo, hi = [], [], []
    for x in rows:
        if x[8]:
            m, a, b = inv(x, x[8][0]), inv(x, x[8][1]), inv(x, x[8][2])
            vals.append(m)
            lo.append(m - min(a, b))
            hi.append(max(a, b) - m)
        else:
            vals.append(inv(x, x[7]))
            lo.append(0)
            hi.append(0)
    colors = ["tab:green" if v >= 1 else "tab:red" for v in vals]
    ax.barh(range(len(rows)), vals, xerr=[lo, hi], color=colors)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ours relative to C (>1: ours better; throughput ours/C, cost C/ours;\n"
                  "timed rows: paired median and confidence interval)")
    ax.set_title("vhost_net_rs / C vhost_net")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def rx_load(rows):
    """What bounds the RX rows, by frame size: the range, over the RX
    windows of both modules, of the packets the guest received per packet
    injected, and of the worker's busy fraction (packets/s times worker ns
    per packet). Sizes without windows that counted what they offered are
    left out."""
    out = {}
    for d in rows:
        if (d["test"] != "rx" or not d["offered"] or not d["pps"]
                or d["worker_ns_per_pkt"] is None):
            continue
        got = d["packets"] / d["offered"]
        busy = d["pps"] * d["worker_ns_per_pkt"] * 1e-9
        glo, ghi, blo, bhi = out.get(d["size"], (got, got, busy, busy))
        out[d["size"]] = (min(glo, got), max(ghi, got), min(blo, busy), max(bhi, busy))
    return out


def rx_load_text(load):
    """The RX rows' explanation of what bounds them, from `rx_load`."""
    if not load:
        return []
    glo = min(v[0] for v in load.values())
    if glo >= 0.98:
        ghi = max(v[1] for v in load.values())
        blo = min(v[2] for v in load.values())
        bhi = max(v[3] for v in load.values())
        return [
            "  The injector, not the module, sets the RX packets/s: in every RX",
            f"  window of both modules the guest received {glo:.1%}-{ghi:.1%} of the",
            "  packets injected (``packets`` against ``offered`` in the raw CSV),",
            f"  the worker busy {blo:.0%}-{bhi:.0%} of the window. So the RX kpps",
            "  rows compare how much CPU each module leaves to the injector; a",
            "  module's own cost per packet is its worker ns/pkt and instruction",
            "  rows, and a worker that is faster per packet empties the socket and",
            "  sleeps sooner, so it is woken more often (worker runs/kpkt).",
        ]
    sizes = ", ".join(f"{size_text('rx', sz)} {v[0]:.0%}-{v[1]:.0%}"
                      for sz, v in sorted(load.items()))
    return [
        "  Frames received per frame injected (``packets`` against",
        "  ``offered`` in the raw CSV), lowest and highest window of both",
        f"  modules: {sizes}. Well under 100%, the module sets the RX",
        "  packets/s; near 100%, the injector does.",
    ]


# The kernels a run can measure (bench/bench --variant): the key is the
# variant ("" for the test kernel, as before there were two), the value
# (section file, heading, what the C rows are).
VARIANTS = {
    "": ("test-kernel.inc", "Linux 6.12 (the test kernel)",
         "The C rows are the ``vhost_net`` of the test kernel's own build (6.12,"
         " ``scripts/build/kernel.sh``), ours is built against that tree."),
    "debian13": ("debian13.inc", "Debian 13's own kernel (7.3, trixie-backports)",
                 "``make bench KERNEL=debian13``: the VM boots Debian's own kernel image"
                 " with Debian's own modules (``scripts/build/debian13.sh kernel``); the"
                 " C rows are Debian's ``vhost_net``, ours is built against Debian's"
                 " headers with Debian 13's toolchain, the RX rows' ``pktgen.ko`` is"
                 " Debian's, and the nested QEMU rows run Debian 13's QEMU 10 with"
                 " Debian's kernel as the guest (``-cpu max``, ``in_order=on`` on its NIC)."),
}


def doc_files(variant):
    """The results' files under Documentation/performance/ of a variant:
    (raw CSV, summary CSV, chart, instruction rows, section)."""
    pre = f"{variant}-" if variant else ""
    return (f"{pre}raw.csv", f"{pre}summary.csv", f"{pre}bench.png", f"{pre}instr.csv",
            VARIANTS[variant][0])


def in_order_text(rows):
    """Which modules negotiated VIRTIO_F_IN_ORDER, from the rows'
    in_order column (vbench: when the module offers it; the QEMU rows:
    what the guest's driver took)."""
    def said(rs):
        v = {d.get("in_order") for d in rs}
        if not v:
            return "-"
        if v == {None}:
            # Rows from before the in_order column: vbench never negotiated it.
            return "no"
        v.discard(None)
        return "yes" if v == {1.0} else "no" if v == {0.0} else "in some rows"
    timed = [d for d in rows if not d["test"].startswith("qemu")]
    qemu = [d for d in rows if d["test"].startswith("qemu")]
    parts = [f"{n} {said([d for d in timed if d['impl'] == i])}"
             for i, n in (("c", "C"), ("ours", "ours"))]
    out = ["VIRTIO_F_IN_ORDER negotiated (the ``in_order`` column of the raw CSV;",
           "vbench negotiates it wherever the module offers it): " + ", ".join(parts) + "."]
    if qemu:
        q = [f"{n} {said([d for d in qemu if d['impl'] == i])}"
             for i, n in (("c", "C"), ("ours", "ours"), ("novhost", "vhost=off"))]
        out[-1] += " QEMU rows (the guest's driver): " + ", ".join(q) + "."
    return out


def write_section(docdir, args, head, body, raw, summary_csv, instr, have_chart):
    """The variant's results: its CSV files, chart and its section of
    Documentation/performance.rst (performance/<section>.inc); the
    other variant's files stay as they are."""
    pdir = os.path.join(docdir, "performance")
    os.makedirs(pdir, exist_ok=True)
    f_raw, f_sum, f_png, f_instr, f_inc = doc_files(args.variant)
    shutil.copyfile(raw, os.path.join(pdir, f_raw))
    shutil.copyfile(summary_csv, os.path.join(pdir, f_sum))
    if instr:
        shutil.copyfile(instr, os.path.join(pdir, f_instr))
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # When the results were written, not when this page is: the page can
    # be made again from the same raw CSV.
    date = datetime.datetime.fromtimestamp(os.path.getmtime(raw), datetime.timezone.utc)
    date = date.strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{cpu}, {os.cpu_count()} host CPUs, host kernel {platform.release()}"
    rows = load(raw)[0]
    out = [
        f".. Written by bench/report.py (make bench{' KERNEL=' + args.variant if args.variant else ''}).",
        "",
        VARIANTS[args.variant][2],
        "",
        f"Latest run: {date}. Guest kernel {args.kernel} ({args.accel or '?'});",
        f"host: {machine}; vbench arguments ``{args.args.strip()}``.",
        "",
    ] + in_order_text(rows) + [""]
    rx = [x[2:] for x in rx_load_text(rx_load(rows))]
    if rx:
        out += rx + [""]
    out += [rst_table(head, body), ""]
    if have_chart:
        # Relative to the page that includes this file.
        out += [f".. image:: performance/{f_png}", "   :alt: throughput and ours/C ratios", ""]
    out += [
        f"Raw results: ``Documentation/performance/{f_raw}`` (one line per row and",
        f"round), medians: ``Documentation/performance/{f_sum}``"
        + (f", instruction rows: ``Documentation/performance/{f_instr}``." if instr else "."),
        "",
    ]
    with open(os.path.join(pdir, f_inc), "w") as f:
        f.write("\n".join(out))


def write_doc(docdir):
    """Documentation/performance.rst: what the rows are and how to run
    them, and a section per kernel measured (performance/*.inc, each
    written by its own runs: write_section)."""
    pdir = os.path.join(docdir, "performance")
    notes = os.path.join(pdir, "notes.inc")
    out = [
        "===========",
        "Performance",
        "===========",
        "",
        "``make bench`` (``bench/bench``) boots the test VM and measures",
        "the data path of ``vhost_net_rs`` and of the C ``vhost_net`` of the same",
        "kernel, with a userspace guest-side ring driver",
        "(``bench/vbench/src/main.rs``). Each round measures every row on",
        "both modules back to back (C then ours in odd rounds, ours then C in",
        "even ones, a module load and unload around each window): rows a few",
        "seconds apart see the same host load, rows further apart do not.",
        "Before the first row of each test in a round, one more window of the",
        "pair's first module runs and is not counted (``--no-settle``: none):",
        "without it, on Debian's kernel, the round's first RX 64 B window,",
        "right after TX 64 KiB, ran slow whichever module had it.",
        "Medians over the rounds, with the minimum and maximum. Two kernels",
        "have a table each, below: the 6.12 test kernel this project builds",
        "(``make bench``) and Debian 13's own 7.3 kernel (``make bench",
        "KERNEL=debian13``), each with its own C ``vhost_net`` in the same boot.",
        "",
        ".. important::",
        "",
        "   These numbers come from a test VM under **TCG** (QEMU's emulator, no",
        "   KVM), on shared host CPUs. They are **ratios, not absolute speeds**:",
        "   only the ``ours/C`` column means something, and a real machine runs",
        "   both several times faster. Single rounds vary by up to 50% on a",
        "   shared host (see min-max); trust only ratios well away from 1.",
        "   The two kernels' tables were measured at different times on a shared",
        "   host: compare ratios within a table, not numbers across them.",
        "",
        "Rows:",
        "",
        "- **TX**: the driver keeps the 256-entry TX ring full and counts",
        "  completions; the frames leave through the tap into the host stack,",
        "  which drops them. 64 KiB frames are sent as GSO TCPv4 frames",
        "  (``VIRTIO_NET_HDR_GSO_TCPV4``, partial checksum) through the vnet header.",
        "- **RX**: the kernel's packet generator (``pktgen.ko``, built from",
        "  the test kernel's own source; Debian's own on Debian's kernel) sends",
        "  UDP frames into the tap as fast",
        "  as it can from two threads, one alone on CPU 1 and one on CPU 0",
        "  beside the driver and the worker, and the tap drops what the worker",
        "  does not take in time: the worker never waits for a frame, so these",
        "  rows measure the module's receive path, not how fast a sender is",
        "  woken (one thread, ``--pktgen-threads 1``, only just outruns the",
        "  worker at 64 B; see the notes below). The driver",
        "  keeps the RX ring full of 4 KiB mergeable buffers and counts",
        "  packets. 64 KiB RX frames are plain jumbo frames (the tap's MTU is",
        "  65521), not GSO. (vbench ``--injector socket``: a thread injecting",
        "  through ``AF_PACKET`` instead, slower than the worker, as in the",
        "  tables before 2026-12-03 and in the instruction rows, where every",
        "  frame injected must be one received.)",
        "- **latency**: ping-pong, guest TX -> reflector thread on the tap ->",
        "  guest RX, the driver sleeping on the call eventfd; round trip. With",
        "  two CPUs or more the driver runs on CPU 0 and the reflector and the",
        "  worker on CPU 1 (vbench ``--pin``, default for this row only): left",
        "  to the scheduler, a round settles into two or four cross-CPU wake-ups",
        "  per trip, whichever module it measures (see the notes below).",
        "- **VIRTIO_F_IN_ORDER**: vbench negotiates it with every module that",
        "  offers it (``--in-order auto``; 7.3's C does, 6.12's does not; ours",
        "  where its ``in_order`` parameter is set, which the bench does on",
        "  Debian's kernel): descriptors are then made available in table order",
        "  and a used element completes every buffer up to its id (TX: one",
        "  element per batch; RX: one per packet). Each table says where it was",
        "  negotiated.",
        "- **worker ns/pkt**: CPU time of the ``vhost-<pid>`` worker thread",
        "  (``/proc/<pid>/task/<tid>/schedstat``, nanoseconds; ``stat``'s",
        "  utime+stime is in the CSV too) divided by the packets of the window.",
        "- **worker runs/kpkt**: how often the worker was put on a CPU (its",
        "  wake-ups, plus preemptions; ``schedstat``'s third field) per 1000",
        "  packets: a worker that sleeps and wakes more costs the scheduler more.",
        "- **kernel instr/pkt**, **module instr/pkt**: guest kernel instructions",
        "  executed per packet (per round trip for latency), all of them (both",
        "  sides of the device) and those of the vhost module(s) alone: the same",
        "  rows once more in a second boot with one CPU, counted by the",
        "  ``make profile`` plugin (``--instr-rounds`` rounds, default 3).",
        "  A window's count is exact, but not all of it is fixed by the code:",
        "  how many packets a wake-up of the worker handles, and the scheduler's",
        "  work per latency round trip, follow timing, so the same code counts",
        "  within about 3% from window to window (2026-12-02: RX 64 KiB module",
        "  4864-4987, latency round trip 21593-22151 over two boots). That is",
        "  still several times finer than the timed rows; ``make profile``",
        "  shows the counts by function.",
        "",
        "``ours/C``: the ratio of the two medians; higher is better for",
        "throughput, lower is better for latency and CPU time (column",
        "``better``). ``paired ours/C [CI]``: the median of each round's own",
        "ratio (its two windows back to back), with a distribution-free",
        "confidence interval of that median (order statistics, sign test: at",
        "least 95% with 6 rounds or more, 94% with 5, the whole range). A row",
        "whose interval holds 1 does not tell the two modules apart.",
        "",
    ]
    for variant, (inc, title, _) in VARIANTS.items():
        out += [title, "=" * len(title), ""]
        if os.path.exists(os.path.join(pdir, inc)):
            out += [f".. include:: performance/{inc}", ""]
        else:
            out += [f"Not measured yet: ``make bench{' KERNEL=' + variant if variant else ''}``.", ""]
    out += [
        "The QEMU rows",
        "=============",
        "",
        "The **QEMU** rows (``bench/bench``, ``bench/guest-bench.sh`` in the VM)",
        "boot a real QEMU guest (nested TCG, one boot per module and round) with",
        "``-netdev tap,vhost=on,vhostforce=on`` over the C module and over ours, and",
        "with ``vhost=off`` (QEMU's userspace virtio-net: what the module saves),",
        "and time verified TCP transfers each way (``--qemu-reps`` per boot,",
        "default 3). Nested TCG makes the guest's CPU the bottleneck, so these rows",
        "say more about agreement than speed. The console log's ``guest-bench:``",
        "lines give each transfer's retransmitted segments and vhost worker CPU.",
        "",
        "Running it",
        "==========",
        "",
        "::",
        "",
        "    make bench                                  # 5 rounds, about 17 minutes",
        "    make bench KERNEL=debian13                  # the same on Debian 13's own 7.3 kernel",
        "    make bench OPTS=--no-qemu                   # without the QEMU rows, about 4",
        "    make bench OPTS=--no-instr                  # without the instruction rows",
        "    make bench OPTS='--rounds 9 --secs 3'       # more rounds, longer windows",
        "    make bench OPTS='--tests tx --sizes 64'     # a subset: this page is left alone",
        "    make bench OPTS='--tests lat --pin off'     # latency left to the scheduler",
        "    make bench OPTS='--injector socket'         # RX from a socket thread, not pktgen",
        "    make bench OPTS='--tests rx --pktgen-threads 1 --busyloop 50'  # one pktgen, busy poll",
        "    make bench OPTS=\"--vbench-args '--in-order off'\"  # never VIRTIO_F_IN_ORDER",
        "    bench/bench --quick                         # the make check smoke test",
        "    bench/bench --help                          # every option (bench/README.md)",
        "",
        "Where the time goes: ``make profile`` runs the same rows with a QEMU",
        "plugin (``bench/tbprof.c``) that counts every guest kernel",
        "instruction executed in each measured window, and prints instructions",
        "per packet by function, C beside ours. Under TCG, where ``perf`` has no",
        "counters, a function's instructions per call do not depend on host load.",
        "On Debian's kernel (``make profile KERNEL=debian13``, in",
        "``build/profile-debian13``) the kernel's symbols come from the VM's",
        "``/proc/kallsyms`` (Debian ships its ``System.map`` only in the debug",
        "package), saved as ``System.map`` beside the console log::",
        "",
        "    make profile                                # every row, one round",
        "    make profile OPTS='--tests tx --sizes 64'",
        "    bench/profile-report.py --log build/profile/console.log \\",
        "        --dumps build/profile/prof --system-map $(make -s kdir)/System.map \\",
        "        --by-diff --blocks TaskBody             # largest differences, hot blocks",
        "",
        "``make profile-qemu`` does the same for the nested QEMU rows: each",
        "transfer is a window, and the plugin also counts user space (the inner",
        "QEMU that runs the guest) as one line, per MiB moved. ``--calls`` counts",
        "calls instead of instructions: how often the worker was woken, the",
        "guest signalled, a packet received. Both senders make 64 KB TSO packets",
        "there (``--qemu-tso 44``): with the kernel's sizing the packet size",
        "follows the rate, and windows of the same module differ by 2.5 times in",
        "packets per MiB::",
        "",
        "    make profile-qemu                           # one boot each, two transfers each way",
        "    make profile-qemu OPTS=\"--profile-args '--calls --by-diff'\"",
        "",
    ]
    if os.path.exists(notes):
        out += [".. include:: performance/notes.inc", ""]
    with open(os.path.join(docdir, "performance.rst"), "w") as f:
        f.write("\n".join(out))


def self_test():
    """The statistics above on known answers (make check runs this)."""
    m, lo, hi, c = median_ci([5, 1, 4, 2, 3])  # n=5: no k > 1 reaches 95%
    assert (m, lo, hi) == (3, 1, 5) and abs(c - 0.9375) < 1e-9, (m, lo, hi, c)
    m, lo, hi, c = median_ci(range(1, 10))  # n=9: x(2), x(8), 96.1%
    assert (m, lo, hi) == (5, 2, 8) and abs(c - 0.9609375) < 1e-9, (m, lo, hi, c)
    m, lo, hi, c = median_ci(range(1, 21))  # n=20: x(6), x(15), 95.9%
    assert (lo, hi) == (6, 15) and c >= 0.95, (lo, hi, c)
    assert median_ci([2.0]) == (2.0, 2.0, 2.0, 0.0)  # one round: no confidence
    row = lambda r, i, v: {"round": r, "impl": i, "test": "tx", "size": 64, "pps": v}
    rows = [row(1, "c", 100.0), row(1, "ours", 110.0), row(2, "ours", 90.0),
            row(2, "c", 100.0), row(3, "c", 50.0), row(4, "ours", 1.0)]
    got = sorted(paired(rows, "tx", 64, "pps"))
    assert got == [0.9, 1.1], got  # rounds 3 and 4 have one side only
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write(",".join(INSTR_COLUMNS) + "\n1,c,tx,64,100,1628.1,414.5\n"
                "1,ours,tx,64,120,1528.9,508.0\n1,ours,rx,64,0,1.0,1.0\n1,c,rx,x,1,1,1\n")
    irows, ierrs = load_instr(f.name)
    os.unlink(f.name)
    assert len(irows) == 2 and len(ierrs) == 2, (irows, ierrs)
    summ = {(x[0], x[2]): x for x in summarize(irows)}
    assert abs(summ[("tx", "kernel_insns")][7] - 1528.9 / 1628.1) < 1e-9
    assert ("tx", "pps") not in summ  # no timed rows: no timed metric
    rx = lambda pk, off, pps, ns: {"test": "rx", "size": 64, "packets": pk, "offered": off,
                                   "pps": pps, "worker_ns_per_pkt": ns}
    got = rx_load([rx(100, 100, 1e5, 7000.0), rx(99, 100, 2e5, 4000.0),
                   rx(5, None, 1e5, 1.0), {**rx(1, 1, 1, 1), "test": "tx"}])
    assert [round(x, 9) for x in got[64]] == [0.99, 1.0, 0.7, 0.8], got
    assert rx_load([rx(5, 0, 1e5, 1.0)]) == {}
    assert "injector, not the module" in "".join(rx_load_text(got))
    mixed = rx_load([rx(50, 100, 1e5, 1.0), {**rx(99, 100, 1e5, 1.0), "size": 65000}])
    assert "64 B 50%-50%, 64 KiB 99%-99%" in " ".join(rx_load_text(mixed)), rx_load_text(mixed)
    print("bench-report self-test: ok")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw")
    ap.add_argument("--summary")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--doc")
    ap.add_argument("--kernel", default="?")
    ap.add_argument("--accel", default="")
    ap.add_argument("--args", default="")
    ap.add_argument("--instr", help="instruction rows (bench/profile-report.py --csv)")
    ap.add_argument("--variant", default="", choices=sorted(VARIANTS),
                    help="the kernel measured: '' the test kernel (Documentation/performance/"
                         "raw.csv, ...), debian13 Debian 13's (debian13-raw.csv, ...)")
    ap.add_argument("--doc-only", action="store_true",
                    help="with --doc: only write Documentation/performance.rst around"
                         " the sections there are")
    a = ap.parse_args()
    if a.doc_only:
        if not a.doc:
            ap.error("--doc-only needs --doc")
        write_doc(a.doc)
        return 0
    if not a.raw or not a.summary:
        ap.error("--raw and --summary are required")
    rows, errs = load(a.raw)
    tests, subset = asked(a.args)
    errs += check(rows, a.rounds, tests)
    if a.instr:
        irows, ierrs = load_instr(a.instr)
        errs += ierrs
        for t in tests:
            for i in IMPLS:
                if not any(d["test"] == t and d["impl"] == i for d in irows):
                    errs.append(f"instruction rows: no {t} row for {i}")
        rows += irows
    summary = summarize(rows)
    write_summary(a.summary, summary)
    head, body = table(summary)
    if body:
        print(text_table(head, body))
    for e in errs:
        print(f"# bench-report: {e}")
    if a.check:
        print(f"bench smoke test: {len(rows)} rows, {len(errs)} problems")
        return 1 if errs else 0
    if a.doc and rows and subset:
        print("bench-report: a subset of the rows (--tests, --sizes or --only):"
              " Documentation/performance.rst left as it is")
    elif a.doc and rows:
        png = os.path.join(a.doc, "performance", doc_files(a.variant)[2])
        os.makedirs(os.path.dirname(png), exist_ok=True)
        have = chart(png, summary)
        write_section(a.doc, a, head, body, a.raw, a.summary, a.instr, have)
        write_doc(a.doc)
        print(f"bench-report: wrote {os.path.join(a.doc, 'performance.rst')} and performance/")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
