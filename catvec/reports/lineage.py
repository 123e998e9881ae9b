"""The text about a version and its parent: alignment, drift beside seed noise, the gate.

    parent_lines(manifest)   report.md's block on the parent (catvec.reports.render)
    gate_lines(manifest)     the terminal's gate lines
    gate_verdict(gate)       promoted / refused / kept as a candidate, in one line
    gate_rows / drift_rows   the same as table rows (Prefect table artifacts)
"""

from __future__ import annotations


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
