"""Column roles of a labeled table: target, task, categorical / continuous columns, and
which categorical columns start from which pretrained weight file.

Given roles are checked; missing ones are inferred and the result is printed by the CLI:

- pretrained columns: the categorical column whose values best match the vectors' keys;
- categorical columns: the pretrained columns plus every column that is not numeric;
- continuous columns: every other numeric column;
- task: text targets or 2 values -> binary / multiclass, other numbers -> regression.
"""

from __future__ import annotations

import logging

from catvec.base.config import comma_list

from catvec.finetuning.config import Split, Table
from catvec.base.errors import CatvecError
from catvec.finetuning.labeled import TARGET_HINT, Roles, class_keys, is_numeric, numeric_column, require_columns

log = logging.getLogger(__name__)


def resolve_roles(frame, name: str, table: Table, split: Split, vectors: dict, uses_vectors: bool = True) -> Roles:
    """Check the named columns and infer the rest. vectors: weight dir -> Vectors;
    uses_vectors False (scratch mode without --compare): no column starts pretrained.
    Example: resolve_roles(frame, "labels.csv", Table.of(config), Split.of(config), {"artifacts/latest": v})"""
    if frame.height == 0:
        raise CatvecError(f"{name}: the table has no rows")
    if not table.target:
        raise CatvecError(f"{name}: no target given; pass --target with one of {', '.join(frame.columns)}")
    require_columns(frame, [table.target], name, "target column")
    reserved = {table.target, split.split_col} - {""}  # group_col may be a feature too
    cat_cols, cont_cols = comma_list(table.cat_cols), comma_list(table.cont_cols)
    pretrained = dict(table.pretrained_map)
    named = [c for c in (split.split_col, split.group_col) if c]
    require_columns(frame, cat_cols + cont_cols + list(pretrained) + named, name)
    for col in cat_cols + cont_cols + list(pretrained):
        if col in reserved:
            raise CatvecError(f"{name}: column {col!r} is the target or the split column; it cannot be a feature")
    both = set(cat_cols) & set(cont_cols)
    if both:
        raise CatvecError(f"{name}: column {sorted(both)[0]!r} is listed as both categorical and continuous")
    if uses_vectors:
        if not pretrained:
            pretrained = _best_pretrained(frame, name, cat_cols or [c for c in frame.columns if c not in reserved],
                                          table.vectors, vectors)
    else:
        pretrained = {}
    for col in pretrained:
        if col in cont_cols:
            raise CatvecError(f"{name}: column {col!r} uses pretrained vectors, so it cannot be continuous")
    if not cat_cols:
        cat_cols = list(pretrained) + [c for c in frame.columns if c not in reserved and c not in pretrained
                                       and c not in cont_cols and not is_numeric(frame, c)]
    else:
        cat_cols += [c for c in pretrained if c not in cat_cols]
    if not cont_cols and not table.cont_cols:
        cont_cols = [c for c in frame.columns if c not in reserved and c not in cat_cols and is_numeric(frame, c)]
    if not cat_cols and not cont_cols:
        raise CatvecError(f"{name}: no feature columns; pass --cat-cols and/or --cont-cols")
    for col in [table.target, *cat_cols, *cont_cols]:
        dtype = frame.schema[col]
        if dtype.is_nested():  # as text, every list of one shape would be one category
            raise CatvecError(f"{name}: column {col!r} has the type {dtype} (not one value per row); a feature or "
                              "target needs text or numbers: explode or flatten it, or leave it out with --cat-cols "
                              "and --cont-cols")
    task, classes = _task(frame, name, table.target, table.task)
    return Roles(target=table.target, task=task, cat_cols=cat_cols, cont_cols=cont_cols,
                 pretrained=pretrained, classes=classes)


def _best_pretrained(frame, name: str, candidates: list[str], vectors_dir: str, vectors: dict) -> dict[str, str]:
    from catvec.base.keys import normalize_keys

    source = vectors.get(vectors_dir)
    if source is None:
        return {}
    best, best_share = None, 0.0
    for col in candidates:
        values = set(normalize_keys(frame[col]).drop_nulls().unique().to_list())
        if not values:
            continue
        share = sum(1 for v in values if v in source.key_to_index) / len(values)
        if share > best_share:
            best, best_share = col, share
    if best is None:
        raise CatvecError(f"{name}: no column's values match the keys of {vectors_dir} "
                          f"(e.g. {', '.join(repr(k) for k in source.keys[:3])}); name it with --pretrained-cols")
    log.info("pretrained column: %s (%.0f%% of its values have a vector)", best, 100 * best_share)
    return {best: vectors_dir}


def _task(frame, name: str, target: str, given: str) -> tuple[str, list[str] | None]:
    numeric = is_numeric(frame, target)
    if given == "regression" or (given == "auto" and numeric):
        values = numeric_column(frame, target, name, hint=TARGET_HINT)
        distinct = len(set(values.tolist()))
        if distinct < 2:
            raise CatvecError(f"{name}: target {target!r} is constant ({values[0]:g} in every row); nothing to learn")
        if given == "regression" or distinct > 2:
            return "regression", None
    classes = class_keys(frame, target, name)
    if len(classes) < 2:
        what = repr(classes[0]) if classes else "empty"
        raise CatvecError(f"{name}: target {target!r} has a single class ({what}); "
                          f"a classifier needs at least two")
    task = given if given != "auto" else ("binary" if len(classes) == 2 else "multiclass")
    if task == "binary" and len(classes) != 2:
        raise CatvecError(f"{name}: task binary needs exactly 2 target values, {target!r} has {len(classes)}; "
                          f"use --task multiclass")
    return task, classes
