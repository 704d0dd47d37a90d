"""CXI / HDF5 files: what bragg writes h5py reads, and what h5py (PyNX-style) writes bragg reads."""

import numpy as np
import pytest

import bragg
from conftest import require


def test_cxi_written_by_bragg_reads_in_h5py(sim3d, tmp_path):
    h5py = require("h5py")
    p = tmp_path / "s.cxi"
    bragg.write(p, {"intensity": sim3d["intensity"][0], "mask": sim3d["mask"][0],
                    "object": sim3d["object"][0]})
    with h5py.File(p, "r") as f:
        data = f["entry_1/instrument_1/detector_1/data"][()]
        assert np.array_equal(data, sim3d["intensity"][0])
        assert f.get("entry_1/data_1/data", getlink=True).path == \
            "/entry_1/instrument_1/detector_1/data"
        assert np.array_equal(f["entry_1/data_1/data"][()], data)
        assert np.array_equal(f["entry_1/instrument_1/detector_1/mask"][()], sim3d["mask"][0])
        o = f["entry_1/bragg_1/object"][()]
        assert o.dtype == np.complex64 and np.array_equal(o, sim3d["object"][0])
        assert f["entry_1"].attrs["NX_class"] in (b"NXentry", "NXentry")
        assert int(f["cxi_version"][()]) == 150
    assert np.array_equal(bragg.read(p, "object"), sim3d["object"][0])


def pynx_like(path, h5py, data, mask):
    """A CXI file as PyNX / h5py users write it: chunked gzip + shuffle data, a soft link,
    a bool-typed mask with bit flags, float64 values."""
    with h5py.File(path, "w") as f:
        f.create_dataset("cxi_version", data=150)
        e = f.create_group("entry_1")
        e.attrs["NX_class"] = "NXentry"
        det = e.create_group("instrument_1/detector_1")
        det.create_dataset("data", data=data, chunks=(8, 16, 16), compression="gzip",
                           compression_opts=4, shuffle=True)
        det.create_dataset("mask", data=mask, compression="gzip")
        e["data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")


def test_pynx_style_cxi_reads_and_phases(sim3d, tmp_path):
    h5py = require("h5py")
    p = tmp_path / "pynx.cxi"
    mask = sim3d["mask"][0].astype(np.int32) * 4  # a bit flag, not 1
    pynx_like(p, h5py, sim3d["intensity"][0].astype(np.float64), mask)
    i = bragg.read(p)
    assert i.dtype == np.float64 and np.array_equal(i, sim3d["intensity"][0])
    m = bragg.read(p, "mask")
    assert m.dtype == np.uint8 and np.array_equal(m, sim3d["mask"][0])
    obj = bragg.phase(i, m, algorithm="HIO**20,ER**10")
    assert obj.shape == (32, 32, 32)


def test_plain_hdf5_with_a_dataset_path(tmp_path, rng):
    h5py = require("h5py")
    p = tmp_path / "scan.h5"
    a = rng.poisson(5, (6, 8, 10)).astype(np.uint16)
    with h5py.File(p, "w") as f:
        f.create_dataset("scan_12/measurement/frames", data=a, compression="gzip", chunks=True)
        f.create_dataset("scan_12/measurement/mask", data=np.zeros_like(a, dtype=bool))
        f.create_dataset("big_endian", data=a.astype(">f4"))
        f.create_dataset("c128", data=(a + 1j * a).astype(np.complex128))
    got = bragg.read(f"{p}:/scan_12/measurement/frames")
    assert got.dtype == np.uint16 and np.array_equal(got, a)
    assert bragg.read(f"{p}:/scan_12/measurement/frames", "mask").sum() == 0
    assert np.array_equal(bragg.read(p, "/big_endian"), a.astype(np.float32))
    c = bragg.read(p, "/c128")
    assert c.dtype == np.complex128 and np.array_equal(c.imag, a.astype(np.float64))
    with pytest.raises(ValueError, match="no dataset `/nope`.*scan_12/measurement/frames"):
        bragg.read(f"{p}:/nope")
    with pytest.raises(ValueError, match="no `intensity` array"):
        bragg.read(p)


def test_not_hdf5_is_a_clear_error(tmp_path):
    p = tmp_path / "fake.cxi"
    p.write_bytes(b"this is not HDF5" * 10)
    with pytest.raises(ValueError, match="fake.cxi.*not a readable HDF5 file"):
        bragg.read(p)
    with pytest.raises(ValueError, match="directory"):
        bragg.read(tmp_path.as_posix() + "/")


def test_npz_and_cxi_round_trip_the_same_arrays(sim3d, tmp_path):
    arrays = {"intensity": sim3d["intensity"], "mask": sim3d["mask"], "phase": sim3d["phase"]}
    for name in ("x.npz", "x.cxi"):
        bragg.write(tmp_path / name, arrays)
        for k, v in arrays.items():
            assert np.array_equal(bragg.read(tmp_path / name, k), v), (name, k)
