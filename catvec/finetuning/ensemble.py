"""`--blend`: the chosen model's output blended with a kNN vote, and every label for scoring.

The MLP reads each row's keys through its embeddings; a kNN vote over the labeled rows
nearest in the same pretrained space reads how similar (user, item) pairs were labeled,
and the two err differently (MovieLens liked, docs/finetune.md "catvec or a GBM?"). Once
`--auto` has chosen the model on validation:

    1. k: the kNN vote's neighbour count, picked by leave-one-out on the training rows
       (the validation rows stay unseen for step 2);
    2. weight: output = (1 - w) model + w * scale * knn, w from BLEND_WEIGHTS picked on the
       validation rows (a tie keeps the smaller w; w = 0 means no blend); binary outputs
       are logits, and `scale` matches the vote's spread on validation to the model's;
    3. final labels: the vote's neighbours and the per-key statistics (--key-stats) the
       saved model scores with are then taken from the training AND validation rows: the
       choice is made, and on few labels a fifth more of them pays (MovieLens liked, 2%:
       +0.002 AUC from the statistics, +0.005 from the neighbours).

The test metrics in metrics.json are those of what is saved, so of the final step; the
validation metrics are those of the choice (the validation rows' labels are in the final
statistics). `catvec predict` repeats it: the neighbours' vocab rows and labels are in
blend.safetensors, the neighbours are found on the model's own embedding rows.

    blend = fit_blend(model, data, columns, metric)     # None when w = 0 wins
    out = blend.output(model, x_cat, model_out)        # (n, 1)
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np

BLEND_K = (5, 10, 25, 50, 100)
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)   # the model stays the larger part: measured, see above
BLEND_TASKS = ("binary", "regression")
BLEND_FILE = "blend.safetensors"
CHUNK = 2048                                       # rows per similarity block: (CHUNK, n_ref) floats


@dataclass
class KnnBlend:
    """A kNN vote over reference rows in the model's pretrained embedding space, blended in."""

    task: str
    columns: list[int]       # positions in x_cat of the pretrained columns the vote reads
    rows: np.ndarray         # (n_ref, len(columns)) int64: the reference rows' vocab rows
    y: np.ndarray            # (n_ref,) float32: their targets in model units
    k: int
    weight: float
    scale: float             # vote -> model output units

    def vote(self, model, x_cat: np.ndarray) -> np.ndarray:
        """(n, n_cat) -> (n,) kNN output in model units (binary: logit of the weighted vote)."""
        space = embedding_space(model, self.columns)
        return knn_vote(features(space, x_cat[:, self.columns]), features(space, self.rows), self.y, self.k,
                        self.task)

    def output(self, model, x_cat: np.ndarray, model_out: np.ndarray) -> np.ndarray:
        """The blended output (n, 1) from the model's own (n, 1)."""
        vote = self.vote(model, x_cat)[:, None]
        return ((1 - self.weight) * model_out + self.weight * self.scale * vote).astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"columns": np.asarray(self.columns, dtype=np.int64), "rows": self.rows.astype(np.int64),
                "y": self.y.astype(np.float32), "settings": np.array([self.k, self.weight, self.scale])}

    @classmethod
    def from_arrays(cls, task: str, arrays: dict[str, np.ndarray]) -> "KnnBlend":
        k, weight, scale = (float(v) for v in arrays["settings"])
        return cls(task, [int(c) for c in arrays["columns"]], arrays["rows"], arrays["y"], int(k), weight, scale)


def blend_enabled(setting: str, task: str, searched: bool, has_pretrained: bool) -> bool:
    """--blend auto: after an --auto search, binary and regression targets, pretrained columns."""
    return setting != "off" and searched and has_pretrained and task in BLEND_TASKS


def embedding_space(model, columns: list[int]) -> list[np.ndarray]:
    """Unit rows of the model's embedding of each of `columns` (positions in the spec)."""
    from catvec.base.scoring import unit_rows

    layers = model.embedding_layers()
    names = [model.spec["columns"][j]["name"] for j in columns]
    return [unit_rows(layers[name].full_weight().cpu().numpy().astype(np.float32)) for name in names]


def features(space: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """(n, n_cols) vocab rows -> (n, sum of dims) float32, each row of length 1 (cosine)."""
    scale = np.float32(1.0 / np.sqrt(max(len(space), 1)))
    return np.concatenate([m[rows[:, j]] for j, m in enumerate(space)], axis=1) * scale


def knn_vote(query: np.ndarray, ref: np.ndarray, y: np.ndarray, k: int, task: str,
             leave_one_out: bool = False) -> np.ndarray:
    """Similarity-weighted vote of the k most similar reference rows: (n,) model units.
    leave_one_out: query IS ref, and each row's own label is left out of its vote."""
    from catvec.finetuning.baselines import _knn_output

    data = types.SimpleNamespace(task=task, n_classes=2)
    out = np.empty(len(query), dtype=np.float32)
    for start in range(0, len(query), CHUNK):
        sims = query[start:start + CHUNK] @ ref.T                     # (chunk, n_ref)
        if leave_one_out:
            sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        out[start:start + CHUNK] = _knn_output(sims, y, min(k, len(ref) - leave_one_out), data)[:, 0]
    return out


def fit_blend(model, data, columns: list[int], metric: str) -> tuple[KnnBlend | None, dict]:
    """Pick k (leave-one-out on training rows) and the weight (validation) for the chosen
    model; data is its TrainData. -> (the blend, or None when w = 0 wins; record for metrics.json)."""
    from catvec.finetuning.training import improves, output_metrics, predict_output

    space = embedding_space(model, columns)
    train, val = (features(space, x[:, columns]) for x in data.x_cat[:2])
    best_k = None
    for k in BLEND_K:
        if k >= len(train):
            break
        score = output_metrics(data, knn_vote(train, train, data.y[0], k, data.task, True)[:, None], 0)[metric]
        if best_k is None or improves(score, best_k[1], metric):
            best_k = (k, score)
    if best_k is None:
        return None, {"weight": 0.0, "reason": f"fewer than {BLEND_K[0] + 1} training rows"}
    k = best_k[0]
    vote = knn_vote(val, train, data.y[0], k, data.task)                 # (n_val,)
    own = predict_output(model, data.x_cat[1], data.x_cont[1])           # (n_val, 1)
    spread = (float(own.std()), float(vote.std()))
    scale = spread[0] / spread[1] if data.task == "binary" and min(spread) > 0 else 1.0
    scores, best = {}, None
    for w in BLEND_WEIGHTS:
        score = output_metrics(data, ((1 - w) * own + w * scale * vote[:, None]).astype(np.float32), 1)[metric]
        scores[f"{w:.1f}"] = score
        if best is None or improves(score, best[1], metric):
            best = (w, score)
    record = {"k": k, "weight": best[0], "scale": scale, metric: scores}
    if best[0] == 0:
        return None, record
    blend = KnnBlend(data.task, list(columns), data.x_cat[0][:, columns].copy(), data.y[0].astype(np.float32),
                     k, best[0], scale)
    return blend, record


def with_all_labels(blend: KnnBlend, data) -> KnnBlend:
    """The blend voting over the training and validation rows (step 3)."""
    rows = np.concatenate([blend.rows, data.x_cat[1][:, blend.columns]])
    return KnnBlend(blend.task, blend.columns, rows, np.concatenate([blend.y, data.y[1].astype(np.float32)]),
                    blend.k, blend.weight, blend.scale)


def all_label_stats(data, key_stats, scaler, n_cont: int):
    """Key statistics of the training and validation rows, and the test split's inputs with
    them (scaled as in training): -> (KeyStats, test x_cont or None)."""
    from catvec.finetuning.keystats import fit_key_stats

    x_cat = np.concatenate(data.x_cat[:2])
    stats = fit_key_stats(x_cat, np.concatenate(data.y[:2]), [len(s) for s in key_stats.sums], key_stats.task)
    if not data.has_test:
        return stats, None
    mean, std = np.asarray(scaler.mean[n_cont:]), np.asarray(scaler.std[n_cont:])
    x_cont = data.x_cont[2].copy()
    x_cont[:, n_cont:] = (stats.features(data.x_cat[2]) - mean) / std
    return stats, x_cont


def save_blend(blend: KnnBlend, path) -> None:
    from safetensors.numpy import save_file

    save_file(blend.to_arrays(), str(path), metadata={"format": "catvec-blend"})


def load_blend(path, task: str, n_cat: int, sizes: list[int]) -> KnnBlend:
    """blend.safetensors -> KnnBlend, checked against the model's categorical columns."""
    from safetensors.numpy import load_file

    from catvec.base.errors import CatvecError

    try:
        blend = KnnBlend.from_arrays(task, load_file(str(path)))
        ok = (blend.rows.ndim == 2 and blend.rows.shape == (len(blend.y), len(blend.columns)) and blend.k >= 1
              and all(0 <= c < n_cat for c in blend.columns)
              and all(((blend.rows[:, i] >= 0) & (blend.rows[:, i] < sizes[c])).all()
                      for i, c in enumerate(blend.columns)))
    except (KeyError, ValueError):
        ok = False
    if not ok:
        raise CatvecError(f"{path}: the blend's reference rows do not match the model's categorical columns; "
                          f"the model directory was edited or damaged: train the model again")
    return blend


def blend_run(run) -> KnnBlend | None:
    """Steps 1-3 on a finished FinetuneRun (after --compare, which must not see step 3):
    the blend (or None), the all-label key statistics in run.prepared, the main fit's test
    metrics those of the final model, and the record in run.auto["blend"]."""
    import dataclasses

    from catvec.finetuning.metrics import main_metric
    from catvec.finetuning.training import output_metrics, predict_output

    fit, data, prepared = run.fits[run.cfg.mode], run.prepared.data, run.prepared
    columns = [run.roles.cat_cols.index(c) for c in run.aligned]
    blend, record = fit_blend(fit.model, data, columns, main_metric(run.roles.task, run.cfg.metric))
    blend = with_all_labels(blend, data) if blend is not None else None
    x_test = data.x_cont[2] if data.has_test else None
    if prepared.key_stats is not None:
        stats, x_test = all_label_stats(data, prepared.key_stats, prepared.scaler, len(run.roles.cont_cols))
        run.prepared = dataclasses.replace(prepared, key_stats=stats)
    record["final_labels"] = "train+val"
    if data.has_test:
        out = predict_output(fit.model, data.x_cat[2], x_test)
        out = blend.output(fit.model, data.x_cat[2], out) if blend is not None else out
        record["test_before"] = fit.test
        fit.test = {"test_" + k.removeprefix("val_"): v for k, v in output_metrics(data, out, 2).items()}
    run.auto["blend"] = record
    return blend
