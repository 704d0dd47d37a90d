"""A PyTorch UNet and its bragg twin give the same output with the same weights, passed as a
safetensors state_dict in both directions."""

import numpy as np

import bragg
from conftest import require


def torch_unet(torch, dims, width, depth, slope=0.2):
    """The architecture of bragg's `unet` (src/models/unet.rs) in PyTorch, with module names
    that give the same state_dict keys."""
    nn = torch.nn
    Conv = nn.Conv2d if dims == 2 else nn.Conv3d
    Pool = nn.MaxPool2d if dims == 2 else nn.MaxPool3d

    class Block(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = Conv(cin, cout, 3, padding=1)

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            skips, cin = [], 1
            for i in range(depth):
                setattr(self, f"enc{i}", Block(cin, width << i))
                cin = width << i
                skips.append(cin)
            for j, i in enumerate(reversed(range(depth))):
                setattr(self, f"dec{j}", Conv(cin + skips[i], width << i, 3, padding=1))
                cin = width << i
            self.out = Conv(cin, 1, 1)
            self.pool = Pool(2)

        def forward(self, x):
            act = nn.functional.leaky_relu
            skips, h = [], x
            for i in range(depth):
                e = act(getattr(self, f"enc{i}").conv(h), slope)
                skips.append(e)
                h = self.pool(e)
            for j in range(depth):
                u = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
                h = act(getattr(self, f"dec{j}")(torch.cat([u, skips[depth - 1 - j]], 1)), slope)
            return torch.sigmoid(self.out(h))

    return UNet()


def check_twin(tmp_path, dims, size):
    torch = require("torch")
    st = require("safetensors.torch")
    torch.manual_seed(0)
    net = torch_unet(torch, dims, width=4, depth=2).eval()
    x = np.random.default_rng(1).random((2, 1) + (size,) * dims).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()

    # PyTorch -> bragg through a safetensors file.
    sd = {k: v for k, v in net.state_dict().items()}
    path = tmp_path / "torch.safetensors"
    st.save_file(sd, str(path))
    twin = bragg.Model("unet", dims=dims, width=4, depth=2, seed=7)
    assert not np.allclose(twin(x), want, atol=1e-3), "a fresh model already matches"
    bragg.load_safetensors(twin, path)
    got = twin(x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    # bragg -> PyTorch: a bragg model's weights load into a fresh PyTorch net.
    src = bragg.Model("unet", dims=dims, width=4, depth=2, seed=3)
    back = tmp_path / "bragg.safetensors"
    bragg.save_safetensors(src, back)
    net2 = torch_unet(torch, dims, width=4, depth=2).eval()
    net2.load_state_dict(st.load_file(str(back)))
    with torch.no_grad():
        np.testing.assert_allclose(net2(torch.from_numpy(x)).numpy(), src(x), rtol=1e-4, atol=1e-5)


def test_pytorch_unet_2d_and_bragg_twin_agree(tmp_path):
    check_twin(tmp_path, dims=2, size=16)


def test_pytorch_unet_3d_and_bragg_twin_agree(tmp_path):
    check_twin(tmp_path, dims=3, size=8)
