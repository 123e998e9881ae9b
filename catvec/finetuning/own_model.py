"""The public API for your own PyTorch model: `catvec.embedding` and `catvec.param_groups`.

    import catvec, torch
    emb = catvec.embedding("artifacts/latest", keys=my_vocab, mode="finetune")
    index = emb.encode(["1001", "1002", "never-seen"])      # LongTensor([1, 2, 0])
    model = MyModel(emb)                                      # any nn.Module holding emb
    opt = torch.optim.AdamW(catvec.param_groups(model, lr=1e-3, embedding_lr=1e-4))

Row 0 is `<unk>` and row i is keys[i - 1]. The rules are those of `catvec finetune`: keys
go through catvec.base.keys.normalize_keys, each key with a pretrained vector gets it, the
others and `<unk>` get the OOV init (normal, mean or zeros); in `frozen` mode every row is
a buffer and in `partial` the pretrained rows are, so they stay bit-identical whatever the
optimizer does. The alignment report (hits, misses) is `emb.report`.
"""

from __future__ import annotations

from catvec.base.errors import CatvecError
from catvec.finetuning.embedding import MODES, PretrainedEmbedding, param_groups  # noqa: F401  (public)


def embedding(vectors, keys, mode: str = "finetune", oov_init: str = "normal", normalize: str = "none",
              sparse: bool = False, seed: int = 0, pretrained_input: str = "input") -> PretrainedEmbedding:
    """Pretrained vectors aligned to `keys` -> a PretrainedEmbedding of len(keys) + 1 rows.

    vectors: a weight dir (OUT, OUT/latest or a version) or a catvec.Vectors.
    keys: your vocabulary, strings (row i + 1 is keys[i]); duplicates are refused.
    mode: frozen, finetune, partial or scratch; normalize: none or unit (rows of length 1);
    pretrained_input: input, context or concat (as `catvec finetune --pretrained-input`).
    The layer also carries `vocab` (catvec Vocab), `report` (AlignmentReport) and `encode`.
    Example: emb = embedding("artifacts/latest", ["1001", "1002"], mode="frozen")
    """
    from catvec.base.vectors import INPUTS, Vectors, load_vectors
    from catvec.finetuning.config import NORMALIZE
    from catvec.base.scoring import unit_rows
    from catvec.finetuning.align import align, pretrained_input as choose_input, source_rows
    from catvec.finetuning.vocab import UNK, Vocab

    if mode not in MODES:
        raise CatvecError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if normalize not in NORMALIZE:
        raise CatvecError(f"normalize must be none or unit; got {normalize!r}")
    keys = _check_keys(keys)
    if pretrained_input not in INPUTS:
        raise CatvecError(f"pretrained_input must be input, context or concat; got {pretrained_input!r}")
    source = choose_input(vectors if isinstance(vectors, Vectors) else load_vectors(vectors), pretrained_input,
                          "vectors" if isinstance(vectors, Vectors) else vectors)
    vocab = Vocab([UNK, *keys])
    matrix, report = align(source, vocab, oov_init, seed=seed)
    if normalize == "unit":
        matrix = unit_rows(matrix)
    mask = source_rows(source, vocab) >= 0                        # (len(keys) + 1,), <unk> False
    layer = PretrainedEmbedding(matrix, mask, mode=mode, sparse=sparse, seed=seed)
    layer.vocab, layer.report = vocab, report
    layer.encode = lambda values: _encode(vocab, values)
    return layer


def _check_keys(keys) -> list[str]:
    if isinstance(keys, (str, bytes)):
        raise CatvecError("keys: expected a list of strings, got one string; pass [key] for a single key")
    keys = list(keys)
    for i, key in enumerate(keys):
        if not isinstance(key, str):
            raise CatvecError(f"keys: item {i} is {key!r} ({type(key).__name__}), not a string; "
                              f"convert your vocabulary with str() first")
        if key in ("", "<unk>"):
            raise CatvecError(f"keys: item {i} is {key!r}, which is reserved for missing values (row 0)")
    if len(set(keys)) != len(keys):
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise CatvecError(f"keys: {dup!r} appears more than once; pass each key once")
    return keys


def _encode(vocab, values):
    """Values (any sequence or column) -> LongTensor of rows; unseen and missing -> 0."""
    import torch

    return torch.tensor(vocab.encode(values))
