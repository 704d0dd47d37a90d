"""PyTorch side of examples/train_step_time.rs: full training steps (forward, loss, backward, Adam,
loss read back with .item()) of the 3-D patch model or the 3-D phasing network, on CUDA when
present (cuDNN autotuning on, TF32 off: FP32 against FP32), else on the CPU.

Usage: python scripts/train_step_torch.py patch|phase [--steps N] [--batch B] [--width W]
       [--device cuda|cpu]
Prints one line per step and `RESULT case=.. device=.. median_ms=.. min_ms=..`.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.benchmark = True
SLOPE = 0.2


def act(t):
    return F.leaky_relu(t, SLOPE)


class SameTConv(nn.Module):
    """Stride-1 transposed conv with kernel 2 and Keras 'same' output size (first n outputs)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.ConvTranspose3d(cin, cout, 2)

    def forward(self, x):
        d, h, w = x.shape[2:]
        return self.conv(x)[..., :d, :h, :w]


class Patch(nn.Module):
    """bragg's patch model (src/models/patch_unet3d.rs), 2,771,309 parameters."""

    def __init__(self):
        super().__init__()
        conv = lambda i, o, k, d=1: nn.Conv3d(i, o, k, dilation=d, padding="same")
        self.e1 = nn.ModuleList(conv(1, 8, 3, d) for d in (4, 3, 2, 1))
        self.e2 = nn.ModuleList(conv(33, 16, 2, d) for d in (3, 2, 2, 1))
        self.e3, self.e4 = conv(97, 128, 2), conv(128, 256, 2)
        self.mid = SameTConv(256, 478)
        self.up = nn.ModuleList([SameTConv(606, 222), SameTConv(319, 96), SameTConv(129, 32)])
        self.head = nn.ModuleList([conv(32, 24, 4), conv(24, 12, 3), conv(12, 6, 2)])
        self.out = nn.Conv3d(6, 1, 1)

    def forward(self, x):
        grow = lambda h, convs: torch.cat([h] + [act(c(h)) for c in convs], 1)
        p1 = F.max_pool3d(grow(x, self.e1), 2)
        p2 = F.max_pool3d(grow(p1, self.e2), 2)
        p3 = F.max_pool3d(act(self.e3(p2)), 2)
        p4 = F.max_pool3d(act(self.e4(p3)), 2)
        h = F.interpolate(act(self.mid(p4)), scale_factor=2, mode="nearest")
        for t, skip in zip(self.up, (p3, p2, p1)):
            h = F.interpolate(act(t(torch.cat([h, skip], 1))), scale_factor=2, mode="nearest")
        for c in self.head:
            h = act(c(h))
        return torch.sigmoid(1.5 * self.out(h))


class PhaseUNet(nn.Module):
    """bragg's phase-unet (src/models/phase_unet.rs): two 3x3x3 convs per level, the second
    dilated 2 above the bottom level, max-pool / nearest upsampling, skip concatenation, a 1x1
    head with 2 outputs (cos, sin)."""

    def __init__(self, width, depth):
        super().__init__()
        ch = lambda l: width << l
        conv = lambda i, o, d=1: nn.Conv3d(i, o, 3, dilation=d, padding="same")
        self.down = nn.ModuleList()
        for l in range(depth):
            cin = 1 if l == 0 else ch(l - 1)
            self.down.append(nn.ModuleList([conv(cin, ch(l)), conv(ch(l), ch(l), 2 if l + 1 < depth else 1)]))
        self.up = nn.ModuleList(
            nn.ModuleList([conv(ch(l + 1) + ch(l), ch(l)), conv(ch(l), ch(l))]) for l in reversed(range(depth - 1))
        )
        self.head = nn.Conv3d(ch(0), 2, 1)

    def forward(self, x):
        block = lambda cs, h: act(cs[1](act(cs[0](h))))
        skips, h = [], x
        for l, cs in enumerate(self.down):
            h = block(cs, F.max_pool3d(h, 2) if l else h)
            skips.append(h)
        skips.pop()
        for cs in self.up:
            h = block(cs, torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), skips.pop()], 1))
        return self.head(h)


def masked_mean(v, m):
    return (v * m).sum() / (m.sum() + 1e-12)


def mae_grad_l1(pred, target, m):
    """Mean absolute error in the gap plus the mean over the axes of the L1 of the finite
    differences' error where either voxel of a pair is in the gap (bragg's "mae+grad-l1")."""
    total = 0
    for ax in (2, 3, 4):
        n = pred.shape[ax]
        diff = lambda t: t.narrow(ax, 1, n - 1) - t.narrow(ax, 0, n - 1)
        a, b = m.narrow(ax, 1, n - 1), m.narrow(ax, 0, n - 1)
        total = total + masked_mean((diff(pred) - diff(target)).abs(), a + b - a * b)
    return masked_mean((pred - target).abs(), m) + total / 3


def coherent_loss(pred, target, w, eps=1e-8):
    """1 - |sum w exp(i(phi_p - phi_t))| / sum w, the better of the phase and its twin."""
    norm = torch.sqrt(pred[:, :1] ** 2 + pred[:, 1:] ** 2 + eps)
    u0, u1 = pred[:, :1] / norm, pred[:, 1:] / norm
    c, s = target[:, :1], target[:, 1:]
    axes = tuple(range(1, pred.dim()))
    ws = lambda t: (t * w).sum(axes)
    tot = w.sum(axes) + eps
    coh = lambda re, im: torch.sqrt(re ** 2 + im ** 2 + eps) / tot
    direct = coh(ws(u0 * c + u1 * s), ws(u1 * c - u0 * s))
    twin = coh(ws(u0 * c - u1 * s), ws(u1 * c + u0 * s))
    return (1 - torch.maximum(direct, twin)).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["patch", "phase"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--width", type=int, default=24)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(2)
    size = 32
    if a.case == "patch":
        batch = a.batch or 8
        model = Patch().to(dev)
        y = torch.rand((batch, 1, size, size, size), generator=g)
        m = torch.zeros_like(y)
        m[..., 13:19] = 1
        x, y, m = (y * (1 - m)).to(dev), y.to(dev), m.to(dev)
        loss_of = lambda p: mae_grad_l1(p, y, m)
    else:
        batch = a.batch or 16
        model = PhaseUNet(a.width, 4).to(dev)
        phi = (torch.rand((batch, 1, size, size, size), generator=g) - 0.5) * 6
        target = torch.cat([phi.cos(), phi.sin()], 1).to(dev)
        w = torch.rand((batch, 1, size, size, size), generator=g).to(dev)
        x = torch.rand((batch, 1, size, size, size), generator=g).to(dev)
        loss_of = lambda p: coherent_loss(p, target, w)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)
    params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"case {a.case} on {name} (torch {torch.__version__}): {params} parameters, batch {batch} of {size}^3")
    times = []
    for step in range(max(a.steps, 1) + 3):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model(x))
        loss.backward()
        opt.step()
        v = loss.item()
        s = time.perf_counter() - t0
        print(f"step {step} {s * 1e3:.2f} ms loss {v:.6f}{' (warm-up)' if step < 3 else ''}")
        if step >= 3:
            times.append(s)
    print(f"RESULT case={a.case} device={name!r} median_ms={statistics.median(times) * 1e3:.2f} min_ms={min(times) * 1e3:.2f}")


if __name__ == "__main__":
    main()
