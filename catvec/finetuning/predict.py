"""Scoring new rows with a model directory: `predict(model_dir, table, out)`.

Also available as `catvec.finetuning.pipeline.predict`; `catvec predict` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from catvec.base.errors import CatvecError
from catvec.base.writes import check_writable, describe_os_error


@dataclass
class PredictResult:
    path: Path
    rows: int


def predict(model_dir, table, out) -> PredictResult:
    """Score the rows of `table` (file or DataFrame) with a model dir; write CSV or Parquet.

    The output holds the table's columns plus `prediction` (and class probabilities p_<class>).
    Unseen categories go to <unk>; a missing feature column is an error.
    Example: predict("models/latest", "new_rows.csv", "scored.csv")
    """
    import polars as pl

    from catvec.finetuning.modeldir import load_model, model_inputs, output_columns
    from catvec.finetuning.labeled import read_table, require_columns
    from catvec.finetuning.training import predict_output

    out = Path(out)
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise CatvecError(f"output {out}: use a .csv or .parquet file name")
    check_writable(out, "--out", file=True)
    loaded = load_model(model_dir)
    frame, name, _ = read_table(table)
    if frame.height == 0:
        raise CatvecError(f"{name}: the table has no rows")
    require_columns(frame, loaded.roles.cat_cols + loaded.roles.cont_cols, name, "feature column")
    x_cat, x_cont = model_inputs(loaded, frame, name)
    # --blend: the same members and kNN vote as in training
    output = (loaded.blend.output(loaded.model, x_cat, x_cont) if loaded.blend is not None
              else predict_output(loaded.model, x_cat, x_cont))
    columns = output_columns(loaded, output)
    result = frame.with_columns([pl.Series(k, v) for k, v in columns.items()])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        if out.suffix.lower() == ".csv":
            result.write_csv(tmp)
        else:
            result.write_parquet(tmp)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CatvecError(f"cannot write {out} ({describe_os_error(exc)})") from None
    return PredictResult(path=out, rows=frame.height)
