"""--hash-buckets: stable buckets, own rows for frequent training keys, bucket means, predict."""

import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from catvec.cli.main import main
from catvec.finetuning.modeldir import load_model
from catvec.finetuning.pipeline import finetune
from catvec.finetuning.predict import predict
from catvec.finetuning.vocab import Vocab, build_vocab, stable_bucket
from ftdata import finetune_config, item_vectors, labeled_rows


BASE = dict(target="y", cat_cols="item_id", cont_cols="x", epochs=3, batch_size=64, hidden="16", seed=3, auto="off",
            group_col="item_id", hash_buckets="item_id=4")


def config(tmp_path, inputs, **extra):
    return finetune_config(inputs, **{"out": str(tmp_path / "models"), **BASE, **extra})


def test_buckets_do_not_depend_on_the_process_hash_seed():
    code = "from catvec.finetuning.vocab import stable_bucket; print([stable_bucket(k, 97) for k in ('1', 'abc', 'é')])"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("0", "1", "12345")}
    assert len(outs) == 1
    assert outs.pop().strip() == str([stable_bucket(k, 97) for k in ("1", "abc", "é")])
    assert stable_bucket("1001", 1000) == 769                # pinned: changing it would move every trained row


def test_frequent_keys_keep_rows_and_the_rest_land_in_their_bucket():
    vocab = build_vocab(pl.Series(["a", "b", "a", "c", None]), buckets=3, min_freq=2)
    assert vocab.index_to_key == ["<unk>", "a", "<hash:0>", "<hash:1>", "<hash:2>"] and vocab.n_own == 2
    rows = vocab.encode(["a", "b", "never-seen", None, "<unk>"])
    assert rows.tolist() == [1, 2 + stable_bucket("b", 3), 2 + stable_bucket("never-seen", 3), 0, 0]
    again = Vocab.from_json(vocab.to_json())
    assert again.index_to_key == vocab.index_to_key and again.buckets == 3


def test_bucket_rows_start_from_the_mean_of_their_pretrained_keys(tmp_path, inputs):
    from catvec.finetuning.model import TabularEmbeddingModel  # noqa: F401  (torch present)

    result = finetune(config(tmp_path, inputs, mode="frozen"))
    loaded = load_model(result.path)
    vocab = loaded.vocabs["item_id"]
    weight = loaded.model.embedding_layers()["item_id"].full_weight().numpy()
    assert weight.shape[0] == vocab.n_own + 4                 # memory: own keys + buckets, not every pretrained key
    source = item_vectors()
    rest = [k for k in source.keys if k not in vocab.key_to_index]
    for b in range(4):
        members = [source[k] for k in rest if stable_bucket(k, 4) == b]
        if members:
            np.testing.assert_allclose(weight[vocab.n_own + b], np.mean(members, axis=0), rtol=1e-5, atol=1e-6)
    assert result.alignment["item_id"]["hash_buckets"] == 4 and result.alignment["item_id"]["bucket_hits"] >= 1


def test_unseen_keys_at_predict_time_share_their_bucket(tmp_path, inputs):
    result = finetune(config(tmp_path, inputs))
    vocab = load_model(result.path).vocabs["item_id"]
    a, b = "no-such-item-1", next(f"no-such-item-{i}" for i in range(2, 200)
                                   if stable_bucket(f"no-such-item-{i}", 4) == stable_bucket("no-such-item-1", 4))
    rows = pl.from_pandas(labeled_rows(3, seed=5)).drop("y").with_columns(item_id=pl.Series([a, b, None]))
    rows.write_csv(tmp_path / "new.csv")
    scored = pl.read_csv(predict(result.path, tmp_path / "new.csv", tmp_path / "out.csv").path)
    assert vocab.encode([a, b, None]).tolist()[2] == 0 and vocab.encode([a])[0] >= vocab.n_own
    same_x = rows["x"][0] == rows["x"][1]
    assert same_x or scored["prediction"][0] != scored["prediction"][2]   # a bucket row, not <unk>


@pytest.mark.parametrize("value,message", [("0", "must be >= 1, got 0"), ("-3", "must be >= 1, got -3"),
                                           ("item_id=x", "expected N or COL=N")])
def test_bad_bucket_counts_are_one_line(tmp_path, inputs, capsys, value, message):
    vectors_dir, table = inputs
    code = main(["finetune", "--vectors", str(vectors_dir), "--table", str(table), "--target", "y",
                 "--out", str(tmp_path / "m"), "--quiet", "--hash-buckets", value])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()
