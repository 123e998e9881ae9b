"""`Vocab`: a model's index of one categorical column (key <-> row of its embedding).

Row 0 is reserved for `<unk>`: missing values and values the model never saw go there.
Keys come from `catvec.base.keys.normalize_keys`, the same function pretrain uses, so the
table's 123 (even read as the float 123.0) meets the pretrained key "123". A literal
value "<unk>" in a table is treated as missing.

By default a vocab holds every value of the labeled table plus every pretrained key,
so a category with no label at all still has its learned vector at prediction time.

With hash buckets (`--hash-buckets N`) only keys seen at least `min_freq` times in the
training rows keep their own row; every other key, and every key first seen at predict
time, shares one of N rows `<hash:i>` after the own keys, i = stable_bucket(key, N) (a
blake2b hash, the same in every process whatever PYTHONHASHSEED says). The table is then
(own keys + N + 1) rows however many keys exist.

Example:
    vocab = build_vocab(table["item_id"], pretrained_keys=vectors.keys)
    idx = vocab.encode(new_rows["item_id"])      # numpy int64, 0 for unseen
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from catvec.base.errors import CatvecError

UNK = "<unk>"


def stable_bucket(key: str, buckets: int) -> int:
    """A key's hash bucket in [0, buckets): stable across processes and platforms."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little") % buckets


def bucket_key(i: int) -> str:
    return f"<hash:{i}>"


@dataclass(eq=False)
class Vocab:
    """index_to_key[0] is always `<unk>`; the other keys are unique strings. With
    `buckets` > 0 the last `buckets` entries are the shared rows `<hash:0>`, `<hash:1>`, ..."""

    index_to_key: list[str]
    buckets: int = 0

    def __post_init__(self):
        self.index_to_key = list(self.index_to_key)
        if not self.index_to_key or self.index_to_key[0] != UNK:
            raise CatvecError(f"vocab: row 0 must be {UNK!r}")
        if len(set(self.index_to_key)) != len(self.index_to_key):
            raise CatvecError("vocab: duplicated keys")
        if self.buckets and self.index_to_key[-self.buckets:] != [bucket_key(i) for i in range(self.buckets)]:
            raise CatvecError(f"vocab: the last {self.buckets} entries must be the hash buckets")

    @property
    def n_own(self) -> int:
        """Entries with a key of their own (<unk> included), before the buckets."""
        return len(self.index_to_key) - self.buckets

    @cached_property
    def key_to_index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.index_to_key)}

    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, key) -> bool:
        return key in self.key_to_index

    def encode(self, column) -> np.ndarray:
        """A column (any dtype) -> int64 indices (n,); missing and unseen values -> 0."""
        import polars as pl

        from catvec.base.keys import normalize_keys

        keys = normalize_keys(column)
        own = self.index_to_key[1:self.n_own]
        if not own and not self.buckets:
            return np.zeros(keys.len(), dtype=np.int64)
        codes = keys.replace_strict(own, list(range(1, self.n_own)), default=None, return_dtype=pl.Int64) \
            if own else pl.Series([None] * keys.len(), dtype=pl.Int64)
        if self.buckets:
            rest = keys.filter(codes.is_null() & keys.is_not_null() & (keys != UNK)).unique().to_list()
            if rest:
                rows = [self.n_own + stable_bucket(k, self.buckets) for k in rest]
                codes = codes.fill_null(keys.replace_strict(rest, rows, default=None, return_dtype=pl.Int64))
        return codes.fill_null(0).to_numpy().astype(np.int64, copy=True)

    def counts(self, column) -> np.ndarray:
        """How many rows of `column` land on each entry: int64 (len(vocab),)."""
        return np.bincount(self.encode(column), minlength=len(self)).astype(np.int64)

    def to_json(self) -> list[str] | dict:
        """A list of keys; with buckets {"keys": [own keys], "hash_buckets": N}."""
        if self.buckets:
            return {"keys": self.index_to_key[:self.n_own], "hash_buckets": self.buckets}
        return list(self.index_to_key)

    @classmethod
    def from_json(cls, data) -> "Vocab":
        buckets = 0
        if isinstance(data, dict) and isinstance(data.get("hash_buckets"), int) and data["hash_buckets"] > 0:
            data, buckets = data.get("keys"), data["hash_buckets"]
        if not isinstance(data, list) or not all(isinstance(k, str) for k in data):
            raise CatvecError("vocab: expected a JSON list of strings")
        return cls([*data, *(bucket_key(i) for i in range(buckets))], buckets)


def build_vocab(column, pretrained_keys=None, buckets: int = 0, min_freq: int = 1) -> Vocab:
    """Table values, then pretrained keys not yet in it.

    Table values come in order of first appearance, so the vocab does not depend on how
    the pretrained file orders its keys. Pass pretrained_keys=None for a labeled-only vocab.
    With buckets > 0: only values seen min_freq times or more in `column` (pass the training
    rows), then the buckets; pretrained keys without a row of their own go to the buckets.
    Example: build_vocab(pl.Series([3, 1, 3]), ["1", "9"]).index_to_key == ["<unk>", "3", "1", "9"]
    """
    import polars as pl

    from catvec.base.keys import normalize_keys

    keys = normalize_keys(column).drop_nulls()
    keys = keys.filter(keys != UNK)
    frame = pl.DataFrame({"key": keys}).with_row_index("first")
    table = frame.group_by("key").agg(pl.col("first").min(), pl.len().alias("n")).sort("first")
    if buckets:
        own = table.filter(pl.col("n") >= min_freq)["key"].to_list()
        return Vocab([UNK, *own, *(bucket_key(i) for i in range(buckets))], buckets)
    index = [UNK, *table["key"].to_list()]
    if pretrained_keys is not None:
        seen = set(index)
        index.extend(k for k in pretrained_keys if k not in seen and k != UNK)
    return Vocab(index)
