"""Where training runs: `--device auto|cpu|cuda`, resolved here and nowhere else.

`auto` picks CUDA when torch sees a device, else the CPU. Asking for `cuda` on a machine
without one is an error before any work starts. Models are trained on the device and
handed back on the CPU (the best epoch's weights, the model directory, predict).
"""

from __future__ import annotations

from catvec.base.errors import CatvecError
from catvec.finetuning.config import DEVICES


def resolve_device(name: str = "auto"):
    """'auto' | 'cpu' | 'cuda' -> torch.device. Example: resolve_device("auto").type in ("cpu", "cuda")"""
    import torch

    if name not in DEVICES:
        raise CatvecError(f"device must be one of {', '.join(DEVICES)}; got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CatvecError("device cuda: torch sees no CUDA device on this machine (torch.cuda.is_available() is "
                          "False); use --device cpu or --device auto")
    return torch.device(name)


def model_device(model):
    """The device a module's first parameter or buffer lives on (CPU for an empty module)."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
