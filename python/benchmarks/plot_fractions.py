"""Plots the fraction of the roofline floor per point of a benchmark run.

Reads the ``--json`` file of ``cpu.py`` or ``gpu.py`` and writes a PNG bar
chart: one bar per point (per dtype on the CPU; eager and CUDA-graph calls on
the GPU), with the floor (1.0) and the targets of BENCHMARKS.md drawn across.
A point without a floor (bf16 without torch) is marked "no floor"; GPU
points not timed as a graph (T > 32) have no graph bar.

    python3 python/benchmarks/plot_fractions.py RUN.json [-o docs/benchmarks/RUN.png]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

#: The CPU's targets: decode (T <= 16) and T >= 128.
CPU_TARGETS = ((0.9, "0.9: CPU decode target (T <= 16)"), (0.8, "0.8: CPU target at T >= 128"))
#: The GPU's targets: T <= 512 and T >= 4096.
GPU_TARGETS = ((0.9, "0.9: GPU target at T <= 512"), (0.8, "0.8: GPU target at T >= 4096"))


def series(run: dict) -> tuple[list[str], dict[str, list], tuple, str]:
    """The x labels, each series' bars in label order (with the text shown
    where a bar has no value), the targets and the title of a cpu.py or
    gpu.py run."""
    rows = run["rows"]
    if run.get("benchmark") == "cpu" or (rows and "dtype" in rows[0]):
        points = sorted({(r["shape"], r["T"]) for r in rows},
                        key=lambda p: ([r["shape"] for r in rows].index(p[0]), p[1]))
        by_key = {(r["shape"], r["dtype"], r["T"]): r.get("fraction") for r in rows}
        dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
        bars = {d: ([by_key.get((s, d, T)) for s, T in points], "no floor") for d in dtypes}
        title = (f"CPU, {run.get('date', '')}: {run.get('cpu', '')}, "
                 f"{run.get('threads', '?')} threads")
        return [f"{s}\nT={T}" for s, T in points], bars, CPU_TARGETS, title
    labels = [f"{r['shape']}\nT={r['T']}" for r in rows]
    bars = {"eager call": ([r.get("fraction") for r in rows], "not timed")}
    if any(r.get("graph_fraction") is not None for r in rows):
        bars["CUDA graph"] = ([r.get("graph_fraction") for r in rows], "")
    return labels, bars, GPU_TARGETS, f"GPU: {run.get('device', 'unknown card')}"


def plot(run: dict, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, bars, targets, title = series(run)
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(labels) + 2), 4.8))
    for i, (name, (values, missing)) in enumerate(bars.items()):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(labels))]
        heights = [v if v is not None else 0 for v in values]
        drawn = ax.bar(xs, heights, width, label=name)
        ax.bar_label(drawn, labels=[f"{v:.2f}" if v is not None else missing
                                    for v in values], fontsize=6, rotation=90, padding=2)
    ax.axhline(1.0, color="black", linewidth=1, label="1.0: the floor")
    for (level, text), style in zip(targets, ("--", ":")):
        ax.axhline(level, color="gray", linestyle=style, linewidth=1, label=text)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("fraction of the roofline floor (floor / time)")
    ax.set_ylim(0, 1.25)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=pathlib.Path, help="the --json file of cpu.py or gpu.py")
    parser.add_argument("-o", "--output", type=pathlib.Path,
                        help="the PNG to write (default: the JSON's path with .png)")
    args = parser.parse_args()
    try:
        run = json.loads(args.run.read_text())
        rows = run["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"plot_fractions: error: {args.run} is not a cpu.py/gpu.py --json run: {exc}",
              file=sys.stderr)
        return 2
    if not rows:
        print(f"plot_fractions: error: {args.run} has no rows", file=sys.stderr)
        return 2
    out = args.output or args.run.with_suffix(".png")
    plot(run, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
