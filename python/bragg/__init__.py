"""bragg: gap inpainting and phase retrieval for Bragg Coherent Diffraction Imaging.

A Python face of the Rust engine ``bragg`` (the same code as the ``bragg`` command line). Every
function takes and returns numpy arrays; the work runs in Rust with the GIL released, so other
Python threads keep running. Errors from the engine are raised as ``ValueError`` (bad input),
``OSError`` (files) or ``RuntimeError`` (devices and the rest) with the engine's message.

``device=`` selects where the work runs: ``"cpu"``, ``"opencl"`` or ``"opencl:N"``; ``None``
means ``BRAGG_DEVICE`` when set, else the first OpenCL GPU, else the CPU.

Quick start::

    import bragg
    d = bragg.simulate(dim=3, size=32, count=1, gap="line:4", seed=3)
    filled = bragg.inpaint(d["intensity"], d["mask"], method="log-linear")
    obj = bragg.phase(filled[0], algorithm="HIO**200,ER**100")
    print(bragg.compare(obj, d["object"][0]))
"""

from __future__ import annotations

import json
import os
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from . import _bragg
from ._bragg import Tensor

__all__ = [
    "simulate",
    "inpaint",
    "phase",
    "phase_runs",
    "compare",
    "train",
    "read",
    "write",
    "default_device",
    "Tensor",
    "Model",
    "load_safetensors",
    "save_safetensors",
]

__version__: str = _bragg.__version__

PathLike = Union[str, "os.PathLike[str]"]


def _f32(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if np.iscomplexobj(a):
        raise ValueError(f"{name}: complex array where a real one is expected")
    return np.ascontiguousarray(a, dtype=np.float32)


def _c64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a), dtype=np.complex64)


def simulate(
    dim: Optional[int] = None,
    size: Optional[int] = None,
    count: Optional[int] = None,
    gap: Optional[str] = None,
    seed: Optional[int] = None,
    photons: Optional[Tuple[float, float]] = None,
    oversampling: Optional[Tuple[float, float]] = None,
    recipe: Optional[PathLike] = None,
) -> Dict[str, np.ndarray]:
    """Simulate BCDI diffraction patterns (what ``bragg simulate`` writes to ``.npz``).

    Args:
        dim: 2 or 3 dimensions.
        size: array side (every axis).
        count: number of patterns.
        gap: detector gaps: ``"none"``, ``"line:W"``, ``"cross:W"``, ``"maxipix"``, ``"eiger2"``.
        seed: base seed (pattern ``i`` uses stream ``i``; the same seed gives the same data).
        photons: (min, max) of the peak photon count, drawn log-uniformly.
        oversampling: (min, max) oversampling ratio per axis.
        recipe: a TOML recipe (``datasets/*.toml``); the arguments given override it.

    Returns:
        The ``.npz`` keys, batch first: ``intensity`` (noisy, gaps 0), ``truth`` (noisy, no
        gaps), ``noiseless``, ``mask`` (uint8, 1 = gap), ``object`` (complex64 real-space
        object), ``phase`` (reciprocal-space phase), and per pattern ``oversampling``,
        ``photons``, ``gap_pos``, ``gap_width``. Float arrays are float32.
    """
    pairs = _bragg.simulate(
        dim,
        size,
        count,
        gap,
        seed,
        None if photons is None else (float(photons[0]), float(photons[1])),
        None if oversampling is None else (float(oversampling[0]), float(oversampling[1])),
        None if recipe is None else os.fspath(recipe),
    )
    return dict(pairs)


def inpaint(
    intensity: np.ndarray,
    mask: np.ndarray,
    method: str = "model",
    model: Optional[PathLike] = None,
    finetune: float = 0.0,
    *,
    batch: Optional[bool] = None,
    stride: int = 8,
    physics: str = "auto",
    physics_chain: str = "HIO**400,RAAR**400,ER**200",
    device: Optional[str] = None,
) -> np.ndarray:
    """Fill the detector gaps of a pattern or a batch; measured voxels come back unchanged.

    Args:
        intensity: one 2-D / 3-D pattern, or a batch ``[K, ...]`` (counts, any real dtype).
        mask: same shape, non-zero = gap (the values of ``intensity`` there are ignored).
        method: ``"model"`` (the shipped 3-D gap model, or ``model``) or a classical fill:
            ``"linear"``, ``"log-linear"``, ``"laplace"``, ``"log-laplace"``, ``"biharmonic"``,
            ``"log-biharmonic"``, ``"nearest"``.
        model: a model file of ``bragg train`` / ``bragg train-gap3d`` / ``Model.save``.
        finetune: seconds of fine-tuning the gap model on the pattern's own measured voxels.
        batch: whether the first axis is a batch. Default: 4-D arrays are batches of volumes,
            2-D and 3-D arrays one pattern (pass ``batch=True`` for a stack of 2-D patterns).
        stride: in-plane stride of the sliding windows of 3-D models.
        physics: physics refinement of the fill, ``"auto"``, ``"on"`` or ``"off"``.
        physics_chain: phasing chain of the refinement.
        device: see the module doc.

    Returns:
        float32 array of the input's shape.
    """
    i = _f32(intensity, "intensity")
    m = _f32(mask, "mask")
    if i.shape != m.shape:
        raise ValueError(f"inpaint: intensity {i.shape} and mask {m.shape} differ")
    single = (i.ndim in (2, 3)) if batch is None else not batch
    if single:
        i, m = i[None], m[None]
    out = _bragg.inpaint(
        np.ascontiguousarray(i),
        np.ascontiguousarray(m),
        method,
        None if model is None else os.fspath(model),
        float(finetune),
        int(stride),
        physics,
        physics_chain,
        device,
    )
    return out[0] if single else out


def phase_runs(
    intensity: np.ndarray,
    mask: Optional[np.ndarray] = None,
    algorithm: str = "RAAR**500,HIO**300,ER**200",
    runs: int = 1,
    keep: int = 1,
    seed: int = 0,
    start: Union[None, str, np.ndarray] = None,
    *,
    beta: float = 0.9,
    support_threshold: float = 0.25,
    support_method: str = "rms",
    support_period: int = 50,
    autocorrelation_threshold: float = 0.0,
    confidence: float = 0.0,
    free_fraction: float = 0.05,
    device: Optional[str] = None,
    start_model: Optional[str] = None,
) -> Dict[str, np.ndarray]:
    """Iterative phase retrieval keeping several runs (see :func:`phase` for the arguments).

    Returns:
        ``object`` (complex64 ``[keep, ...]``, best free LLK first), ``support`` (uint8, same
        shape), ``llk``, ``free_llk``, ``run`` (index among all runs) and ``support_size``.
    """
    i = _f32(intensity, "intensity")
    while i.ndim > 2 and i.shape[0] == 1:  # a batch of one pattern
        i = i[0]
    m = None
    if mask is not None:
        m = _f32(mask, "mask")
        if m.size != i.size:
            raise ValueError(f"phase: mask {m.shape} does not match the intensity {i.shape}")
        m = m.reshape(i.shape)
    start_phase = start_object = start_net = None
    if start is None or (isinstance(start, str) and start == "random"):
        pass
    elif isinstance(start, str) and start == "net":
        start_net = "" if start_model is None else str(start_model)
    elif isinstance(start, str):
        raise ValueError(f"phase: start `{start}` (expected 'random', 'net' or an array)")
    elif np.iscomplexobj(start):
        start_object = _c64(start)
    else:
        start_phase = _f32(start, "start")
    d = _bragg.phase(
        i,
        m,
        algorithm,
        int(runs),
        int(keep),
        int(seed),
        start_phase,
        start_object,
        float(beta),
        float(support_threshold),
        support_method,
        int(support_period),
        float(autocorrelation_threshold),
        float(confidence),
        float(free_fraction),
        device,
        start_net,
    )
    for k in ("llk", "free_llk"):
        d[k] = np.asarray(d[k], dtype=np.float64)
    for k in ("run", "support_size"):
        d[k] = np.asarray(d[k], dtype=np.int64)
    return d


def phase(
    intensity: np.ndarray,
    mask: Optional[np.ndarray] = None,
    algorithm: str = "RAAR**500,HIO**300,ER**200",
    runs: int = 1,
    keep: int = 1,
    seed: int = 0,
    start: Union[None, str, np.ndarray] = None,
    **options: object,
) -> np.ndarray:
    """Iterative phase retrieval (ER / HIO / RAAR, shrink-wrap, free LLK) of one pattern.

    Args:
        intensity: one 2-D or 3-D pattern with the Bragg peak at the array centre (leading
            axes of length 1, such as the batch axis of :func:`simulate`, are dropped).
        mask: non-zero = gap / bad pixel, left free (its amplitude is not imposed).
        algorithm: chain in PyNX notation, e.g. ``"RAAR**600,ER**200"``, ``"(Sup*HIO**50)**4"``.
        runs: number of runs from random starts; the best by free LLK is returned.
        keep: runs kept (only meaningful with :func:`phase_runs`).
        seed: seed of every random choice.
        start: ``None`` / ``"random"`` (random phases), ``"net"`` (the phase predicted by the
            phasing network on the pattern's central grid; the shipped network unless
            ``start_model`` names a file), a real array (a reciprocal-space phase of the
            intensity's shape) or a complex array (a real-space object to start from).
        **options: ``beta``, ``support_threshold``, ``support_method`` (``"rms"``/``"max"``),
            ``support_period``, ``autocorrelation_threshold``, ``confidence``,
            ``free_fraction``, ``device``, ``start_model``.

    Returns:
        The complex64 object of the best run (the intensity's shape). Use :func:`phase_runs`
        for the supports, the LLKs and several kept runs.
    """
    d = phase_runs(intensity, mask, algorithm, runs, keep, seed, start, **options)  # type: ignore[arg-type]
    return d["object"][0]


def compare(result: np.ndarray, truth: np.ndarray) -> Dict[str, object]:
    """Errors of a reconstruction against the true object after removing the ambiguities.

    Translation, global phase, phase ramp and twin image are removed first.

    Returns:
        ``complex_error``, ``modulus_error``, ``phase_rms_error`` (rad), ``support_jaccard``,
        ``twin`` (whether the twin matched better), ``shift`` and the other fields of
        ``bragg compare --json``. A leading axis on one side (the runs of
        :func:`phase_runs`, a batch of one) is reduced to its first item.
    """
    r = _c64(result)
    t = _c64(truth)
    # A stack of runs ([keep, ...], best first) or a batch of one: the first item.
    for _ in range(2):
        if r.ndim > t.ndim or (r.ndim == 4 and r.shape[0] == 1):
            r = np.ascontiguousarray(r[0])
        if t.ndim > r.ndim or (t.ndim == 4 and t.shape[0] == 1):
            t = np.ascontiguousarray(t[0])
    return json.loads(_bragg.compare(r, t))


def train(
    data: PathLike,
    out: PathLike,
    model: str = "unet",
    val: Optional[PathLike] = None,
    *,
    epochs: Optional[int] = None,
    batch: Optional[int] = None,
    lr: Optional[float] = None,
    loss: Optional[str] = None,
    seed: Optional[int] = None,
    width: Optional[int] = None,
    depth: Optional[int] = None,
    max_steps: Optional[int] = None,
    patches: Optional[int] = None,
    patch_gap: int = 6,
    resume: bool = False,
    quiet: bool = True,
    device: Optional[str] = None,
) -> "Model":
    """Train a gap-inpainting model on ``.npz`` datasets (``bragg train``) and return it.

    Args:
        data: training set (``intensity``, ``truth``, ``mask``), e.g. written by
            ``bragg simulate`` or :func:`write` of a :func:`simulate` result.
        out: model file (safetensors); the checkpoint and the CSV log go beside it.
        model: ``unet``, ``dilated-unet``, ``msd``, ``patch-unet3d``.
        val: validation set.
        epochs, batch, lr, loss, seed, width, depth, max_steps, patches, patch_gap, resume:
            as the flags of ``bragg train``.
        quiet: no progress bar.
        device: see the module doc.
    """
    _bragg.train(
        os.fspath(data),
        os.fspath(out),
        model,
        None if val is None else os.fspath(val),
        epochs,
        batch,
        lr,
        loss,
        seed,
        width,
        depth,
        max_steps,
        patches,
        int(patch_gap),
        bool(resume),
        bool(quiet),
        device,
    )
    return Model.load(out, device=device)


def read(path: PathLike, key: str = "intensity") -> np.ndarray:
    """Read array ``key`` of an ``.npz``, ``.npy`` or CXI / HDF5 file.

    CXI keys: ``intensity`` is the detector data (``/entry_1/instrument_1/detector_1/data`` or
    ``/entry_1/data_1/data``), ``mask`` its mask (0/1), ``object`` / ``support`` the phasing
    runs (``/entry_1/image_N/data`` / ``mask`` stacked), other keys ``/entry_1/bragg_1/KEY``;
    ``"FILE.h5:/path/to/data"`` names a dataset of a plain HDF5 file.
    """
    return _bragg.read_array(os.fspath(path), key)


def write(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays by key to ``.npz`` or, for ``.cxi`` / ``.h5``, in CXI layout (atomically).

    Real arrays are stored as float32 (``uint8`` and ``bool`` as uint8), complex ones as
    complex64; in CXI, ``intensity`` becomes the detector data, ``mask`` the detector mask.
    """
    real, bytes_, cplx = {}, {}, {}
    for k, a in arrays.items():
        a = np.asarray(a)
        if np.iscomplexobj(a):
            cplx[k] = _c64(a)
        elif a.dtype in (np.uint8, np.bool_):
            bytes_[k] = np.ascontiguousarray(a, dtype=np.uint8)
        else:
            real[k] = _f32(a, k)
    _bragg.write_arrays(os.fspath(path), real, bytes_, cplx)


def default_device() -> str:
    """The device used when ``device=None``: ``BRAGG_DEVICE``, else the first OpenCL GPU, else
    ``"cpu"``."""
    return _bragg.default_device()


class Model:
    """A network of the engine with its weights.

    ``Model("unet", dims=2, width=8, depth=2)`` builds one (seeded weights);
    ``Model.load(path)`` reads a model file. Parameter names are dotted paths
    (``enc0.conv.weight``), convolution weights ``[out, in, *kernel]`` as in PyTorch, so a
    PyTorch network whose ``state_dict`` uses the same names loads with
    :meth:`load_state_dict` or :func:`load_safetensors` (``rename`` maps other names).
    """

    def __init__(
        self,
        kind: str = "unet",
        dims: Optional[int] = None,
        width: Optional[int] = None,
        depth: Optional[int] = None,
        *,
        max_dilation: Optional[int] = None,
        slope: Optional[float] = None,
        seed: int = 0,
        device: Optional[str] = None,
        _native: Optional[_bragg.Model] = None,
    ) -> None:
        self._m = _native if _native is not None else _bragg.Model(
            kind, dims, width, depth, max_dilation, slope, int(seed), device
        )

    @classmethod
    def load(cls, path: PathLike, device: Optional[str] = None) -> "Model":
        """Load a model file (``bragg train``, ``bragg train-gap3d``, :meth:`save`)."""
        return cls(_native=_bragg.Model.load(os.fspath(path), device))

    @property
    def config(self) -> Dict[str, object]:
        """The architecture (``kind``, ``dims``, ``width``, ``depth``, ...)."""
        return json.loads(self._m.config_json)

    @property
    def num_parameters(self) -> int:
        """Number of trainable scalars."""
        return self._m.num_parameters

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the network on ``[N, 1, ...]`` (float32), without gradients."""
        return self._m.forward(_f32(x, "x"))

    forward = __call__

    def parameter_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Parameter names and shapes."""
        return {n: tuple(s) for n, s in self._m.parameter_shapes()}

    def state_dict(self) -> Dict[str, np.ndarray]:
        """The parameters as float32 arrays by name (copies)."""
        return dict(self._m.state_dict())

    def load_state_dict(
        self,
        state: Mapping[str, object],
        strict: bool = True,
        rename: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Copy a state dict into the parameters (numpy arrays, or torch tensors).

        Every parameter must be present with its shape; with ``strict`` no other key may be.
        ``rename`` maps the state dict's names to the model's.
        """
        arrays: Dict[str, np.ndarray] = {}
        for k, v in state.items():
            name = rename.get(k, k) if rename else k
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()  # a torch tensor
            arrays[name] = _f32(np.asarray(v), name)
        self._m.load_state_dict(arrays, bool(strict))

    def save(self, path: PathLike) -> None:
        """Save weights and architecture (safetensors with ``bragg.model`` metadata)."""
        self._m.save(os.fspath(path))


def load_safetensors(
    model: Model,
    path: PathLike,
    strict: bool = True,
    rename: Optional[Mapping[str, str]] = None,
) -> None:
    """Load a safetensors file (e.g. ``safetensors.torch.save_file(net.state_dict(), path)``)
    into ``model``; see :meth:`Model.load_state_dict`."""
    from safetensors.numpy import load_file

    model.load_state_dict(load_file(os.fspath(path)), strict=strict, rename=rename)


def save_safetensors(model: Model, path: PathLike) -> None:
    """Save ``model``'s state dict as plain safetensors (``torch.nn.Module.load_state_dict``
    takes ``safetensors.torch.load_file(path)`` when the names match)."""
    from safetensors.numpy import save_file

    save_file(model.state_dict(), os.fspath(path))
