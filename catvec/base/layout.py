"""The names of the files catvec writes: the one module that says what lies where.

An output directory OUT (pretrain's --out, finetune's --out):

    OUT/<version>/            complete versions (each has a COMPLETE marker, written last)
    OUT/latest -> <version>   a relative symlink, replaced atomically (rename)
    OUT/.staging/<version>/   runs in progress; moved to OUT/<version> when complete
    OUT/.cache/corpus-<key>/  the corpus cache: corpus.txt + corpus.json (+ holdout.json)
    OUT/promotions.json       every move of `latest`
    OUT/.lock                 held while `latest` moves

Every complete directory holds manifest.json (checksums of its files) and COMPLETE (the
manifest's checksum). A weight directory (pretrain) adds the vectors, the held-out items,
report.md, pictures and exports; its first gated child stores the seed-noise baseline
beside it (noise.json + noise.json.sha256). A model directory (finetune) holds the model's
weights, spec, vocabularies, metrics and alignment, and report.md.

Example: read_manifest(OUT / LATEST) reads OUT/latest/manifest.json
"""

from __future__ import annotations

from pathlib import Path

# ---- an output directory
LATEST = "latest"
STAGING = ".staging"
CACHE_DIR = ".cache"
PROMOTIONS = "promotions.json"
LOCK = ".lock"

# ---- every complete directory (weight dir, model dir)
MANIFEST = "manifest.json"
COMPLETE = "COMPLETE"
REPORT_FILE = "report.md"

# ---- a weight directory
VECTORS_FILE = "vectors.safetensors"
KEYS_FILE = "keys.json"
HOLDOUT_FILE = "holdout.json"
NOISE_FILE = "noise.json"           # the version's seed-noise baseline, written beside it by its first child
MAP_FILE = "vector_map.png"
DRIFT_FILE = "drift.png"
WORD2VEC_FILE = "vectors.w2v.txt"   # --export word2vec
PROJECTOR_FILES = ("vectors.tsv", "metadata.tsv")  # --export projector: vectors, then their keys

# ---- a corpus cache entry (OUT/.cache/corpus-<key>/)
CORPUS_TEXT = "corpus.txt"
CORPUS_META = "corpus.json"

# ---- a model directory
MODEL_WEIGHTS = "model.safetensors"
MODEL_SPEC = "model.json"
VOCABS_FILE = "vocabs.json"
METRICS_FILE = "metrics.json"
ALIGNMENT_FILE = "alignment.json"
KEY_STATS_FILE = "keystats.safetensors"   # --key-stats
BLEND_FILE = "blend.safetensors"          # --blend: the averaged candidates and the kNN vote
INITIAL_FILE = "initial.safetensors"      # the embeddings' starting rows
CURVES_FILE = "training_curves.png"
MODEL_FILES = [MODEL_WEIGHTS, MODEL_SPEC, VOCABS_FILE, METRICS_FILE, ALIGNMENT_FILE, REPORT_FILE]

# the files a flow artifact links to, when a run wrote them
LINKED_FILES = (REPORT_FILE, MAP_FILE, DRIFT_FILE, CURVES_FILE, METRICS_FILE)


def checksum_marker(path) -> Path:
    """The marker beside a checked state file: noise.json -> noise.json.sha256."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")
