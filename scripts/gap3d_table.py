#!/usr/bin/env python3
"""Markdown tables of the 3-D gap study (scripts/gap3d_study.sh output): PCC of log(1+I) in
the gap per method and width, the noise ceiling, the best classical fill and the model's margin
against the Done-when bar (min(0.01, 40% of the best classical fill's distance to the ceiling))."""
import json
import sys
from pathlib import Path

CLASSICAL = ["linear", "log-linear", "laplace", "log-laplace", "biharmonic", "log-biharmonic"]


def main(folder):
    widths = [3, 6, 9, 12]
    data = {w: json.loads((Path(folder) / f"width{w}.json").read_text()) for w in widths}
    order = data[widths[0]]["order"]
    print("| method | " + " | ".join(f"{w} px" for w in widths) + " |")
    print("|---|" + "---|" * len(widths))
    for m in order:
        cells = []
        for w in widths:
            s = data[w]["methods"][m]["pcc_log"]
            cells.append(f"{s['mean']:.4f} ± {s['std']:.4f}")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print("| noise ceiling | " + " | ".join(
        f"{data[w]['ceiling']['mean']:.4f}" for w in widths) + " |")
    print()
    print("| width | best classical | its PCC | bar | model | model+physics |")
    print("|---|---|---|---|---|---|")
    for w in widths:
        ms = data[w]["methods"]
        best = max((m for m in CLASSICAL if m in ms), key=lambda m: ms[m]["pcc_log"]["mean"])
        b = ms[best]["pcc_log"]["mean"]
        bar = b + min(0.01, 0.4 * (data[w]["ceiling"]["mean"] - b))
        cells = []
        for m in ["model", "model+physics"]:
            if m in ms:
                v = ms[m]["pcc_log"]["mean"]
                cells.append(f"{v:.4f} ({'meets' if v >= bar else 'below'} the bar, {v - b:+.4f})")
            else:
                cells.append("-")
        print(f"| {w} px | {best} | {b:.4f} | {bar:.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/gap3d")
