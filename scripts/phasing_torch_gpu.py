"""One RAAR cycle with torch.fft on a CUDA GPU (complex64), the same cycle as
benches/phasing_opencl.rs: psi = FFT(rho), Fourier-magnitude projection (1/N folded in),
unscaled inverse FFT, RAAR real-space update. Prints ms/cycle (median of 20 after warm-up, CUDA
events) and the effective memory traffic.

Traffic model (bytes per voxel, the minimum a cycle must move, whatever the FFT does inside):
forward FFT read+write 16, projection 8+4+1+8 = 21 (psi, iobs, mask, psi), inverse FFT 16,
update 8+8+1+8 = 25 (rho, proj, support, rho): 78 bytes per voxel. Every extra FFT pass over
memory adds 16 bytes per voxel, so GB/s here is a lower bound on what the device really moved.

Usage: python scripts/phasing_torch_gpu.py [sizes, default 128 256]
"""
import sys
import torch

BYTES_PER_VOXEL = 78


def raar_setup(n, dev):
    shape = (n, n, n)
    length = n ** 3
    i = torch.arange(length, device=dev, dtype=torch.int64)
    iobs = ((i * 7919) % 1000).to(torch.float32).reshape(shape)
    observed = (i % 97 != 0).reshape(shape)
    support = (((i // n) % n) < n // 2).reshape(shape)
    rho = torch.complex((i % 13).float(), (i % 7).float()).reshape(shape)
    return rho, torch.sqrt(iobs), observed, support


def raar_cycle(rho, amp_obs, observed, support, beta=0.9):
    n = rho.numel()
    psi = torch.fft.fftn(rho)
    calc = psi.abs()
    factor = torch.where(observed, amp_obs / calc.clamp_min(1e-30), torch.ones_like(calc))
    psi = psi * (factor / n)
    proj = torch.fft.ifftn(psi, norm="forward")  # unscaled inverse
    return torch.where(support, proj, proj * (1.0 - 2.0 * beta) + rho * beta)


def main():
    sizes = [int(s) for s in sys.argv[1:]] or [128, 256]
    dev = "cuda"
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    for n in sizes:
        rho, amp_obs, observed, support = raar_setup(n, dev)
        for _ in range(5):
            rho = raar_cycle(rho, amp_obs, observed, support)
        torch.cuda.synchronize()
        times = []
        for _ in range(20):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            rho = raar_cycle(rho, amp_obs, observed, support)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        times.sort()
        ms = times[len(times) // 2]
        gbs = BYTES_PER_VOXEL * n ** 3 / (ms * 1e-3) / 1e9
        print(f"raar_cycle {n}^3: {ms:.3f} ms/cycle (min {times[0]:.3f}), "
              f"effective {gbs:.0f} GB/s ({BYTES_PER_VOXEL} B/voxel)")


if __name__ == "__main__":
    main()
