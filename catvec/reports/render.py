"""Every text catvec shows about a run, rendered from what the run wrote (its manifest,
metrics.json, alignment.json), so no report says anything the files do not hold.

    pretrain_markdown(manifest, images)   report.md of a pretrain version
    pretrain_summary(manifest)            the lines `catvec pretrain` prints
    quality_table(quality)                next-item quality (report.md, `catvec evaluate`)
    finetune_markdown(metrics, ...)       report.md of a model version
    comparison_lines / alignment_lines    the lines `catvec finetune` prints (also in report.md)
    artifact_markdown(directory, name)    a version's report.md plus links to its files: the
                                          Prefect artifact of either flow
    alignment_rows(alignment)             alignment.json as table rows (a Prefect table artifact)
    drift_rows(manifest)                  a version's drift from its parent, beside seed noise (ditto)
"""

from __future__ import annotations

from pathlib import Path

from catvec.base.layout import DRIFT_FILE, LINKED_FILES, REPORT_FILE

# the parameter groups report.md lists (a manifest's params_by_group names their fields)
REPORTED_GROUPS = ("sequences", "skipgram", "scoring")
CORPUS_COLUMNS = ("events_read", "events_dropped", "users", "sequences", "tokens", "vocab_size")
ALIGNMENT_COLUMNS = ("vocab_size", "hits", "misses", "entry_coverage", "row_coverage", "value_coverage",
                     "pretrained_keys", "pretrained_unused", "oov_init")


# ---- pretrain ---------------------------------------------------------------------

def write_report(directory, manifest: dict, images: list[str] = ()) -> Path:
    """Write report.md into `directory` and return its path."""
    from catvec.base.store import writing

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


def parent_lines(manifest: dict) -> list[str]:
    """Alignment, drift per band beside seed noise, new and dropped keys, the gate's decision."""
    lines = []
    align = manifest.get("alignment")
    if align:
        if align.get("applied"):
            lines.append(f"- aligned to {manifest['parent']} on {align['anchors']} anchors (seen >= {align['min_count']} "
                         f"times in both): median cosine {align['median_cosine_before']} before, "
                         f"{align['median_cosine']} after; residual {align['residual']}")
        else:
            lines.append(f"- not aligned: {align.get('reason')}")
    drift = manifest.get("drift")
    if drift:
        lines.append(f"- keys: {drift['shared_keys']} shared, {drift['new']} new "
                     f"({_share(drift.get('new_traffic'))} of the traffic), {drift['dropped']} dropped "
                     f"({_share(drift.get('dropped_traffic'))} of the parent's)")
        if "warmed" in drift:
            lines.append(f"- cold keys: {drift['cold']} in this version; {drift['warmed']} cold in the parent now "
                         "have history and learned vectors")
        noise = (drift.get("noise") or {}).get("bands", {})
        lines += ["", f"Neighbour overlap@10 with the parent and aligned cosine, beside seed noise (two seeds on the "
                      f"{'parent' if drift.get('noise_from') == 'parent' else 'same'}'s data):", "",
                  "| keys seen | keys | overlap@10 | seed noise overlap@10 | cosine | seed noise cosine |",
                  "|---|---|---|---|---|---|"]
        for name, band in drift["bands"].items():
            n = noise.get(name, {})
            lines.append(f"| {name} | {band['keys']} | {band['overlap']} | {n.get('overlap', '-')} | "
                         f"{_num(band['cosine'])} | {_num(n.get('cosine'))} |")
        anchors = drift.get("anchors", {})
        lines.append(f"| anchors (>= {manifest['params'].get('align_min_count')}) | {anchors.get('keys')} | "
                     f"{anchors.get('overlap')} | {(drift.get('noise') or {}).get('anchors', {}).get('overlap', '-')} | "
                     f"{_num(anchors.get('cosine'))} | {_num((drift.get('noise') or {}).get('anchors', {}).get('cosine'))} |")
    parent_quality = manifest.get("parent_quality")
    if parent_quality and manifest.get("quality"):
        mine, theirs = manifest["quality"]["vectors"]["test"], parent_quality["vectors"]["test"]
        lines += ["", f"- held-out HR@10 on this version's test items: {mine['hr']:.4f}, the parent's {theirs['hr']:.4f}"]
    validation = manifest.get("validation")
    if validation:
        mine, theirs = validation["vectors"]["vectors"]["valid"], validation["parent"]["vectors"]["valid"]
        lines += ["", f"- validation HR@10 on the same {validation['lines']} sequences (a seeded sample of "
                      f"{validation['tokens']} tokens of the corpus, each sequence's last item): {mine['hr']:.4f}, "
                      f"the parent's {theirs['hr']:.4f}"]
    gate = manifest.get("gate")
    if gate:
        lines += ["", f"- promotion gate: {gate_verdict(gate)}"]
        rows = gate_rows(manifest)
        if rows:
            lines += ["", "| check | figure | threshold | result |", "|---|---|---|---|"]
            lines += [f"| {r['check']} | {r['figure']} | {r['threshold']} | {r['result']} |" for r in rows]
    return lines


def gate_verdict(gate: dict) -> str:
    """promoted / promoted (forced past: ...) / refused: ... / kept as a candidate: ..."""
    if gate.get("held"):
        return f"kept as a candidate: {gate['held']}"
    if gate.get("forced"):
        return f"promoted (forced past: {'; '.join(gate['reasons'])})"
    return "promoted" if gate.get("promoted") else f"refused, kept as a candidate: {'; '.join(gate['reasons'])}"


def gate_lines(manifest: dict) -> list[str]:
    """The terminal's gate lines: each check with its figure and threshold, then the decision."""
    gate = manifest.get("gate")
    if not gate:
        return []
    lines = [f"gate: {c['line']}{'' if c['passed'] else '  <- FAILED'}"
             for c in (gate.get("checks") or {}).values() if isinstance(c, dict) and "line" in c]
    return lines + [f"gate: {gate_verdict(gate)}"]


def gate_rows(manifest: dict) -> list[dict]:
    """The gate's checks as table rows (report.md, a Prefect table artifact): one per check,
    its figure, its threshold and whether it passed; [] without a gate."""
    rows = []
    for name, c in ((manifest.get("gate") or {}).get("checks") or {}).items():
        if not isinstance(c, dict) or "line" not in c:
            continue
        rows.append({"check": name, "figure": "cannot compare" if c["figure"] is None else c["figure"],
                     "threshold": c["threshold"], "result": "pass" if c["passed"] else "FAIL",
                     "detail": c["line"]})
    return rows


def drift_rows(manifest: dict) -> list[dict]:
    """A manifest's drift as table rows (a Prefect table artifact): one per frequency band and
    one for the anchors, each beside its seed-noise value; [] without a parent."""
    drift = manifest.get("drift") or {}
    noise = drift.get("noise") or {}
    rows = []
    for name, band in [*(drift.get("bands") or {}).items(), ("anchors", drift.get("anchors"))]:
        if not band:
            continue
        other = noise.get("anchors", {}) if name == "anchors" else (noise.get("bands") or {}).get(name, {})
        rows.append({"keys seen": name, "keys": band.get("keys"), "overlap@10": band.get("overlap"),
                     "seed noise overlap@10": other.get("overlap"), "cosine": band.get("cosine"),
                     "seed noise cosine": other.get("cosine")})
    return rows


def _num(value) -> str:
    return "-" if value is None else str(value)


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


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


# ---- finetune ---------------------------------------------------------------------

def finetune_markdown(metrics: dict, alignment: dict, roles, table_name: str, cfg, version: str) -> str:
    lines = [f"# catvec finetune {version}", "",
             f"- table: `{table_name}`, target `{roles.target}` ({roles.task})",
             f"- categorical: {', '.join(roles.cat_cols) or 'none'}; continuous: {', '.join(roles.cont_cols) or 'none'}",
             "- pretrained: " + (", ".join(f"{c} <- `{d}`" for c, d in roles.pretrained.items()) or "none"),
             f"- mode {cfg.mode}, lr {cfg.lr:g}, embedding_lr {cfg.embedding_lr:g}, oov_init {cfg.oov_init}, "
             f"seed {cfg.seed}", *([f"- {auto_line(metrics['auto'])}"] if "auto" in metrics else []),
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
    return (f"auto: {head}, {c['mode']}, {c['solver']}, weight_decay {c['weight_decay']:g}, normalize {c['normalize']}, class_weight "
            f"{c['class_weight']}; best {auto['metric']} of {len(auto['candidates'])} candidates")


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


# ---- both --------------------------------------------------------------------------

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


def _cell(value) -> str:
    return f"{value:>12.4f}" if value is not None else f"{'n/a':>12}"
