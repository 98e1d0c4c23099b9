#!/usr/bin/env python3
"""Turns the evaluation's Google Benchmark JSON (bench/evaluate.sh) into CSV
tables, PNG plots and a Markdown report. Every number in them is read from
that JSON (and the machine description beside it): nothing is typed in
except the thesis' own published figures, which are labelled as such.

Usage: report.py EVAL_JSON OUT_DIR [--machine FILE] [--mode quick|full] [--peers PEERS_JSON]

PEERS_JSON (bench/peers.py) adds vkfuse against ONNX Runtime, IREE and ncnn,
measured in the same run, with each output checked against PyTorch's.

Rows named Eval/... are measured here; rows named WhatIf/<profile>/... are
PREDICTED ONLY (plans against device profiles that are not present) and are
kept apart in every table, plot and line.
"""
import argparse
import csv
import json
import math
import os
import re
import sys
from collections import defaultdict

import matplotlib

from peers import CSV_FIELDS as PEER_CSV_FIELDS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The thesis' headline speed-ups of fused offloading over naive per-operator
# offloading on the bandwidth-constrained edge link ("Accelerating On-Device
# CNN Inference via Fused Operation Offloading", DGIST 2026, section 5.3).
THESIS = {"resnet18": 7.3, "inception_v3": 9.0}
# Each peer is compared with the vkfuse engine that uses the same device.
PEER_BASE = {"ort": "vkfuse-cpu", "iree-cpu": "vkfuse-cpu", "ncnn-cpu": "vkfuse-cpu",
             "iree-vulkan": "vkfuse-gpu", "ncnn-vulkan": "vkfuse-gpu"}
STRATEGY_ORDER = ["cpu", "gpu", "naive", "fuse-all", "passes", "fused", "per-op"]


def parse_rows(path):
    with open(path) as f:
        data = json.load(f)
    rows = []
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" or "error_occurred" in b and b["error_occurred"]:
            if b.get("error_occurred"):
                print(f"report: {b['name']} failed: {b.get('error_message', '?')}", file=sys.stderr)
            continue
        # Eval/<experiment>/<model>/<strategy>/<link>/k:<k>[/<Google Benchmark's suffixes>], or
        # WhatIf/<profile>/...; a model given as a file may hold slashes.
        m = re.match(r"^(Eval|WhatIf)/(?:([^/]+)/)?(bandwidth|k|ablation)/(.+)/([^/]+)/([^/]+)/k:([^/]+)(?:/.*)?$",
                     b["name"])
        if not m or (m.group(1) == "WhatIf") != (m.group(2) is not None):
            continue
        source = "measured" if m.group(1) == "Eval" else "predicted"
        profile = m.group(2) or ""
        experiment, model, strategy, link, k = m.group(3), m.group(4), m.group(5), m.group(6), m.group(7)
        model = os.path.basename(model)[:-5] if model.endswith(".onnx") else model
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ms")]
        rows.append({
            "source": source,
            "profile": profile,
            "experiment": experiment,
            "model": model,
            "strategy": strategy,
            "link": link,
            "k": k,
            "ms": b["real_time"] * unit,
            "predicted_ms": b.get("predicted_ms", float("nan")),
            "link_MBps": b.get("link_MBps", 0),
            "link_lat_us": b.get("link_lat_us", 0),
            "MB_up": b.get("MB_up", b.get("plan_MB_up", 0)),
            "MB_down": b.get("MB_down", b.get("plan_MB_down", 0)),
            "transfers": b.get("transfers", 0),
            "units": b.get("units", 0),
            "kernels": b.get("kernels", 0),
            "host_ops": b.get("host_ops", 0),
            "accel_ops": b.get("accel_ops", 0),
            "label": b.get("label", ""),
        })
    return data.get("context", {}), rows


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def key_strategy(s):
    return STRATEGY_ORDER.index(s) if s in STRATEGY_ORDER else len(STRATEGY_ORDER)


def plot_bandwidth(rows, model, title, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by = defaultdict(list)
    for r in rows:
        by[r["strategy"]].append((r["link_MBps"], r["ms"]))
    for s in sorted(by, key=key_strategy):
        pts = sorted(by[s])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("link bandwidth, MB/s (latency rises as it falls)")
    ax.set_ylabel("latency per inference, ms")
    ax.set_title(f"{model}: {title}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_k(rows, title, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by = defaultdict(list)
    for r in rows:
        x = 16.0 if r["k"] == "inf" else float(r["k"])
        by[(r["model"], r["strategy"])].append((x, r["ms"]))
    for (m, s), pts in sorted(by.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{m} {s}")
    ax.set_xscale("symlog", linthresh=0.25)
    ax.set_xlabel("offloading ratio k (16 on the axis: k = inf)")
    ax.set_ylabel("latency per inference, ms")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bars(groups, ylabel, title, path, hlines=None, log=False):
    """groups: {group: {bar: value}}"""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    names = sorted({b for g in groups.values() for b in g}, key=key_strategy)
    width = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        xs = [j + i * width for j in range(len(groups))]
        ax.bar(xs, [groups[g].get(n, 0) for g in groups], width, label=n)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))])
    ax.set_xticklabels(list(groups), fontsize=8)
    for y, label in (hlines or []):
        ax.axhline(y, color="k", linestyle="--", linewidth=0.8)
        ax.text(len(groups) - 0.5, y, label, va="bottom", ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scatter(rows, path):
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    by = defaultdict(list)
    for r in rows:
        if r["predicted_ms"] > 0 and r["ms"] > 0:
            by[r["strategy"]].append((r["predicted_ms"], r["ms"]))
    lo, hi = math.inf, 0
    for s in sorted(by, key=key_strategy):
        xs, ys = zip(*by[s])
        ax.scatter(xs, ys, label=s, s=14)
        lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
    if hi > 0:
        ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8, label="measured = predicted")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted, ms (the plan's cost model)")
    ax.set_ylabel("measured, ms")
    ax.set_title("Predicted against measured (every measured row)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_peers(rows, path):
    """Grouped bars per model, one per engine, log scale; a run that timed out is a hatched lower bound."""
    models = sorted({r["model"] for r in rows})
    engines = [e for e in ["vkfuse-cpu", "vkfuse-fused", "ort", "iree-cpu", "ncnn-cpu", "vkfuse-gpu", "iree-vulkan",
                           "ncnn-vulkan"] if any(r["engine"] == e for r in rows)]
    by = {(r["model"], r["engine"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(models) + 3), 4.8))
    width = 0.8 / max(1, len(engines))
    for i, e in enumerate(engines):
        color = f"C{i}"
        for j, m in enumerate(models):
            r = by.get((m, e))
            if not r:
                continue
            x = j + i * width
            if r.get("median_ms"):
                ax.bar(x, r["median_ms"], width, color=color)
            elif r.get("lower_bound_ms"):
                ax.bar(x, r["lower_bound_ms"], width, color="white", edgecolor=color, hatch="//")
                ax.text(x, r["lower_bound_ms"], ">", ha="center", va="bottom", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(len(engines))]
    ax.legend(handles, engines, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(models))])
    ax.set_xticklabels(models, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency per inference, ms (median)")
    ax.set_title("vkfuse and its peers, measured side by side (hatched: no result within the timeout)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def peer_lines(peers, fmt_ms, eval_date):
    """The report's peers section: one row per (model, engine), the vkfuse/peer ratio on the same device."""
    rows = peers["rows"]
    by = {(r["model"], r["engine"]): r for r in rows}
    L = ["## vkfuse and its peers, measured side by side", ""]
    xc = peers.get("core_round_trip_ns") or []
    L.append(f"`bench/peers.py`, {peers['date']} (the rows above: `vkfuse_bench`, {eval_date}): the same ONNX file, input and {peers['threads']} host threads for "
             f"every engine; {peers['rounds']} interleaved round{'s' if peers['rounds'] != 1 else ''} of {peers['warmup']} warm-up and up to "
             f"{peers['reps']} timed runs (fewer once {peers['budget_s']:.0f} s are spent), the median of the rounds' "
             f"medians; a run that did not finish within {peers['timeout_s']:.0f} s is shown as a lower bound. "
             "Error: the largest absolute difference from PyTorch's output over its largest magnitude; top-1: the "
             "same class as PyTorch." + (f" Cache-line round trip between the cores before each round: "
                                         f"{', '.join(f'{x:.0f}' for x in xc)} ns." if xc else ""))
    L.append("")
    L.append("| model | engine | median ms | vkfuse / engine | against | error | top-1 | device |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = by.get((r["model"], PEER_BASE.get(r["engine"], "")))
        ratio, against = "—", "—"
        if base and base.get("median_ms"):
            against = base["engine"]
            if r.get("median_ms"):
                ratio = f"{base['median_ms'] / r['median_ms']:.3f}x"
            elif r.get("lower_bound_ms"):
                ratio = f"< {base['median_ms'] / r['lower_bound_ms']:.5f}x"
        ms = fmt_ms(r["median_ms"]) if r.get("median_ms") else (
            f"> {r['lower_bound_ms']:.0f}" if r.get("lower_bound_ms") else "—")
        err = f"{r['rel_err']:.1e}" if r.get("rel_err") is not None else "—"
        top1 = {True: "yes", False: "**no**", None: "—"}[r.get("top1")]
        where = r["device"] if r["status"] == "ok" else r["status"].replace("|", "/")
        L.append(f"| {r['model']} | {r['engine']} | {ms} | {ratio} | {against} | {err} | {top1} | {where} |")
    L.append("")
    for model in ("resnet18", "inception_v3"):
        cpu, gpu = by.get((model, "vkfuse-cpu")), by.get((model, "vkfuse-gpu"))
        icpu, igpu = by.get((model, "iree-cpu")), by.get((model, "iree-vulkan"))
        parts = []
        if cpu and icpu and cpu.get("median_ms") and icpu.get("median_ms"):
            x = cpu["median_ms"] / icpu["median_ms"]
            parts.append(f"host path {x:.3f}x IREE llvm-cpu's latency ({'ahead' if x < 1 else 'behind'})")
        if gpu and igpu and gpu.get("median_ms") and (igpu.get("median_ms") or igpu.get("lower_bound_ms")):
            x = gpu["median_ms"] / (igpu.get("median_ms") or igpu["lower_bound_ms"])
            bound = "" if igpu.get("median_ms") else "under "
            parts.append(f"Vulkan path {bound}{x:.5f}x IREE Vulkan's ({'ahead' if x < 1 else 'behind'})")
        if parts:
            L.append(f"- {model}: " + "; ".join(parts) + ".")
    L.append("")
    return L


def fmt(x, digits=1):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_json")
    ap.add_argument("out_dir")
    ap.add_argument("--machine", help="a text file describing the machine, device, driver and build")
    ap.add_argument("--mode", default="", help="quick or full, for the report's title")
    ap.add_argument("--peers", help="bench/peers.py's peers.json, measured in the same run")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    context, rows = parse_rows(a.eval_json)
    if not rows:
        sys.exit("report: no Eval/ or WhatIf/ rows in " + a.eval_json)
    measured = [r for r in rows if r["source"] == "measured"]
    predicted = [r for r in rows if r["source"] == "predicted"]
    fields = ["source", "profile", "experiment", "model", "strategy", "link", "link_MBps", "link_lat_us", "k", "ms",
              "predicted_ms", "MB_up", "MB_down", "transfers", "units", "kernels", "host_ops", "accel_ops", "label"]
    outputs = []
    for exp in ("bandwidth", "k", "ablation"):
        for src, rs in (("measured", measured), ("predicted", predicted)):
            sel = [r for r in rs if r["experiment"] == exp]
            if sel:
                name = f"{exp}_{src}.csv"
                write_csv(os.path.join(a.out_dir, name), sel, fields)
                outputs.append(name)
    models = sorted({r["model"] for r in rows})
    profiles = sorted({r["profile"] for r in predicted})
    plots = []

    def add_plot(name):
        plots.append(name)
        return os.path.join(a.out_dir, name)

    for m in models:
        sel = [r for r in measured if r["experiment"] == "bandwidth" and r["model"] == m]
        if sel:
            plot_bandwidth(sel, m, "measured, emulated link", add_plot(f"bandwidth_{m}.png"))
        for p in profiles:
            sel = [r for r in predicted if r["experiment"] == "bandwidth" and r["model"] == m and r["profile"] == p]
            if sel:
                plot_bandwidth(sel, m, f"PREDICTED ONLY, {p} what-if accelerator", add_plot(f"bandwidth_{m}_whatif_{p}.png"))
    sel = [r for r in measured if r["experiment"] == "k"]
    if sel:
        plot_k(sel, "Sensitivity to k at the edge link (measured)", add_plot("k_measured.png"))
    for p in profiles:
        sel = [r for r in predicted if r["experiment"] == "k" and r["profile"] == p]
        if sel:
            plot_k(sel, f"Sensitivity to k at the edge link (PREDICTED ONLY, {p})", add_plot(f"k_whatif_{p}.png"))

    # Ablation and speed-ups over naive at the edge link.
    def table(rs, link):
        t = defaultdict(dict)
        for r in rs:
            if r["experiment"] == "ablation" and r["link"] == link:
                t[r["model"]][r["strategy"]] = r["ms"]
        return t

    speedups = {}  # (source, profile) -> {model: {strategy: naive/strategy}}
    for src, prof, rs in [("measured", "", measured)] + [("predicted", p, [r for r in predicted if r["profile"] == p])
                                                          for p in profiles]:
        t = table(rs, "edge")
        su = {m: {s: v["naive"] / x for s, x in v.items() if s != "naive" and x > 0}
              for m, v in t.items() if v.get("naive")}
        speedups[(src, prof)] = su
        tag = "measured" if src == "measured" else f"PREDICTED ONLY, {prof}"
        if su:
            plot_bars({m: {s: x for s, x in d.items() if s in ("fused", "passes", "fuse-all", "gpu")} for m, d in su.items()},
                      "speed-up over naive (x)", f"Speed-up over naive offloading, edge link ({tag})",
                      add_plot(f"speedup_{src}{'_' + prof if prof else ''}.png"),
                      hlines=[(v, f"thesis {m} {v}x") for m, v in THESIS.items() if m in su], log=True)
    for link in ("measured", "edge"):
        t = table(measured, link)
        if t:
            plot_bars(t, "latency, ms", f"Ablation: every strategy, {link} link (measured)",
                      add_plot(f"ablation_{link}.png"), log=True)
    plot_scatter(measured, add_plot("predicted_vs_measured.png"))
    peers = None
    if a.peers:
        with open(a.peers) as f:
            peers = json.load(f)
        plot_peers(peers["rows"], add_plot("peers.png"))
        write_csv(os.path.join(a.out_dir, "peers.csv"), peers["rows"], PEER_CSV_FIELDS)
        outputs.append("peers.csv")

    # fused against the best strategy at each bandwidth point.
    best_rows = []
    for src, rs in (("measured", measured), ("predicted", predicted)):
        pts = defaultdict(dict)
        shape = {}  # what a plan offloads: equal shapes are the same placement, up to unit order
        for r in rs:
            if r["experiment"] == "bandwidth":
                pts[(r["profile"], r["model"], r["link"])][r["strategy"]] = r["ms"]
                shape[(r["profile"], r["model"], r["link"], r["strategy"])] = (
                    r["accel_ops"], r["units"], r["kernels"], r["transfers"])
        link_bw = {(r["profile"], r["model"], r["link"]): r["link_MBps"] for r in rs}
        for (prof, m, link), d in sorted(pts.items(), key=lambda kv: (kv[0][0], kv[0][1], -link_bw[kv[0]])):
            if "fused" not in d:
                continue
            best = min(d, key=d.get)
            same = shape[(prof, m, link, "fused")] == shape[(prof, m, link, best)]
            best_rows.append({"source": src, "profile": prof, "model": m, "link": link, "fused_ms": d["fused"],
                              "best": best, "best_ms": d[best], "ratio": d["fused"] / d[best],
                              "same_plan": "yes" if same else "no"})
    if best_rows:
        write_csv(os.path.join(a.out_dir, "fused_vs_best.csv"), best_rows,
                  ["source", "profile", "model", "link", "fused_ms", "best", "best_ms", "ratio", "same_plan"])
        outputs.append("fused_vs_best.csv")

    # The report.
    machine = open(a.machine).read().strip() if a.machine and os.path.exists(a.machine) else "(not given)"
    L = []
    L.append(f"# vkfuse evaluation{' (' + a.mode + ' mode)' if a.mode else ''}")
    L.append("")
    L.append("Generated by `bench/evaluate.sh` from one run of `vkfuse_bench --eval` "
             f"(Google Benchmark, {context.get('date', '?')}). Every number below is read from that run's JSON, "
             "except the thesis' published speed-ups, which are marked. Rows marked **PREDICTED ONLY** are plans "
             "against device profiles that are not present here (tools/profiles); they were not run.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("```")
    L.append(machine)
    L.append(f"benchmark host: {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs "
             f"at {context.get('mhz_per_cpu', '?')} MHz")
    L.append("```")
    L.append("")
    devices = sorted({m.group(1) for r in measured for m in [re.search(r"gpu: (.*?), \d+ dispatches", r["label"])] if m})
    if devices:
        L.append("The measured rows' accelerator: " + "; ".join(devices) + " (the backend's own description).")
        L.append("")
    L.append("## Speed-up over naive per-operator offloading, edge link (40 MB/s, 1 ms)")
    L.append("")
    L.append("| source | model | fused | passes | fuse-all | gpu | thesis (fused, published) |")
    L.append("|---|---|---|---|---|---|---|")
    for (src, prof), su in speedups.items():
        tag = "measured" if src == "measured" else f"PREDICTED ONLY ({prof} what-if)"
        for m, d in sorted(su.items()):
            L.append(f"| {tag} | {m} | {fmt(d.get('fused'))}x | {fmt(d.get('passes'))}x | {fmt(d.get('fuse-all'))}x | "
                     f"{fmt(d.get('gpu'))}x | {str(THESIS[m]) + 'x published' if m in THESIS else '—'} |")
    L.append("")
    L.append("The thesis measured its speed-ups with an accelerator far faster than the host behind the edge link. "
             "Here the measured accelerator is whatever Vulkan device this machine has (lavapipe runs on the host's "
             "own cores, so offloading cannot beat the host and naive offloading is mostly transfer time); the "
             "what-if rows show the thesis' setting, as predictions.")
    L.append("")
    L.append("## fused against the best strategy at each bandwidth point")
    L.append("")
    L.append("| source | model | link | fused ms | best | best ms | fused / best | same placement |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in best_rows:
        tag = "measured" if r["source"] == "measured" else f"PREDICTED ONLY ({r['profile']})"
        L.append(f"| {tag} | {r['model']} | {r['link']} | {fmt(r['fused_ms'], 2)} | {r['best']} | "
                 f"{fmt(r['best_ms'], 2)} | {fmt(r['ratio'], 3)} | {r['same_plan']} |")
    L.append("")
    meas = [r for r in best_rows if r["source"] == "measured"]
    if meas:
        within = sum(1 for r in meas if r["ratio"] <= 1.05)
        same = [r for r in meas if r["ratio"] > 1.05 and r["same_plan"] == "yes"]
        L.append(f"Measured: fused within 1.05x of the best at {within} of {len(meas)} points; at {len(same)} of the "
                 "others the best strategy made the same placement as fused (same offloaded ops, units, kernels and "
                 "transfers), so the gap there is run-to-run noise, not the plan.")
        L.append("")
    L.append("## Ablation, measured (ms per inference)")
    L.append("")
    for link in ("measured", "edge"):
        t = table(measured, link)
        strategies = sorted({s for d in t.values() for s in d}, key=key_strategy)
        if not t:
            continue
        L.append(f"Link `{link}`:")
        L.append("")
        L.append("| model | " + " | ".join(strategies) + " |")
        L.append("|---|" + "---|" * len(strategies))
        for m, d in sorted(t.items()):
            L.append(f"| {m} | " + " | ".join(fmt(d.get(s), 2) for s in strategies) + " |")
        L.append("")
    if peers:
        L.extend(peer_lines(peers, lambda x: fmt(x, 2), context.get("date", "?")))
    L.append("## Plots")
    L.append("")
    for p in plots:
        L.append(f"![{p}]({p})")
        L.append("")
    L.append("## Tables")
    L.append("")
    L.append("CSV, one row per benchmark row: " + ", ".join(f"[{o}]({o})" for o in outputs) + ".")
    L.append("")
    if not peers:
        L.append("## Not in this run")
        L.append("")
        L.append("- Peers (ONNX Runtime, IREE, ncnn): `bench/evaluate.sh` runs them in full mode, or in quick mode "
                 "with VKFUSE_EVAL_PEERS=1 (`bench/peers.py`).")
    with open(os.path.join(a.out_dir, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print(f"report: {len(measured)} measured and {len(predicted)} predicted rows -> {a.out_dir}/report.md, "
          f"{len(plots)} plots, {len(outputs)} tables")


if __name__ == "__main__":
    main()
