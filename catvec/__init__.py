"""catvec: pretrained category embeddings from behaviour logs.

`import catvec` stays light: numpy, polars, gensim, torch and prefect are imported by
the functions that need them. The public names below resolve on first use.

Layout (docs/architecture.md): catvec.base (keys, tables, config, vectors, store),
catvec.pretraining (events -> vectors), catvec.finetuning (vectors -> a tabular model),
catvec.reports (markdown, terminal lines, pictures) and catvec.cli on top.
"""

__version__ = "0.2.0"

_LAZY = {
    "Vectors": "catvec.base.vectors",
    "save_vectors": "catvec.base.vectors",
    "load_vectors": "catvec.base.vectors",
    "related_items": "catvec.base.related",
    "CatvecError": "catvec.base.errors",
    "PretrainConfig": "catvec.pretraining.config",
    "pretrain": "catvec.pretraining.pipeline",
    "FinetuneConfig": "catvec.finetuning.config",
    "finetune": "catvec.finetuning.pipeline",
    "predict": "catvec.finetuning.predict",
    "load_model": "catvec.finetuning.modeldir",
    "embedding": "catvec.finetuning.own_model",
    "param_groups": "catvec.finetuning.own_model",
    "PretrainedEmbedding": "catvec.finetuning.embedding",
    "features": "catvec.finetuning.features",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'catvec' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
