"""Compares two runs of gpu.py (their --json files), point by point.

For each shape and token count: both times, after/before, and whether the
second run is within the tolerance of the first (or faster). Compare only
runs from the same card, taken back to back.

    python3 python/benchmarks/compare_gpu.py before.json after.json [--tolerance 0.03]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tolerance", type=float, default=0.03)
    parser.add_argument("--column", default="ours",
                        help="the time to compare: ours or graph")
    args = parser.parse_args()
    runs = [json.loads(pathlib.Path(p).read_text()) for p in (args.before, args.after)]
    before = {(r["shape"], r["T"]): r for r in runs[0]["rows"]}
    print(f"{'shape':16s} {'T':>6s} {'before ms':>10s} {'after ms':>10s} "
          f"{'after/before':>12s}  {'graph before':>12s} {'graph after':>11s}")
    slower = []
    for row in runs[1]["rows"]:
        key = (row["shape"], row["T"])
        if key not in before:
            continue
        old = before[key]
        ratio = row[args.column] / old[args.column]
        graph = ("" if row.get("graph") is None
                 else f"{old['graph']:12.4f} {row['graph']:11.4f}")
        flag = "" if ratio <= 1 + args.tolerance else "  SLOWER"
        print(f"{key[0]:16s} {key[1]:6d} {old[args.column]:10.4f} "
              f"{row[args.column]:10.4f} {ratio:12.3f}  {graph}{flag}")
        if flag:
            slower.append(key)
    print(f"{len(slower)} of {len(runs[1]['rows'])} points slower than "
          f"{1 + args.tolerance:.2f}x the first run")
    return 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
