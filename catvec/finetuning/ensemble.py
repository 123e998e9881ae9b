"""`--blend`: the best `--auto` candidates averaged, a kNN vote blended in, every label for scoring.

With few labels the validation split cannot tell the candidates of `--auto` apart (on
MovieLens liked at 2% labels, 400 validation rows, seed 2: the one it picked scored 0.011
test AUC below the best of them), and the MLP reads each row's keys through its embeddings
while a kNN vote over the labeled rows nearest in the same pretrained space reads how
similar (user, item) pairs were labeled: they err differently (docs/finetune.md "--blend").
Once `--auto` has chosen the model on validation:

    1. members: the MEMBERS candidates best on validation (the chosen one first); their
       outputs are averaged;
    2. k: the kNN vote's neighbour count, picked by leave-one-out on the training rows
       (the validation rows stay unseen for step 3);
    3. weight: output = (1 - w) average + w * scale * vote, w from BLEND_WEIGHTS picked on
       the validation rows (a tie keeps the smaller w); binary outputs are logits, and
       `scale` matches the vote's spread on validation to the average's;
    4. every label: the vote's neighbours and the per-key statistics (--key-stats) the
       saved model scores with are then taken from the training AND validation rows.

The test metrics in metrics.json are those of what is saved (step 4); the validation
metrics those of the choice. `catvec predict` repeats it: the other members' weights and
the neighbours' vocab rows and targets are in blend.safetensors; neighbours are found on
the chosen model's own embedding rows.

    keep_member(members, fit, metric)                   # while --auto trains candidates
    blend, record = fit_blend(model, others, data, columns, metric)
    out = blend.output(model, x_cat, x_cont)            # (n, 1)
"""

from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass, field

import numpy as np


MEMBERS = 8            # of the 11 --auto candidates: the 8 MLPs where they join (docs/finetune.md)
BLEND_K = (5, 10, 25, 50, 100)
BLEND_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)   # the average stays the larger part (docs/finetune.md)
BLEND_TASKS = ("binary", "regression")
CHUNK = 2048                                       # rows per similarity block: (CHUNK, n_ref) floats


@dataclass
class Blend:
    """Other candidates averaged with the model, and a kNN vote over reference rows in the
    model's pretrained embedding space blended in (weight 0: no vote)."""

    task: str
    columns: list[int]       # positions in x_cat of the pretrained columns the vote reads
    rows: np.ndarray         # (n_ref, len(columns)) int64: the reference rows' vocab rows
    y: np.ndarray            # (n_ref,) float32: their targets in model units
    k: int
    weight: float
    scale: float             # vote -> model output units
    members: list = field(default_factory=list)    # the other candidates' models, averaged in

    def vote(self, model, x_cat: np.ndarray) -> np.ndarray:
        """(n, n_cat) -> (n,) kNN output in model units (binary: logit of the weighted vote)."""
        space = embedding_space(model, self.columns)
        return knn_vote(features(space, x_cat[:, self.columns]), features(space, self.rows), self.y, self.k,
                        self.task)

    def output(self, model, x_cat: np.ndarray, x_cont: np.ndarray) -> np.ndarray:
        """The blended output (n, 1) of the model (the chosen candidate) on these inputs."""
        from catvec.finetuning.training import predict_output

        out = np.mean([predict_output(m, x_cat, x_cont) for m in [model, *self.members]], axis=0)
        if self.weight:
            out = (1 - self.weight) * out + self.weight * self.scale * self.vote(model, x_cat)[:, None]
        return out.astype(np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"columns": np.asarray(self.columns, dtype=np.int64), "rows": self.rows.astype(np.int64),
                  "y": self.y.astype(np.float32), "settings": np.array([self.k, self.weight, self.scale])}
        for i, member in enumerate(self.members):
            arrays.update({f"member{i}.{k}": v.detach().cpu().contiguous().numpy()
                           for k, v in member.state_dict().items()})
        return arrays


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


def keep_member(members: list, fit, metric: str) -> None:
    """Add an --auto candidate's FitResult to `members` (best first by its validation
    `metric`), keeping the MEMBERS best: only they stay in memory."""
    from catvec.finetuning.metrics import HIGHER_IS_BETTER

    score = next(r for r in fit.history if r["epoch"] == fit.best_epoch)[metric]
    sign = 1.0 if HIGHER_IS_BETTER.get(metric.removeprefix("val_"), False) else -1.0
    key = -np.inf if score is None or np.isnan(score) else sign * score
    members.append((key, len(members), fit))
    members.sort(key=lambda m: (-m[0], m[1]))               # ties: the earlier (simpler) candidate
    del members[MEMBERS:]


def fit_blend(model, others: list, data, columns: list[int], metric: str) -> tuple[Blend | None, dict]:
    """Pick k (leave-one-out on training rows) and the weight (validation) for the chosen
    model averaged with `others` (models); data is their TrainData.
    -> (the blend, or None when it would change nothing; record for metrics.json)."""
    from catvec.finetuning.training import improves, output_metrics

    blend = Blend(data.task, list(columns), data.x_cat[0][:, columns].copy(), data.y[0].astype(np.float32),
                     k=1, weight=0.0, scale=1.0, members=list(others))
    own = blend.output(model, data.x_cat[1], data.x_cont[1])            # (n_val, 1): the average
    record = {"members": 1 + len(others), "weight": 0.0, "average_" + metric: output_metrics(data, own, 1)[metric]}
    space = embedding_space(model, columns)
    train, val = (features(space, x[:, columns]) for x in data.x_cat[:2])
    best_k = None
    for k in BLEND_K:
        if k >= len(train):
            break
        score = output_metrics(data, knn_vote(train, train, data.y[0], k, data.task, True)[:, None], 0)[metric]
        if best_k is None or improves(score, best_k[1], metric):
            best_k = (k, score)
    if best_k is not None:
        blend.k = best_k[0]
        vote = knn_vote(val, train, data.y[0], blend.k, data.task)     # (n_val,)
        spread = (float(own.std()), float(vote.std()))
        blend.scale = spread[0] / spread[1] if data.task == "binary" and min(spread) > 0 else 1.0
        scores, best = {}, None
        for w in BLEND_WEIGHTS:
            mixed = ((1 - w) * own + w * blend.scale * vote[:, None]).astype(np.float32)
            scores[f"{w:.1f}"] = output_metrics(data, mixed, 1)[metric]
            if best is None or improves(scores[f"{w:.1f}"], best[1], metric):
                best = (w, scores[f"{w:.1f}"])
        blend.weight = best[0]
        record.update({"k": blend.k, "weight": blend.weight, "scale": blend.scale, metric: scores})
    if not others and not blend.weight:
        return None, record
    return blend, record


def with_all_labels(blend: Blend, data) -> Blend:
    """The blend voting over the training and validation rows (step 4)."""
    rows = np.concatenate([blend.rows, data.x_cat[1][:, blend.columns]])
    return dataclasses.replace(blend, rows=rows, y=np.concatenate([blend.y, data.y[1].astype(np.float32)]))


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


def save_blend(blend: Blend, path) -> None:
    from safetensors.numpy import save_file

    specs = json.dumps([m.spec for m in blend.members])
    save_file(blend.to_arrays(), str(path), metadata={"format": "catvec-blend", "members": specs})


def load_blend(path, task: str, n_cat: int, sizes: list[int], spec_problem) -> Blend:
    """blend.safetensors -> Blend, checked against the model's categorical columns, and
    each member's spec (spec_problem(spec) -> None or what is wrong, modeldir's check) and
    its tensors' shapes before a model is built."""
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from catvec.base.errors import CatvecError
    from catvec.finetuning.model import TabularEmbeddingModel

    def damaged(what: str):
        return CatvecError(f"{path}: {what}; the model directory was edited or damaged: train the model again")

    arrays = load_file(str(path))
    with safe_open(str(path), "np") as fh:
        specs = json.loads((fh.metadata() or {}).get("members", "[]"))
    try:
        k, weight, scale = (float(v) for v in arrays["settings"])
        columns, rows, y = [int(c) for c in arrays["columns"]], arrays["rows"], arrays["y"]
    except (KeyError, ValueError):
        raise damaged("no blend settings") from None
    if not (rows.ndim == 2 and rows.shape == (len(y), len(columns)) and k >= 1 and all(0 <= c < n_cat for c in columns)
            and all(((rows[:, i] >= 0) & (rows[:, i] < sizes[c])).all() for i, c in enumerate(columns))):
        raise damaged("the blend's reference rows do not match the model's categorical columns")
    members = []
    for i, spec in enumerate(specs if isinstance(specs, list) else [None]):
        prefix = f"member{i}."
        state = {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}
        problem = spec_problem(spec)
        if problem is None:
            shapes = TabularEmbeddingModel.state_shapes(spec)
            if set(shapes) != set(state) or any(len(s) != state[n].ndim or any(
                    e not in (None, f) for e, f in zip(s, state[n].shape)) for n, s in shapes.items()):
                problem = "its tensors do not match its spec"
        if problem:
            raise damaged(f"member {i}: {problem}")
        members.append(TabularEmbeddingModel.from_state(spec, {n: torch.from_numpy(a) for n, a in state.items()}).eval())
    return Blend(task, columns, rows, y, int(k), weight, scale, members)


def blend_chosen(trained, roles, aligned: dict, prepared):
    """Steps 1-4 after the training phase (after --compare, which must not see step 4):
    sets trained.blend (or None), makes the main fit's test metrics those of the final
    model, records the choice in trained.auto["blend"], and returns `prepared` with the
    key statistics of every label (what the saved model reads)."""
    from catvec.finetuning.metrics import main_metric
    from catvec.finetuning.training import output_metrics, predict_output

    fit, data = trained.main, prepared.data
    columns = [roles.cat_cols.index(c) for c in aligned]
    others = [m[2].model for m in trained.members if m[2] is not fit]
    blend, record = fit_blend(fit.model, others, data, columns, main_metric(roles.task, trained.setup.fit.metric))
    blend = with_all_labels(blend, data) if blend is not None else None
    x_test = data.x_cont[2] if data.has_test else None
    if prepared.key_stats is not None:
        stats, x_test = all_label_stats(data, prepared.key_stats, prepared.scaler, len(roles.cont_cols))
        prepared = dataclasses.replace(prepared, key_stats=stats)
    record["final_labels"] = "train+val"
    if data.has_test:
        out = (blend.output(fit.model, data.x_cat[2], x_test) if blend is not None
               else predict_output(fit.model, data.x_cat[2], x_test))
        record["test_before"] = fit.test
        fit.test = {"test_" + k.removeprefix("val_"): v for k, v in output_metrics(data, out, 2).items()}
    trained.auto["blend"] = record
    trained.blend = blend
    return prepared
