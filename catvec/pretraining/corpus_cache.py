"""The corpus cache: OUT/.cache/corpus-<key>/, one extracted corpus per input and the settings that shape it.

The key is a digest of the input's checksum, its reading options and the sequence rules
(EventOptions but the input's path, SequenceRules): a second run over the
same input skips reading and extraction, and the seed-noise baseline finds its parent's
corpus here (catvec.pretraining.parents). An entry is a temp directory renamed into place,
written only when the input is still the one its checksum was taken of
(catvec.pretraining.inputs); the `CACHE_KEEP` most recently used entries are kept.

    find_cached_corpus(out, options, rules, checksum) -> Corpus | None                         "cached-corpus"
    extract_corpus(table, out, options, rules, extraction, checksum, watch, refresh) -> Corpus  "extract-corpus"
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import secrets
import shutil
from pathlib import Path

from catvec.base.errors import CatvecError
from catvec.base.fingerprint import digest
from catvec.base.layout import CACHE_DIR, CORPUS_META, CORPUS_TEXT, HOLDOUT_FILE
from catvec.base.steps import step
from catvec.base.writes import write_json
from catvec.pretraining.config import EventOptions, Extraction, SequenceRules
from catvec.pretraining.inputs import check_read

log = logging.getLogger(__name__)

CACHE_KEEP = 3


def corpus_cache_key(options: EventOptions, rules: SequenceRules, checksum: str) -> str:
    """What decides a corpus: the input's bytes, its reading options and the sequence rules;
    not where the input lies, nor the shards or the engine that extract it."""
    return digest({"input": checksum, "params": {**options.reading(), **dataclasses.asdict(rules)}, "format": 1})


@step(name="cached-corpus")
def find_cached_corpus(out: str, options: EventOptions, rules: SequenceRules, checksum: str):
    """The corpus cached in OUT for this input, reading options and sequence rules, or None."""
    from catvec.pretraining.corpus import Corpus

    entry = Path(out) / CACHE_DIR / ("corpus-" + corpus_cache_key(options, rules, checksum))
    meta = entry / CORPUS_META
    if not meta.is_file() or not (entry / CORPUS_TEXT).is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        corpus = Corpus(path=entry / CORPUS_TEXT, keys=data["keys"], stats=data["stats"], basket=data["basket"])
        if rules.holdout_items:
            from catvec.pretraining.evaluation import load_heldout

            corpus.heldout = load_heldout(entry / HOLDOUT_FILE)[1]
    except (OSError, ValueError, KeyError, CatvecError):
        return None
    os.utime(entry)  # recently used: kept by the pruning below
    log.info("corpus cache hit: %s", entry.name)
    return corpus


@step(name="extract-corpus")
def extract_corpus(events_table, out: str, options: EventOptions, rules: SequenceRules, extraction: Extraction,
                   checksum: str, watch=None, refresh: bool = False):
    """Events -> corpus file in OUT/.cache by `rules` (atomic: a temp dir renamed into place;
    `refresh` replaces an entry already there). Without an events table, the input `options`
    name is extracted in shards (catvec.pretraining.shards). `watch`
    (catvec.pretraining.inputs): the corpus enters the cache under `checksum` only if the
    input is still the one that checksum was taken of."""
    from catvec.pretraining.corpus import build_corpus
    from catvec.pretraining.shards import extract_sharded
    from catvec.pretraining.split import is_split

    cache_root = Path(out) / CACHE_DIR
    entry = cache_root / ("corpus-" + corpus_cache_key(options, rules, checksum))
    tmp = cache_root / f".tmp-{entry.name}-{os.getpid()}-{secrets.token_hex(3)}"  # private to this call
    try:
        tmp.mkdir(parents=True)
        split = events_table is None or is_split(events_table)
        corpus = (extract_sharded(options, rules, extraction, tmp / CORPUS_TEXT, split=events_table) if split
                  else build_corpus(events_table, tmp / CORPUS_TEXT, rules))
        write_json(tmp / CORPUS_META, {"keys": corpus.keys, "stats": corpus.stats, "basket": corpus.basket})
        if corpus.heldout is not None:
            from catvec.pretraining.evaluation import save_heldout

            save_heldout(corpus.heldout, tmp / HOLDOUT_FILE, rules.holdout)
        check_read(events_table, checksum, watch, "extraction")
        _move_into_cache(tmp, entry, replace=refresh)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    corpus.path = entry / CORPUS_TEXT
    _prune_cache(cache_root)
    return corpus


def _move_into_cache(tmp: Path, entry: Path, replace: bool) -> None:
    """Rename a finished extraction into place. A readable entry already there comes from an
    overlapping run of the same input and parameters (same content), which may be training
    from it: keep it, unless a refresh asks for a new one. One to replace (unreadable, or a
    refresh) is moved aside first, so its name never points at a half-deleted directory."""
    try:
        os.rename(tmp, entry)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    if not replace and _readable_entry(entry):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    aside = entry.with_name(f".old-{tmp.name}")
    os.rename(entry, aside)
    os.rename(tmp, entry)
    shutil.rmtree(aside, ignore_errors=True)


def _readable_entry(entry: Path) -> bool:
    try:
        json.loads((entry / CORPUS_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (entry / CORPUS_TEXT).is_file()


def _prune_cache(cache_root: Path) -> None:
    entries = sorted((p for p in cache_root.glob("corpus-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in entries[:-CACHE_KEEP]:
        shutil.rmtree(old, ignore_errors=True)
