"""Cold start on MovieLens ml-latest-small: vectors for movies with no history, from their
genres and year (docs/cold_start.md).

Per seed, 20% of the movies with >= 20 ratings are held out ("cold"): all their events are
removed before pretraining; every movie's attributes (genres, multi-valued with `|`; year
and decade from the title) are known. Each user's last rating is kept out of training as
their next-item target.

1. intrinsic: overlap@10 of each cold movie's 10 nearest warm movies (cosine of input
   vectors; the pool: warm movies with >= 20 ratings) with its 10 nearest in a reference
   model trained on all events. Composed vectors (`pretrain --item-attributes`) against
   popular-in-group (the 10 most rated warm movies of the same decade: those with the same
   genres first, then those sharing the most genres; also: sharing any genre) and the
   mean of the group's vectors (both on the same run without attributes). `--methods` also measures the candidate methods that
   chose the composition (attribute tokens inside the sequences, Meta-Prod2Vec-like, and
   ridge variants);
2. next item: HR@10 of users whose target is a cold movie, every movie a candidate (warm
   and cold), the version's scorer (context) on the last item (and cosine, also without the
   keys seen under 5 times), against popular-in-group (the most rated movies of the group of
   the user's last movie, filled up as above, a cold movie scored by the mean count of its
   group). Warm targets: HR@10 with attributes against the same run without
   them;
3. finetune: liked = rating >= 4 from userId, movieId, year; trained on the rows of warm
   movies, scored (AUC) on the rows of cold movies: movieId rows started from the composed
   vectors (`finetune --item-attributes`) against the out-of-vocabulary init;
4. few events: another 20% of the movies with >= 20 ratings keep 1 to 8 of them; overlap@10
   of their learned vectors, composed ones, blends, and `pretrain --attribute-blend 3`.

    .venv/bin/python benchmarks/cold_start.py --seeds 3 [--methods] [--out results.md]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_lines, markdown_table, movielens_dir  # noqa: E402

MIN_RATINGS = 20
COLD_SHARE = 0.2
K = 10
COSINE_SUPPORT = 5  # cosine lists without the keys seen under 5 times (blended with their attributes)
SETTINGS = dict(window=10, epochs=15, ns_exponent=0.0, sample=0.0, scorer="context", min_support=1, tune=False,
                vector_map=False, gate=False, align=False, dim=64)


# ---- data ------------------------------------------------------------------------------

def load(data: Path):
    """(ratings frame sorted by user and time, attributes frame: movieId, genres, year, decade)."""
    import polars as pl

    ratings = pl.read_csv(data / "ratings.csv", schema_overrides={"movieId": pl.Utf8, "userId": pl.Utf8})
    ratings = ratings.sort(["userId", "timestamp", "movieId"])
    movies = pl.read_csv(data / "movies.csv", schema_overrides={"movieId": pl.Utf8})
    years = [(_year(t)) for t in movies["title"].to_list()]
    attributes = pl.DataFrame({
        "movieId": movies["movieId"],
        "genres": [None if g == "(no genres listed)" else g for g in movies["genres"].to_list()],
        "year": [str(y) if y else None for y in years],
        "decade": [f"{y // 10 * 10}s" if y else None for y in years],
    })
    return ratings, attributes


def _year(title: str) -> int | None:
    found = re.findall(r"\((\d{4})\)", title)
    return int(found[-1]) if found else None


def split(ratings, seed: int):
    """(cold movie ids, training events: no cold movie and no user's last rating, targets:
    user -> last movie)."""
    import polars as pl

    counts = ratings.group_by("movieId").len()
    eligible = sorted(counts.filter(pl.col("len") >= MIN_RATINGS)["movieId"].to_list())
    rng = np.random.default_rng(seed)
    cold = set(rng.choice(eligible, size=int(len(eligible) * COLD_SHARE), replace=False).tolist())
    last = ratings.group_by("userId", maintain_order=True).agg(pl.col("movieId").last())
    targets = dict(zip(last["userId"].to_list(), last["movieId"].to_list()))
    is_last = pl.int_range(pl.len()).over("userId") == pl.len().over("userId") - 1
    train = ratings.filter(~is_last & ~pl.col("movieId").is_in(list(cold)))
    return cold, set(eligible), train, targets


def groups(attributes) -> dict[str, tuple]:
    """movieId -> (sorted genres, decade): the group of the baselines."""
    out = {}
    for key, genres, decade in zip(attributes["movieId"].to_list(), attributes["genres"].to_list(),
                                   attributes["decade"].to_list()):
        out[key] = (tuple(sorted((genres or "").split("|"))), decade)
    return out


# ---- intrinsic ---------------------------------------------------------------------------

def popular_in_group(group: tuple | None, candidates: list[str], counts: dict, group_of: dict, k: int = K,
                     exact: bool = True) -> list[str]:
    """The k most rated candidates of the same decade as `group` (genres, decade): exact=True,
    those with the same genres first, then those sharing the most genres (so the list has k
    items even when the exact group is small); exact=False, among those sharing a genre."""
    genres, decade = group or ((), None)
    scored = []
    for key in candidates:
        other = group_of.get(key) or ((), None)
        if other[1] != decade:
            continue
        shared = len(set(other[0]) & set(genres))
        if exact:
            scored.append(((other[0] != genres, -shared, -counts.get(key, 0)), key))
        elif shared:
            scored.append(((-counts.get(key, 0),), key))
    return [key for _, key in sorted(scored)[:k]]


def nearest(matrix: np.ndarray, pool: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Rows of `pool` nearest (cosine) to each query vector: (n_q, k) indices into pool."""
    unit = matrix[pool] / np.maximum(np.linalg.norm(matrix[pool], axis=1, keepdims=True), 1e-12)
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    return np.argsort(-(q @ unit.T), axis=1)[:, :k]


def intrinsic(reference, vectors, plain, cold: list[str], pool_keys: list[str], group_of: dict) -> dict:
    """overlap@10 with the reference's lists, per method: {method: mean overlap}. The
    baselines read the run without attributes (`plain`), catvec the run with them."""
    ref_pool = np.array([reference.key_to_index[k] for k in pool_keys])
    truth = nearest(reference.matrix, ref_pool, reference.matrix[[reference.key_to_index[c] for c in cold]])
    truth = [set(np.asarray(pool_keys)[row]) for row in truth]
    warm = list(plain.keys)
    members: dict[tuple, list[str]] = {}
    for k in warm:
        members.setdefault(group_of.get(k), []).append(k)

    def group(c):
        return members.get(group_of.get(c)) or [k for k in warm if group_of.get(k, (0, 0))[1] == group_of[c][1]] or warm

    def score(lists):
        return float(np.mean([len(set(lst) & t) / K for lst, t in zip(lists, truth)]))

    counts = {k: plain.count(k) for k in warm}
    pool_set = set(pool_keys)
    out = {"popular-in-group": score([popular_in_group(group_of.get(c), pool_keys, counts, group_of) for c in cold]),
           "popular sharing a genre": score([popular_in_group(group_of.get(c), pool_keys, counts, group_of, exact=False)
                                             for c in cold]),
           "popular-in-group, exact genres only (short lists)":
               score([sorted((k for k in group(c) if k in pool_set), key=lambda k: -counts[k])[:K] for c in cold])}
    means = np.stack([plain.matrix[[plain.key_to_index[k] for k in group(c)]].mean(axis=0) for c in cold])
    plain_pool = np.array([plain.key_to_index[k] for k in pool_keys])
    out["mean of group vectors"] = score([np.asarray(pool_keys)[r] for r in nearest(plain.matrix, plain_pool, means)])
    pool = np.array([vectors.key_to_index[k] for k in pool_keys])
    composed = vectors.matrix[[vectors.key_to_index[c] for c in cold]]
    out["composed (catvec)"] = score([np.asarray(pool_keys)[r] for r in nearest(vectors.matrix, pool, composed)])
    return out, truth


# ---- next item ------------------------------------------------------------------------------

def next_item(vectors, plain, train, targets: dict, cold: set, group_of: dict) -> dict:
    """HR@10 for cold and warm targets: catvec with attributes (cold candidates in, and
    left out), the same run without attributes (`plain`), popular-in-group."""
    from catvec.base.scoring import recommend_rows

    import polars as pl

    last = train.group_by("userId", maintain_order=True).agg(pl.col("movieId").last())
    last_item = dict(zip(last["userId"].to_list(), last["movieId"].to_list()))
    users = [u for u in targets if u in last_item and last_item[u] in vectors.key_to_index
             and targets[u] in vectors.key_to_index]
    index = vectors.key_to_index
    items = np.array([index[last_item[u]] for u in users], dtype=np.int64)
    indptr = np.arange(len(users) + 1, dtype=np.int64)
    hit = {}
    for label, with_cold, scorer, support in (("with cold candidates", True, None, None), ("--no-cold", False, None, None),
                                              ("with cold candidates, cosine scorer", True, "cosine", None),
                                              (f"cosine scorer, --min-support {COSINE_SUPPORT}", True, "cosine",
                                               COSINE_SUPPORT)):
        recs = recommend_rows(vectors, indptr, items, K, scorer, support, query_last=1, cold=with_cold)
        hit[label] = np.array([index[targets[u]] in set(row) for u, row in zip(users, recs.items.tolist())])
    plain_items = np.array([plain.key_to_index.get(last_item[u], -1) for u in users], dtype=np.int64)
    recs = recommend_rows(plain, indptr, plain_items, K, query_last=1)
    hit["the same run without attributes"] = np.array([plain.key_to_index.get(targets[u], -2) in set(row)
                                                       for u, row in zip(users, recs.items.tolist())])
    # popular-in-group: the group of the user's last movie, by training count; cold = its group's mean
    counts = {k: vectors.count(k) for k in vectors.keys}
    by_group: dict[tuple, list[str]] = {}
    for k in vectors.keys:
        by_group.setdefault(group_of.get(k), []).append(k)
    group_mean = {g: np.mean([counts[k] for k in ks if k not in cold] or [0]) for g, ks in by_group.items()}
    scored = {k: group_mean[group_of.get(k)] if k in cold else counts[k] for k in vectors.keys}
    top = {g: popular_in_group(g, vectors.keys, scored, group_of, K + 1)
           for g in {group_of.get(last_item[u]) for u in users}}
    hit["popular-in-group"] = np.array([targets[u] in [k for k in top[group_of.get(last_item[u])]
                                                       if k != last_item[u]][:K] for u in users])
    is_cold = np.array([targets[u] in cold for u in users])
    return {"cold_users": int(is_cold.sum()), "warm_users": int((~is_cold).sum()),
            **{f"cold {label}": float(h[is_cold].mean()) for label, h in hit.items()},
            **{f"warm {label}": float(h[~is_cold].mean()) for label, h in hit.items()}}


# ---- finetune -------------------------------------------------------------------------------

def finetune_liked(ratings, attributes, cold: set, vectors_dir: Path, attributes_csv: Path, tmp: Path,
                   seed: int) -> dict:
    """Test AUC on the rows of cold movies: composed vectors against the OOV init."""
    import polars as pl

    from catvec.finetuning.config import FinetuneConfig
    from catvec.finetuning.pipeline import finetune

    rng = np.random.default_rng(seed)
    table = ratings.join(attributes.select("movieId", "year"), on="movieId", how="left").with_columns(
        liked=(pl.col("rating") >= 4).cast(pl.Int64), year=pl.col("year").cast(pl.Float64).fill_null(1990.0))
    split = np.where(table["movieId"].is_in(list(cold)).to_numpy(), "test",
                     np.where(rng.random(table.height) < 0.2, "val", "train"))
    table = table.with_columns(split=pl.Series(split)).select("userId", "movieId", "year", "liked", "split")
    path = tmp / "liked.csv"
    table.write_csv(path)
    out = {}
    for label, attrs in (("OOV init", ""), ("composed (catvec)", str(attributes_csv))):
        cfg = FinetuneConfig(vectors=str(vectors_dir), table=str(path), target="liked", cat_cols="userId,movieId",
                             cont_cols="year", pretrained_cols="movieId", split_col="split", out=str(tmp / "models"),
                             epochs=6, batch_size=512, auto="off", seed=seed, item_attributes=attrs,
                             labeled_only=True)
        result = finetune(cfg)
        out[label] = float(result.metrics["test"]["test_auc"])
    return out


# ---- keys with few events --------------------------------------------------------------------

FEW_COUNTS = (1, 2, 3, 5, 8)
BLENDS = (1, 3, 10)


def few_events(ratings, eligible: set, reference, attributes_csv: Path, tmp: Path, seed: int) -> dict:
    """Another 20% of the movies with >= 20 ratings keep only 1, 2, 3, 5 or 8 of them: overlap@10
    with the reference of their learned vectors, their composed ones, blends n/(n+k) of the
    two, and `pretrain --attribute-blend 3` itself. {method: {count band: overlap}}."""
    import polars as pl

    from catvec.base.attributes import compose_vectors, read_attributes
    from catvec.base.vectors import Vectors, load_vectors
    from catvec.pretraining.pipeline import pretrain
    from common import movielens_config

    rng = np.random.default_rng(100 + seed)
    few = rng.choice(sorted(eligible), size=int(len(eligible) * COLD_SHARE), replace=False).tolist()
    keep = pl.DataFrame({"movieId": few, "n": rng.choice(FEW_COUNTS, size=len(few))})
    table = ratings.with_columns(r=pl.Series(rng.random(ratings.height))).with_columns(
        r=pl.col("r").rank("ordinal").over("movieId"))
    table = table.join(keep, on="movieId", how="left").filter(pl.col("n").is_null() | (pl.col("r") <= pl.col("n")))
    events = tmp / f"few-{seed}.csv"
    table.sort(["userId", "timestamp", "movieId"]).select(ratings.columns).write_csv(events)
    runs = {blend: load_vectors(pretrain(movielens_config(events=str(events), out=str(tmp / f"few-{seed}-{blend}"),
                                                          seed=seed + 1, item_attributes=str(attributes_csv),
                                                          attribute_blend=blend, **SETTINGS)).path)
            for blend in (0, 3)}
    learned = runs[0]
    keys = [k for k in few if k in learned and 0 < learned.count(k) < 20]
    # composed: fitted without these keys, as a key with no history would be
    rest = np.array([k not in set(keys) for k in learned.keys])
    base = Vectors(keys=[k for k, r in zip(learned.keys, rest) if r], matrix=learned.matrix[rest],
                   context=learned.context[rest], counts=learned.counts[rest])
    composed, _ = compose_vectors(base, read_attributes(attributes_csv, "movieId"))
    pool_keys = sorted(k for k in eligible - set(few) if k in learned)
    ref_pool = np.array([reference.key_to_index[k] for k in pool_keys])
    truth = [set(np.asarray(pool_keys)[r]) for r in
             nearest(reference.matrix, ref_pool, reference.matrix[[reference.key_to_index[k] for k in keys]])]
    pool = np.array([learned.key_to_index[k] for k in pool_keys])
    n = np.array([learned.count(k) for k in keys], dtype=np.float64)[:, None]
    lv = learned.matrix[[learned.key_to_index[k] for k in keys]]
    cv = composed.matrix[[composed.key_to_index[k] for k in keys]]
    variants = {"learned only": lv, "composed only": cv,
                **{f"blend n/(n+{b})": (n / (n + b)) * lv + (b / (n + b)) * cv for b in BLENDS},
                "pretrain --attribute-blend 3": runs[3].matrix[[runs[3].key_to_index[k] for k in keys]]}
    bands = {"1": n[:, 0] == 1, "2-3": (n[:, 0] >= 2) & (n[:, 0] <= 3), "4-8": (n[:, 0] >= 4) & (n[:, 0] <= 8),
             "all": np.ones(len(keys), dtype=bool)}
    out = {}
    for name, queries in variants.items():
        pool_lists = nearest(learned.matrix, pool, queries)
        overlap = np.array([len(set(np.asarray(pool_keys)[r]) & t) / K for r, t in zip(pool_lists, truth)])
        out[name] = {band: float(overlap[mask].mean()) if mask.any() else float("nan") for band, mask in bands.items()}
    out["keys"] = {band: int(mask.sum()) for band, mask in bands.items()}
    return out


# ---- candidate methods (--methods) ------------------------------------------------------------

def methods(train, cold: list[str], pool_keys: list[str], attributes, truth, seed: int) -> dict:
    """overlap@10 of the candidate compositions, on gensim models with the same settings."""
    from gensim.models import Word2Vec

    from catvec.base.attributes import _feature_matrix, _ridge_predict

    seqs = [list(s) for s in train.group_by("userId", maintain_order=True).agg("movieId")["movieId"].to_list()]
    tokens = {}
    for key, g, y, d in attributes.iter_rows():
        tokens[key] = [f"genres={x}" for x in (g or "").split("|") if x] + ([f"year={y}", f"decade={d}"] if y else [])
    params = dict(sg=1, vector_size=SETTINGS["dim"], window=SETTINGS["window"], negative=5, ns_exponent=0.0,
                  sample=0.0, min_count=1, epochs=SETTINGS["epochs"], workers=2, seed=seed + 1)
    out = {}

    def score(model_keys, matrix, composed):
        idx = {k: i for i, k in enumerate(model_keys)}
        pool = np.array([idx[k] for k in pool_keys])
        lists = [set(np.asarray(pool_keys)[r]) for r in nearest(matrix, pool, composed)]
        return float(np.mean([len(a & t) / K for a, t in zip(lists, truth)]))

    plain = Word2Vec(seqs, **params)
    keys = list(plain.wv.index_to_key)
    counts = np.array([plain.wv.get_vecattr(k, "count") for k in keys], dtype=np.float64)
    def crossed(values):  # every value plus every pair of values from two columns
        return values + [f"{a}&{b}" for i, a in enumerate(values) for b in values[i + 1:]
                         if a.split("=")[0] != b.split("=")[0]]

    for name, crosses, weighted, penalty in (("ridge, unweighted", False, False, 1.0),
                                             ("ridge, count-weighted, penalty 0.1", False, True, 0.1),
                                             ("ridge, count-weighted, penalty 1 (catvec)", False, True, 1.0),
                                             ("ridge, count-weighted, penalty 10", False, True, 10.0),
                                             ("ridge, count-weighted, + crosses of two columns", True, True, 1.0)):
        feats = [crossed(tokens[k]) if crosses else tokens[k] for k in keys + cold]
        vocab, x = _feature_matrix(feats[:len(keys)], None)
        _, x_new = _feature_matrix(feats[len(keys):], vocab)
        w = counts if weighted else np.ones(len(keys))
        composed = _ridge_predict(x, plain.wv.vectors.astype(np.float64), w, x_new, penalty * float(w.mean()))
        out[name] = score(keys, plain.wv.vectors, composed)
    out.update(chosen_on_warm(keys, counts, plain.wv.vectors, tokens, cold, pool_keys, truth, seed))
    # Meta-Prod2Vec-like: each movie followed by its attribute tokens in the sequences;
    # a cold movie = the mean of its attribute tokens' vectors
    meta = Word2Vec([[t for k in s for t in [k] + tokens[k]] for s in seqs], **params)
    mkeys = [k for k in meta.wv.index_to_key if k in tokens]
    mat = meta.wv[mkeys]
    composed = np.stack([meta.wv[[t for t in tokens[c] if t in meta.wv]].mean(axis=0) for c in cold])
    out["attribute tokens in the sequences (Meta-Prod2Vec-like)"] = score(mkeys, mat, composed)
    return out


WEIGHTINGS = (("count", 1.0), ("count", 10.0), ("min(count, 50)", 10.0), ("min(count, 100)", 10.0))


def chosen_on_warm(keys: list[str], counts, matrix, tokens: dict, cold: list[str], pool_keys: list[str], truth,
                   seed: int) -> dict:
    """Ridge weights and penalty chosen without the cold movies: 20% of the pool's warm movies
    are left out of the fit and their composed vectors scored against their own learned
    neighbours among the rest of the pool (validation); then the cold movies (test)."""
    from catvec.base.attributes import _feature_matrix, _ridge_predict

    idx = {k: i for i, k in enumerate(keys)}
    rng = np.random.default_rng(50 + seed)
    val = sorted(rng.choice(pool_keys, size=len(pool_keys) // 5, replace=False).tolist())
    val_set = set(val)
    rest_pool = [k for k in pool_keys if k not in val_set]

    def overlap(fit, queries, pool, lists_truth):
        at = np.array([idx[k] for k in fit])
        vocab, x = _feature_matrix([tokens[k] for k in fit], None)
        _, x_new = _feature_matrix([tokens[k] for k in queries], vocab)
        cap = float(weighting.split(", ")[1].rstrip(")")) if "," in weighting else np.inf
        w = np.minimum(counts[at], cap)
        composed = _ridge_predict(x, matrix[at].astype(np.float64), w, x_new, penalty * float(w.mean()))
        pool_rows = np.array([idx[k] for k in pool])
        lists = [set(np.asarray(pool)[r]) for r in nearest(matrix, pool_rows, composed)]
        return float(np.mean([len(a & t) / K for a, t in zip(lists, lists_truth)]))

    val_truth = [set(np.asarray(rest_pool)[r]) for r in
                 nearest(matrix, np.array([idx[k] for k in rest_pool]), matrix[[idx[k] for k in val]])]
    out = {}
    for weighting, penalty in WEIGHTINGS:
        name = f"weights {weighting}, penalty {penalty:g}"
        out[f"{name}: warm validation"] = overlap([k for k in keys if k not in val_set], val, rest_pool, val_truth)
        out[f"{name}: cold test"] = overlap(keys, cold, pool_keys, truth)
    return out


# ---- main -------------------------------------------------------------------------------------

def run_seed(ratings, attributes, seed: int, tmp: Path, with_methods: bool) -> dict:
    from catvec.pretraining.pipeline import pretrain
    from common import movielens_config

    cold, eligible, train, targets = split(ratings, seed)
    attributes_csv = tmp / "movies_attributes.csv"
    attributes.write_csv(attributes_csv)
    events = tmp / f"train-{seed}.csv"
    train.write_csv(events)
    t = time.perf_counter()
    reference = pretrain(movielens_config(out=str(tmp / f"ref-{seed}"), seed=seed + 1, **SETTINGS))
    from catvec.base.vectors import load_vectors

    reference = load_vectors(reference.path)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    version = pretrain(movielens_config(events=str(events), out=str(tmp / f"cold-{seed}"), seed=seed + 1,
                                        item_attributes=str(attributes_csv), **SETTINGS))
    t_cold = time.perf_counter() - t
    vectors = load_vectors(version.path)
    plain = load_vectors(pretrain(movielens_config(events=str(events), out=str(tmp / f"plain-{seed}"), seed=seed + 1,
                                                   **SETTINGS)).path)
    cold_keys = sorted(k for k in cold if k in vectors and vectors.is_cold(k))
    pool_keys = sorted(k for k in eligible - cold if k in vectors and k in plain)
    group_of = groups(attributes)
    scores, truth = intrinsic(reference, vectors, plain, cold_keys, pool_keys, group_of)
    row = {"seed": seed, "cold": len(cold_keys), "composed": version.manifest["cold_start"]["composed"],
           "pretrain_seconds_ratio": round(t_cold / t_ref, 2), **scores}
    if with_methods:
        row["methods"] = methods(train, cold_keys, pool_keys, attributes, truth, seed)
    row["next_item"] = next_item(vectors, plain, train, targets, cold, group_of)
    # the version without attributes: finetune composes the cold movies itself (or not: OOV init)
    row["finetune"] = finetune_liked(ratings, attributes, cold, tmp / f"plain-{seed}" / "latest", attributes_csv,
                                     tmp, seed)
    row["few"] = few_events(ratings, eligible, reference, attributes_csv, tmp, seed)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--methods", action="store_true", help="also measure the candidate methods")
    parser.add_argument("--out", default="", help="write the results as markdown here too")
    args = parser.parse_args(argv)
    data = movielens_dir()
    if data is None:
        return 0
    ratings, attributes = load(data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            rows.append(run_seed(ratings, attributes, seed, Path(tmp), args.methods))
            print(rows[-1], file=sys.stderr, flush=True)
    lines = report(rows, args)
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


def report(rows: list[dict], args) -> list[str]:
    def mean(get):
        values = [get(r) for r in rows]
        return f"{np.mean(values):.4f} ({', '.join(f'{v:.4f}' for v in values)})"

    command = "`.venv/bin/python benchmarks/cold_start.py --seeds {}{}`".format(args.seeds, " --methods" if args.methods else "")
    lines = [f"Cold start on ml-latest-small, {len(rows)} seeds (mean, then each seed): {command}", "",
             *machine_lines(), "",
             f"- cold movies per seed: {', '.join(str(r['cold']) for r in rows)} (20% of the movies with >= {MIN_RATINGS} "
             f"ratings); pretrain with attributes took {', '.join(str(r['pretrain_seconds_ratio']) for r in rows)}x the "
             "reference pretrain (on more events) in the same run", "",
             "Intrinsic: overlap@10 with the reference model's neighbours", ""]
    methods_ = ["popular-in-group, exact genres only (short lists)", "popular sharing a genre", "popular-in-group",
                "mean of group vectors", "composed (catvec)"]
    lines += markdown_table(["method", "overlap@10"], [[m, mean(lambda r, m=m: r[m])] for m in methods_])
    base = np.mean([r["mean of group vectors"] for r in rows])
    pop = np.mean([r["popular-in-group"] for r in rows])
    ours = np.mean([r["composed (catvec)"] for r in rows])
    share = np.mean([r["popular sharing a genre"] for r in rows])
    lines += ["", f"composed / mean of group vectors = {ours / base:.2f}x; composed / popular-in-group = {ours / pop:.2f}x; "
                  f"composed / popular sharing a genre = {ours / share:.2f}x"]
    if args.methods:
        names = list(rows[0]["methods"])
        lines += ["", "Candidate methods (gensim with the same settings, the same cold movies and truth)", ""]
        lines += markdown_table(["method", "overlap@10"], [[m, mean(lambda r, m=m: r["methods"][m])] for m in names])
    ni = [r["next_item"] for r in rows]
    lines += ["", f"Next item HR@10 ({', '.join(str(n['cold_users']) for n in ni)} users with a cold target, "
                  f"{', '.join(str(n['warm_users']) for n in ni)} with a warm one)", ""]
    labels = ["with cold candidates", "--no-cold", "the same run without attributes",
              "with cold candidates, cosine scorer", f"cosine scorer, --min-support {COSINE_SUPPORT}", "popular-in-group"]
    lines += markdown_table(["method", "cold targets", "warm targets"],
                            [[label, mean(lambda r, x=label: r["next_item"][f"cold {x}"]),
                              mean(lambda r, x=label: r["next_item"][f"warm {x}"])] for label in labels])
    warm_with = np.mean([n["warm with cold candidates"] for n in ni])
    warm_without = np.mean([n["warm the same run without attributes"] for n in ni])
    lines += ["", f"warm targets: with attributes / the same run without = {warm_with / max(warm_without, 1e-12):.3f}x"]
    bands = list(rows[0]["few"]["keys"])
    lines += ["", "Movies with few events (" + ", ".join(f"{b}: {'/'.join(str(r['few']['keys'][b]) for r in rows)}"
                                                          for b in bands) + " movies): overlap@10 by count", ""]
    names = [m for m in rows[0]["few"] if m != "keys"]
    lines += markdown_table(["vectors", *bands], [[m, *(mean(lambda r, m=m, b=b: r["few"][m][b]) for b in bands)]
                                                  for m in names])
    lines += ["", "Finetune (liked = rating >= 4), test AUC on the rows of cold movies", ""]
    lines += markdown_table(["movieId rows of cold movies start from", "test AUC"],
                            [[m, mean(lambda r, m=m: r["finetune"][m])] for m in rows[0]["finetune"]])
    return lines


if __name__ == "__main__":
    sys.exit(main())
