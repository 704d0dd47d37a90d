#!/usr/bin/env python3
"""One RAAR cycle (FFT, Fourier projection, inverse FFT, real-space update) with numpy and
scipy.fft (workers=2), complex64, at 128^3 and 256^3; prints ms/cycle (median of N cycles).
Same work as `cargo bench --bench phasing`. Usage: python scripts/phasing_numpy.py [--reps 10]
"""
import argparse
import time

import numpy as np
import scipy.fft as sfft


def cycle(rho, iobs_sqrt, observed, support, beta=0.9, workers=2):
    psi = sfft.fftn(rho, workers=workers, overwrite_x=False)
    amp = np.abs(psi)
    fac = np.where(observed, iobs_sqrt / np.maximum(amp, 1e-30), 1.0).astype(np.float32)
    psi *= fac
    p = sfft.ifftn(psi, workers=workers, overwrite_x=True)
    return np.where(support, p, (1 - 2 * beta) * p + beta * rho)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    for n in (128, 256):
        shape = (n, n, n)
        i = np.arange(n**3)
        iobs_sqrt = np.sqrt(((i * 7919) % 1000).astype(np.float32)).reshape(shape)
        observed = (i % 97 != 0).reshape(shape)
        support = (((i // n) % n) < n // 2).reshape(shape)
        rho = ((i % 13) + 1j * (i % 7)).astype(np.complex64).reshape(shape)
        rho = cycle(rho, iobs_sqrt, observed, support, workers=a.workers)  # warm-up
        times = []
        for _ in range(a.reps):
            t = time.perf_counter()
            rho = cycle(rho, iobs_sqrt, observed, support, workers=a.workers)
            times.append(time.perf_counter() - t)
        assert rho.dtype == np.complex64, rho.dtype
        print(f"numpy+scipy.fft (workers={a.workers}) RAAR cycle {n}^3: {1e3 * np.median(times):.1f} ms/cycle")


if __name__ == "__main__":
    main()
