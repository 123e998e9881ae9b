"""Pictures: a 2D PCA map of the vectors, and training curves of a finetune run.

matplotlib is imported inside the functions and used through `Figure` + the Agg canvas,
never pyplot: no display is needed and no global backend is changed.

    plot_vector_map(vectors, "map.png", attributes={"1001": "action", ...})
    plot_training_curves(json.load(open("metrics.json")), "curves.png")
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

MAX_POINTS = 20000
N_COLOURS = 9
OTHER = "#c8c8c8"


def read_item_attributes(path, item_col: str = "item_id", attribute_col: str = "") -> dict[str, str]:
    """A CSV of items -> {key: attribute}. The key column is `item_col` (or the first
    column), the attribute `attribute_col` (or the second column)."""
    import polars as pl

    from catvec.base.keys import normalize_keys

    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise CatvecError(f"item_attributes: cannot read {path} as CSV ({str(exc).splitlines()[0]})") from None
    columns = frame.columns
    key_col = item_col if item_col in columns else columns[0]
    value_col = attribute_col or (next((c for c in columns if c != key_col), ""))
    if value_col not in columns:
        raise CatvecError(f"item_attributes: {path} has no column {value_col!r} (columns: {', '.join(columns)}); "
                          "pass --attribute-col NAME")
    keys = normalize_keys(frame[key_col]).to_list()
    return {k: v for k, v in zip(keys, frame[value_col].to_list()) if k is not None and v not in (None, "")}


def pca_2d(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) -> (n, 2) coordinates on the top two principal axes, and their variance shares."""
    x = matrix.astype(np.float64)
    x = x - x.mean(axis=0)
    cov = x.T @ x / max(len(x) - 1, 1)                          # (dim, dim)
    values, axes = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:2]
    share = values[order] / max(values.sum(), 1e-12)
    coords = x @ axes[:, order]                                # (n, 2)
    # Fix the sign of each axis (eigh's is arbitrary) so repeated runs draw the same picture.
    signs = np.sign(coords[np.argmax(np.abs(coords), axis=0), [0, 1]])
    return coords * np.where(signs == 0, 1, signs), share


def plot_vector_map(vectors, path, attributes: dict[str, str] | None = None, n_labels: int = 8,
                    title: str = "") -> Path:
    """PCA map of the vectors as PNG: coloured by `attributes` (the most common values get
    a colour, the rest are grey) and a few labelled points (the most frequent key of each
    coloured value, or the first keys, which are the most frequent)."""
    from matplotlib.figure import Figure

    n = len(vectors)
    if n < 3:
        raise CatvecError(f"vector map: need at least 3 vectors, got {n}")
    coords, share = pca_2d(vectors.matrix)
    shown = np.arange(n) if n <= MAX_POINTS else np.sort(np.random.default_rng(0).choice(n, MAX_POINTS, replace=False))
    keys = vectors.keys
    fig = Figure(figsize=(9, 7), dpi=110)
    ax = fig.add_subplot()
    size = 18 if len(shown) < 2000 else 6
    alpha = 0.85 if len(shown) < 2000 else 0.6
    labelled: list[int] = []
    if attributes:
        values = np.array([attributes.get(keys[i], "") for i in shown], dtype=object)
        found, counts = np.unique(values[values != ""], return_counts=True)
        top = [v for _, v in sorted(zip(-counts, found))][:N_COLOURS]
        colour_of = dict(zip(top, _palette()))
        colours = np.array([colour_of.get(v, OTHER) for v in values], dtype=object)
        # One scatter in a seeded random order: no class is hidden under the ones drawn after it.
        order = np.random.default_rng(1).permutation(len(shown))
        ax.scatter(coords[shown[order], 0], coords[shown[order], 1], s=size, c=list(colours[order]),
                   linewidths=0, alpha=alpha)
        for value in top:
            sel = values == value
            ax.scatter([], [], s=size, color=colour_of[value], label=f"{value} ({int(sel.sum())})")
            labelled.append(int(shown[np.argmax(sel)]))
        rest = int((~np.isin(values, top)).sum())
        if rest:
            ax.scatter([], [], s=size, color=OTHER, label=f"other / none ({rest})")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False, markerscale=2)
    else:
        ax.scatter(coords[shown, 0], coords[shown, 1], s=size, c="#4477aa", linewidths=0, alpha=alpha)
    for i in _spread_labels(coords, labelled + list(range(min(n, 200))), n_labels):
        ax.annotate(keys[i], coords[i], xytext=(4, 4), textcoords="offset points", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})
        ax.scatter(coords[i, 0], coords[i, 1], s=size * 2.5, facecolors="none", edgecolors="black", linewidths=0.8)
    ax.set_xlabel(f"PC 1 ({share[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({share[1]:.0%} of variance)")
    subtitle = f"{n} vectors x {vectors.dim}" + (f", {len(shown)} drawn" if len(shown) < n else "")
    ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=11)
    ax.grid(alpha=0.25)
    return _save(fig, path)


def plot_training_curves(metrics: dict, path) -> Path:
    """Loss and the main metric per epoch, train and validation; pretrained (solid) vs
    scratch (dashed) when metrics has a "scratch" entry. `metrics` is a finetune
    metrics.json: {"history": [{"epoch", "train_loss", "val_loss", "val_<m>", ..}],
    "best_epoch", "main_metric", "scratch": {same}}."""
    from matplotlib.figure import Figure

    runs = {"pretrained": metrics}
    if isinstance(metrics.get("scratch"), dict) and metrics["scratch"].get("history"):
        runs["scratch"] = metrics["scratch"]
    if not metrics.get("history"):
        raise CatvecError("training curves: metrics has no 'history' of epochs")
    # metrics.json names it with its split ("val_rmse"); the history has train_/val_ columns
    main = str(metrics.get("main_metric") or "").removeprefix("val_").removeprefix("train_")
    fig = Figure(figsize=(11, 4.2), dpi=110)
    loss_ax, metric_ax = fig.subplots(1, 2)
    colours = {"train": "#4477aa", "val": "#ee6677"}
    for run, data in runs.items():
        style = "-" if run == "pretrained" else "--"
        history = data["history"]
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
        for split in ("train", "val"):
            for ax, name in ((loss_ax, f"{split}_loss"), (metric_ax, f"{split}_{main}")):
                ys = [row.get(name) for row in history]
                if main and any(y is not None for y in ys):
                    ax.plot(epochs, [np.nan if y is None else y for y in ys], style, color=colours[split],
                            marker="o", markersize=3, label=f"{split} ({run})" if len(runs) > 1 else split)
        best = data.get("best_epoch")
        if best is not None:
            for ax in (loss_ax, metric_ax):
                ax.axvline(best, color="grey", linestyle=style, linewidth=0.8, alpha=0.7)
    loss_ax.set_title("loss")
    metric_ax.set_title(main or "main metric")
    for ax in (loss_ax, metric_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.25)
        if any(not line.get_label().startswith("_") for line in ax.lines):  # the best-epoch line has no label
            ax.legend(fontsize=8, frameon=False)
    note = "solid: pretrained init, dashed: scratch; " if len(runs) > 1 else ""
    fig.suptitle(f"{note}grey line: best epoch", fontsize=9)
    return _save(fig, path)


def plot_drift(drift: dict, path) -> Path:
    """Neighbour overlap@10 with the parent per frequency band, beside the overlap between
    two seeds on the same data (the noise floor of drift). `drift` is a manifest's "drift"."""
    from matplotlib.figure import Figure

    bands = drift.get("bands") or {}
    noise = (drift.get("noise") or {}).get("bands") or {}
    if not bands:
        raise CatvecError("drift plot: no frequency bands to draw")
    names = list(bands)
    x = np.arange(len(names))
    fig = Figure(figsize=(6.4, 3.6), dpi=110)
    ax = fig.subplots()
    ax.bar(x - 0.2, [bands[n]["overlap"] for n in names], 0.4, color="#4477aa", label="this version vs parent")
    ax.bar(x + 0.2, [noise.get(n, {}).get("overlap", np.nan) for n in names], 0.4, color="#bbbbbb",
           label="two seeds, same data")
    ax.set_xticks(x, [f"{n}\n({bands[n]['keys']} keys)" for n in names])
    ax.set_xlabel("training count of the key")
    ax.set_ylabel("neighbour overlap@10")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.25)
    ax.set_title("drift from the parent, beside seed noise", fontsize=10)
    return _save(fig, path)


def _spread_labels(coords: np.ndarray, candidates: list[int], n_labels: int) -> list[int]:
    """Up to n_labels candidates, in order, skipping any closer than 8% of the plot's span
    to one already chosen, so labels do not pile up on each other."""
    span = np.ptp(coords, axis=0)
    span = np.where(span > 0, span, 1.0)
    chosen: list[int] = []
    for i in dict.fromkeys(candidates):
        if all(np.hypot(*((coords[i] - coords[j]) / span)) > 0.08 for j in chosen):
            chosen.append(i)
        if len(chosen) == n_labels:
            break
    return chosen


def _palette() -> list[str]:
    # Paul Tol's muted scheme: distinguishable, colour-blind safe.
    return ["#332288", "#88ccee", "#44aa99", "#117733", "#999933", "#ddcc77", "#cc6677", "#882255", "#aa4499"]


def _save(fig, path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from catvec.base.writes import writing

    path = Path(path)
    FigureCanvasAgg(fig)
    fig.tight_layout()
    with writing(path):
        fig.savefig(path, format="png", bbox_inches="tight")
    return path
