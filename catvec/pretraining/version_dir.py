"""The files of a new pretrain version: its manifest and everything written into staging.

    build_manifest   kind, version, parent, libraries, parameters, input, corpus, training, timings
    export_version   weight files, held-out items, vector map, drift plot, report.md and the
                     interop exports (--export) into the staging directory; step "export"

The names of the files are catvec.base.layout's; the manifest and COMPLETE are finished by
catvec.base.vectors.save_vectors.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from datetime import datetime, timezone
from pathlib import Path

from catvec.base.config import export_formats, group_names
from catvec.base.layout import DRIFT_FILE, HOLDOUT_FILE, MAP_FILE, PROJECTOR_FILES, WORD2VEC_FILE
from catvec.base.steps import step
from catvec.pretraining.config import AttributeOptions, Output, PretrainConfig

log = logging.getLogger(__name__)


def build_manifest(cfg: PretrainConfig, checksum: str, corpus, train_stats: dict, timings: dict,
                   parent: str | None, version: str) -> dict:
    """A new version's manifest: what it was trained on, with which settings and libraries, and
    how long each part took (the pipeline adds lineage, tuning, scoring and quality)."""
    import gensim
    import numpy
    import polars

    import catvec

    return {
        "kind": "pretrain",
        "version": version,
        "parent": parent,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "libraries": {"catvec": catvec.__version__, "gensim": gensim.__version__, "numpy": numpy.__version__,
                      "polars": polars.__version__, "python": platform.python_version()},
        "params": dataclasses.asdict(cfg),
        "params_by_group": group_names(PretrainConfig),  # report.md lists the settings by group
        "input": {"path": str(cfg.events_path), "checksum": checksum},
        "corpus": corpus.stats,
        "training": train_stats,
        "timings": timings,
    }


@step(name="export")
def export_version(vectors, manifest: dict, staging: Path, output: Output, attributes: AttributeOptions, item_col: str,
                   corpus=None, holdout: str = "none") -> Path:
    """Write the weight files, the held-out items (the corpus's, cut by `holdout`), the map
    (coloured by `attributes`, read by `item_col`), report.md and any interop exports
    (`output`) into the staging directory; all but the exports are checksummed."""
    from catvec.reports.render import write_report
    from catvec.base.vectors import export_projector, export_word2vec, save_vectors

    extra = []
    if corpus is not None and corpus.heldout is not None:
        from catvec.pretraining.evaluation import save_heldout

        save_heldout(corpus.heldout, staging / HOLDOUT_FILE, holdout)
        extra.append(HOLDOUT_FILE)
    wanted = bool(attributes.item_attributes) if output.vector_map is None else output.vector_map
    draw_map = wanted and len(vectors) >= 3  # PCA of fewer points says nothing
    if wanted and not draw_map:
        log.info("vector map skipped: only %d vectors", len(vectors))
    if draw_map:
        from catvec.reports.plots import plot_vector_map, read_item_attributes

        colours = read_item_attributes(attributes.item_attributes, item_col, attributes.attribute_col) \
            if attributes.item_attributes else None
        plot_vector_map(vectors, staging / MAP_FILE, attributes=colours, title=f"catvec {manifest.get('version', '')}")
        extra.append(MAP_FILE)
    images = [MAP_FILE] if draw_map else []
    # a child version pays a training for its drift baseline already: its plot is drawn unless
    # pictures were turned off (--no-vector-map)
    if (manifest.get("drift") or {}).get("bands") and output.vector_map is not False:
        from catvec.reports.plots import plot_drift

        plot_drift(manifest["drift"], staging / DRIFT_FILE)
        extra.append(DRIFT_FILE)
        images.append(DRIFT_FILE)
    extra.append(write_report(staging, manifest, images=images).name)
    files = []
    for fmt in export_formats(output.export):
        if fmt == "word2vec":
            export_word2vec(vectors, staging / WORD2VEC_FILE)
            files.append(WORD2VEC_FILE)
        elif fmt == "projector":
            export_projector(vectors, staging)
            files += list(PROJECTOR_FILES)
    manifest = dict(manifest, exports=files)
    save_vectors(vectors, staging, manifest, extra_files=extra)
    return staging
