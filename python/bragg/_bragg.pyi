"""Type stubs of the native module ``bragg._bragg`` (PyO3). Use the documented wrappers in
``bragg``; these take float32 / complex64 C-contiguous arrays and positional options."""

from typing import Dict, List, Optional, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

def simulate(
    dim: Optional[int],
    size: Optional[int],
    count: Optional[int],
    gap: Optional[str],
    seed: Optional[int],
    photons: Optional[Tuple[float, float]] = None,
    oversampling: Optional[Tuple[float, float]] = None,
    recipe: Optional[str] = None,
) -> List[Tuple[str, np.ndarray]]: ...
def inpaint(
    intensity: npt.NDArray[np.float32],
    mask: npt.NDArray[np.float32],
    method: str,
    model: Optional[str],
    finetune: float,
    stride: int,
    physics: str,
    physics_chain: str,
    device: Optional[str] = None,
) -> npt.NDArray[np.float32]: ...
def phase(
    intensity: npt.NDArray[np.float32],
    mask: Optional[npt.NDArray[np.float32]],
    algorithm: str,
    runs: int,
    keep: int,
    seed: int,
    start_phase: Optional[npt.NDArray[np.float32]],
    start_object: Optional[npt.NDArray[np.complex64]],
    beta: float,
    support_threshold: float,
    support_method: str,
    support_period: int,
    autocorrelation_threshold: float,
    confidence: float,
    free_fraction: float,
    device: Optional[str] = None,
    start_net: Optional[str] = None,
) -> Dict[str, object]: ...
def compare(
    result: npt.NDArray[np.complex64], truth: npt.NDArray[np.complex64]
) -> str: ...
def train(
    data: str,
    out: str,
    model: str,
    val: Optional[str],
    epochs: Optional[int],
    batch: Optional[int],
    lr: Optional[float],
    loss: Optional[str],
    seed: Optional[int],
    width: Optional[int],
    depth: Optional[int],
    max_steps: Optional[int],
    patches: Optional[int],
    patch_gap: int,
    resume: bool,
    quiet: bool,
    device: Optional[str] = None,
) -> None: ...
def read_array(path: str, key: str) -> np.ndarray: ...
def write_arrays(
    path: str,
    real: Dict[str, npt.NDArray[np.float32]],
    bytes: Dict[str, npt.NDArray[np.uint8]],
    complex: Dict[str, npt.NDArray[np.complex64]],
) -> None: ...
def default_device() -> str: ...

class Tensor:
    """A float32 tensor of the engine, on a device (``Tensor(array, device=None)``)."""

    def __init__(self, array: npt.NDArray[np.float32], device: Optional[str] = None) -> None: ...
    @property
    def shape(self) -> List[int]: ...
    @property
    def device(self) -> str: ...
    def numpy(self) -> npt.NDArray[np.float32]: ...
    def to(self, device: str) -> "Tensor": ...

class Model:
    def __init__(
        self,
        kind: str,
        dims: Optional[int],
        width: Optional[int],
        depth: Optional[int],
        max_dilation: Optional[int],
        slope: Optional[float],
        seed: int,
        device: Optional[str] = None,
    ) -> None: ...
    @staticmethod
    def load(path: str, device: Optional[str] = None) -> "Model": ...
    @property
    def config_json(self) -> str: ...
    @property
    def num_parameters(self) -> int: ...
    def forward(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    def parameter_shapes(self) -> List[Tuple[str, List[int]]]: ...
    def state_dict(self) -> Dict[str, npt.NDArray[np.float32]]: ...
    def load_state_dict(
        self, state: Dict[str, npt.NDArray[np.float32]], strict: bool
    ) -> None: ...
    def save(self, path: str) -> None: ...
