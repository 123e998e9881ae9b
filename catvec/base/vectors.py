"""`Vectors` (keys + float32 matrix), their weight files, and interop exports.

A weight directory (written through catvec.base.store's manifest helpers) holds:

    vectors.safetensors   tensor "vectors", float32 (n_keys, dim): input vectors;
                          "context", float32 (n_keys, dim): the skip-gram's output (context)
                          vectors, and "counts", int64 (n_keys,): training counts (both
                          optional: versions written before them load without them);
                          "cold", uint8 (n_keys,): 1 for a key with no history whose vectors
                          were composed from its attributes (catvec.base.attributes; optional,
                          count 0; a reader that does not know it ignores it)
    keys.json             the keys in row order (a JSON list of strings)
    manifest.json         format version, library versions, parameters, checksums, stats
    COMPLETE              written last; holds the manifest's sha256

Nothing on the load path unpickles: safetensors and JSON only. Every file listed in the
manifest is checked against its sha256 on load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from catvec.base.errors import CatvecError
from catvec.base.faults import fault_point
from catvec.base.keys import escape_key, unescape_key
from catvec.base.layout import KEYS_FILE, PROJECTOR_FILES, VECTORS_FILE
from catvec.base.manifest import finish_manifest, read_manifest, resolve_version_dir
from catvec.base.writes import fsync_file, write_json, writing

FORMAT = "catvec-vectors"
FORMAT_VERSION = 1
TENSOR_NAME = "vectors"
CONTEXT_TENSOR = "context"
COUNTS_TENSOR = "counts"
COLD_TENSOR = "cold"


@dataclass(eq=False)
class Vectors:
    """Pretrained keys and their vectors: row i of `matrix` is the vector of `keys[i]`."""

    keys: list[str]
    matrix: np.ndarray                 # (n_keys, dim) float32: input vectors
    context: np.ndarray | None = None  # (n_keys, dim) float32: context (output) vectors
    counts: np.ndarray | None = None   # (n_keys,) int64: training count of each key
    scorer: str = "cosine"             # the scorer the version recorded as best
    min_support: int = 1               # lists leave out keys seen fewer times
    supports: dict | None = None       # per scorer, when the version chose one for each
    cold: np.ndarray | None = None     # (n_keys,) bool: composed from attributes, no history

    def __post_init__(self):
        self.keys = list(self.keys)
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.keys):
            raise CatvecError(f"vectors: {len(self.keys)} keys but a matrix of shape {self.matrix.shape}")
        if self.context is not None:
            self.context = np.ascontiguousarray(self.context, dtype=np.float32)
            if self.context.shape != self.matrix.shape:
                raise CatvecError(f"vectors: context shape {self.context.shape} is not {self.matrix.shape}")
        if self.counts is not None:
            self.counts = np.ascontiguousarray(self.counts, dtype=np.int64)
            if self.counts.shape != (len(self.keys),):
                raise CatvecError(f"vectors: {len(self.counts)} counts for {len(self.keys)} keys")
        if self.cold is not None:
            self.cold = np.ascontiguousarray(self.cold, dtype=bool)
            if self.cold.shape != (len(self.keys),):
                raise CatvecError(f"vectors: {len(self.cold)} cold flags for {len(self.keys)} keys")
        if len(set(self.keys)) != len(self.keys):
            raise CatvecError("vectors: duplicated keys")

    @cached_property
    def key_to_index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}

    @property
    def index_to_key(self) -> list[str]:
        return self.keys

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key) -> bool:
        return key in self.key_to_index

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            return self.matrix[self.key_to_index[key]]
        except KeyError:
            raise KeyError(f"key {key!r} not in vectors") from None

    def count(self, key: str) -> int | None:
        """Training count of `key` (None for versions without counts)."""
        return None if self.counts is None else int(self.counts[self.key_to_index[key]])

    def is_cold(self, key: str) -> bool:
        """Whether `key`'s vectors were composed from its attributes (it has no history)."""
        return self.cold is not None and bool(self.cold[self.key_to_index[key]])

    def most_similar(self, key: str, topn: int = 10, scorer: str | None = None,
                     min_support: int | None = None, cold: bool = True) -> list[tuple[str, float]]:
        """The `topn` keys closest to `key`, best first. `cosine` ranks by cosine of the
        input vectors (substitutes); `context` by input . context (what occurs with it).
        scorer and min_support default to the version's (catvec.base.scoring); cold=False
        leaves out keys composed from attributes.

        Example: vectors.most_similar("1001", topn=5) -> [("1003", 0.91), ...]
        """
        if key not in self.key_to_index:
            close = close_keys(self.keys, key)
            hint = f"did you mean {' or '.join(repr(k) for k in close)}? " if close else ""
            raise CatvecError(f"key {key!r} is not in the vectors ({len(self)} keys); {hint}check the id or min_count")
        return self.recommend([key], topn=topn, scorer=scorer, min_support=min_support, cold=cold)

    def recommend(self, history, topn: int = 10, scorer: str | None = None,
                  min_support: int | None = None, cold: bool = True) -> list[tuple[str, float]]:
        """The `topn` best keys for a query of keys (a history or a basket), best first.
        Keys in the query are never returned; unknown keys are skipped; a query with no
        known key gets the most frequent keys (score = count), or [] without counts.

        Example: vectors.recommend(["1001", "1007"], topn=5, scorer="context")
        """
        from catvec.base.scoring import recommend_rows

        if isinstance(history, (str, bytes)):
            raise CatvecError(f"history: expected a list of keys, got one string {history!r}; pass [key]")
        index = self.key_to_index
        rows = np.array([index.get(k, -1) for k in history], dtype=np.int64)
        result = recommend_rows(self, np.array([0, len(rows)]), rows, topn, scorer, min_support, cold=cold)
        return [(self.keys[i], float(s)) for i, s in zip(result.items[0], result.scores[0]) if i >= 0]


def close_keys(keys: list[str], key: str, n: int = 3) -> list[str]:
    """Up to `n` keys that look like `key`: those containing it (any case), shortest first,
    then difflib's closest. Example: close_keys(["The Beatles", "Blur"], "beatles") == ["The Beatles"]"""
    import difflib

    low = key.lower()
    containing = sorted((k for k in keys if low and low in k.lower()), key=len)[:n]
    pool = keys if len(keys) <= 100_000 else containing     # difflib compares one key at a time
    fuzzy = difflib.get_close_matches(key, pool, n=n, cutoff=0.6)
    return list(dict.fromkeys(containing + fuzzy))[:n]


def save_vectors(vectors: Vectors, directory, manifest: dict | None = None, extra_files=()) -> Path:
    """Write a complete weight directory (vectors, keys, manifest, COMPLETE marker).

    `extra_files` names files already written in `directory` that the manifest checksums too.

    Example: save_vectors(vectors, "out/v1", {"params": {...}}); load_vectors("out/v1")
    """
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # No safetensors metadata: its header order is not stable across processes, and
    # exact mode promises byte-identical files. The manifest carries the format instead.
    tensors = {TENSOR_NAME: vectors.matrix}
    if vectors.context is not None:
        tensors[CONTEXT_TENSOR] = vectors.context
    if vectors.counts is not None:
        tensors[COUNTS_TENSOR] = vectors.counts
    if vectors.cold is not None:
        tensors[COLD_TENSOR] = vectors.cold.astype(np.uint8)
    with writing(directory / VECTORS_FILE):
        save_file(tensors, str(directory / VECTORS_FILE))
        os.chmod(directory / VECTORS_FILE, 0o644)
        fsync_file(directory / VECTORS_FILE)
    write_json(directory / KEYS_FILE, vectors.keys)
    fault_point("vectors-written")
    finish_manifest(directory, {"format": FORMAT, "format_version": FORMAT_VERSION, "tensors": sorted(tensors),
                                **(manifest or {})},
                    [VECTORS_FILE, KEYS_FILE, *extra_files], shape=[len(vectors), vectors.dim])
    return directory


def load_vectors(path, verify: bool = True) -> Vectors:
    """Load vectors from a version dir, OUT/latest or OUT (its latest). No unpickling.

    Example: vectors = load_vectors("artifacts/latest"); vectors.most_similar("1001")
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    directory = resolve_version_dir(path)
    manifest = read_manifest(directory, verify=verify)
    if manifest.get("format") != FORMAT:
        raise CatvecError(f"{directory}: format {manifest.get('format')!r} is not {FORMAT!r}")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise CatvecError(f"{directory}: format version {manifest['format_version']} is newer than this catvec reads; upgrade catvec")
    try:
        tensors = load_file(str(directory / VECTORS_FILE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CatvecError(f"{directory / VECTORS_FILE}: not a readable safetensors file ({exc})") from None
    if TENSOR_NAME not in tensors:
        raise CatvecError(f"{directory / VECTORS_FILE}: no tensor named {TENSOR_NAME!r}")
    try:
        keys = json.loads((directory / KEYS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatvecError(f"{directory / KEYS_FILE}: not a readable JSON list of keys ({exc})") from None
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise CatvecError(f"{directory / KEYS_FILE}: expected a JSON list of strings")
    matrix = tensors[TENSOR_NAME]
    if matrix.dtype != np.float32 or matrix.ndim != 2 or matrix.shape[0] != len(keys):
        raise CatvecError(f"{directory}: {len(keys)} keys do not match the {matrix.dtype} matrix of shape {matrix.shape}")
    context, counts = tensors.get(CONTEXT_TENSOR), tensors.get(COUNTS_TENSOR)
    if context is not None and context.shape != matrix.shape:
        raise CatvecError(f"{directory / VECTORS_FILE}: context tensor of shape {context.shape}, vectors {matrix.shape}")
    if counts is not None and counts.shape != (len(keys),):
        raise CatvecError(f"{directory / VECTORS_FILE}: {counts.shape[0]} counts for {len(keys)} keys")
    cold = tensors.get(COLD_TENSOR)
    if cold is not None and cold.shape != (len(keys),):
        raise CatvecError(f"{directory / VECTORS_FILE}: {cold.shape[0]} cold flags for {len(keys)} keys")
    scoring = manifest.get("scoring") or {}
    scorer = scoring.get("scorer", "cosine")
    if scorer == "context" and context is None:
        scorer = "cosine"
    return Vectors(keys=keys, matrix=matrix, context=context, counts=counts, scorer=scorer,
                   min_support=int(scoring.get("min_support", 1)),
                   supports={k: int(v) for k, v in (scoring.get("supports") or {}).items()},
                   cold=None if cold is None else cold.astype(bool))


# ---- interop exports ----------------------------------------------------------------

INPUTS = ("input", "context", "concat")


def select_vectors(vectors: Vectors, which: str, source="vectors") -> Vectors:
    """The input vectors, the context vectors, or both unit-normalised side by side
    ("concat", twice the dimension): what finetune's --pretrained-input, `catvec features`
    and the exports hand on. Keys, counts and scorer settings stay.

    Example: select_vectors(load_vectors("artifacts/latest"), "context").matrix
    """
    from catvec.base.scoring import unit_rows

    if which not in INPUTS:
        raise CatvecError(f"{source}: which vectors must be one of {', '.join(INPUTS)}; got {which!r}")
    if which == "input":
        return vectors
    if vectors.context is None:
        raise CatvecError(f"{source}: --pretrained-input {which} needs context vectors, which this version "
                          "(from an older catvec) does not have; use --pretrained-input input or pretrain again")
    matrix = vectors.context if which == "context" else np.hstack([unit_rows(vectors.matrix), unit_rows(vectors.context)])
    return Vectors(vectors.keys, matrix, counts=vectors.counts, cold=vectors.cold)


def export_word2vec(vectors: Vectors, path, which: str = "input") -> Path:
    """word2vec text format (gensim `KeyedVectors.load_word2vec_format` reads it) of the
    input, context or concat vectors (`select_vectors`).

    Keys with whitespace, control characters or backslashes are escaped (catvec.base.keys);
    `load_word2vec` restores them exactly.
    """
    vectors = select_vectors(vectors, which)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with writing(path, partial=tmp), open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(f"{len(vectors)} {vectors.dim}\n")
        for key, row in zip(vectors.keys, vectors.matrix):
            fh.write(escape_key(key) + " " + " ".join(repr(float(x)) for x in row) + "\n")
    with writing(path, partial=tmp):
        os.replace(tmp, path)
    return path


def load_word2vec(path) -> Vectors:
    """Read a word2vec text file written by `export_word2vec` (or any word2vec text file)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            n, dim = (int(x) for x in fh.readline().split())
            keys, rows = [], []
            for line in fh:
                parts = line.rstrip("\n").split(" ")
                keys.append(unescape_key(parts[0]))
                rows.append([float(x) for x in parts[1:dim + 1]])
    except (OSError, ValueError) as exc:
        raise CatvecError(f"{path}: not a word2vec text file ({exc})") from None
    if len(keys) != n:
        raise CatvecError(f"{path}: header says {n} vectors, found {len(keys)}")
    return Vectors(keys=keys, matrix=np.asarray(rows, dtype=np.float32).reshape(len(keys), dim))


def export_projector(vectors: Vectors, directory, metadata: dict[str, dict] | None = None,
                     which: str = "input") -> tuple[Path, Path]:
    """TensorBoard projector files: vectors.tsv (one row per key, the input, context or
    concat vectors) + metadata.tsv.

    metadata maps a column name to {key: value}. Keys and values are shown as they are,
    spaces included; only a tab, newline or carriage return (which would break a row) is
    written as \\t, \\n, \\r.
    """
    vectors = select_vectors(vectors, which)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vec_path, meta_path = (directory / name for name in PROJECTOR_FILES)
    with writing(vec_path):
        np.savetxt(vec_path, vectors.matrix, delimiter="\t", fmt="%.7g")
    columns = list(metadata or {})
    with writing(meta_path), open(meta_path, "w", encoding="utf-8", newline="\n") as fh:
        if columns:
            fh.write("\t".join(["key", *columns]) + "\n")
        for key in vectors.keys:
            cells = [projector_cell(key)] + [projector_cell(str(metadata[c].get(key, ""))) for c in columns]
            fh.write("\t".join(cells) + "\n")
    return vec_path, meta_path


_ROW_BREAKERS = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})


def projector_cell(text: str) -> str:
    """A metadata.tsv cell: the text verbatim except the characters that break a TSV row."""
    return text.translate(_ROW_BREAKERS)


def export_parquet(vectors: Vectors, path) -> Path:
    """One row per key: key (string, exactly as trained), vector (list of float32, the input
    vector), context (list of float32, null for versions without context vectors), count
    (int64, null without counts), cold (bool: composed from attributes, no history).
    Written whole or not at all.

    Example: polars.read_parquet(export_parquet(load_vectors("artifacts/latest"), "items.parquet"))
    """
    import polars as pl

    path = Path(path)
    n, dim = len(vectors), vectors.dim
    array = pl.Array(pl.Float32, dim)
    frame = pl.DataFrame({
        "key": pl.Series(vectors.keys, dtype=pl.Utf8),
        "vector": pl.Series(vectors.matrix, dtype=array),
        "context": pl.Series(vectors.context, dtype=array) if vectors.context is not None
        else pl.Series([None] * n, dtype=array),
        "count": pl.Series(vectors.counts, dtype=pl.Int64) if vectors.counts is not None
        else pl.Series([None] * n, dtype=pl.Int64),
        "cold": pl.Series(vectors.cold.astype(bool) if vectors.cold is not None else np.zeros(n, dtype=bool), dtype=pl.Boolean),
    })
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with writing(path, partial=tmp):
            frame.write_parquet(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
