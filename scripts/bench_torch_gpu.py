"""PyTorch (cuDNN, TF32 disabled) on a CUDA GPU: the conv cases of benches/opencl.rs, forward and
backward (input + weight gradients), printed as GFLOP/s with the same FLOP counts."""
import sys
import torch

torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.benchmark = True
dev = "cuda"


def timed(fn, reps=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps / 1e3


def case(name, n, c, o, spatial, k, dil):
    conv = torch.nn.functional.conv3d if len(spatial) == 3 else torch.nn.functional.conv2d
    x = torch.randn(n, c, *spatial, device=dev, requires_grad=True)
    w = torch.randn(o, c, *([k] * len(spatial)), device=dev, requires_grad=True)
    pad = "same"
    y = conv(x, w, padding=pad, dilation=dil)
    g = torch.randn_like(y)
    flops = 2.0 * y.numel() * c * k ** len(spatial)
    fwd = timed(lambda: conv(x, w, padding=pad, dilation=dil))
    def fb():
        x.grad = None
        w.grad = None
        conv(x, w, padding=pad, dilation=dil).backward(g)
    both = timed(fb)
    print(f"{name}: forward {fwd*1e3:.3f} ms {flops/fwd/1e9:.0f} GFLOP/s | "
          f"backward {(both-fwd)*1e3:.3f} ms {2*flops/(both-fwd)/1e9:.0f} GFLOP/s | "
          f"fwd+bwd {both*1e3:.3f} ms {3*flops/both/1e9:.0f} GFLOP/s")


print("torch", torch.__version__, torch.cuda.get_device_name(0), "TF32 off")
case("conv3d_n8_32to32_32^3_k3_d1", 8, 32, 32, (32, 32, 32), 3, 1)
case("conv3d_n8_32to32_32^3_k3_d4", 8, 32, 32, (32, 32, 32), 3, 4)
case("conv2d_n32_48to48_128^2_k3_d1", 32, 48, 48, (128, 128), 3, 1)
case("conv2d_n32_1to48_128^2_k3_d1", 32, 1, 48, (128, 128), 3, 1)
# An MSD-Net layer (50 channels in, 1 out, dilation 10) and a 3-D patch-model layer (k2, dilation 3;
# "same" with an even kernel pads the extra element at the end, as bragg does).
case("conv2d_n32_50to1_128^2_k3_d10", 32, 50, 1, (128, 128), 3, 10)
case("conv3d_n32_33to16_16^3_k2_d3", 32, 33, 16, (16, 16, 16), 2, 3)
sys.stdout.flush()
