"""Self-tuning defaults: `catvec pretrain` chooses what the user left open for the data at hand.

The training settings left empty (window 0, epochs 0, ns_exponent and sample unset), the
scorer and min_support are chosen on a validation split before the real training:

1. a random sample of users (or baskets) of about `tune_events` events is split like
   `--holdout last2` (or `--holdout basket`): each user's last item is never seen, the
   one before it (a valid basket's hidden item) is the validation target;
2. a few candidate settings (CANDIDATES, without the knobs the user fixed, duplicates
   removed) are trained on it; each is scored with every scorer and min_support in
   SUPPORTS, so one training answers several questions. `tune_search` halving (the
   default; `halving_plan`): the candidates but the fallback (the first) are screened at
   FIRST_RUNG of their epochs, then the fallback and the best of them train at all of
   their epochs (of the screened ones within one standard error of the best, the
   cheapest: `_challenger`); the sample is cut (`halving_events`) so that all of it
   trains about HALVING_SHARE of the final training (the window sets a training's cost;
   unless that leaves under MIN_QUERIES to validate on), and in basket mode TUNE_BASKET_SHARE% of its baskets validate. `tune_search`
   full: every candidate, with a 2x-epochs one, at full epochs (3-5x the final training);
3. among the last rung's trainings the best validation NDCG@10 wins, unless it beats the
   first candidate with the fallback scorer and support by no more than one standard
   error of that one's NDCG@10 (then the fallback: noise must not choose); epochs are
   tuned as a factor of `auto_epochs` (the size rule) of the whole corpus, so a trial
   costs about sample / whole of the final training and the choice carries over.

Too little data to validate on (under MIN_QUERIES users or baskets) or `--no-tune`: the
FALLBACK settings. The test item of `--holdout last` is never seen by the tuning.

    chosen, record = choose_settings(table, corpus.stats["tokens"], SkipGram.of(cfg), Scoring.of(cfg),
                                     Tuning.of(cfg), SequenceRules.of(cfg), basket=bool(cfg.basket_col))
    cfg = dataclasses.replace(cfg, **chosen)

Each step takes the groups it reads (catvec.pretraining.config): the skip-gram settings
(what is tuned), the scoring (scorer, min_support, query_last), the tuning budget and the
sequence rules (the validation split is cut with them).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
import time

from catvec.pretraining.config import Scoring, SequenceRules, SkipGram, Tuning
from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

TUNED = ("window", "epochs", "ns_exponent", "sample")
# epochs here is a factor of auto_epochs(tokens)
CANDIDATES = (
    {"window": 10, "ns_exponent": 0.0, "sample": 0.0, "epochs": 1},
    {"window": 10, "ns_exponent": 0.0, "sample": 0.0, "epochs": 2},
    {"window": 30, "ns_exponent": 0.0, "sample": 0.0, "epochs": 1},
    {"window": 10, "ns_exponent": 1.0, "sample": 1e-3, "epochs": 1},
    {"window": 5, "ns_exponent": 0.5, "sample": 0.0, "epochs": 1},
)
FALLBACK = {"window": 10, "ns_exponent": 0.0, "sample": 0.0, "epochs": 1, "scorer": "context", "min_support": 1}
SUPPORTS = (1, 3, 10)
HALVING_SHARE = 0.7  # the halving search trains about this share of the final training (epochs x events)
FIRST_RUNG = 0.25  # its screening trains this share of a candidate's epochs
TUNE_BASKET_SHARE = 25  # percent of the sample's baskets that validate (and as many unseen) in the halving search
MIN_QUERIES = 100


def auto_epochs(tokens: int) -> int:
    """More passes for smaller corpora: 15 at 100k tokens, 5 at 1M and above, 50 at most."""
    return int(min(50, max(5, round(15 * math.sqrt(100_000 / max(tokens, 1))))))


def resolve(skipgram: SkipGram, scoring: Scoring, tokens: int, choice: dict | None = None) -> dict:
    """{setting: value} for every open setting (open_settings), from `choice` else the
    fallbacks; epochs from the corpus size (`tokens`) times the choice's factor."""
    choice = {**FALLBACK, **(choice or {})}
    values = {}
    for name in TUNED:  # in open_settings' order
        if name == "epochs" and not skipgram.epochs:
            values["epochs"] = auto_epochs(tokens) * int(choice["epochs"])
        elif name != "epochs" and getattr(skipgram, name) in (0, None):
            values[name] = choice[name]
    if not scoring.scorer:
        values["scorer"] = choice["scorer"]
    if not scoring.min_support:
        values["min_support"] = choice["min_support"]
    return values


def open_settings(skipgram: SkipGram, scoring: Scoring) -> list[str]:
    """The settings this run may choose (empty: nothing to tune)."""
    names = [n for n in TUNED if getattr(skipgram, n) in (0, None)]
    if not scoring.scorer:
        names.append("scorer")
    if not scoring.min_support:
        names.append("min_support")
    return names


def candidates(skipgram: SkipGram, basket: bool, halving: bool = False) -> list[dict]:
    """CANDIDATES with the user's fixed settings in place, duplicates removed (in basket
    mode the window is the basket, so candidates differing only in window are one). The
    halving search leaves out those that cost more than the fallback per training (epoch
    factor 2; a wider window, unless the window is the basket or given): it must stay
    under one final training, and neither won on MovieLens or the bundled baskets."""
    seen, out = set(), []
    for cand in CANDIDATES:
        wider = cand["window"] > FALLBACK["window"] and not (basket or skipgram.window)
        if halving and (cand["epochs"] != 1 or wider):
            continue
        c = {n: (cand[n] if getattr(skipgram, n) in (0, None) else getattr(skipgram, n)) for n in TUNED}
        if skipgram.epochs:
            c["epochs"] = skipgram.epochs
        key = tuple(sorted((k, v) for k, v in c.items() if not (basket and k == "window")))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def choose_settings(table, tokens: int, skipgram: SkipGram, scoring: Scoring, tuning: Tuning, rules: SequenceRules,
                    basket: bool, on_trial=None) -> tuple[dict, dict]:
    """The open settings (open_settings) chosen, tuning on `table` when there is something to
    choose and enough data: ({setting: value}, the record stored in the manifest). `tokens`:
    the whole corpus's, which sets the epochs; `basket`: the events are baskets."""
    open_ = open_settings(skipgram, scoring)
    if not open_:
        return {}, {"ran": False, "reason": "every setting given"}
    if not tuning.tune:
        chosen = resolve(skipgram, scoring, tokens)
        return chosen, {"ran": False, "reason": "--no-tune", "chosen": chosen}
    started = time.perf_counter()
    halving = tuning.tune_search == "halving"
    events = table.frame.height if hasattr(table, "frame") else table.height  # a split input: counted by shard
    budget_events = halving_events(events, costs(basket, candidates(skipgram, basket, halving))) if halving \
        else tuning.tune_events
    sample = sample_events(table, min(tuning.tune_events, budget_events), skipgram.seed, basket=basket)
    valid_rules = dataclasses.replace(rules, holdout="basket" if basket else "last2")
    if halving and basket:  # a smaller sample: more of its baskets validate
        valid_rules = dataclasses.replace(valid_rules,
                                          basket_holdout_share=max(rules.basket_holdout_share, TUNE_BASKET_SHARE))
    task = _validation_task(valid_rules, sample)
    if task.n_users < MIN_QUERIES and budget_events < tuning.tune_events:
        # small data: too few to validate on within the budget, so tuning costs more than it
        sample = sample_events(table, tuning.tune_events, skipgram.seed, basket=basket)
        task = _validation_task(valid_rules, sample)
    queries = task.n_users
    if queries < MIN_QUERIES:
        reason = f"only {queries} users or baskets to validate on (tuning needs {MIN_QUERIES})"
        log.info("tuning skipped: %s", reason)
        return resolve(skipgram, scoring, tokens), {"ran": False, "reason": reason}
    with tempfile.TemporaryDirectory(prefix="catvec-autotune-") as tmp:
        try:
            corpus = _tuning_corpus(valid_rules, sample, tmp)
        except CatvecError as exc:  # the split left nothing to train on: the fallbacks
            log.info("tuning skipped: %s", exc)
            return resolve(skipgram, scoring, tokens), {"ran": False,
                                                        "reason": f"the validation split left no corpus ({exc})"}
        task = _validation_task(valid_rules, sample, corpus.keys)
        cands = candidates(skipgram, basket, halving)
        # the whole corpus's epochs: a full trial costs about sample / whole of the final training
        full = [c["epochs"] if skipgram.epochs else auto_epochs(tokens) * c["epochs"] for c in cands]
        plan = halving_plan(full) if halving else [[(i, e) for i, e in enumerate(full)]]
        trial = _trainer(skipgram, rules.min_count, 0 if basket else scoring.query_last, corpus, task)
        trials, final = _search(plan, cands, trial, scoring, costs(basket, cands), on_trial)
    best = _best(final, scoring)
    choice = {**best["trial"]["params"], "epochs": best["trial"]["epoch_factor"],
              "scorer": best["scorer"], "min_support": best["min_support"]}
    chosen = resolve(skipgram, scoring, tokens, choice)
    supports = _supports(best["trial"], scoring)
    supports[best["scorer"]] = best["min_support"]
    record = {"ran": True, "settings": open_, "sample_events": sample.frame.height,
              "budget": {"tune_events": tuning.tune_events, "trainings": len(trials), "search": tuning.tune_search,
                         "budget_events": budget_events,
                         "epochs_share": round(sum(t["params"]["epochs"] for t in trials) * corpus.stats["tokens"]
                                               / max(tokens * (skipgram.epochs or auto_epochs(tokens)), 1), 3)},
              "queries": trials[0]["queries"], "metric": "valid ndcg@10", "seconds": round(time.perf_counter() - started, 2),
              "trials": trials, "winner": {"trial": best["trial"]["trial"], "scorer": best["scorer"],
                                           "min_support": best["min_support"], "ndcg": best["ndcg"], "hr": best["hr"],
                                           "rule": best["rule"]},
              "popularity": trials[0]["popularity"], "chosen": chosen, "supports": supports}
    return chosen, record


def halving_plan(full_epochs: list[int], first: float = FIRST_RUNG) -> list[list[tuple[int, int]]]:
    """Rungs of (candidate index, epochs) for the halving search: rung 1 screens every
    candidate but the fallback (index 0) at `first` of its epochs, rung 2 trains the fallback
    and rung 1's best at all of them. Short trainings undervalue the context scorer (it
    needs the whole schedule), so only full ones choose. With two candidates or fewer, one rung."""
    if len(full_epochs) <= 2:
        return [[(i, e) for i, e in enumerate(full_epochs)]]
    return [[(i, max(1, round(e * first))) for i, e in enumerate(full_epochs) if i],
            [(i, e) for i, e in enumerate(full_epochs)]]


def costs(basket: bool, cands: list[dict]) -> list[float]:
    """Training cost of each candidate per epoch and event, relative to the first: skip-gram
    pairs grow with the window (in basket mode the window is the basket: all alike)."""
    if basket:
        return [1.0] * len(cands)
    return [c["window"] / cands[0]["window"] for c in cands]


def halving_events(events: int, weights: list[float], share: float = HALVING_SHARE, first: float = FIRST_RUNG) -> int:
    """The sample (in events) at which the halving search trains about `share` of the final
    training: screenings of every candidate but the first at `first` of the epochs (each at
    its cost `weights`, as from `costs`), then the first and one other as costly as it."""
    if len(weights) <= 2:
        trainings = sum(weights)
    else:
        trainings = 2 * weights[0] + first * sum(weights[1:])
    return max(1, int(events * share / trainings))


def _search(plan, cands, trial, scoring: Scoring, weights: list[float], on_trial) -> tuple[list[dict], list[dict]]:
    """Run the rungs of `plan` (`trial(params)` trains and scores one); between rungs only the
    fallback and the challenger (`_challenger`) go on. Returns every trial and those of the
    last rung (fallback first)."""
    trials, done, alive = [], {}, range(len(cands))
    for rung, entries in enumerate(plan, 1):
        current = []
        for i, epochs in (e for e in entries if e[0] in alive):
            if (i, epochs) not in done:
                result = trial({**cands[i], "epochs": epochs})
                result.update(trial=len(trials) + 1, rung=rung, candidate=i + 1,
                              params={**cands[i], "epochs": epochs}, epoch_factor=cands[i]["epochs"])
                trials.append(result)
                done[i, epochs] = result
                if on_trial is not None:
                    on_trial(result)
            current.append(done[i, epochs])
        if rung < len(plan):
            alive = {0, _challenger(current, scoring, weights)["candidate"] - 1}
    return trials, current


def _challenger(screened: list[dict], scoring: Scoring, weights: list[float]) -> dict:
    """The screened trial that goes on: the cheapest (by `weights`, then the earliest) of
    those within one standard error of the best validation NDCG@10, so that noise in a
    short training does not buy the costliest final training."""
    best = max(screened, key=lambda t: _top(t, scoring))
    se = max(m["ndcg_se"] for key, m in best["scores"].items()
             if _allowed(key, scoring) and m["ndcg"] == _top(best, scoring))
    close = [t for t in screened if _top(t, scoring) >= _top(best, scoring) - se]
    return min(close, key=lambda t: (weights[t["candidate"] - 1], t["candidate"]))


def _top(trial: dict, scoring: Scoring) -> float:
    """A trial's best validation NDCG@10 over the scorers and supports open to choose."""
    return max(m["ndcg"] for key, m in trial["scores"].items() if _allowed(key, scoring))


def _allowed(key: str, scoring: Scoring) -> bool:
    scorer, support = key.split("@")
    return not ((scoring.scorer and scorer != scoring.scorer)
                or (scoring.min_support and int(support) != scoring.min_support))


def _supports(trial: dict, scoring: Scoring) -> dict:
    """min_support for each scorer on the winning training: the best on validation, unless
    it beats 1 by no more than one standard error (cosine lists need it, context rarely)."""
    out = {}
    for scorer in {key.split("@")[0] for key in trial["scores"]}:
        if scoring.min_support:
            out[scorer] = scoring.min_support
            continue
        base = trial["scores"][f"{scorer}@1"]
        support, m = max(((s, trial["scores"][f"{scorer}@{s}"]) for s in SUPPORTS), key=lambda sm: sm[1]["ndcg"])
        out[scorer] = support if m["ndcg"] - base["ndcg"] > base["ndcg_se"] else 1
    return out


def _validation_task(rules: SequenceRules, table, keys=()):
    """The validation split of `table` as a task over `keys` rows (none: only counts users)."""
    from catvec.pretraining.evaluation import build_tasks

    tasks, _, _ = build_tasks(table, list(keys), rules)  # holdout: last2 or basket
    return tasks["valid"]


def _best(trials: list[dict], scoring: Scoring) -> dict:
    """The (trial, scorer, support) of highest valid NDCG@10 (earlier wins ties), unless it
    beats the first trial with the fallback scorer and support by no more than one standard
    error of that one's NDCG@10: then the fallback, so noise does not pick the settings."""
    best = None
    for trial in trials:
        for key, m in trial["scores"].items():
            if not _allowed(key, scoring):
                continue
            scorer, support = key.split("@")
            if best is None or m["ndcg"] > best["ndcg"]:
                best = {"trial": trial, "scorer": scorer, "min_support": int(support), **m}
    default_key = f"{scoring.scorer or FALLBACK['scorer']}@{scoring.min_support or FALLBACK['min_support']}"
    default = trials[0]["scores"].get(default_key)
    if default is not None and best["ndcg"] - default["ndcg"] <= default["ndcg_se"]:
        scorer, support = default_key.split("@")
        return {"trial": trials[0], "scorer": scorer, "min_support": int(support), **default,
                "rule": f"within one standard error ({default['ndcg_se']:.4f}) of the fallback"}
    return dict(best, rule="best on validation")


def _trainer(skipgram: SkipGram, min_count: int, query_last: int, corpus, task):
    """trial(params) -> one training of `skipgram` with `params` on `corpus`, every scorer x
    support scored on the validation targets (`task`, rows in corpus.keys order: gensim keeps
    the corpus's frequency order)."""
    def trial(params: dict) -> dict:
        return _run(dataclasses.replace(skipgram, **params), min_count, query_last, corpus, task)

    return trial


def _run(skipgram: SkipGram, min_count: int, query_last: int, corpus, task) -> dict:
    """Train once, score every scorer x support on the validation targets."""
    from catvec.base.scoring import SCORERS, make_scorer
    from catvec.pretraining.evaluation import next_item_metrics, popularity_metrics
    from catvec.pretraining.skipgram import train_vectors

    t = time.perf_counter()
    vectors, _ = train_vectors(corpus, skipgram, min_count=min_count)
    if vectors.keys != corpus.keys:  # max_final_vocab dropped keys: encode the task for these rows
        task = _encode_again(task, corpus.keys, vectors.keys)
    scores = {}
    for name in SCORERS:
        for support in SUPPORTS:
            m = next_item_metrics(make_scorer(vectors, name, support), task, query_last=query_last)
            scores[f"{name}@{support}"] = {"ndcg": round(m["ndcg"], 5), "hr": round(m["hr"], 5),
                                           "ndcg_se": round(m["ndcg_se"], 5)}
    popularity = popularity_metrics(vectors.counts, task)
    return {"scores": scores, "popularity": {k: round(popularity[k], 5) for k in ("ndcg", "hr")},
            "queries": int(task.n_users), "seconds": round(time.perf_counter() - t, 2)}


def _encode_again(task, old_keys: list[str], new_keys: list[str]):
    """A task over `old_keys` rows as one over `new_keys` rows (-1 where a key is gone)."""
    import numpy as np

    from catvec.pretraining.evaluation import NextItemTask

    index = {k: i for i, k in enumerate(new_keys)}
    remap = np.array([index.get(k, -1) for k in old_keys] + [-1], dtype=np.int64)  # -1 stays -1
    return NextItemTask(task.indptr, remap[task.items], remap[task.targets])


def _tuning_corpus(rules: SequenceRules, table, directory):
    from pathlib import Path

    from catvec.pretraining.corpus import build_corpus

    return build_corpus(table, Path(directory) / "corpus.txt", rules)


def sample_events(table, max_events: int = 0, seed: int = 1, basket: bool = False, max_groups: int = 0):
    """The events of a seeded random sample of users (baskets): whole users, as many as
    fit in about `max_events` events and at most `max_groups` of them (0 = no limit).
    `table` may be an input split into shard files (catvec.pretraining.split.SplitEvents):
    the same sample, read a shard at a time."""
    import polars as pl

    if hasattr(table, "sample"):  # catvec.pretraining.split.SplitEvents
        return table.sample(max_events, seed, max_groups)
    frame = table.frame
    by = "group" if basket else "user"
    keep = sample_keys(frame.group_by(by).len(), by, max_events, seed, max_groups)
    if keep is None:
        return table
    sampled = frame.filter(pl.col(by).is_in(keep.implode()))
    return dataclasses.replace(table, frame=sampled, stats=dict(table.stats, events_read=sampled.height))


def sample_keys(sizes, by: str, max_events: int = 0, seed: int = 1, max_groups: int = 0):
    """The `by` values (users or baskets) of the sample from their event counts `sizes`
    (a polars frame `by`, len; any order): a seeded permutation of the sorted values, as
    many of its first as fit `max_events` (and `max_groups`). None: every one."""
    import numpy as np

    if (not max_events or int(sizes["len"].sum()) <= max_events) and not max_groups:
        return None
    sizes = sizes.sort(by)
    order = np.random.default_rng(seed).permutation(sizes.height)
    n = min(sizes.height, max_groups or sizes.height)
    if max_events:
        cum = np.cumsum(sizes["len"].to_numpy()[order])
        n = min(n, max(1, int(np.searchsorted(cum, max_events)) + 1))
    if n >= sizes.height:
        return None
    return sizes[by].gather(np.sort(order[:n]))
