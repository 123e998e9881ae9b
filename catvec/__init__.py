"""catvec: pretrained category embeddings from behaviour logs.

`import catvec` stays light: numpy, polars, gensim, torch and prefect are imported by
the functions that need them. The public names below resolve on first use.
"""

__version__ = "0.1.0"

_LAZY = {
    "Vectors": "catvec.vectors",
    "save_vectors": "catvec.vectors",
    "load_vectors": "catvec.vectors",
    "CatvecError": "catvec.errors",
    "PretrainConfig": "catvec.config",
    "pretrain": "catvec.pipeline",
    "FinetuneConfig": "catvec.config",
    "predict": "catvec.finetune",
    "load_model": "catvec.modeldir",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'catvec' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
