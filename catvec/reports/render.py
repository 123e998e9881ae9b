"""report.md for a pretrain version: what went in, what came out, how good it is.

The report is written from the manifest alone (plus the names of the pictures next to
it), so it says nothing the manifest does not hold.

    write_report(version_dir, manifest, images=["vector_map.png"])
"""

from __future__ import annotations

from pathlib import Path

REPORT_FILE = "report.md"
TRAINING_PARAMS = ("dim", "window", "epochs", "negative", "ns_exponent", "sample", "alpha", "min_count", "seed")


def write_report(directory, manifest: dict, images: list[str] = ()) -> Path:
    """Write report.md into `directory` and return its path."""
    path = Path(directory) / REPORT_FILE
    path.write_text("\n".join(report_lines(manifest, images)) + "\n", encoding="utf-8")
    return path


def report_lines(manifest: dict, images=()) -> list[str]:
    corpus = manifest.get("corpus", {})
    training = manifest.get("training", {})
    params = manifest.get("params", {})
    lines = [f"# catvec pretrain {manifest.get('version', '')}", ""]
    lines += [f"- created: {manifest.get('created_at', '')}",
              f"- parent version: {manifest.get('parent') or 'none'}",
              f"- input: `{manifest.get('input', {}).get('path', '')}` ({manifest.get('input', {}).get('checksum', '')[:19]}...)"]
    if corpus:
        lengths = corpus.get("lengths", {})
        lines += [f"- corpus: {corpus.get('events_read')} events read, {corpus.get('tokens')} tokens in "
                  f"{corpus.get('lines')} sequences of {corpus.get('users')} users, {corpus.get('vocab_size')} items; "
                  f"median length {lengths.get('p50', '')}"]
        if corpus.get("heldout"):
            lines.append(f"- held out of training: {corpus['heldout']['events']} events of "
                         f"{corpus['heldout']['users']} users (holdout = {params.get('holdout')})")
    if training:
        lines.append(f"- trained {training.get('vocab_size')} vectors in {training.get('train_seconds')}s "
                     f"({training.get('workers')} worker(s))")
    lines += ["", "## Parameters", "", "| " + " | ".join(TRAINING_PARAMS) + " |",
              "|" + "---|" * len(TRAINING_PARAMS),
              "| " + " | ".join(str(params.get(p, "")) for p in TRAINING_PARAMS) + " |"]
    quality = manifest.get("quality")
    if quality:
        lines += ["", "## Next-item quality", ""] + quality_table(quality)
    for image in images:
        lines += ["", "## Vector map" if "map" in image else f"## {image}", "", f"![{image}]({image})"]
    epochs = training.get("epochs") or []
    if epochs:
        lines += ["", "## Training loss", "", "| epoch | loss | seconds |", "|---|---|---|"]
        lines += [f"| {e['epoch']} | {e['loss']:.4f} | {e['seconds']} |" for e in epochs]
    return lines


def quality_table(quality: dict) -> list[str]:
    """The quality block of a manifest as a markdown table (one row per split and ranker)."""
    k = quality.get("k", 10)
    lines = [f"Leave-last-out next-item prediction over all items, seen items excluded; "
             f"query = mean of the last {quality.get('query_last', 1)} item(s); "
             f"{quality.get('users', 0)} users, {quality.get('target_coverage', 0):.1%} of targets have a vector.",
             "", f"| split | ranker | HR@{k} | NDCG@{k} |", "|---|---|---|---|"]
    for role in quality.get("vectors", {}):
        for ranker in ("vectors", "popularity"):
            m = quality[ranker][role]
            lines.append(f"| {role} | {ranker} | {m['hr']:.4f} | {m['ndcg']:.4f} |")
    return lines


# ---- finetune ---------------------------------------------------------------------

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
