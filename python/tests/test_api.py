"""The numpy API of `bragg`: simulate, inpaint, phase, compare, train, errors, threads."""

import threading
import time

import numpy as np
import pytest

import bragg


def test_simulate_keys_types_and_determinism(sim3d):
    d = sim3d
    assert set(d) == {
        "intensity", "truth", "noiseless", "mask", "object", "phase",
        "oversampling", "photons", "gap_pos", "gap_width",
    }
    assert d["intensity"].shape == (1, 32, 32, 32) and d["intensity"].dtype == np.float32
    assert d["mask"].dtype == np.uint8 and d["object"].dtype == np.complex64
    assert d["oversampling"].shape == (1, 3) and d["gap_width"].dtype == np.int32
    m = d["mask"].astype(bool)
    assert m.any() and np.all(d["intensity"][m] == 0)
    assert np.array_equal(d["intensity"][~m], d["truth"][~m])
    again = bragg.simulate(dim=3, size=32, count=1, gap="line:4", seed=3)
    assert np.array_equal(again["truth"], d["truth"])
    other = bragg.simulate(dim=3, size=32, count=1, gap="line:4", seed=4)
    assert not np.array_equal(other["truth"], d["truth"])


def test_simulate_2d_batch():
    d = bragg.simulate(dim=2, size=32, count=3, gap="cross:3", seed=1)
    assert d["intensity"].shape == (3, 32, 32)
    assert d["oversampling"].shape == (3, 2)


@pytest.mark.parametrize("method", ["linear", "log-laplace", "model"])
def test_inpaint_keeps_measured_voxels_and_fills_the_gap(sim3d, method):
    i, m = sim3d["intensity"], sim3d["mask"]
    f = bragg.inpaint(i, m, method=method, physics="off")
    assert f.shape == i.shape and f.dtype == np.float32
    assert np.array_equal(f[m == 0], i[m == 0])
    gap = m == 1
    assert f[gap].sum() > 0, "nothing filled"
    # The fill follows the true counts far better than leaving zeros.
    truth = sim3d["truth"][gap]
    err = np.abs(np.log1p(f[gap]) - np.log1p(truth)).mean()
    assert err < 0.5 * np.log1p(truth).mean(), err


def test_inpaint_single_volume_and_nan_in_gap(sim3d):
    i = sim3d["intensity"][0].astype(np.float64)
    m = sim3d["mask"][0]
    i[m == 1] = np.nan  # detectors mark gaps this way; those values are ignored
    f = bragg.inpaint(i, m, method="linear")
    assert f.shape == (32, 32, 32) and np.isfinite(f).all()


def test_phase_reconstructs_the_object(sim3d):
    obj = bragg.phase(sim3d["truth"], algorithm="HIO**200,ER**100", seed=0)
    assert np.iscomplexobj(obj) and obj.shape == (32, 32, 32)
    c = bragg.compare(obj, sim3d["object"])
    rng = np.random.default_rng(0)
    noise = (rng.random(obj.shape) * np.exp(6j * rng.random(obj.shape))).astype(np.complex64)
    base = bragg.compare(noise, sim3d["object"])
    assert base["complex_error"] > 0.99 and base["support_jaccard"] < 0.05, base
    assert c["complex_error"] < 0.9 and c["support_jaccard"] > 0.3, c


def test_phase_2d_batch_of_one():
    d = bragg.simulate(dim=2, size=64, count=1, gap="none", seed=0)
    obj = bragg.phase(d["truth"], algorithm="HIO**300,ER**100")
    assert obj.shape == (64, 64)
    c = bragg.compare(obj, d["object"])
    assert c["modulus_error"] < 0.85 and c["support_jaccard"] > 0.3, c


def test_phase_runs_keeps_the_best_first(sim3d):
    r = bragg.phase_runs(sim3d["intensity"], sim3d["mask"], algorithm="HIO**30,ER**10",
                         runs=3, keep=2, seed=1)
    assert r["object"].shape == (2, 32, 32, 32) and r["support"].dtype == np.uint8
    assert len(r["llk"]) == 2 and r["free_llk"][0] <= r["free_llk"][1]
    assert set(r["run"]) <= {0, 1, 2}
    assert r["support_size"][0] == int(r["support"][0].sum())


def test_phase_start_from_the_true_phase_beats_random(sim3d):
    i = sim3d["truth"][0]
    kw = dict(algorithm="ER**20", seed=0, free_fraction=0.0)
    good = bragg.phase(i, start=sim3d["phase"][0], **kw)
    rand = bragg.phase(i, **kw)
    e_good = bragg.compare(good, sim3d["object"])["complex_error"]
    e_rand = bragg.compare(rand, sim3d["object"])["complex_error"]
    assert e_good < e_rand, (e_good, e_rand)


def test_phase_starts_from_the_shipped_network(sim3d):
    i = sim3d["truth"][0]
    d = bragg.phase_runs(i, algorithm="RAAR**20,ER**10", runs=2, keep=2, start="net")
    assert d["object"].shape == (2, 32, 32, 32) and np.isfinite(d["llk"]).all()
    with pytest.raises(ValueError, match="start"):
        bragg.phase(i, start="bogus")


def test_engine_errors_become_python_exceptions(sim3d, tmp_path):
    with pytest.raises(ValueError, match="unknown method `nope`"):
        bragg.inpaint(sim3d["intensity"], sim3d["mask"], method="nope")
    with pytest.raises(ValueError, match="mask"):
        bragg.inpaint(sim3d["intensity"], sim3d["mask"] * 3)
    neg = sim3d["truth"].copy()
    neg[0, 0, 0, 0] = -1
    with pytest.raises(ValueError, match="negative"):
        bragg.inpaint(neg, sim3d["mask"], method="linear")
    with pytest.raises(ValueError, match="algorithm|chain|unknown"):
        bragg.phase(sim3d["truth"], algorithm="FOO**3")
    with pytest.raises(RuntimeError, match="unknown device `gpu7`"):
        bragg.phase(sim3d["truth"], algorithm="ER**2", device="gpu7")
    with pytest.raises(OSError, match="No such file"):
        bragg.read(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="count"):
        bragg.simulate(dim=2, size=32, count=0, gap="none", seed=0)


def test_gil_is_released_during_phasing(sim3d):
    ticks = []
    done = threading.Event()

    def work():
        bragg.phase(sim3d["truth"], algorithm="HIO**300", seed=0)
        done.set()

    t = threading.Thread(target=work)
    t0 = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    elapsed = time.perf_counter() - t0
    # With the GIL held the main thread could not tick while the engine works.
    assert elapsed > 0.05 and len(ticks) > 10, (elapsed, len(ticks))


def test_tensor_round_trip(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    t = bragg.Tensor(a, device="cpu")
    assert t.shape == [2, 3, 4] and "cpu" in t.device
    assert np.array_equal(t.numpy(), a)
    assert np.array_equal(t.to("cpu").numpy(), a)


def test_train_small_unet_and_inpaint_with_it(tmp_path):
    d = bragg.simulate(dim=2, size=32, count=8, gap="line:3", seed=5)
    data = tmp_path / "train.npz"
    bragg.write(data, {k: d[k] for k in ("intensity", "truth", "mask")})
    out = tmp_path / "m.safetensors"
    model = bragg.train(data, out, model="unet", epochs=2, batch=4, width=4, depth=2, seed=0)
    assert out.exists() and model.config["kind"] == "unet" and model.config["width"] == 4
    f = bragg.inpaint(d["intensity"][:2], d["mask"][:2], method="model", model=out, batch=True)
    m = d["mask"][:2]
    assert np.array_equal(f[m == 0], d["intensity"][:2][m == 0])
    y = model(np.zeros((1, 1, 32, 32), np.float32))
    assert y.shape == (1, 1, 32, 32) and np.all((y > 0) & (y < 1))


def test_model_state_dict_round_trip(tmp_path, rng):
    a = bragg.Model("unet", dims=2, width=4, depth=2, seed=0)
    b = bragg.Model("unet", dims=2, width=4, depth=2, seed=1)
    x = rng.random((1, 1, 16, 16)).astype(np.float32)
    assert not np.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a(x), b(x))
    sd = a.state_dict()
    sd["extra"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="unexpected keys"):
        b.load_state_dict(sd)
    del sd["extra"]
    sd["out.bias"] = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="out.bias"):
        b.load_state_dict(sd)
    p = tmp_path / "a.safetensors"
    a.save(p)
    c = bragg.Model.load(p)
    assert np.array_equal(c(x), a(x))
