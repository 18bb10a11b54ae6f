#!/usr/bin/env python3
"""Prints a Markdown table of criterion medians, gort against each other runtime.

Reads target/criterion/<group>/<runtime>/new/estimates.json, as written by
`cargo bench`. Each group is one workload; its functions are the runtimes.
Usage: python3 scripts/bench_table.py [GROUP ...]   (default: every group)
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def main():
    wanted = sys.argv[1:]
    groups = sorted(p for p in ROOT.iterdir() if p.is_dir() and p.name != "report")
    if wanted:
        groups = [g for g in groups if g.name in wanted]
    others = sorted({f.name for g in groups for f in g.iterdir() if f.is_dir() and f.name not in ("gort", "report")})
    print("| workload | gort | " + " | ".join(others) + " | " + " | ".join(f"gort/{o}" for o in others) + " |")
    print("|---" * (2 + 2 * len(others)) + "|")
    for g in groups:
        med = {}
        for f in g.iterdir():
            est = f / "new" / "estimates.json"
            if est.exists():
                med[f.name] = json.loads(est.read_text())["median"]["point_estimate"]
        if "gort" not in med:
            continue
        cells = [fmt(med[o]) if o in med else "-" for o in others]
        ratios = [f"{med['gort'] / med[o]:.2f}" if o in med else "-" for o in others]
        print(f"| {g.name} | {fmt(med['gort'])} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
