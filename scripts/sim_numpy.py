#!/usr/bin/env python3
"""numpy/scipy implementation of the `bragg simulate` recipe (same steps and default ranges),
used as the speed reference. Prints patterns/s for 2D 128^2, 3D 64^3 and 3D 128^3.

Usage: .venv/bin/python scripts/sim_numpy.py [--repeat N]
"""
import argparse
import time

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import ConvexHull


def correlated_noise(rng, shape, sigma):
    w = rng.standard_normal(shape)
    f = np.fft.fftn(w)
    for ax, n in enumerate(shape):
        k = np.fft.fftfreq(n)
        t = np.exp(-2 * np.pi**2 * sigma**2 * k**2)
        sh = [1] * len(shape)
        sh[ax] = n
        f *= t.reshape(sh)
    return np.fft.ifftn(f).real


def convex_support(rng, ext, npts):
    d = len(ext)
    pts = []
    for ax in range(d):
        for face in (0, ext[ax] - 1):
            p = [np.round(rng.uniform(0.25 * (e - 1), 0.75 * (e - 1))) for e in ext]
            p[ax] = face
            pts.append(p)
    pts += [[rng.uniform(0, e - 1) for e in ext] for _ in range(npts)]
    hull = ConvexHull(np.array(pts))
    grid = np.stack(np.meshgrid(*[np.arange(e) for e in ext], indexing="ij"), -1).reshape(-1, d)
    inside = np.all(grid @ hull.equations[:, :d].T + hull.equations[:, d] <= 1e-6, axis=1)
    return inside.reshape(ext).astype(np.float32)


def simulate(rng, dim, n, width=6, os_range=(2.0, 4.0), photons=(1e4, 1e8)):
    lo, hi = int(np.ceil(n / os_range[1])), int(np.floor(n / os_range[0]))
    ext = [int(np.clip(round(n / rng.uniform(*os_range)), lo, hi)) for _ in range(dim)]
    sup = convex_support(rng, ext, int(round(rng.uniform(6, 20))))
    # phase
    corr = max(rng.uniform(0.05, 0.3) * np.mean(ext), 0.5)
    rng_ph = rng.uniform(np.pi / 3, 3 * np.pi)
    ph = correlated_noise(rng, sup.shape, corr)
    ph = ((ph - ph.min()) / np.ptp(ph) - 0.5) * rng_ph
    if rng.random() < 0.3:
        h = rng.standard_normal(dim)
        h /= np.linalg.norm(h)
        c = np.stack(np.meshgrid(*[np.arange(e) - (e - 1) / 2 for e in ext], indexing="ij"), -1)
        x = c @ h
        ph += rng.uniform(0.5 * np.pi, 2 * np.pi) * (x / np.abs(x).max()) ** 2
    # modulus realism
    m = gaussian_filter(sup, rng.uniform(0.45, 0.75), mode="constant", truncate=4.0)
    m = np.where(m < 0.1 * m.max(), 0, m / m.max())
    amp = rng.uniform(0.5, 3.0)
    noise = correlated_noise(rng, sup.shape, max(rng.uniform(0.01, 0.1) * n, 0.5))
    m = np.where(m > 0, np.maximum(m + amp * noise, 0), 0)
    m /= m.max()
    obj_small = (m * np.exp(1j * ph)).astype(np.complex64)
    obj = np.zeros((n,) * dim, np.complex64)
    sl = tuple(slice(n // 2 - e // 2, n // 2 - e // 2 + e) for e in ext)
    obj[sl] = obj_small
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj)))
    inten = np.abs(f) ** 2
    phase = np.angle(f).astype(np.float32)
    ph_max = np.exp(rng.uniform(np.log(photons[0]), np.log(photons[1])))
    noiseless = (inten * (ph_max / inten.max())).astype(np.float32)
    truth = rng.poisson(noiseless).astype(np.float32)
    mask = np.zeros((n,) * dim, np.uint8)
    c0 = n // 2 + rng.integers(-(n // 8), n // 8 + 1) - width // 2
    mask[..., c0:c0 + width] = 1
    intensity = np.where(mask == 1, 0, truth)
    return intensity, truth, noiseless, mask, obj, phase


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=0, help="patterns per case (0: auto)")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    for name, dim, n, reps in [("2d_128", 2, 128, 40), ("3d_64", 3, 64, 8), ("3d_128", 3, 128, 3)]:
        reps = a.repeat or reps
        simulate(rng, dim, n)  # warm-up
        t = time.perf_counter()
        for _ in range(reps):
            simulate(rng, dim, n)
        dt = time.perf_counter() - t
        print(f"{name}: {reps / dt:.2f} patterns/s ({dt / reps * 1e3:.1f} ms/pattern)")


if __name__ == "__main__":
    main()
