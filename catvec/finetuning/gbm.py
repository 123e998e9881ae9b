"""Gradient-boosted trees for `--compare`: what most tabular users already run.

Two baselines on the split the fine-tuned model used, so the numbers are comparable:

    gbm_raw        the categorical columns as the GBM's own categorical features (their vocab
                   indices) + the continuous columns
    gbm_vectors    the same + each pretrained column's vectors as numeric columns (a key
                   without a vector: missing values), as `catvec features` would append them

Trees stop early on the validation split (at most MAX_ROUNDS rounds); the test split,
when there is one, is scored once. The library is an optional extra: LightGBM (`pip install
'catvec[gbm]'`, 10 MB) is used when installed, else CatBoost when that is; CatBoost is not
the default because it weighs 270 MB with its dependencies, which every CI run would install
(docs/finetune.md "catvec or a GBM?" has both on the MovieLens task).

Example: results = gbm_baselines(data, vector_columns(aligned, roles.cat_cols), "val_auc")
"""

from __future__ import annotations

import importlib
import logging

import numpy as np

log = logging.getLogger(__name__)

LIBRARIES = ("lightgbm", "catboost")
INSTALL_HINT = "pip install 'catvec[gbm]' (LightGBM) adds the GBM baselines to --compare"
MAX_ROUNDS = 2000
EARLY_STOP = 100
LEARNING_RATE = 0.05


class GBMUnavailable(ImportError):
    """Neither LightGBM nor CatBoost can be imported."""


def gbm_library(preferred: str | None = None) -> str:
    """The GBM library to use: `preferred`, or the first of LIBRARIES that imports."""
    for name in ([preferred] if preferred else LIBRARIES):
        try:
            importlib.import_module(name)
            return name
        except ImportError:
            continue
    missing = f"{preferred} is not installed" if preferred else "no GBM library (LightGBM or CatBoost) is installed"
    raise GBMUnavailable(f"{missing}: {INSTALL_HINT}")


def gbm_baselines(data, vectors: dict, metric: str, seed: int = 0, library: str | None = None) -> list:
    """[gbm_raw, gbm_vectors] BaselineResults on `data` (catvec.finetuning.training.TrainData).
    vectors: {index of a categorical column: (len(vocab), dim) float32 rows, NaN for rows
    without a vector}; without any, only gbm_raw. Raises GBMUnavailable without a library."""
    from catvec.finetuning.baselines import BaselineResult, split_metrics

    library = gbm_library(library)
    raw = [_raw_matrix(data, split) for split in range(len(data.y))]
    n_cat = data.x_cat[0].shape[1]
    runs = [("gbm_raw", raw)]
    if vectors:
        extra = [np.concatenate([raw[s], *(m[data.x_cat[s][:, j]] for j, m in sorted(vectors.items()))], axis=1)
                 for s in range(len(data.y))]
        runs.append(("gbm_vectors", extra))
    results = []
    for name, x in runs:
        fit = _FITTERS[library]
        outputs, rounds = fit(x, data, list(range(n_cat)), seed)
        results.append(BaselineResult(name, {"rounds": rounds}, split_metrics(data, outputs)))
        log.info("%s (%s): %d rounds, %s", name, library, rounds, results[-1].metrics.get(metric))
    return results


def _raw_matrix(data, split: int) -> np.ndarray:
    """(n, n_cat + n_cont) float64: vocab indices, then the continuous columns."""
    return np.concatenate([data.x_cat[split].astype(np.float64), data.x_cont[split].astype(np.float64)], axis=1)


def _fit_lightgbm(x: list, data, cat_idx: list, seed: int):
    import lightgbm as lgb

    params = {"learning_rate": LEARNING_RATE, "num_leaves": 31, "min_data_in_leaf": 20, "verbose": -1,
              "seed": seed, "deterministic": True, "num_threads": 1, "force_row_wise": True,
              **_lightgbm_objective(data)}
    train = lgb.Dataset(x[0], data.y[0], categorical_feature=cat_idx, free_raw_data=False)
    val = lgb.Dataset(x[1], data.y[1], reference=train)
    booster = lgb.train(params, train, MAX_ROUNDS, valid_sets=[val],
                        callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)])
    best = booster.best_iteration or booster.current_iteration()
    outputs = [_as_model_units(booster.predict(part, raw_score=True, num_iteration=best), data) for part in x]
    return outputs, int(best)


def _lightgbm_objective(data) -> dict:
    if data.task == "binary":
        return {"objective": "binary"}
    if data.task == "multiclass":
        return {"objective": "multiclass", "num_class": data.n_classes}
    return {"objective": "regression"}


def _fit_catboost(x: list, data, cat_idx: list, seed: int):
    import catboost
    import pandas as pd

    def pool(part, y=None):
        frame = pd.DataFrame(part, columns=[f"f{i}" for i in range(part.shape[1])])
        for i in cat_idx:
            frame[f"f{i}"] = frame[f"f{i}"].astype(np.int64)
        return catboost.Pool(frame, y, cat_features=cat_idx)

    loss = {"binary": "Logloss", "multiclass": "MultiClass"}.get(data.task, "RMSE")
    model = catboost.CatBoost({"loss_function": loss, "iterations": MAX_ROUNDS, "learning_rate": LEARNING_RATE,
                               "random_seed": seed, "verbose": False, "thread_count": 1,
                               "od_type": "Iter", "od_wait": EARLY_STOP, "use_best_model": True,
                               "allow_writing_files": False})
    model.fit(pool(x[0], data.y[0]), eval_set=pool(x[1], data.y[1]))
    outputs = [_as_model_units(model.predict(pool(part), prediction_type="RawFormulaVal"), data) for part in x]
    return outputs, int(model.get_best_iteration() or 0) + 1


def _as_model_units(raw: np.ndarray, data) -> np.ndarray:
    """A GBM's raw scores -> (n, out_dim) float32 as the torch models output: logits of class
    1 (binary), class logits (multiclass), standardised predictions (regression)."""
    raw = np.asarray(raw, dtype=np.float32)
    return raw if raw.ndim == 2 else raw[:, None]


_FITTERS = {"lightgbm": _fit_lightgbm, "catboost": _fit_catboost}


def vector_columns(aligned: dict, cat_cols: list[str]) -> dict:
    """{index of a pretrained categorical column: its aligned rows, NaN where a row has no
    pretrained vector (<unk>, keys only in the table)} for gbm_baselines.
    aligned: pretrained column -> its Aligned rows (matrix and mask)."""
    out = {}
    for col, one in aligned.items():
        rows = one.matrix.astype(np.float32).copy()              # (len(vocab), dim)
        rows[~one.mask] = np.nan
        out[cat_cols.index(col)] = rows
    return out
