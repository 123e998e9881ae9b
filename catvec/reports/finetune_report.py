"""Every text about a finetune run, rendered from what it wrote (metrics.json, alignment.json).

    finetune_markdown(metrics, ...)       report.md of a model version
    comparison_lines / alignment_lines    the lines `catvec finetune` prints (also in report.md)
    auto_line(auto)                       what --auto chose
    alignment_rows(alignment)             alignment.json as table rows (a Prefect table artifact)
"""

from __future__ import annotations

ALIGNMENT_COLUMNS = ("vocab_size", "hits", "misses", "entry_coverage", "row_coverage", "value_coverage",
                     "pretrained_keys", "pretrained_unused", "oov_init")


def finetune_markdown(metrics: dict, alignment: dict, roles, table_name: str, setup, version: str) -> str:
    """report.md of a model version; setup: the main fit's settings (init, model, fit groups)."""
    init, fit = setup.init, setup.fit
    lines = [f"# catvec finetune {version}", "",
             f"- table: `{table_name}`, target `{roles.target}` ({roles.task})",
             f"- categorical: {', '.join(roles.cat_cols) or 'none'}; continuous: {', '.join(roles.cont_cols) or 'none'}",
             "- pretrained: " + (", ".join(f"{c} <- `{d}`" for c, d in roles.pretrained.items()) or "none"),
             f"- mode {init.mode}, lr {fit.lr:g}, embedding_lr {fit.embedding_lr:g}, oov_init {init.oov_init}, "
             f"seed {fit.seed}", *([f"- {auto_line(metrics['auto'])}"] if "auto" in metrics else []),
             "", "## Validation (best epoch)", "", "```", *comparison_lines(metrics), "```", ""]
    if alignment:
        lines += ["## Alignment", "", *(f"- {line}" for line in alignment_lines(alignment)), ""]
    return "\n".join(lines)


def comparison_lines(metrics: dict) -> list[str]:
    """Side-by-side lines for the terminal and report.md: the runs, the baselines on the
    frozen vectors, then one verdict per comparison on the main metric."""
    name = metrics["main_metric"]
    keys = [k for k in metrics["best"] if k.startswith("val_")]
    keys += [k for k in metrics.get("test", {}) if k == "test_" + name.removeprefix("val_")]
    runs = [(metrics["mode"], metrics)] + ([("scratch", metrics["scratch"])] if "scratch" in metrics else [])
    lines = [f"{'run':<12} {'best epoch':>10} " + " ".join(f"{k:>12}" for k in keys)]
    for label, run in runs:
        values = {**run["best"], **run.get("test", {})}
        lines.append(f"{label:<12} {run['best_epoch']:>10} " + " ".join(_cell(values.get(k)) for k in keys))
    for label, base in metrics.get("baselines", {}).items():
        setting = ", ".join(f"{k} {v:g}" for k, v in base["settings"].items())
        lines.append(f"{label:<12} {setting:>10} " + " ".join(_cell(base["best"].get(k)) for k in keys))
    c = metrics.get("comparison")
    lines += [f"note: {note}" for note in metrics.get("notes", [])]
    if c:
        name = c["metric"]
        lines.append("verdicts on the test split" if c.get("split") == "test" else
                     "verdicts on the validation split, which also chose each run's settings "
                     "(no test rows: mark some with --split-col)")
    if c and "scratch" in c:
        lines.append(f"{name}: pretrained {_cell(c['pretrained']).strip()} vs scratch {_cell(c['scratch']).strip()} "
                     + _verdict(c["better"]))
    for label, vs in (c or {}).get("baselines", {}).items():
        lines.append(f"{name}: pretrained {_cell(c['pretrained']).strip()} vs {label} {_cell(vs['value']).strip()} "
                     + _verdict(vs["better"]))
    return lines


def auto_line(auto: dict) -> str:
    """metrics.json's "auto" record -> one line: what --auto chose, on which metric."""
    c = auto["chosen"]
    head = f"MLP {c['hidden']} (dropout {c['dropout']:g})" if c["hidden"] else "linear head"
    line = (f"auto: {head}, {c['mode']}, {c['solver']}, weight_decay {c['weight_decay']:g}, normalize {c['normalize']}, "
            f"class_weight {c['class_weight']}; best {auto['metric']} of {len(auto['candidates'])} candidates")
    return line + blend_text(auto.get("blend"))


def blend_text(blend: dict | None) -> str:
    """metrics.json's "auto" / "blend" record -> the tail of the auto line ('' without one)."""
    if not blend:
        return ""
    vote = f", kNN vote k {blend['k']} at weight {blend['weight']:g}" if "k" in blend else ""
    return f"; blend of {blend['members']} candidates{vote}"


def _verdict(better: str) -> str:
    if better == "unknown":
        return "-> not comparable"
    return "-> tie" if better == "tie" else f"-> {better} is better"


def alignment_lines(alignment: dict) -> list[str]:
    """One line per pretrained column from its AlignmentReport JSON."""
    lines = []
    for col, rep in alignment.items():
        rows = f", {rep['row_coverage']:.1%} of rows" if rep.get("row_coverage") is not None else ""
        lines.append(f"{col}: {rep['hits']}/{rep['vocab_size']} vocab entries have a pretrained vector, "
                     f"{rep['table_value_hits']}/{rep['table_values']} table values{rows}; "
                     f"{rep['pretrained_not_in_table']} pretrained keys have no label; OOV init {rep['oov_init']}"
                     + (f"; {rep['bucket_hits']}/{rep['hash_buckets']} hash buckets start from pretrained means"
                        if rep.get("hash_buckets") else ""))
    return lines


def alignment_rows(alignment: dict) -> list[dict]:
    """{column: AlignmentReport JSON} -> one table row per column (floats to 4 places)."""
    rows = []
    for column, report in alignment.items():
        row = {"column": column, **{k: report.get(k) for k in ALIGNMENT_COLUMNS}}
        rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return rows


def _cell(value) -> str:
    return f"{value:>12.4f}" if value is not None else f"{'n/a':>12}"
