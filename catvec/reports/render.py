"""Every text catvec shows about a pretrain run, rendered from what the run wrote (its
manifest), so no report says anything the files do not hold.

    pretrain_markdown(manifest, images)   report.md of a pretrain version
    pretrain_summary(manifest)            the lines `catvec pretrain` prints
    quality_table(quality)                next-item quality (report.md, `catvec evaluate`)
    artifact_markdown(directory, name)    a version's report.md plus links to its files: the
                                          Prefect artifact of either flow

The block about the parent (alignment, drift, the gate) is catvec.reports.lineage's; a
finetune run's texts are catvec.reports.finetune_report's.
"""

from __future__ import annotations

from pathlib import Path

from catvec.base.layout import DRIFT_FILE, LINKED_FILES, REPORT_FILE
from catvec.reports.lineage import gate_lines, parent_lines

# the parameter groups report.md lists (a manifest's params_by_group names their fields)
REPORTED_GROUPS = ("sequences", "skipgram", "scoring")
CORPUS_COLUMNS = ("events_read", "events_dropped", "users", "sequences", "tokens", "vocab_size")


def write_report(directory, manifest: dict, images: list[str] = ()) -> Path:
    """Write report.md into `directory` and return its path."""
    from catvec.base.writes import writing

    path = Path(directory) / REPORT_FILE
    with writing(path):
        path.write_text(pretrain_markdown(manifest, images), encoding="utf-8")
    return path


def pretrain_markdown(manifest: dict, images=()) -> str:
    corpus = manifest.get("corpus", {})
    training = manifest.get("training", {})
    params = manifest.get("params", {})
    source = manifest.get("input", {})
    lines = [f"# catvec pretrain {manifest.get('version', '')}", "",
             f"- created: {manifest.get('created_at', '')}",
             f"- parent version: {manifest.get('parent') or 'none'}",
             f"- input: `{source.get('path', '')}` ({source.get('checksum', '')[:19]}...)",
             f"- corpus cache: {'hit' if manifest.get('timings', {}).get('corpus_cached') else 'extracted'}"]
    if corpus:
        lengths = corpus.get("lengths", {})
        lines.append(f"- sequences: {corpus.get('lines')} lines, median length {lengths.get('p50', '')}, "
                     f"max {lengths.get('max', '')}")
        held = corpus.get("heldout")
        if held:
            unit = "baskets" if "baskets" in held else "users"
            lines.append(f"- held out of training: {held['events']} events of {held[unit]} {unit} "
                         f"(holdout = {params.get('holdout')})")
    if training:
        lines.append(f"- trained {training.get('vocab_size')} vectors in {training.get('train_seconds')}s "
                     f"({training.get('workers')} worker(s), {training.get('words_per_second', 0):,} words/s)")
    lines += [f"- {line}" for line in cold_start_lines(manifest)]
    if corpus:
        lines += ["", "## Corpus", "", _row(CORPUS_COLUMNS), _rule(CORPUS_COLUMNS),
                  _row(corpus.get(c, "") for c in CORPUS_COLUMNS)]
    lines += ["", "## Parameters", "", *parameter_rows(params, manifest.get("params_by_group"))]
    tuning = manifest.get("tuning") or {}
    if tuning:
        lines += ["", "## Settings chosen", "", *tuning_lines(manifest), *popularity_warnings(manifest)[:1]]
    if tuning.get("trials"):
        lines += ["", "| trial | window | epochs | ns_exponent | sample | best scorer@support | valid HR@10 | valid NDCG@10 | seconds |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for trial in tuning["trials"]:
            key, m = max(trial["scores"].items(), key=lambda kv: kv[1]["ndcg"])
            p = trial["params"]
            lines.append(f"| {trial['trial']} | {p['window']} | {p['epochs']} | {p['ns_exponent']} | {p['sample']} | "
                         f"{key} | {m['hr']:.4f} | {m['ndcg']:.4f} | {trial['seconds']} |")
    quality = manifest.get("quality")
    if quality:
        lines += ["", "## Quality on held-out items", ""] + quality_table(quality)
    if manifest.get("parent") and ("drift" in manifest or "alignment" in manifest):
        lines += ["", "## Against the parent", "", *parent_lines(manifest)]
    for image in images:
        if image == DRIFT_FILE:
            lines += ["", f"![drift per frequency band]({image})"]
            continue
        lines += ["", "## Vector map" if "map" in image else f"## {image}", "", f"![{image}]({image})"]
    epochs = training.get("epochs") or []
    if epochs:
        lines += ["", "## Training loss", "", "| epoch | loss | seconds |", "|---|---|---|"]
        lines += [f"| {e['epoch']} | {e['loss']:.4f} | {e['seconds']} |" for e in epochs]
    return "\n".join(lines) + "\n"


def pretrain_summary(manifest: dict) -> list[str]:
    """What `catvec pretrain` prints after a run."""
    c = manifest["corpus"]
    t = manifest["training"]
    dropped = ", ".join(f"{k}={v}" for k, v in c.get("dropped", {}).items() if v) or "none"
    lengths = c["lengths"]
    last = t["epochs"][-1] if t["epochs"] else {}
    # basket mode has no users: its sequences are the baskets
    who = f"baskets {c['sequences']}" if manifest["params"].get("basket_col") else \
        f"users {c['users']}, sequences {c['sequences']}"
    lines = [
        f"events read {c['events_read']}, dropped {c['events_dropped']} ({dropped})",
        f"{who} ({c['lines']} lines, {c['sequences_split']} split), tokens {c['tokens']}, items {c['vocab_size']}",
        f"sequence length min {lengths['min']} median {lengths['p50']:g} p90 {lengths['p90']:g} max {lengths['max']}",
        f"trained {t['vocab_size']} vectors x {manifest['params']['dim']} in {t['train_seconds']:.2f}s "
        f"({t['words_per_second']:,} words/s, {t['workers']} worker(s)); final loss {last.get('loss', float('nan')):.4f}",
        f"version {manifest['version']} (parent {manifest['parent'] or 'none'})",
    ]
    lines += cold_start_lines(manifest)
    align, drift = manifest.get("alignment") or {}, manifest.get("drift") or {}
    if align.get("applied"):
        lines.append(f"aligned to the parent on {align['anchors']} anchors: median cosine {align['median_cosine_before']} "
                     f"-> {align['median_cosine']}")
    if drift.get("overlap_ratio") is not None:
        lines.append(f"drift: neighbour overlap@10 with the parent {drift['anchors']['overlap']}, "
                     f"{drift['overlap_ratio']}x seed noise; {drift['new']} new keys, {drift['dropped']} dropped")
    if drift.get("not_compared"):
        lines.append(f"drift: not measured ({drift['not_compared']})")
    lines += gate_lines(manifest)
    lines += tuning_lines(manifest)
    quality = manifest.get("quality")
    if quality:
        held = c.get("heldout", {})
        unit = "baskets" if "baskets" in held else "users"
        lines.append(f"held out {held.get('events', 0)} events of {held.get(unit, 0)} {unit} ({quality['holdout']})")
        for role, m in quality["vectors"].items():
            pop = quality["popularity"][role]
            lines.append(f"{role}: HR@{m['k']} {m['hr']:.4f} NDCG@{m['k']} {m['ndcg']:.4f} with {quality.get('scorer', 'cosine')} "
                         f"(popularity {pop['hr']:.4f} / {pop['ndcg']:.4f}: {popularity_ratio(m['hr'], pop['hr'])}, "
                         f"{m['users']} queries)")
    return lines + popularity_warnings(manifest)


def cold_start_lines(manifest: dict) -> list[str]:
    """How many keys got vectors composed from their attributes (no history), and from what."""
    cold = manifest.get("cold_start")
    if not cold:
        return []
    line = (f"cold keys: {cold['composed']} of the {cold['attribute_keys']} keys with attributes have no history "
            f"and got vectors composed from {', '.join(cold['columns'])}")
    if cold.get("composed") or cold.get("blended"):
        line += f" ({cold['features']} attribute features fitted on {cold['fitted_on']} keys)"
    elif cold.get("reason"):
        line += f" ({cold['reason']})"
    if cold.get("blended"):
        line += (f"; {cold['blended']} keys seen under 20 times blend their learned vectors with their composed "
                 f"ones (attribute_blend {(manifest.get('params') or {}).get('attribute_blend')})")
    return [line]


def tuning_lines(manifest: dict) -> list[str]:
    """One line on how the open settings were chosen (catvec.pretraining.autotune)."""
    tuning = manifest.get("tuning") or {}
    scoring = manifest.get("scoring") or {}
    chosen = ", ".join(f"{k}={v}" for k, v in _as_used(tuning.get("chosen") or {}, manifest).items())
    if tuning.get("ran"):
        w = tuning["winner"]
        pop = tuning["popularity"]
        return [f"tuned {chosen} in {tuning['seconds']:.0f}s ({len(tuning['trials'])} trainings on "
                f"{tuning['sample_events']} events; valid HR@10 {w['hr']:.4f}, popularity {pop['hr']:.4f}: "
                f"{popularity_ratio(w['hr'], pop['hr'])})"]
    if tuning:
        return [f"not tuned ({tuning.get('reason', '')}); scorer {scoring.get('scorer', 'cosine')}, "
                f"min_support {scoring.get('min_support', 1)}" + (f"; {chosen}" if chosen else "")]
    return []


def _as_used(chosen: dict, manifest: dict) -> dict:
    """The chosen settings as training used them: in basket mode every item of a basket is
    context for the others (catvec.pretraining.skipgram), whatever the window setting."""
    if "window" in chosen and manifest.get("params", {}).get("basket_col"):
        longest = (manifest.get("corpus") or {}).get("lengths", {}).get("max", "?")
        return {**chosen, "window": f"the whole basket (largest {longest})"}
    return chosen


def popularity_ratio(hr: float, popular: float) -> str:
    return f"{hr / popular:.2f}x popularity" if popular > 0 else "popularity scores 0"


def popularity_warnings(manifest: dict) -> list[str]:
    """A warning line for each split where the vectors do not beat popularity."""
    out = []
    tuning = manifest.get("tuning") or {}
    if tuning.get("ran") and tuning["winner"]["hr"] <= tuning["popularity"]["hr"]:
        out.append(f"warning: on the validation split the vectors (HR@10 {tuning['winner']['hr']:.4f}) do not beat "
                   f"popularity ({tuning['popularity']['hr']:.4f}); recommend popular items, or add events")
    quality = manifest.get("quality") or {}
    for role, m in quality.get("vectors", {}).items():
        pop = quality["popularity"][role]
        if m["hr"] <= pop["hr"]:
            out.append(f"warning: on the {role} split the vectors (HR@10 {m['hr']:.4f}) do not beat popularity "
                       f"({pop['hr']:.4f}); try --scorer context or catvec tune")
    return out


def quality_table(quality: dict) -> list[str]:
    """The quality block of a manifest as a markdown table (one row per split and ranker)."""
    k = quality.get("k", 10)
    basket = quality.get("holdout") == "basket"
    query = "the rest of the basket" if basket else f"the last {quality.get('query_last', 1)} item(s)"
    lines = [("Complete-the-basket" if basket else "Leave-last-out next-item") + " prediction over all items, "
             f"query items excluded; query = {query}; "
             f"{quality.get('users', 0)} {'baskets' if basket else 'users'}, "
             f"{quality.get('target_coverage', 0):.1%} of targets have a vector; "
             f"default scorer {quality.get('scorer', 'cosine')}, min_support {quality.get('min_support', 1)}.",
             "", f"| split | ranker | HR@{k} | NDCG@{k} | HR vs popularity |", "|---|---|---|---|---|"]
    scorers = quality.get("scorers") or {quality.get("scorer", "cosine"): quality.get("vectors", {})}
    for role in quality.get("vectors", {}):
        pop = quality["popularity"][role]
        supports = quality.get("supports") or {}
        label = {n: n + (f", min_support {supports[n]}" if supports.get(n, 1) > 1 else "")
                 + (" (default)" if n == quality.get("scorer") else "") for n in scorers}
        for name, m in [*((label[n], r[role]) for n, r in scorers.items()),
                        ("popularity", pop)]:
            lines.append(f"| {role} | {name} | {m['hr']:.4f} | {m['ndcg']:.4f} | {popularity_ratio(m['hr'], pop['hr'])} |")
    return lines


def artifact_markdown(directory, title: str) -> str:
    """A version directory's report.md (or `title` alone) plus links to its files."""
    directory = Path(directory)
    report = directory / REPORT_FILE
    text = report.read_text(encoding="utf-8") if report.is_file() else f"# {title}\n"
    links = [f"- [{name}]({(directory / name).resolve().as_uri()})" for name in LINKED_FILES
             if (directory / name).is_file()]
    return text.rstrip("\n") + "\n\n## Files\n\n" + "\n".join(links) + "\n"


def parameter_rows(params: dict, by_group: dict | None) -> list[str]:
    """A table of the run's settings, one row per reported group (`name=value, ...`); a
    manifest without its groups (an older version) gets one row of every setting."""
    groups = {g: by_group[g] for g in REPORTED_GROUPS if g in by_group} if by_group else {"settings": list(params)}
    rows = [_row(("group", "settings")), _rule(("group", "settings"))]
    for group, names in groups.items():
        rows.append(_row((group, ", ".join(f"{n}={params[n]}" for n in names if n in params))))
    return rows


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _rule(cells) -> str:
    return "|" + "---|" * len(cells)

