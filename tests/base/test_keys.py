"""Key normalisation and escaping."""

import numpy as np
import pandas as pd
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from catvec.base.keys import escape_key, normalize_keys, to_key, unescape_key


def test_float_ids_never_become_dot_zero():
    # pandas reads an int column with a missing value as float64
    col = pd.Series([123, None, 7]).astype("float64")
    assert normalize_keys(col).to_list() == ["123", None, "7"]


def test_scalar_and_vector_rules_agree():
    values = [123, 123.0, 2.5, "abc", "", None, float("nan"), True, np.int64(9)]
    expected = ["123", "123", "2.5", "abc", None, None, None, "true", "9"]
    assert [to_key(v) for v in values] == expected
    assert normalize_keys(pd.Series(values, dtype=object)).to_list() == expected


def test_strings_kept_exactly():
    keys = [" a", "b ", "x\ty", "ünï", "0012"]
    assert normalize_keys(pl.Series(keys)).to_list() == keys


def test_large_integers_exact():
    assert normalize_keys(pl.Series([2**62 + 1])).to_list() == [str(2**62 + 1)]


@given(st.text())
def test_escape_roundtrip_and_single_token(key):
    escaped = escape_key(key)
    assert unescape_key(escaped) == key
    assert escaped.split() == ([escaped] if escaped else [])
    assert "\t" not in escaped and "\n" not in escaped


def test_escape_examples():
    assert escape_key("a b") == "a\\sb"
    assert escape_key("tab\there") == "tab\\there"
    assert escape_key("back\\slash") == "back\\\\slash"
    assert escape_key("plain-key_1") == "plain-key_1"


@given(st.lists(st.one_of(st.text(max_size=6), st.from_regex(r"-?[0-9]{1,4}\.0{1,3}", fullmatch=True)), max_size=8))
def test_column_keys_equal_value_keys_for_any_text(values):
    assert normalize_keys(pl.Series(values, dtype=pl.Utf8)).to_list() == [to_key(v) for v in values]
