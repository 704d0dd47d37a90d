#!/usr/bin/env python3
"""PyTorch CPU counterpart of `benches/conv.rs`: the same convolution cases, forward + backward
(input and weight gradients, i.e. 3x the forward FLOPs), reported in GFLOP/s; max-pool and
nearest upsampling in GB/s with the byte counts of the Rust bench.

Usage: .venv/bin/python scripts/bench_torch.py [--threads 2] [--repeats 5] [--quick]
Output lines: `case<TAB>metric<TAB>value` so that scripts/bench_compare.sh can join them.
"""
import argparse
import time

import torch
import torch.nn.functional as F

CONV_CASES = [
    # name, batch, c_in, c_out, spatial, kernel, dilation
    ("conv3d_n8_c32_32^3_k3_d1", 8, 32, 32, (32, 32, 32), 3, 1),
    ("conv3d_n8_c32_32^3_k3_d4", 8, 32, 32, (32, 32, 32), 3, 4),
    ("conv2d_n32_c1-48_128^2_k3", 32, 1, 48, (128, 128), 3, 1),
    ("conv2d_n32_c48-48_128^2_k3", 32, 48, 48, (128, 128), 3, 1),
]
POOL_CASES = [
    ("2d_n32_c48_128^2", (32, 48, 128, 128)),
    ("3d_n8_c32_32^3", (8, 32, 32, 32, 32)),
]


def best_time(fn, repeats):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def conv_case(name, n, ci, co, spatial, k, d, repeats):
    conv = F.conv3d if len(spatial) == 3 else F.conv2d
    x = torch.randn(n, ci, *spatial, requires_grad=True)
    w = torch.randn(co, ci, *([k] * len(spatial)), requires_grad=True)
    flops = 2.0 * n * co * ci * k ** len(spatial)
    for s in spatial:
        flops *= s

    def step():
        y = conv(x, w, padding="same", dilation=d)
        y.sum().backward()
        x.grad = None
        w.grad = None

    t = best_time(step, repeats)
    print(f"{name}\tfwd_bwd_gflops\t{3 * flops / t / 1e9:.2f}", flush=True)


def pool_case(name, shape, repeats):
    r = len(shape) - 2
    pool = F.max_pool3d if r == 3 else F.max_pool2d
    x = torch.randn(*shape, requires_grad=True)
    n = x.numel()
    m = n // 2 ** r
    small = torch.randn(*shape[:2], *[s // 2 for s in shape[2:]], requires_grad=True)

    def pool_fwd():
        with torch.no_grad():
            pool(x, 2)

    def pool_fb():
        pool(x, 2).sum().backward()
        x.grad = None

    def up_fwd():
        with torch.no_grad():
            F.interpolate(small, scale_factor=2, mode="nearest")

    def up_fb():
        F.interpolate(small, scale_factor=2, mode="nearest").sum().backward()
        small.grad = None

    for metric, fn, nbytes in [
        ("maxpool_forward_gbs", pool_fwd, 4 * (n + 2 * m)),
        ("maxpool_fwd_bwd_gbs", pool_fb, 4 * (2 * n + 4 * m)),
        ("upsample_forward_gbs", up_fwd, 4 * (n + m)),
        ("upsample_fwd_bwd_gbs", up_fb, 4 * 2 * (n + m)),
    ]:
        t = best_time(fn, repeats)
        print(f"pool_upsample_{name}\t{metric}\t{nbytes / t / 1e9:.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="only the conv3d cases")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for case in CONV_CASES[: 2 if args.quick else None]:
        conv_case(*case, args.repeats)
    if not args.quick:
        for name, shape in POOL_CASES:
            pool_case(name, shape, args.repeats)


if __name__ == "__main__":
    main()
