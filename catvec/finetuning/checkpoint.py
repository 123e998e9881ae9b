"""Training checkpoints without pickle: tensors in safetensors, the rest in JSON.

A checkpoint is any nest of dicts, lists, numbers, strings and torch tensors (a model and
optimizer state_dict, the history, the best state). Tensors go to
`checkpoint-<tag>.safetensors`; the structure, with references to them, to
`checkpoint.json`, which is replaced last and names the tensor file and its sha256. A
crash at any moment leaves the previous checkpoint readable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from catvec.base.errors import CatvecError
from catvec.base.fingerprint import file_sha256
from catvec.base.writes import write_json, writing

INDEX = "checkpoint.json"


def save_checkpoint(directory, state, tag: str) -> Path:
    """Write `state` as checkpoint `tag` in `directory`; older tensor files are removed."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict = {}
    structure = _encode(state, tensors)
    name = f"checkpoint-{tag}.safetensors"
    tmp = directory / f".{name}.tmp{os.getpid()}"
    with writing(directory / name, partial=tmp):
        save_file(tensors, str(tmp))
        os.replace(tmp, directory / name)
    write_json(directory / INDEX, {"tensors": name, "sha256": file_sha256(directory / name), "state": structure})
    for old in directory.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return directory / INDEX


def load_checkpoint(directory):
    """The state saved by `save_checkpoint`, or None when there is none."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    index_path = directory / INDEX
    if not index_path.is_file():
        return None
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        tensor_path = directory / Path(index["tensors"]).name
        if file_sha256(tensor_path) != index["sha256"]:
            raise ValueError("tensor file does not match its checksum")
        tensors = load_file(str(tensor_path))
        return _decode(index["state"], tensors)
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise CatvecError(f"checkpoint in {directory} cannot be read ({exc}); delete it to start over") from None


def _encode(value, tensors: dict):
    import torch

    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"__dict__": {k: _encode(v, tensors) for k, v in value.items()}}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"__list__": [_encode(v, tensors) for v in value], "tuple": isinstance(value, tuple)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _decode(value, tensors: dict):
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__dict__" in value:
            return {k: _decode(v, tensors) for k, v in value["__dict__"].items()}
        if "__items__" in value:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
        if "__list__" in value:
            items = [_decode(v, tensors) for v in value["__list__"]]
            return tuple(items) if value.get("tuple") else items
    return value
