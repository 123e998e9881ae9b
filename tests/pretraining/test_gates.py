"""The sanity gates on a trained version: each gate on its threshold, and what strict does."""

import logging

import pytest

from catvec.base.errors import CatvecError
from catvec.pretraining.gates import FLAT_LOSS, MAX_LOST, MIN_KEYS, check_version, enforce_gates


def losses(*values):
    return {"epochs": [{"loss": v} for v in values]}


def corpus(read=1000, **dropped):
    return {"events_read": read, "dropped": dropped}


GOOD = (corpus(repeats_collapsed=900), losses(2.77, 2.72, 2.33), 200)


def test_a_healthy_run_passes_every_gate():
    # collapsed repeats are not losses: 90% collapsed is still a healthy corpus
    assert check_version(*GOOD) == []


def test_too_few_keys():
    assert check_version(GOOD[0], GOOD[1], MIN_KEYS) == []
    [line] = check_version(GOOD[0], GOOD[1], MIN_KEYS - 1)
    assert line.startswith(f"only {MIN_KEYS - 1} key(s) have vectors")


def test_flat_loss():
    just_enough = 4.0 * (1 - FLAT_LOSS * 1.01)
    assert check_version(GOOD[0], losses(4.0, just_enough), 200) == []
    [line] = check_version(GOOD[0], losses(4.1589, 4.1589, 4.1589), 200)
    assert "the loss did not move (4.1589 -> 4.1589 over 3 epochs" in line
    assert check_version(GOOD[0], losses(4.0), 200) == []  # one epoch: nothing to compare


def test_events_lost_to_filters():
    half = int(1000 * MAX_LOST)
    assert check_version(corpus(short_sequence_events=half), GOOD[1], 200) == []
    [line] = check_version(corpus(short_sequence_events=half, rare_item_events=1, rare_items=1), GOOD[1], 200)
    assert f"the filters dropped {half + 1} of 1000 events (50.1%)" in line
    [line] = check_version(corpus(empty_item_id=600), GOOD[1], 200)
    assert "dropped 600 of 1000" in line


def test_strict_refuses_and_lenient_warns(caplog):
    bad = (corpus(short_sequence_events=997), losses(4.1, 4.1), 3)
    with pytest.raises(CatvecError, match=r"^not published: only 3 key\(s\).*\(and 2 more gate\(s\)\); latest is unchanged"):
        enforce_gates(*bad, strict=True)
    with caplog.at_level(logging.WARNING):
        assert len(enforce_gates(*bad, strict=False)) == 3
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 3
