"""`Vocab`: a model's index of one categorical column (key <-> row of its embedding).

Row 0 is reserved for `<unk>`: missing values and values the model never saw go there.
Keys come from `catvec.base.keys.normalize_keys`, the same function pretrain uses, so the
table's 123 (even read as the float 123.0) meets the pretrained key "123". A literal
value "<unk>" in a table is treated as missing.

By default a vocab holds every value of the labeled table plus every pretrained key,
so a category with no label at all still has its learned vector at prediction time.

Example:
    vocab = build_vocab(table["item_id"], pretrained_keys=vectors.keys)
    idx = vocab.encode(new_rows["item_id"])      # numpy int64, 0 for unseen
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from catvec.base.errors import CatvecError

UNK = "<unk>"


@dataclass(eq=False)
class Vocab:
    """index_to_key[0] is always `<unk>`; the other keys are unique strings."""

    index_to_key: list[str]

    def __post_init__(self):
        self.index_to_key = list(self.index_to_key)
        if not self.index_to_key or self.index_to_key[0] != UNK:
            raise CatvecError(f"vocab: row 0 must be {UNK!r}")
        if len(set(self.index_to_key)) != len(self.index_to_key):
            raise CatvecError("vocab: duplicated keys")

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
        if len(self) == 1:
            return np.zeros(keys.len(), dtype=np.int64)
        codes = keys.replace_strict(self.index_to_key[1:], list(range(1, len(self))),
                                    default=0, return_dtype=pl.Int64)
        return codes.fill_null(0).to_numpy().astype(np.int64, copy=False)

    def counts(self, column) -> np.ndarray:
        """How many rows of `column` land on each entry: int64 (len(vocab),)."""
        return np.bincount(self.encode(column), minlength=len(self)).astype(np.int64)

    def to_json(self) -> list[str]:
        return list(self.index_to_key)

    @classmethod
    def from_json(cls, data) -> "Vocab":
        if not isinstance(data, list) or not all(isinstance(k, str) for k in data):
            raise CatvecError("vocab: expected a JSON list of strings")
        return cls(data)


def build_vocab(column, pretrained_keys=None) -> Vocab:
    """Table values, then pretrained keys not yet in it.

    Table values come in order of first appearance, so the vocab does not depend on how
    the pretrained file orders its keys. Pass pretrained_keys=None for a labeled-only vocab.
    Example: build_vocab(pl.Series([3, 1, 3]), ["1", "9"]).index_to_key == ["<unk>", "3", "1", "9"]
    """
    import polars as pl

    from catvec.base.keys import normalize_keys

    keys = normalize_keys(column).drop_nulls()
    keys = keys.filter(keys != UNK)
    frame = pl.DataFrame({"key": keys}).with_row_index("first")
    table = frame.group_by("key").agg(pl.col("first").min()).sort("first")
    index = [UNK, *table["key"].to_list()]
    if pretrained_keys is not None:
        seen = set(index)
        index.extend(k for k in pretrained_keys if k not in seen and k != UNK)
    return Vocab(index)
