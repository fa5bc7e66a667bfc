#!/usr/bin/env python3
"""Prints the markdown tables of bench/run.sh from its results.tsv: medians per phase and tool,
the ratios, and issue 8's targets for feedloom.

    bench/table.py RESULTS_TSV N TOTAL_BYTES
"""

import csv
import statistics
import sys

TARGETS = {  # N: (cold s, warm s, update s, peak MB)
    1000: (2.0, 0.15, 0.5, 100),
    10000: (15.0, 1.5, 4.0, 200),
}


def main():
    path, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    med = {}
    for phase in ("cold", "warm", "update"):
        for tool in ("floor", "feedloom", "python"):
            rs = [r for r in rows if r["phase"] == phase and r["tool"] == tool]
            if not rs:
                continue
            m = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
            med[phase, tool] = {
                "wall": m(lambda r: float(r["wall"])),
                "cpu": m(lambda r: float(r["user"]) + float(r["sys"])),
                "rss": m(lambda r: int(r["rss_kb"]) / 1024),
                "req": m(lambda r: int(r["requests"])),
                "s200": m(lambda r: int(r["s200"])),
                "s304": m(lambda r: int(r["s304"])),
                "mb": m(lambda r: int(r["bytes"]) / 1e6),
                "walls": [float(r["wall"]) for r in rs],
            }
    rounds = max(int(r["round"]) for r in rows)
    print(f"N = {n:,} sources, {total / 1e6:.0f} MB; medians of {rounds} round(s)\n")
    print("| phase | tool | wall s | CPU s (user+sys) | peak RSS MB | requests | 200 | 304 | MB received | wall per round s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for (phase, tool), v in med.items():
        walls = " / ".join(f"{w:.2f}" for w in v["walls"])
        print(f"| {phase} | {tool} | {v['wall']:.2f} | {v['cpu']:.2f} | {v['rss']:.0f} | {v['req']:.0f} | {v['s200']:.0f} "
              f"| {v['s304']:.0f} | {v['mb']:.1f} | {walls} |")
    print("\n| phase | feedloom / floor (wall) | feedloom / floor (CPU) | python / feedloom (wall) | python / feedloom (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for phase in ("cold", "warm", "update"):
        fl, fo, py = med.get((phase, "feedloom")), med.get((phase, "floor")), med.get((phase, "python"))
        if not fl:
            continue
        r = lambda a, b, k: f"{a[k] / b[k]:.1f}x" if a and b and b[k] else "-"  # noqa: E731
        print(f"| {phase} | {r(fl, fo, 'wall')} | {r(fl, fo, 'cpu')} | {r(py, fl, 'wall')} | {r(py, fl, 'cpu')} |")
    if n in TARGETS:
        cold, warm, update, peak = TARGETS[n]
        got_peak = max(v["rss"] for (p, t), v in med.items() if t == "feedloom")
        print("\n| feedloom target (issue 8) | target | measured | met |")
        print("| --- | ---: | ---: | --- |")
        for name, phase, limit in (("cold", "cold", cold), ("warm", "warm", warm), ("update", "update", update)):
            if (phase, "feedloom") in med:
                got = med[phase, "feedloom"]["wall"]
                print(f"| {name} wall | <= {limit} s | {got:.2f} s | {'yes' if got <= limit else 'NO'} |")
        print(f"| peak memory | <= {peak} MB | {got_peak:.0f} MB | {'yes' if got_peak <= peak else 'NO'} |")


if __name__ == "__main__":
    main()
