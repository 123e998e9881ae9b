"""What a finetune run reports: the content of metrics.json and report.md.

metrics.json (also read by plots that draw training curves):

    {"task": "regression", "main_metric": "val_rmse", "mode": "finetune",
     "best_epoch": 7, "stopped_early": true, "resumed_from": 0,
     "best": {"epoch": 7, "train_loss": .., "val_loss": .., "val_rmse": .., "val_mae": ..},
     "history": [{"epoch": 1, "train_loss": .., "val_loss": .., "val_rmse": .., ...}, ...],
     "scratch": {same keys, for the scratch baseline; only with --compare},
     "comparison": {"metric": "val_rmse", "pretrained": .., "scratch": .., "better": "pretrained"}}

A metric that cannot be computed (AUC on a validation split with one class) is null.
"""

from __future__ import annotations

import math

from catvec.metrics import HIGHER_IS_BETTER


def run_metrics(fit, task: str, mode: str) -> dict:
    from catvec.train import main_metric

    history = [{k: _finite(v) for k, v in row.items()} for row in fit.history]
    best = next(row for row in history if row["epoch"] == fit.best_epoch)
    return {"task": task, "main_metric": main_metric(task), "mode": mode, "best_epoch": fit.best_epoch,
            "stopped_early": fit.stopped_early, "resumed_from": fit.resumed_from,
            "best": dict(best), "history": history}


def _finite(value):
    """NaN / inf (e.g. AUC of a validation split with one class) -> null: metrics.json stays strict JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def metrics_json(fit, scratch, task: str) -> dict:
    """The metrics of the main run, plus the scratch baseline and a comparison when given."""
    modes = [c["mode"] for c in fit.model.spec["columns"]]
    metrics = run_metrics(fit, task, _main_mode(modes))
    if scratch is not None:
        metrics["scratch"] = run_metrics(scratch, task, "scratch")
        name = metrics["main_metric"]
        ours, theirs = metrics["best"][name], metrics["scratch"]["best"][name]
        higher = HIGHER_IS_BETTER[name.removeprefix("val_")]
        if ours is None or theirs is None:
            better = "unknown"
        else:
            better = "tie" if ours == theirs else ("pretrained" if (ours > theirs) == higher else "scratch")
        metrics["comparison"] = {"metric": name, "pretrained": ours, "scratch": theirs, "better": better}
    return metrics


def _main_mode(modes: list[str]) -> str:
    non_scratch = [m for m in modes if m != "scratch"]
    return non_scratch[0] if non_scratch else "scratch"


def comparison_lines(metrics: dict) -> list[str]:
    """Side-by-side lines for the terminal and report.md."""
    name = metrics["main_metric"]
    keys = [k for k in metrics["best"] if k.startswith("val_")]
    runs = [(metrics["mode"], metrics)] + ([("scratch", metrics["scratch"])] if "scratch" in metrics else [])
    lines = [f"{'run':<12} {'best epoch':>10} " + " ".join(f"{k:>12}" for k in keys)]
    for label, run in runs:
        lines.append(f"{label:<12} {run['best_epoch']:>10} " + " ".join(_cell(run["best"][k]) for k in keys))
    if "comparison" in metrics:
        c = metrics["comparison"]
        lines.append(f"{name}: pretrained {_cell(c['pretrained']).strip()} vs scratch {_cell(c['scratch']).strip()} "
                     + ("-> not comparable" if c["better"] == "unknown" else f"-> {c['better']} is better"))
    return lines


def _cell(value) -> str:
    return f"{value:>12.4f}" if value is not None else f"{'n/a':>12}"


def report_markdown(metrics: dict, alignment: dict, roles, table_name: str, cfg, version: str) -> str:
    lines = [f"# catvec finetune {version}", "",
             f"- table: `{table_name}`, target `{roles.target}` ({roles.task})",
             f"- categorical: {', '.join(roles.cat_cols) or 'none'}; continuous: {', '.join(roles.cont_cols) or 'none'}",
             "- pretrained: " + (", ".join(f"{c} <- `{d}`" for c, d in roles.pretrained.items()) or "none"),
             f"- mode {cfg.mode}, lr {cfg.lr:g}, embedding_lr {cfg.embedding_lr:g}, oov_init {cfg.oov_init}, "
             f"seed {cfg.seed}", "", "## Validation (best epoch)", "", "```", *comparison_lines(metrics), "```", ""]
    if alignment:
        lines += ["## Alignment", "", *(f"- {line}" for line in alignment_lines(alignment)), ""]
    return "\n".join(lines)


def alignment_lines(alignment: dict) -> list[str]:
    """One line per pretrained column from its AlignmentReport JSON."""
    lines = []
    for col, rep in alignment.items():
        rows = f", {rep['row_coverage']:.1%} of rows" if rep.get("row_coverage") is not None else ""
        lines.append(f"{col}: {rep['hits']}/{rep['vocab_size']} vocab entries have a pretrained vector, "
                     f"{rep['table_value_hits']}/{rep['table_values']} table values{rows}; "
                     f"{rep['pretrained_not_in_table']} pretrained keys have no label; OOV init {rep['oov_init']}")
    return lines
