#!/usr/bin/env python3
"""Checks an evaluation report (bench/evaluate.sh) against the run it came
from: every plot it shows exists, and every number in its tables is a
latency or ratio of that run's rows (eval.json, and peers.json when the
run measured the peers) — so that no number was typed
in or left over from another run. The thesis' published column and the
machine section are exempt. Exits non-zero naming the first mismatch.

Usage: check_report.py OUT_DIR
"""
import json
import os
import re
import sys


def main():
    out = sys.argv[1]
    report = open(os.path.join(out, "report.md")).read()
    with open(os.path.join(out, "eval.json")) as f:
        rows = [b for b in json.load(f)["benchmarks"] if not b.get("error_occurred")]
    times = [b["real_time"] for b in rows]  # the suite reports these rows in ms
    peers = os.path.join(out, "peers.json")
    if "## vkfuse and its peers" in report and os.path.exists(peers):
        with open(peers) as f:
            times += [r["median_ms"] for r in json.load(f)["rows"] if r.get("median_ms")]
    if not times:
        sys.exit("check_report: eval.json has no rows")
    # Every value a table may show: a row's time, or the ratio of two rows' times.
    values = set()
    for t in times:
        values.add(round(t, 2))
    ratios = [a / b for a in times for b in times if b > 0]
    plots = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    if not plots:
        sys.exit("check_report: the report shows no plots")
    for p in plots:
        if not os.path.exists(os.path.join(out, p)):
            sys.exit(f"check_report: {p} is in the report but not in {out}")
    checked = 0
    for line in report.splitlines():
        if not line.startswith("|") or line.startswith("|---") or "source |" in line or "model |" in line[:9]:
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        for c in cells:
            m = re.fullmatch(r"(\d+\.\d+)(x?)", c)
            if not m:
                continue
            x, is_ratio = float(m.group(1)), m.group(2) == "x"
            decimals = len(m.group(1).split(".")[1])
            tol = 0.5 * 10 ** -decimals + 1e-9
            if is_ratio or decimals == 3:
                ok = any(abs(r - x) <= tol for r in ratios)
            else:
                ok = any(abs(t - x) <= tol for t in times)
            if not ok:
                sys.exit(f"check_report: '{c}' in \"{line}\" is no time or ratio of the run's rows")
            checked += 1
    if checked == 0:
        sys.exit("check_report: no numbers found in the report's tables")
    print(f"check_report: {len(plots)} plots present, {checked} table numbers traced to the run's JSON")


if __name__ == "__main__":
    main()
