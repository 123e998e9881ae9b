"""What `catvec finetune` prints and ships: the comparison lines and the shipped deployment."""

from pathlib import Path

import yaml

from catvec.base.config import build_config

from catvec.finetuning.config import FinetuneConfig
from catvec.reports.finetune_report import comparison_lines

REPO = Path(__file__).resolve().parents[2]


def run_metrics(value: float, mode: str) -> dict:
    best = {"epoch": 1, "val_loss": 0.1, "val_auc": value}
    return {"mode": mode, "best_epoch": 1, "best": best, "history": [best]}


def test_equal_scores_read_as_a_tie_not_as_a_winner():
    metrics = {**run_metrics(1.0, "finetune"), "main_metric": "val_auc", "scratch": run_metrics(1.0, "scratch"),
               "comparison": {"metric": "val_auc", "pretrained": 1.0, "scratch": 1.0, "better": "tie"}}
    last = comparison_lines(metrics)[-1]
    assert last.endswith("-> tie") and "is better" not in last
    metrics["comparison"].update(scratch=0.9, better="pretrained")
    assert comparison_lines(metrics)[-1].endswith("-> pretrained is better")


def test_shipped_finetune_deployment_names_its_columns_and_leaves_out_the_leak():
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    params = next(d["parameters"] for d in deployments if d["entrypoint"].startswith("flows/finetune.py"))
    cfg = build_config(FinetuneConfig, **params)
    header = (REPO / cfg.table).read_text().splitlines()[0].split(",")
    used = {*cfg.cat_cols.split(","), *cfg.cont_cols.split(",")}
    assert "segment" in header and "segment" not in used
    assert used <= set(header) and cfg.target not in used


def test_the_auto_line_names_the_blend_when_there_is_one():
    from catvec.reports.finetune_report import auto_line

    chosen = {"hidden": [128, 64], "dropout": 0.1, "mode": "finetune", "solver": "adam", "weight_decay": 1e-4,
              "normalize": "none", "class_weight": "none"}
    auto = {"chosen": chosen, "metric": "auc", "candidates": [{}] * 11}
    assert auto_line(auto).endswith("best auc of 11 candidates")
    auto["blend"] = {"members": 8, "k": 25, "weight": 0.3, "scale": 1.0}
    assert auto_line(auto).endswith("best auc of 11 candidates; blend of 8 candidates, kNN vote k 25 at weight 0.3")
    auto["blend"] = {"members": 8, "weight": 0.0}        # no vote chosen (too few rows for the smallest k)
    assert auto_line(auto).endswith("; blend of 8 candidates")
