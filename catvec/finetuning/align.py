"""Aligning pretrained vectors to a model's vocab: the initial embedding matrix.

`align(vectors, vocab, oov_init)` copies the pretrained vector of every vocab key that
has one (a hit) and fills the other rows (misses, always including `<unk>`) with the
OOV init:

    normal  per-dimension normal with the pretrained mean and std (default)
    mean    the mean pretrained vector
    zeros   zeros

The AlignmentReport says how many vocab entries and how many table rows (traffic-weighted,
when `counts` is given) have a pretrained vector, and how many pretrained keys the model
does not use. numpy only; a 1M-key vocab aligns in about a second.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

OOV_INITS = ("normal", "mean", "zeros")
STATS_SAMPLE = 100_000


@dataclass
class AlignmentReport:
    vocab_size: int                  # entries, <unk> included
    hits: int                        # entries with a pretrained vector
    misses: int                      # entries without one (<unk> included): hits + misses = vocab_size
    oov_init: str
    dim: int
    pretrained_keys: int             # keys in the weight file
    pretrained_unused: int           # pretrained keys not in the vocab
    rows: int | None = None          # table rows counted (traffic), when counts were given
    row_hits: int | None = None      # of those, rows whose value has a pretrained vector
    table_values: int | None = None  # distinct table values (count > 0, <unk> excluded)
    table_value_hits: int | None = None
    pretrained_not_in_table: int | None = None  # vocab hits with no row in the table
    miss_examples: list[str] = field(default_factory=list)
    hash_buckets: int = 0            # shared rows of rare and unseen keys (0 = none)
    bucket_hits: int = 0             # buckets started from the mean of the pretrained keys hashed into them

    @property
    def entry_coverage(self) -> float:
        return self.hits / self.vocab_size if self.vocab_size else 0.0

    @property
    def row_coverage(self) -> float | None:
        return None if not self.rows else self.row_hits / self.rows

    @property
    def value_coverage(self) -> float | None:
        return None if not self.table_values else self.table_value_hits / self.table_values

    def to_json(self) -> dict:
        return {**asdict(self), "entry_coverage": self.entry_coverage,
                "row_coverage": self.row_coverage, "value_coverage": self.value_coverage}

    def summary(self) -> str:
        parts = [f"{self.hits}/{self.vocab_size} vocab entries have a pretrained vector"]
        if self.rows:
            parts.append(f"{self.table_value_hits}/{self.table_values} table values, "
                         f"{self.row_coverage:.1%} of rows")
        parts.append(f"{self.pretrained_unused} pretrained keys unused; OOV init {self.oov_init}")
        if self.hash_buckets:
            parts.append(f"{self.bucket_hits}/{self.hash_buckets} hash buckets start from pretrained means")
        return "; ".join(parts)


def align(vectors, vocab, oov_init: str = "normal", counts=None, *, dim: int | None = None,
          seed: int = 0, name: str = "column", min_row_coverage: float = 0.5):
    """-> (matrix float32 (len(vocab), dim), AlignmentReport).

    counts: int array (len(vocab),) of table rows per entry (Vocab.counts); with it, zero
    overlap between the table and the vectors is an error and low coverage a warning.
    dim: the embedding size asked for; a different vector size is an error.
    Example: matrix, report = align(load_vectors("artifacts"), vocab, "mean", vocab.counts(col))
    """
    if oov_init not in OOV_INITS:
        raise CatvecError(f"oov_init must be one of {', '.join(OOV_INITS)}; got {oov_init!r}")
    if dim is not None and dim != vectors.dim:
        raise CatvecError(f"{name}: the weight file has {vectors.dim}-dimensional vectors but an embedding "
                          f"size of {dim} was asked for; drop the size override or pretrain with --dim {dim}")
    source = vectors.matrix                                          # (n_keys, dim)
    rows = source_rows(vectors, vocab)                               # (len(vocab),), -1 = miss
    hit = rows >= 0
    # np.take of every row, then the (usually few) misses overwritten: cheaper than masks
    matrix = np.take(source, np.where(hit, rows, 0), axis=0) if len(source) else \
        np.zeros((len(vocab), vectors.dim), dtype=np.float32)                # (len(vocab), dim)
    matrix[~hit] = _oov_rows(source, int((~hit).sum()), oov_init, seed)
    n_hits = int(hit.sum())
    report = AlignmentReport(
        vocab_size=len(vocab), hits=n_hits, misses=len(vocab) - n_hits, oov_init=oov_init, dim=vectors.dim,
        pretrained_keys=len(vectors), pretrained_unused=len(vectors) - n_hits,
        miss_examples=[vocab.index_to_key[i] for i in np.flatnonzero(~hit)[1:6]])
    if counts is not None:
        add_traffic(report, np.asarray(counts, dtype=np.int64), hit, name, min_row_coverage)
    return matrix, report


def fill_buckets(matrix: np.ndarray, mask: np.ndarray, vectors, vocab, report: AlignmentReport) -> None:
    """Bucket rows <- the mean pretrained vector of the keys without an own row that hash
    there (marked pretrained in `mask`); empty buckets keep their OOV init. In place."""
    from catvec.finetuning.vocab import stable_bucket

    own = vocab.key_to_index
    rest = [i for i, key in enumerate(vectors.keys) if key not in own]
    buckets = np.fromiter((stable_bucket(vectors.keys[i], vocab.buckets) for i in rest), dtype=np.int64,
                          count=len(rest))                                           # (n_rest,)
    sums = np.zeros((vocab.buckets, vectors.dim), dtype=np.float64)
    np.add.at(sums, buckets, vectors.matrix[rest])
    counts = np.bincount(buckets, minlength=vocab.buckets)                            # (buckets,)
    filled = counts > 0
    rows = vocab.n_own + np.flatnonzero(filled)
    matrix[rows] = (sums[filled] / counts[filled, None]).astype(np.float32)
    mask[rows] = True
    report.hash_buckets, report.bucket_hits = vocab.buckets, int(filled.sum())


def source_rows(vectors, vocab) -> np.ndarray:
    """For each vocab entry the row of its pretrained vector, or -1: int64 (len(vocab),)."""
    import polars as pl

    # A hash join in polars: no Python-level loop or dict over a million keys.
    source = pl.DataFrame({"key": pl.Series(vectors.keys, dtype=pl.Utf8),
                           "row": np.arange(len(vectors), dtype=np.int64)})
    wanted = pl.DataFrame({"key": pl.Series(vocab.index_to_key, dtype=pl.Utf8)}).with_row_index("at")
    # an unordered join and a sort on the position is faster than maintain_order here
    joined = wanted.join(source, on="key", how="left").sort("at")
    rows = joined["row"].fill_null(-1).to_numpy().astype(np.int64, copy=True)
    rows[0] = -1  # <unk> never takes a pretrained vector, even if the file has that key
    return rows


def _oov_rows(source: np.ndarray, n: int, oov_init: str, seed: int) -> np.ndarray:
    """(n, dim) float32 rows for the misses."""
    dim = source.shape[1]
    if oov_init == "zeros" or source.shape[0] == 0:
        return np.zeros((n, dim), dtype=np.float32)
    mean = source.mean(axis=0, dtype=np.float64).astype(np.float32)  # (dim,)
    if oov_init == "mean":
        return np.broadcast_to(mean, (n, dim))
    rng = np.random.default_rng(seed)
    if source.shape[0] > STATS_SAMPLE:  # the spread of a large sample is the same, and faster
        source = source[np.sort(rng.choice(source.shape[0], STATS_SAMPLE, replace=False))]
    std = source.std(axis=0, dtype=np.float64).astype(np.float32)    # (dim,)
    rows = rng.standard_normal((n, dim), dtype=np.float32)
    rows *= std
    rows += mean
    return rows


def add_traffic(report: AlignmentReport, counts: np.ndarray, hit: np.ndarray, name: str,
                min_row_coverage: float) -> None:
    """Traffic-weighted coverage into `report`: rows and values whose entry is a hit."""
    if counts.shape != hit.shape:
        raise ValueError(f"counts has shape {counts.shape}, expected {hit.shape}")
    present = counts > 0
    present[0] = False                                               # missing / unseen values
    report.rows = int(counts.sum())
    report.row_hits = int(counts[hit].sum())
    report.table_values = int(present.sum())
    report.table_value_hits = int((present & hit).sum())
    report.pretrained_not_in_table = int((hit & ~present).sum())
    if report.table_values and report.table_value_hits == 0:
        examples = ", ".join(repr(k) for k in report.miss_examples[:3])
        raise CatvecError(f"{name}: none of its {report.table_values} values has a pretrained vector "
                          f"(e.g. {examples}); check that the column holds the same ids as the events' item column")
    if report.rows and report.row_coverage < min_row_coverage:
        log.warning("%s: low pretrained coverage: %d/%d values, %.1f%% of rows have a vector",
                    name, report.table_value_hits, report.table_values, 100 * report.row_coverage)


def pretrained_input(vectors, which: str, source):
    """The vectors a finetune starts from: the input vectors, the context vectors, or both
    unit-normalised side by side ("concat"); catvec.base.vectors.select_vectors."""
    from catvec.base.vectors import select_vectors

    return select_vectors(vectors, which, source)


def with_attributes(vectors, source, path, columns: str = "", sep: str = "|"):
    """`vectors` plus a composed row for every key of the attributes file at `path` that has
    none (catvec.base.attributes), so a table key without history starts from its attributes
    instead of the OOV init. The file's key column is the version's item column."""
    from catvec.base.attributes import compose_vectors, read_attributes
    from catvec.base.manifest import read_manifest, resolve_version_dir

    key_col = (read_manifest(resolve_version_dir(source), verify=False).get("params") or {}).get("item_col") or "item_id"
    vectors, record = compose_vectors(vectors, read_attributes(path, key_col, columns, sep))
    if not record.get("fitted_on"):
        raise CatvecError(f"item_attributes: none of the keys of {path} (column {key_col!r}) has a vector in {source}; "
                          "check that it holds the same ids as the events' item column")
    log.info("%s: %d keys composed from their attributes (%s)", source, record["composed"], path)
    return vectors
