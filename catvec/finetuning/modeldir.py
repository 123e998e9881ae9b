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
    keystats.safetensors  per-key target sums and counts of the training rows (--key-stats, binary
                          and regression): predict appends the same statistics to the inputs
    blend.safetensors     --blend: the other candidates averaged in (their weights; specs in the
                          metadata), the kNN vote's reference rows, labels, k and weight
                          (catvec.finetuning.ensemble): predict blends the same way
    manifest.json, COMPLETE   checksums of the files above; COMPLETE is written last

Loading reads safetensors and JSON only, after checking every checksum.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catvec.base.errors import CatvecError
from catvec.base.layout import BLEND_FILE, INITIAL_FILE, KEY_STATS_FILE, MODEL_FILES as FILES
from catvec.finetuning.labeled import Roles, Scaler
from catvec.finetuning.vocab import Vocab

MODEL_FORMAT = "catvec-model"
MODEL_FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    model: object                  # TabularEmbeddingModel, eval mode
    roles: Roles
    vocabs: dict[str, Vocab]
    scaler: Scaler
    y_mean: float
    y_std: float
    path: Path
    key_stats: object = None       # catvec.finetuning.keystats.KeyStats, or None
    blend: object = None           # catvec.finetuning.ensemble.Blend, or None


def embedding_dir_name(column: str) -> str:
    """A directory name for a column: letters, digits, '-', '_', '.'; others escaped."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else f"%{ord(ch):02x}" for ch in column)
    return safe.lstrip(".") or "column"


def write_model_dir(staging: Path, model, roles: Roles, vocabs: dict, scaler: Scaler, y_mean: float,
                    y_std: float, metrics: dict, alignment: dict, report: str, manifest: dict,
                    extra_files: tuple[str, ...] = (), initial: dict | None = None, key_stats=None,
                    blend=None) -> Path:
    """Write every file of a model directory into `staging`, the COMPLETE marker last.
    initial: {column: (num, dim) rows it started from}, written to initial.safetensors;
    key_stats: KeyStats, written to keystats.safetensors; blend: Blend, to blend.safetensors."""
    from safetensors.torch import save_file

    from catvec.base.manifest import finish_manifest
    from catvec.base.writes import write_json, writing

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
    if key_stats is not None:
        from safetensors.numpy import save_file as save_arrays

        with writing(staging / KEY_STATS_FILE):
            save_arrays(key_stats.to_arrays(), str(staging / KEY_STATS_FILE), metadata={"format": MODEL_FORMAT})
        extra_files = (*extra_files, KEY_STATS_FILE)
    if blend is not None:
        from catvec.finetuning.ensemble import save_blend
        with writing(staging / BLEND_FILE):
            save_blend(blend, staging / BLEND_FILE)
        extra_files = (*extra_files, BLEND_FILE)
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
    from catvec.base.manifest import read_manifest, resolve_version_dir

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
        check_spec(directory, info.get("spec") if isinstance(info, dict) else None)  # before any allocation
        state = load_file(str(directory / "model.safetensors"))
    except (OSError, ValueError, SafetensorError) as exc:
        raise CatvecError(f"{directory}: cannot read the model ({exc})") from None
    model = TabularEmbeddingModel.from_state(info["spec"], state)
    model.eval()
    roles, vocabs = Roles(**info["roles"]), {col: Vocab.from_json(keys) for col, keys in vocab_data.items()}
    try:
        sizes = [len(vocabs[c]) for c in roles.cat_cols]
        key_stats = _load_key_stats(directory, manifest, roles.task, sizes)
        blend = _load_blend(directory, manifest, roles.task, sizes)
    except (OSError, SafetensorError) as exc:
        raise CatvecError(f"{directory}: cannot read the model ({exc})") from None
    return LoadedModel(model=model, roles=roles, vocabs=vocabs, scaler=Scaler(**info["scaler"]),
                       y_mean=info["y_mean"], y_std=info["y_std"], path=directory, key_stats=key_stats, blend=blend)


def _load_blend(directory: Path, manifest: dict, task: str, sizes: list[int]):
    """The Blend of blend.safetensors, or None for a model trained without one."""
    from catvec.finetuning.ensemble import load_blend

    if BLEND_FILE not in manifest.get("files", {}):
        return None
    return load_blend(directory / BLEND_FILE, task, len(sizes), sizes, _spec_problem)


def _load_key_stats(directory: Path, manifest: dict, task: str, sizes: list[int]):
    """The KeyStats of keystats.safetensors, or None for a model trained without them.
    sizes: the rows of each categorical column's vocab."""
    from safetensors.numpy import load_file as load_arrays

    from catvec.finetuning.keystats import KeyStats

    if KEY_STATS_FILE not in manifest.get("files", {}):
        return None
    arrays = load_arrays(str(directory / KEY_STATS_FILE))
    try:
        stats = KeyStats.from_arrays(task, arrays)
    except KeyError:
        stats = None
    if stats is None or len(stats.sums) != len(sizes) or any(
            len(s) != n or len(c) != n for s, c, n in zip(stats.sums, stats.counts, sizes)):
        raise CatvecError(f"{directory / KEY_STATS_FILE}: the statistics do not match the model's categorical "
                          f"columns; the model directory was edited or damaged: train the model again")
    return stats


def model_inputs(loaded: LoadedModel, frame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a table -> (x_cat, x_cont) as the model was trained on them: the continuous
    columns, then the key statistics when the model has them, scaled."""
    from catvec.finetuning.labeled import feature_arrays

    x_cat, x_cont = feature_arrays(frame, loaded.roles, loaded.vocabs, None, name)
    if loaded.key_stats is not None:
        x_cont = np.concatenate([x_cont, loaded.key_stats.features(x_cat)], axis=1)
    return x_cat, loaded.scaler.transform(x_cont)


def check_spec(directory: Path, spec) -> None:
    """Refuse, in one line, a model.json spec that does not describe model.safetensors: its
    fields are checked, then the shapes it would build against the tensor shapes in the
    file's header (read without loading a tensor), before anything is allocated."""
    from catvec.finetuning.model import TabularEmbeddingModel

    where = Path(directory) / "model.json"
    problem = _spec_problem(spec)
    if problem is None:
        expected = TabularEmbeddingModel.state_shapes(spec)
        actual = tensor_shapes(Path(directory) / "model.safetensors")
        for name, shape in expected.items():
            found = actual.get(name)
            if found is None or len(found) != len(shape) or any(e not in (None, f) for e, f in zip(shape, found)):
                problem = (f"the spec gives {name} the shape {shape} but model.safetensors has "
                           f"{found if found is not None else 'no such tensor'}")
                break
        else:
            extra = sorted(set(actual) - set(expected))
            if extra:
                problem = f"model.safetensors holds {extra[0]}, which the spec does not describe"
    if problem:
        raise CatvecError(f"{where}: {problem}; the model directory was edited or damaged: train the model again")


def _spec_problem(spec) -> str | None:
    from catvec.finetuning.config import FINETUNE_MODES, MAX_LAYER

    def count(value, low, high=None) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)

    if not isinstance(spec, dict) or not isinstance(spec.get("columns"), list):
        return "no model spec with a list of columns"
    for col in spec["columns"]:
        if not (isinstance(col, dict) and isinstance(col.get("name"), str) and count(col.get("num"), 1)
                and count(col.get("dim"), 1, MAX_LAYER) and col.get("mode") in FINETUNE_MODES):
            return f"the spec's column {col!r} needs a name, num >= 1, dim from 1 to {MAX_LAYER} and a mode"
    hidden = spec.get("hidden", [])
    if not isinstance(hidden, list) or not all(count(h, 1, MAX_LAYER) for h in hidden):
        return f"the spec's hidden layer sizes {hidden!r} must be integers from 1 to {MAX_LAYER}"
    if not count(spec.get("n_cont"), 0) or not count(spec.get("out_dim"), 1):
        return "the spec's n_cont and out_dim must be integers (>= 0, >= 1)"
    return None


def tensor_shapes(path: Path) -> dict[str, tuple]:
    """name -> shape of every tensor in a safetensors file, from its JSON header only."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= min(os.fstat(fh.fileno()).st_size - 8, 100 << 20):
            raise CatvecError(f"{path}: not a safetensors file (header length {length})")
        header = json.loads(fh.read(length))
    if not isinstance(header, dict):
        raise CatvecError(f"{path}: not a safetensors file (its header is not a JSON object)")
    return {name: tuple(info.get("shape", ())) for name, info in header.items()
            if name != "__metadata__" and isinstance(info, dict)}


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
