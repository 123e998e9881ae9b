"""`catvec recommend`, basket holdout and the settings chosen by pretrain itself."""

import dataclasses

import numpy as np
import pandas as pd
import polars as pl
import pytest

from catvec.pretraining.config import PretrainConfig, Scoring, SkipGram
from catvec.base.manifest import read_manifest
from catvec.cli.main import main
from catvec.pretraining import autotune
from catvec.pretraining.events import read_events
from catvec.pretraining.pipeline import pretrain

FAST = dict(dim=16, epochs=3, exact=True, vector_map=False)


@pytest.fixture(scope="module")
def baskets(tmp_path_factory):
    """800 orders: each holds one planted pair (p<i>, q<i>) and 1-2 of five popular items."""
    rng = np.random.default_rng(1)
    rows = []
    for order in range(800):
        pair = int(rng.integers(20))
        items = [f"p{pair}", f"q{pair}"] + [f"pop{int(j)}" for j in rng.choice(5, int(rng.integers(1, 3)), replace=False)]
        rows += [(f"o{order}", item) for item in items]
    path = tmp_path_factory.mktemp("baskets") / "orders.csv"
    pd.DataFrame(rows, columns=["order_id", "item_id"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def history_version(tmp_path_factory, clustered_events):
    out = tmp_path_factory.mktemp("hist") / "art"
    pretrain(PretrainConfig(out=str(out), **FAST), events=clustered_events)
    return out / "latest"


def test_basket_holdout_hides_one_item_of_some_baskets_and_scores_completion(baskets, tmp_path):
    cfg = PretrainConfig(events=str(baskets), basket_col="order_id", time_col="", holdout="basket",
                         out=str(tmp_path / "b"), **FAST)
    result = pretrain(cfg)
    manifest = result.manifest
    held = manifest["corpus"]["heldout"]
    assert 100 <= held["baskets"] <= 220 and held["events"] == held["baskets"]  # ~20% of 800, one item each
    quality = manifest["quality"]
    assert set(quality["vectors"]) == {"test", "valid"} and quality["holdout"] == "basket"
    # the partner of the planted pair is what completes a basket: the context scorer finds it
    context, popularity = quality["scorers"]["context"]["test"], quality["popularity"]["test"]
    assert context["hr"] > 0.5 and context["hr"] > popularity["hr"]
    assert "Complete-the-basket" in (result.path / "report.md").read_text()
    # and `catvec evaluate` recomputes the same numbers from the events
    assert main(["evaluate", "--vectors", str(result.path), "--scorer", "context", "-q"]) == 0


def test_holdout_basket_needs_a_basket_column(tmp_path, capsys):
    assert main(["pretrain", "--holdout", "basket", "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "holdout basket needs basket_col" in capsys.readouterr().err


def test_recommend_writes_top_k_per_user_without_their_items(history_version, clustered_events, tmp_path, capsys):
    queries = clustered_events.head(120)  # users u0..u9, 12 events each
    queries.to_csv(tmp_path / "q.csv", index=False)
    out = tmp_path / "recs.csv"
    assert main(["recommend", "--vectors", str(history_version), "--events", str(tmp_path / "q.csv"),
                 "--topn", "5", "--out", str(out)]) == 0
    recs = pl.read_csv(out, schema_overrides={"user_id": pl.Utf8, "item_id": pl.Utf8})
    assert recs.columns == ["user_id", "rank", "item_id", "score"]
    assert recs.height == 10 * 5 and recs["rank"].to_list()[:5] == [1, 2, 3, 4, 5]
    seen = queries.groupby("user_id")["item_id"].apply(set).to_dict()
    assert not any(item in seen[user] for user, item in recs.select("user_id", "item_id").iter_rows())
    assert (recs.group_by("user_id").agg(pl.col("score").diff().max())["score"].fill_null(0) <= 1e-9).all()
    assert "10 queries" in capsys.readouterr().out


def test_recommend_counts_unknown_items_and_falls_back_to_popularity(history_version, tmp_path, capsys):
    (tmp_path / "q.csv").write_text("user_id,item_id,timestamp\nu1,c0_1,1\nu1,nope,2\nu2,nope,1\n")
    out = tmp_path / "r.csv"
    assert main(["recommend", "--vectors", str(history_version), "--events", str(tmp_path / "q.csv"),
                 "--topn", "3", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "2 queries (3 items, 2 unknown and skipped); 1 had no known item" in said
    recs = pl.read_csv(out, schema_overrides={"user_id": pl.Utf8, "item_id": pl.Utf8})
    assert recs.filter(pl.col("user_id") == "u2").height == 3  # popular items for the all-unknown user


@pytest.mark.parametrize("extra, message", [
    (["--topn", "0"], "--topn must be >= 1"),
    (["--scorer", "dot"], "unknown scorer 'dot'; use one of cosine, context"),
])
def test_recommend_refuses_bad_options(history_version, sample_events, tmp_path, capsys, extra, message):
    out = tmp_path / "r.csv"
    assert main(["recommend", "--vectors", str(history_version), "--events", str(sample_events),
                 "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("user_id,item_id,timestamp\nu1,x,1\nu2,y,2\n", "none of its 2 items"),
])
def test_recommend_refuses_queries_it_cannot_answer(history_version, tmp_path, capsys, text, message):
    (tmp_path / "q.csv").write_text(text)
    out = tmp_path / "r.csv"
    assert main(["recommend", "--vectors", str(history_version), "--events", str(tmp_path / "q.csv"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


def test_context_scorer_on_a_version_without_context_is_refused(tmp_path, capsys):
    from catvec.base.vectors import Vectors, save_vectors

    save_vectors(Vectors(["a", "b", "c"], np.eye(3, dtype=np.float32)), tmp_path / "old")
    assert main(["similar", "--vectors", str(tmp_path / "old"), "--scorer", "context", "a"]) == 2
    assert "no context vectors" in capsys.readouterr().err
    assert main(["similar", "--vectors", str(tmp_path / "old"), "a"]) == 0  # cosine, as before


# ---- settings chosen by pretrain -----------------------------------------------------

def test_pretrain_tunes_what_is_left_open_on_validation(clustered_events, tmp_path):
    cfg = PretrainConfig(out=str(tmp_path / "o"), dim=16, epochs=3, vector_map=False, holdout="last")
    manifest = pretrain(cfg, events=clustered_events).manifest
    tuning = manifest["tuning"]
    assert tuning["ran"] and tuning["settings"] == ["window", "ns_exponent", "sample", "scorer", "min_support"]
    # epochs were given, so candidates that differ only in epochs are one trial
    assert len(tuning["trials"]) == len(autotune.candidates(SkipGram.of(cfg), False, halving=True)) + 1 == 4  # 2 screened, then 2 at full epochs
    chosen = tuning["chosen"]
    assert {k: manifest["params"][k] for k in chosen} == chosen and manifest["params"]["epochs"] == 3
    assert manifest["scoring"] == {"scorer": chosen["scorer"], "min_support": chosen["min_support"],
                                   "supports": tuning["supports"]}
    assert tuning["supports"][chosen["scorer"]] == chosen["min_support"] and set(tuning["supports"]) == {"cosine", "context"}
    # the winner comes from the trainings at full epochs (the last rung), the fallback first
    final = [t for t in tuning["trials"] if t["rung"] == 2]
    best = max(s["ndcg"] for t in final for s in t["scores"].values())
    winner = tuning["winner"]
    assert winner["ndcg"] == best or (winner["trial"] == final[0]["trial"] and "standard error" in winner["rule"])


def test_noise_does_not_choose_the_settings():
    def trial(i, context, cosine):
        return {"trial": i, "scores": {"context@1": {"ndcg": context, "hr": 0, "ndcg_se": 0.01},
                                       "cosine@1": {"ndcg": cosine, "hr": 0, "ndcg_se": 0.01}}}

    cfg = Scoring.of(PretrainConfig())
    close = autotune._best([trial(1, 0.100, 0.05), trial(2, 0.105, 0.108)], cfg)
    assert (close["trial"]["trial"], close["scorer"]) == (1, "context") and "standard error" in close["rule"]
    clear = autotune._best([trial(1, 0.100, 0.05), trial(2, 0.105, 0.125)], cfg)
    assert (clear["trial"]["trial"], clear["scorer"], clear["rule"]) == (2, "cosine", "best on validation")


def test_explicit_settings_and_no_tune_skip_tuning(clustered_events, tmp_path):
    given = PretrainConfig(out=str(tmp_path / "a"), window=5, ns_exponent=0.75, sample=1e-3, scorer="cosine",
                           min_support=2, **FAST)
    manifest = pretrain(given, events=clustered_events).manifest
    assert manifest["tuning"] == {"ran": False, "reason": "every setting given"}
    assert manifest["scoring"] == {"scorer": "cosine", "min_support": 2, "supports": {}}
    assert manifest["params"]["window"] == 5
    off = pretrain(dataclasses.replace(given, out=str(tmp_path / "b"), window=0, tune=False), events=clustered_events)
    assert off.manifest["tuning"]["reason"] == "--no-tune" and off.manifest["params"]["window"] == autotune.FALLBACK["window"]


def test_too_little_data_falls_back(tmp_path, write_csv):
    events = write_csv("e.csv", "user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u + j) % 7},{j}\n"
                                                                         for u in range(30) for j in range(6)))
    manifest = pretrain(PretrainConfig(events=str(events), out=str(tmp_path / "o"), **FAST)).manifest
    assert not manifest["tuning"]["ran"] and "tuning needs 100" in manifest["tuning"]["reason"]
    assert manifest["params"]["window"] == autotune.FALLBACK["window"]


def test_each_scorer_keeps_its_own_support(tmp_path):
    from catvec.base.scoring import make_scorer
    from catvec.base.vectors import Vectors, load_vectors, save_vectors

    v = Vectors(["a", "b", "c"], np.eye(3, dtype=np.float32), context=np.eye(3, dtype=np.float32),
                counts=np.array([20, 5, 1]))
    save_vectors(v, tmp_path / "v", {"scoring": {"scorer": "context", "min_support": 1,
                                                 "supports": {"cosine": 10, "context": 1}}})
    back = load_vectors(tmp_path / "v")
    assert make_scorer(back, "cosine").allowed.tolist() == [True, False, False]
    assert make_scorer(back).allowed.all() and make_scorer(back, "cosine", 1).allowed.all()
    trial = {"scores": {f"{s}@{n}": {"ndcg": nd, "hr": 0, "ndcg_se": 0.01}
                        for s, vals in {"cosine": (0.05, 0.055, 0.08), "context": (0.1, 0.105, 0.104)}.items()
                        for n, nd in zip(autotune.SUPPORTS, vals)}}
    assert autotune._supports(trial, Scoring.of(PretrainConfig())) == {"cosine": 10, "context": 1}


def test_auto_epochs_grow_as_the_corpus_shrinks():
    assert autotune.auto_epochs(100_000) == 15
    assert autotune.auto_epochs(1_000_000) == 5 and autotune.auto_epochs(10**8) == 5
    assert autotune.auto_epochs(1_000) == 50
    assert autotune.auto_epochs(10_000) > autotune.auto_epochs(100_000)


def test_sample_events_keeps_whole_users(clustered_events):
    table = read_events(clustered_events)
    sample = autotune.sample_events(table, 300, seed=1)
    per_user = sample.frame.group_by("user").len()["len"]
    assert 300 <= sample.frame.height <= 312 and (per_user == 12).all()
    assert autotune.sample_events(table, 10**6, seed=1) is table


def test_losing_to_popularity_is_said_out_loud():
    from catvec.reports.render import popularity_warnings, quality_table

    m = {"hr": 0.02, "ndcg": 0.01, "users": 50, "k": 10}
    pop = {"hr": 0.05, "ndcg": 0.02, "users": 50, "k": 10}
    quality = {"holdout": "last", "k": 10, "scorer": "cosine", "vectors": {"test": m}, "popularity": {"test": pop},
               "scorers": {"cosine": {"test": m}}, "users": 50, "target_coverage": 1.0}
    warnings = popularity_warnings({"quality": quality})
    assert len(warnings) == 1 and "do not beat popularity (0.0500)" in warnings[0]
    assert "| test | cosine (default) | 0.0200 | 0.0100 | 0.40x popularity |" in quality_table(quality)
    winning = dict(quality, vectors={"test": dict(m, hr=0.2)})
    assert popularity_warnings({"quality": winning}) == []


def test_pretrain_prints_the_choice_and_the_ratio_to_popularity(clustered_events, tmp_path, capsys):
    path = tmp_path / "e.csv"
    clustered_events.to_csv(path, index=False)
    assert main(["pretrain", "--events", str(path), "--out", str(tmp_path / "o"), "--dim", "8", "--epochs", "2",
                 "--holdout", "last", "--no-vector-map"]) == 0
    captured = capsys.readouterr()
    assert "tuning: trial 1:" in captured.err
    tuned = next(line for line in captured.out.splitlines() if line.startswith("tuned "))
    assert "x popularity" in tuned and "window=" in tuned
    assert "x popularity" in next(line for line in captured.out.splitlines() if line.startswith("test: HR@10"))


def test_a_split_that_leaves_no_corpus_falls_back(tmp_path, write_csv):
    # 120 users of 5 events: min_sequence_length 4 keeps them whole, not without their last two
    events = write_csv("e.csv", "user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u + j) % 9},{j}\n"
                                                                         for u in range(120) for j in range(5)))
    cfg = PretrainConfig(events=str(events), out=str(tmp_path / "o"), min_sequence_length=4, **FAST)
    manifest = pretrain(cfg).manifest
    assert not manifest["tuning"]["ran"] and "left no corpus" in manifest["tuning"]["reason"]


def test_a_validation_task_follows_the_rows_of_a_smaller_vocab():
    from catvec.pretraining.evaluation import NextItemTask

    task = NextItemTask([0, 2, 3], [0, 2, 1], [1, 2])
    moved = autotune._encode_again(task, ["a", "b", "c"], ["c", "a"])   # "b" fell out of the vocab
    assert moved.items.tolist() == [1, 0, -1] and moved.targets.tolist() == [-1, 0]


def test_tuning_with_a_capped_vocab_still_scores(clustered_events, tmp_path):
    cfg = PretrainConfig(out=str(tmp_path / "o"), dim=8, epochs=2, vector_map=False, max_final_vocab=30)
    tuning = pretrain(cfg, events=clustered_events).manifest["tuning"]
    assert tuning["ran"] and all(t["scores"]["context@1"]["hr"] >= 0 for t in tuning["trials"])


def test_recommend_reads_and_names_the_columns_the_vectors_were_trained_with(tmp_path, write_csv, capsys):
    from catvec.base.vectors import Vectors, save_vectors

    rng = np.random.default_rng(2)
    v = Vectors([f"a{i}" for i in range(6)], rng.normal(size=(6, 4)).astype(np.float32))
    save_vectors(v, tmp_path / "v", {"params": {"user_col": "listener", "item_col": "artist",
                                                "time_col": "played_at", "basket_col": "", "query_last": 1}})
    queries = write_csv("q.csv", "listener,artist,played_at\nl1,a0,1\nl1,a1,2\nl2,a3,1\n")
    assert main(["recommend", "--vectors", str(tmp_path / "v"), "--events", str(queries), "--k", "2",
                 "--out", str(tmp_path / "r.csv"), "-q"]) == 0
    recs = pl.read_csv(tmp_path / "r.csv", schema_overrides={"listener": pl.Utf8, "artist": pl.Utf8})
    assert recs.columns == ["listener", "rank", "artist", "score"] and recs["listener"].to_list() == ["l1"] * 2 + ["l2"] * 2
    assert recs.filter(pl.col("listener") == "l2")["artist"].to_list() == [k for k, _ in v.most_similar("a3", 2)]
    # flags still win over what the version remembers
    renamed = write_csv("r2.csv", "who,what,when\nl1,a0,1\n")
    assert main(["recommend", "--vectors", str(tmp_path / "v"), "--events", str(renamed), "--user-col", "who",
                 "--item-col", "what", "--time-col", "when", "--out", str(tmp_path / "r2.csv"), "-q"]) == 0
    assert pl.read_csv(tmp_path / "r2.csv").columns == ["who", "rank", "what", "score"]
