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
