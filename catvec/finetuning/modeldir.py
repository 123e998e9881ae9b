"""The model directory written by `catvec finetune` and read by `catvec predict`.

    model.safetensors     the model's state (best epoch), tensors only
    model.json            model spec, column roles, target info, scaling statistics, config
    vocabs.json           {column: [keys in row order]}, row 0 = "<unk>"; a column with hash
                          buckets: {"keys": [own keys], "hash_buckets": N}
    metrics.json          per-epoch history, best epoch, main metric (+ "scratch" with --compare)
    alignment.json        {column: AlignmentReport} for the pretrained columns
    report.md             a short human summary
    embeddings/<column>/  the fine-tuned rows as a weight directory (catvec.base.vectors format)
    initial.safetensors   {column: vectors it started from}, finetune mode or a warm start only:
                          what a later --warm-start needs to carry each row's fine-tuned offset
    manifest.json, COMPLETE   checksums of the files above; COMPLETE is written last

Loading reads safetensors and JSON only, after checking every checksum.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catvec.base.errors import CatvecError
from catvec.finetuning.labeled import Roles, Scaler
from catvec.finetuning.vocab import Vocab

MODEL_FORMAT = "catvec-model"
MODEL_FORMAT_VERSION = 1
INITIAL_FILE = "initial.safetensors"
FILES = ["model.safetensors", "model.json", "vocabs.json", "metrics.json", "alignment.json", "report.md"]


@dataclass
class LoadedModel:
    model: object                  # TabularEmbeddingModel, eval mode
    roles: Roles
    vocabs: dict[str, Vocab]
    scaler: Scaler
    y_mean: float
    y_std: float
    path: Path


def embedding_dir_name(column: str) -> str:
    """A directory name for a column: letters, digits, '-', '_', '.'; others escaped."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else f"%{ord(ch):02x}" for ch in column)
    return safe.lstrip(".") or "column"


def write_model_dir(staging: Path, model, roles: Roles, vocabs: dict, scaler: Scaler, y_mean: float,
                    y_std: float, metrics: dict, alignment: dict, report: str, manifest: dict,
                    extra_files: tuple[str, ...] = (), initial: dict | None = None) -> Path:
    """Write every file of a model directory into `staging`, the COMPLETE marker last.
    initial: {column: (num, dim) rows it started from}, written to initial.safetensors."""
    from safetensors.torch import save_file

    from catvec.base.store import finish_manifest, write_json, writing

    from catvec.base.vectors import Vectors, save_vectors

    staging = Path(staging)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    with writing(staging / "model.safetensors"):
        save_file(state, str(staging / "model.safetensors"), metadata={"format": MODEL_FORMAT})
    write_json(staging / "model.json", {
        "spec": model.spec, "roles": roles.__dict__, "scaler": scaler.__dict__,
        "y_mean": y_mean, "y_std": y_std})
    write_json(staging / "vocabs.json", {col: vocab.to_json() for col, vocab in vocabs.items()})
    write_json(staging / "metrics.json", metrics)
    write_json(staging / "alignment.json", alignment)
    with writing(staging / "report.md"):
        (staging / "report.md").write_text(report, encoding="utf-8")
    if initial:
        from safetensors.numpy import save_file as save_arrays
        with writing(staging / INITIAL_FILE):
            save_arrays(initial, str(staging / INITIAL_FILE), metadata={"format": MODEL_FORMAT})
        extra_files = (*extra_files, INITIAL_FILE)
    exported = {}
    for col, layer in model.embedding_layers().items():
        weight = layer.full_weight().numpy()                         # (len(vocab), dim)
        keys = vocabs[col].index_to_key[1:]
        sub = staging / "embeddings" / embedding_dir_name(col)
        save_vectors(Vectors(keys=keys, matrix=weight[1:]), sub,
                     {"kind": "finetuned", "column": col, "mode": layer.mode, "source_model": manifest.get("version")})
        exported[col] = f"embeddings/{sub.name}"
    finish_manifest(staging, {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, **manifest,
                              "embeddings": exported}, [*FILES, *extra_files])
    return staging


def load_model(path) -> LoadedModel:
    """A model directory (or OUT / OUT/latest) -> LoadedModel. Checksums are verified.

    Example: loaded = load_model("models/latest"); loaded.model(x_cat, x_cont)
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from catvec.finetuning.model import TabularEmbeddingModel
    from catvec.base.store import read_manifest, resolve_version_dir

    directory = resolve_version_dir(path)
    manifest = read_manifest(directory)
    if manifest.get("format") != MODEL_FORMAT:
        raise CatvecError(f"{directory}: not a catvec model directory (format {manifest.get('format')!r}); "
                          f"pass the --out of `catvec finetune`")
    if int(manifest.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise CatvecError(f"{directory}: model format version {manifest['format_version']} is newer than this "
                          f"catvec reads; upgrade catvec")
    try:
        info = json.loads((directory / "model.json").read_text(encoding="utf-8"))
        vocab_data = json.loads((directory / "vocabs.json").read_text(encoding="utf-8"))
        state = load_file(str(directory / "model.safetensors"))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CatvecError(f"{directory}: cannot read the model ({exc})") from None
    model = TabularEmbeddingModel.from_state(info["spec"], state)
    model.eval()
    return LoadedModel(model=model, roles=Roles(**info["roles"]),
                       vocabs={col: Vocab.from_json(keys) for col, keys in vocab_data.items()},
                       scaler=Scaler(**info["scaler"]), y_mean=info["y_mean"], y_std=info["y_std"],
                       path=directory)


def output_columns(loaded: LoadedModel, output: np.ndarray) -> dict[str, np.ndarray | list]:
    """Raw model output (n, out_dim) -> prediction columns in the target's terms."""
    task, classes = loaded.roles.task, loaded.roles.classes
    if task == "regression":
        return {"prediction": output[:, 0].astype(np.float64) * loaded.y_std + loaded.y_mean}
    if task == "binary":
        p = 1.0 / (1.0 + np.exp(-output[:, 0].astype(np.float64)))
        return {"prediction": [classes[int(v)] for v in (p >= 0.5)], f"p_{classes[1]}": p}
    logits = output.astype(np.float64)
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)                          # (n, n_classes)
    cols = {"prediction": [classes[i] for i in prob.argmax(axis=1)]}
    cols.update({f"p_{c}": prob[:, k] for k, c in enumerate(classes)})
    return cols
