"""`catvec tune`: a budgeted search over window, epochs, sample and ns_exponent.

Each trial trains on a sample of users with their last two items held out and is scored
on the validation item (the second to last), never on the test item, with each scorer
(the better one is the trial's score and is written as `scorer`). The first trial is
the current configuration, so the result is never worse than it on validation. The best
settings are written as a TOML file that `catvec pretrain --config` reads (with
holdout = "none": the final model trains on everything).

    result = tune(PretrainConfig(events="plays.csv"), TuneBudget(trials=12), "tuned.toml")
    result.best["params"], result.best["score"]
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from catvec.base.config import field_types, parse_duration

from catvec.pretraining.config import EventOptions, PretrainConfig, Scoring, SequenceRules, SkipGram
from catvec.base.errors import CatvecError
from catvec.base.writes import check_writable, describe_os_error
from catvec.pretraining.autotune import resolve, sample_events

log = logging.getLogger(__name__)

SEARCH_SPACE = {
    "window": [3, 5, 10, 20],
    "epochs": [5, 10, 20, 40],
    "sample": [0.0, 1e-5, 1e-4, 1e-3],
    "ns_exponent": [-0.5, 0.0, 0.5, 0.75, 1.0],
}
NOT_WRITTEN = ("out", "refresh", "keep")


@dataclass
class TuneBudget:
    trials: int = 12
    time_limit: str = ""         # e.g. "10m"; "" = no limit
    sample_users: int = 5000     # 0 = every user
    metric: str = "ndcg"         # "ndcg" or "hr" (at 10)
    seed: int = 1

    def validate(self) -> "TuneBudget":
        if self.trials < 1:
            raise CatvecError(f"trials must be >= 1, got {self.trials}")
        if self.sample_users < 0:
            raise CatvecError(f"sample_users must be >= 0, got {self.sample_users}")
        if self.metric not in ("ndcg", "hr"):
            raise CatvecError(f"metric must be ndcg or hr, got {self.metric!r}")
        if self.time_limit:
            parse_duration(self.time_limit, "time_limit")
        return self

    @property
    def seconds(self) -> float:
        return parse_duration(self.time_limit, "time_limit") if self.time_limit else float("inf")

    def describe(self) -> str:
        limit = f", time limit {self.time_limit}" if self.time_limit else ""
        users = f"{self.sample_users} users" if self.sample_users else "all users"
        return f"up to {self.trials} trials{limit}, {users}, scored on valid {self.metric}@10"


@dataclass
class TuneResult:
    path: Path
    best: dict
    popularity: float
    trials: list[dict] = field(default_factory=list)


def sample_table(table, sample_users: int, seed: int):
    """The events of at most `sample_users` users (0 = all), chosen with a seeded generator."""
    return sample_events(table, seed=seed, max_groups=sample_users)


def prepare_corpus(rules: SequenceRules, table, directory):
    """The training corpus of `table` cut by `rules` (validation_rules: the last two items of
    each user held out)."""
    from catvec.pretraining.corpus import build_corpus

    return build_corpus(table, Path(directory) / "corpus.txt", rules)


def validation_rules(rules: SequenceRules, basket: bool) -> SequenceRules:
    """`rules` with the last two items held out (one hidden item of a share of the baskets in
    basket mode): the test item and the validation item."""
    return dataclasses.replace(rules, holdout="basket" if basket else "last2")


def run_trial(corpus, table, skipgram: SkipGram, scoring: Scoring, rules: SequenceRules, roles=("valid",)) -> dict:
    """Train `skipgram` on `corpus` and score the roles `rules` (validation_rules) hold out of
    `table` with `scoring`: the manifest's quality block."""
    from catvec.pretraining.evaluation import build_tasks, score_tasks
    from catvec.pretraining.skipgram import train_vectors

    vectors, _ = train_vectors(corpus, skipgram, min_count=rules.min_count)
    tasks, counts, _ = build_tasks(table, vectors.keys, rules)
    return score_tasks(vectors, {r: tasks[r] for r in roles}, counts, query_last=scoring.query_last,
                       scorer=scoring.scorer or None, min_support=scoring.min_support or 1)


def candidate_params(skipgram: SkipGram, seed: int) -> list[dict]:
    """The current settings first, then the rest of the grid in a seeded random order."""
    names = list(SEARCH_SPACE)
    current = {n: getattr(skipgram, n) for n in names}
    grid = [dict(zip(names, values)) for values in itertools.product(*SEARCH_SPACE.values())]
    order = np.random.default_rng(seed).permutation(len(grid))
    return [current] + [grid[i] for i in order if grid[i] != current]


def tune(cfg: PretrainConfig, budget: TuneBudget, path, on_trial=None) -> TuneResult:
    """Search the grid within the budget and write the best settings to `path` (TOML)."""
    from catvec.pretraining.events import read_events_table

    cfg.validate()
    budget.validate()
    check_writable(path, "--write", file=True)
    started = time.perf_counter()
    table = sample_table(read_events_table(EventOptions.of(cfg)), budget.sample_users, budget.seed)
    trials: list[dict] = []
    best = None
    popularity = float("nan")
    with tempfile.TemporaryDirectory(prefix="catvec-tune-") as tmp:
        rules = validation_rules(SequenceRules.of(cfg), bool(cfg.basket_col))
        corpus = prepare_corpus(rules, table, tmp)
        cfg = dataclasses.replace(cfg, **resolve(SkipGram.of(cfg), Scoring.of(cfg), corpus.stats["tokens"]))
        scoring = dataclasses.replace(Scoring.of(cfg), scorer="")
        for params in candidate_params(SkipGram.of(cfg), budget.seed)[:budget.trials]:
            if trials and time.perf_counter() - started > budget.seconds:
                log.info("tune: time limit reached after %d trials", len(trials))
                break
            t = time.perf_counter()
            quality = run_trial(corpus, table, dataclasses.replace(SkipGram.of(cfg), **params), scoring, rules)
            scorer, score = max(((name, roles["valid"][budget.metric]) for name, roles in quality["scorers"].items()),
                                key=lambda pair: pair[1])
            params = {**params, "scorer": scorer}
            popularity = quality["popularity"]["valid"][budget.metric]
            trial = {"trial": len(trials) + 1, "params": params, "score": score,
                     "seconds": time.perf_counter() - t, "best": best is None or score > best["score"]}
            trials.append(trial)
            if trial["best"]:
                best = trial
            if on_trial is not None:
                on_trial(trial)
    tuned = dataclasses.replace(cfg, **best["params"], holdout="none")
    header = [f"catvec tune, {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
              f"best of {len(trials)} trial(s): valid {budget.metric}@10 = {best['score']:.4f} "
              f"(popularity {popularity:.4f}; first trial, the starting settings: {trials[0]['score']:.4f})",
              f"users sampled: {budget.sample_users or 'all'}"]
    written = write_config_toml(tuned, path, header)
    return TuneResult(path=written, best=best, popularity=popularity, trials=trials)


def write_config_toml(cfg: PretrainConfig, path, comments=()) -> Path:
    """A PretrainConfig as a `[pretrain]` TOML table that `catvec pretrain --config` reads."""
    lines = [f"# {line}" for line in comments] + ["[pretrain]"]
    for name in field_types(type(cfg)):
        if name in NOT_WRITTEN or getattr(cfg, name) is None:  # TOML has no null: left out = the default
            continue
        lines.append(f"{name} = {_toml_value(getattr(cfg, name))}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise CatvecError(f"cannot write {path} ({describe_os_error(exc)})") from None
    return path


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else ("nan" if np.isnan(value) else ("inf" if value > 0 else "-inf"))
    # A JSON string is a TOML basic string, once DEL (legal in JSON, not in TOML) is escaped.
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
