"""Sanity gates on a trained version before it is published.

A run can succeed and still learn nothing: a session gap given in the wrong unit splits
every history into single events, a min_count too high for the data keeps a handful of
items. Three checks catch that, each on numbers the run already has:

- too few keys: fewer than MIN_KEYS vectors. Below that a nearest-neighbour list is
  most of the vocabulary and no tabular column gains from a learned vector;
- flat loss: over two or more epochs the probe loss improved by less than FLAT_LOSS
  (relative to the first epoch). On the bundled sample it falls 23% over 10 epochs and
  2% from epoch 1 to 2; a corpus of isolated pairs stays exactly flat;
- events lost to filters: the filters (empty values, min_count, min_sequence_length,
  session gap) dropped more than MAX_LOST of the events read. Collapsed repeats and
  held-out items are not losses. The 30-second session gap that motivated this gate
  lost 99.7%.

`check_version` returns one line per failed gate. The pipeline logs them and records
them in the manifest; with `strict` (the flows' default) it refuses to publish instead.
"""

from __future__ import annotations

import logging

from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

MIN_KEYS = 10
FLAT_LOSS = 0.005
MAX_LOST = 0.5

# corpus.stats["dropped"] entries that count events removed by a filter
LOST_EVENTS = ("rare_item_events", "short_sequence_events")


def check_version(corpus_stats: dict, train_stats: dict, n_keys: int) -> list[str]:
    """The failed gates of a trained version, one line each (empty: all passed)."""
    failed = []
    if n_keys < MIN_KEYS:
        failed.append(f"only {n_keys} key(s) have vectors (fewer than {MIN_KEYS}); "
                      "check --min-count, --min-sequence-length and the id columns")
    losses = [epoch["loss"] for epoch in train_stats.get("epochs", [])]
    if len(losses) >= 2 and losses[0] > 0:
        improvement = (losses[0] - min(losses[1:])) / losses[0]
        if improvement < FLAT_LOSS:
            failed.append(f"the loss did not move ({losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} epochs, "
                          f"under {FLAT_LOSS:.1%} better); the sequences hold too little co-occurrence to learn from")
    read = corpus_stats.get("events_read", 0)
    dropped = corpus_stats.get("dropped", {})
    lost = sum(v for k, v in dropped.items() if k in LOST_EVENTS or k.startswith("empty_"))
    if read and lost / read > MAX_LOST:
        failed.append(f"the filters dropped {lost} of {read} events ({lost / read:.1%}); "
                      "check --session-gap (too short?), --min-count and --min-sequence-length")
    return failed


def enforce_gates(corpus_stats: dict, train_stats: dict, n_keys: int, strict: bool) -> list[str]:
    """Run the gates: with `strict` a failure refuses the version (CatvecError, nothing is
    published); without it each failure is logged as a warning. Returns the failures."""
    failed = check_version(corpus_stats, train_stats, n_keys)
    if failed and strict:
        more = f" (and {len(failed) - 1} more gate(s))" if len(failed) > 1 else ""
        raise CatvecError(f"not published: {failed[0]}{more}; latest is unchanged "
                          "(--no-strict publishes it with a warning)")
    for line in failed:
        log.warning("%s", line)
    return failed
