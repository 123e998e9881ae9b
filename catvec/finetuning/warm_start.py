"""Warm start: a finetune run that continues a previous model (`--warm-start MODEL`).

The new run builds its vocabs by the usual rules from the new table and the new vectors,
then starts every parameter from the previous model where shape and meaning match:

    MLP, batch norm and output layer   copied as they are (same architecture, same classes)
    continuous scaling, target scale   the previous model's, so the copied weights see the
                                       inputs they were trained on
    embedding row of a key the previous model knew:
        with a new vector              previous row + (new vector - the vector that row
                                       started from): the previous model's fine-tuned
                                       offset carried over to the new vector. Frozen and
                                       partial rows never moved, so they become the new
                                       vector; a finetune-mode or warm-started model
                                       stores the vectors it started from
                                       (initial.safetensors) for this; an older one
                                       without that file starts from the new vector
                                       (offset dropped, recorded as such)
        without a new vector           the previous row (<unk>, OOV rows, scratch columns)
    keys only the previous model knew  dropped
    new keys                           the new vector, else the OOV init (as in any run)

The vectors are expected in the previous version's coordinates (versions of one OUT are
aligned to their parent); unaligned vectors give a model whose rows no longer match its
head. With `epochs 0` nothing trains: the model is the previous one with the new vectors
swapped in, scored on the new table's validation (and test) rows.

Settings that fix what the weights mean come from the previous model (`INHERITED`), and so
do the roles when not given; a given flag or a table that contradicts them is refused in
one line, before any training and with `latest` untouched.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catvec.finetuning.config import FinetuneConfig
from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

# settings that decide what the previous model's weights mean: taken from it
INHERITED = ("hidden", "dropout", "emb_dropout", "interactions", "normalize", "pretrained_input", "key_stats")


@dataclass
class WarmStart:
    model: object                  # LoadedModel of the previous model
    version: str                   # its version name
    settings: dict                 # INHERITED -> the previous model's value
    initial: dict                  # column -> (num, dim) vectors its embedding started from (initial.safetensors)

    @property
    def path(self) -> Path:
        return self.model.path

    def columns(self) -> dict:
        """column -> its spec entry ({name, num, dim, mode})."""
        return {c["name"]: c for c in self.model.model.spec["columns"]}


def load_warm_start(path) -> WarmStart:
    """The previous model named by --warm-start, with the settings it was trained with."""
    from safetensors.numpy import load_file

    from catvec.base.manifest import read_manifest
    from catvec.base.layout import INITIAL_FILE
    from catvec.finetuning.modeldir import load_model

    if not Path(path).exists():
        raise CatvecError(f"--warm-start {path}: no such model directory; pass a model version dir, "
                          f"MODELS/latest or MODELS written by `catvec finetune`")
    loaded = load_model(path)
    manifest = read_manifest(loaded.path, verify=False)   # load_model verified every checksum
    metrics = json.loads((loaded.path / "metrics.json").read_text(encoding="utf-8"))
    spec, params = loaded.model.spec, manifest.get("params", {})
    chosen = metrics.get("auto", {}).get("chosen", {})
    settings = {"hidden": ",".join(str(h) for h in spec.get("hidden", [])), "dropout": spec.get("dropout", 0.0),
                "emb_dropout": spec.get("emb_dropout", 0.0), "interactions": bool(spec.get("interactions")),
                "normalize": chosen.get("normalize", params.get("normalize", "none")),
                "pretrained_input": params.get("pretrained_input", "input"),
                "key_stats": "off" if loaded.key_stats is None else params.get("key_stats", "auto")}
    initial = load_file(str(loaded.path / INITIAL_FILE)) if INITIAL_FILE in manifest.get("files", {}) else {}
    return WarmStart(model=loaded, version=manifest.get("version", loaded.path.name), settings=settings,
                     initial=initial)


def inherit(cfg: FinetuneConfig, warm: WarmStart) -> FinetuneConfig:
    """cfg with the previous model's settings and (where not given) its roles; auto off.
    A given setting that differs from the model's is refused."""
    defaults = FinetuneConfig()
    for name, value in warm.settings.items():
        given = getattr(cfg, name)
        if given != getattr(defaults, name) and given != value:
            raise CatvecError(f"--warm-start {warm.path}: the model was trained with {name} {value!r}, "
                              f"not {given!r}; leave --{name.replace('_', '-')} out to continue it, "
                              f"or train a new model without --warm-start")
    roles = warm.model.roles
    fill = {"target": cfg.target or roles.target,
            "cat_cols": cfg.cat_cols or ",".join(roles.cat_cols),
            "cont_cols": cfg.cont_cols or ",".join(roles.cont_cols),
            "pretrained_cols": cfg.pretrained_cols or ",".join(roles.pretrained),
            "task": roles.task if cfg.task == "auto" else cfg.task}
    return dataclasses.replace(cfg, **warm.settings, **fill, auto="off", warm_start=str(warm.path)).validate()


def check_fits(warm: WarmStart, roles, vectors: dict) -> None:
    """Refuse, in one line, a previous model whose roles, classes or dimensions differ from
    this run's. vectors: weight dir -> Vectors (as the run loaded them)."""
    old = warm.model.roles
    where = f"--warm-start {warm.path}"
    for what, mine, theirs in (("target", roles.target, old.target), ("task", roles.task, old.task),
                               ("categorical columns", roles.cat_cols, old.cat_cols),
                               ("continuous columns", roles.cont_cols, old.cont_cols),
                               ("pretrained columns", sorted(roles.pretrained), sorted(old.pretrained))):
        if mine != theirs:
            raise CatvecError(f"{where}: the model's {what} are {theirs} but this run's are {mine}; "
                              f"use the same roles, or train a new model without --warm-start")
    if roles.classes != old.classes:
        raise CatvecError(f"{where}: the model predicts the classes {old.classes} but the table's target has "
                          f"{roles.classes}; warm start needs the same classes")
    columns = warm.columns()
    for col, directory in roles.pretrained.items():
        new_dim, old_dim = vectors[directory].dim, columns[col]["dim"]
        if new_dim != old_dim:
            raise CatvecError(f"{where}: column {col!r} has {old_dim}-dimensional embeddings but the vectors in "
                              f"{directory} have {new_dim}; pretrain with --dim {old_dim} (same settings as the "
                              f"model's vectors) or train a new model without --warm-start")


def column_dims(warm: WarmStart) -> dict[str, int]:
    """column -> embedding size in the previous model (scratch columns keep theirs)."""
    return {name: c["dim"] for name, c in warm.columns().items()}


def warm_start_model(model, warm: WarmStart, vocabs: dict) -> dict:
    """Start `model` (built for this run, its pretrained rows = the new vectors) from the
    previous model, in place. -> the record for the manifest and metrics.json."""
    import torch

    old_state = warm.model.model.state_dict()
    copied = []
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.startswith("embeddings."):
                continue
            theirs = old_state.get(name)
            if theirs is None or theirs.shape != tensor.shape:   # check_fits makes this an internal error
                raise AssertionError(f"warm start: {name} has no counterpart of shape {tuple(tensor.shape)}")
            tensor.copy_(theirs)
            copied.append(name)
    columns = {}
    old_layers = warm.model.model.embedding_layers()
    for col, layer in model.embedding_layers().items():
        rows, record = warm_rows(layer, old_layers[col], vocabs[col], warm.model.vocabs[col], warm.initial.get(col))
        layer.load_rows(rows)
        columns[col] = record
    log.info("warm start from %s: %d tensors copied; %s", warm.version, len(copied),
             "; ".join(f"{c}: {r['kept']} rows kept, {r['moved']} moved with their vector" for c, r in columns.items()))
    return {"from": warm.version, "path": str(warm.path), "copied": copied, "columns": columns}


def warm_rows(layer, old_layer, vocab, old_vocab, initial) -> tuple[np.ndarray, dict]:
    """The starting rows of one column: (len(vocab), dim) float32 and counts of what happened.
    layer: this run's layer (pretrained rows = new vectors, the rest OOV init or random)."""
    new = layer.full_weight().numpy()                                   # (len(vocab), dim)
    new_mask = layer.pretrained_mask.numpy()                            # (len(vocab),)
    old = old_layer.full_weight().numpy()                               # (len(old_vocab), dim)
    old_mask = old_layer.pretrained_mask.numpy()
    position = old_vocab.key_to_index
    at = np.fromiter((position.get(k, -1) for k in vocab.index_to_key), dtype=np.int64, count=len(vocab))
    known = at >= 0
    src = np.where(known, at, 0)
    # a row carries its offset from the vector it started from, when that was stored; a fixed
    # row (frozen, partial) without a record is its starting vector, so it becomes the new one
    if old_layer.mode == "scratch":
        offsets = "no vectors"
    elif initial is not None:
        offsets = "carried"
    else:
        offsets = "dropped" if old_layer.mode == "finetune" else "fixed"
    rows = new.copy()
    keep = known & ~new_mask                            # no new vector: the previous row as it was
    rows[keep] = old[src[keep]]
    moved = known & new_mask & old_mask[src]            # a new vector, and the row started from an old one
    if offsets == "carried":
        rows[moved] = old[src[moved]] + (new[moved] - initial[src[moved]])
    record = {"kept": int(keep.sum()), "moved": int(moved.sum()),
              "new_vector": int((known & new_mask & ~old_mask[src]).sum()),
              "new_keys": int((~known).sum()), "dropped_keys": int(len(old_vocab) - known.sum()), "offsets": offsets}
    return rows.astype(np.float32, copy=False), record


def initial_rows(model, matrices: dict, warm_started: bool = False) -> dict:
    """column -> the vectors a pretrained column started from (for initial.safetensors): where
    its rows may differ from them, i.e. trainable rows or rows that carried offsets in a warm
    start; fixed rows of a model started from the vectors are their own record."""
    return {col: np.ascontiguousarray(matrices[col], dtype=np.float32)
            for col, layer in model.embedding_layers().items()
            if col in matrices and (layer.mode == "finetune" or warm_started)}
