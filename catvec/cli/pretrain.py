"""`catvec pretrain`, `catvec similar`, `catvec export`."""

from __future__ import annotations

import argparse

from catvec.cli.options import EpochProgress, add_common, add_config_arguments, config_from_args, say
from catvec.base.config import PretrainConfig

PRETRAIN_EXAMPLE = """examples:
  catvec pretrain                                   # the bundled sample -> artifacts/latest
  catvec pretrain --events plays.parquet --user-col listener --item-col artist \\
      --session-gap 30m --dim 64 --epochs 10 --out vectors/
  catvec pretrain --events orders.csv --basket-col order_id --out baskets/
  catvec pretrain --config pretrain.toml --epochs 20   # flags override the file
"""


def register(sub) -> None:
    p = sub.add_parser("pretrain", help="learn item vectors from an events table",
                       description="Read events (user, item, time), build sequences or baskets, train "
                                   "skip-gram vectors with gensim and write a new version to OUT, then "
                                   "move OUT/latest to it.",
                       epilog=PRETRAIN_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, PretrainConfig)
    add_common(p)
    p.set_defaults(run=run_pretrain)

    s = sub.add_parser("similar", help="print the nearest neighbours of a key",
                       epilog="example:\n  catvec similar --vectors artifacts/latest --topn 5 1001",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("key", nargs="+", help="one or more keys (item ids)")
    s.add_argument("--vectors", default="artifacts", help="a version dir, OUT/latest or OUT (default: artifacts)")
    s.add_argument("--topn", type=int, default=10, help="how many neighbours (default: 10)")
    add_common(s)
    s.set_defaults(run=run_similar)

    e = sub.add_parser("export", help="write vectors as word2vec text or TensorBoard projector TSV",
                       epilog="examples:\n  catvec export --vectors artifacts/latest --format word2vec --out items.w2v.txt\n"
                              "  catvec export --vectors artifacts/latest --format projector --out projector/",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--vectors", default="artifacts", help="a version dir, OUT/latest or OUT (default: artifacts)")
    e.add_argument("--format", choices=["word2vec", "projector"], required=True)
    e.add_argument("--out", required=True, help="output file (word2vec) or directory (projector)")
    add_common(e)
    e.set_defaults(run=run_export)


def run_pretrain(args) -> int:
    from catvec.pretraining.pipeline import pretrain

    cfg = config_from_args(PretrainConfig, args)
    say(args, f"catvec pretrain: {cfg.events_path} -> {cfg.out}")
    progress = EpochProgress(cfg.epochs, "training", quiet=args.quiet)
    try:
        result = pretrain(cfg, on_epoch=progress)
    finally:
        progress.close()
    say(args, *summary_lines(result.manifest))
    print(result.path)
    return 0


def summary_lines(manifest: dict) -> list[str]:
    c = manifest["corpus"]
    t = manifest["training"]
    dropped = ", ".join(f"{k}={v}" for k, v in c.get("dropped", {}).items() if v) or "none"
    lengths = c["lengths"]
    last = t["epochs"][-1] if t["epochs"] else {}
    return [
        f"events read {c['events_read']}, dropped {c['events_dropped']} ({dropped})",
        f"users {c['users']}, sequences {c['sequences']} ({c['lines']} lines, {c['sequences_split']} split), "
        f"tokens {c['tokens']}, items {c['vocab_size']}",
        f"sequence length min {lengths['min']} median {lengths['p50']:g} p90 {lengths['p90']:g} max {lengths['max']}",
        f"trained {t['vocab_size']} vectors x {manifest['params']['dim']} in {t['train_seconds']:.2f}s "
        f"({t['words_per_second']:,} words/s, {t['workers']} worker(s)); final loss {last.get('loss', float('nan')):.4f}",
        f"version {manifest['version']} (parent {manifest['parent'] or 'none'})",
    ] + quality_lines(manifest)


def quality_lines(manifest: dict) -> list[str]:
    quality = manifest.get("quality")
    if not quality:
        return []
    held = manifest["corpus"].get("heldout", {})
    lines = [f"held out {held.get('events', 0)} events of {held.get('users', 0)} users ({quality['holdout']})"]
    for role, m in quality["vectors"].items():
        pop = quality["popularity"][role]
        lines.append(f"{role}: HR@{m['k']} {m['hr']:.4f} NDCG@{m['k']} {m['ndcg']:.4f} "
                     f"(popularity {pop['hr']:.4f} / {pop['ndcg']:.4f}, {m['users']} users)")
    return lines


def run_similar(args) -> int:
    from catvec.base.vectors import load_vectors

    vectors = load_vectors(args.vectors)
    for key in args.key:
        print(f"{key}:")
        for other, score in vectors.most_similar(key, topn=args.topn):
            print(f"  {other}\t{score:.4f}")
    return 0


def run_export(args) -> int:
    from catvec.base.vectors import export_projector, export_word2vec, load_vectors

    vectors = load_vectors(args.vectors)
    if args.format == "word2vec":
        path = export_word2vec(vectors, args.out)
        print(path)
    else:
        vec, meta = export_projector(vectors, args.out)
        print(vec)
        print(meta)
    return 0
