#!/usr/bin/env python3
"""Prints the REPORT.md tables from the eval JSON files of docs/run_report.sh."""
import json, sys, os

d = sys.argv[1] if len(sys.argv) > 1 else "out/report"

def rows(name):
    p = os.path.join(d, name + ".eval.json")
    if not os.path.exists(p):
        return None
    return dict((n, s) for n, s in json.load(open(p))["rows"])

def f(s, k, sci=False):
    m, sd = s[k]["mean"], s[k]["std"]
    if m is None:
        return "n/a"
    return f"{m:.2e} ± {sd:.1e}" if sci else f"{m:.4f} ± {sd:.4f}"

def last_val(name):
    p = os.path.join(d, name + ".log.csv")
    if not os.path.exists(p):
        return ""
    lines = open(p).read().strip().splitlines()[1:]
    secs = sum(float(l.split(",")[4]) for l in lines)
    return f"{secs:.0f}"

print("### Loss study (UNet, 9-px cross gaps)\n")
print("| loss | PCC (log, gap) | SSIM | MSE (gap) | MAE (gap) | train s |")
print("|---|---|---|---|---|---|")
for loss, name in [("mse", "loss_mse"), ("mae", "loss_mae"), ("ssim", "loss_ssim"), ("mse+ssim+grad", "unet_c9")]:
    r = rows(name)
    if r:
        s = r["unet"]
        print(f"| {loss} | {f(s,'pcc')} | {f(s,'ssim')} | {f(s,'mse',True)} | {f(s,'mae',True)} | {last_val(name)} |")
r = rows("unet_c9")
if r:
    for b in ["linear", "laplace"]:
        s = r[b]
        print(f"| ({b} baseline) | {f(s,'pcc')} | {f(s,'ssim')} | {f(s,'mse',True)} | {f(s,'mae',True)} | |")

print("\n### Models across gap widths (cross gaps, PCC in the gap, log scale)\n")
print("| gap | UNet | dilated UNet | MSD-Net | nearest | linear | laplace |")
print("|---|---|---|---|---|---|---|")
for g in [3, 6, 9, 12]:
    cells = []
    base = None
    for name, key in [(f"unet_c{g}", "unet"), (f"dilated_c{g}", "dilated-unet"), (f"msd_c{g}", "msd")]:
        r = rows(name)
        if r:
            base = r
            cells.append(f(r[key], "pcc"))
        else:
            cells.append("-")
    for b in ["nearest", "linear", "laplace"]:
        cells.append(f(base[b], "pcc") if base else "-")
    print(f"| {g} px | " + " | ".join(cells) + " |")

print("\n### SSIM and MSE of the models\n")
print("| gap | model | SSIM | MSE (gap) | train s |")
print("|---|---|---|---|---|")
for g in [3, 6, 9, 12]:
    for name, key in [(f"unet_c{g}", "unet"), (f"dilated_c{g}", "dilated-unet"), (f"msd_c{g}", "msd")]:
        r = rows(name)
        if r:
            print(f"| {g} px | {key} | {f(r[key],'ssim')} | {f(r[key],'mse',True)} | {last_val(name)} |")
