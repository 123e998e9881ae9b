"""catvec.base.steps.timed: a part's seconds into a run's timings, only when it completes."""

import time

import pytest

from catvec.base.steps import timed


def test_timed_records_the_seconds_of_a_completed_block():
    timings = {}
    with timed(timings, "train_seconds"):
        time.sleep(0.01)
    assert list(timings) == ["train_seconds"] and 0.005 < timings["train_seconds"] < 5
    assert timings["train_seconds"] == round(timings["train_seconds"], 4)


def test_timed_nests_and_a_failed_block_records_nothing():
    timings = {}
    with timed(timings, "compare_seconds"):
        with timed(timings, "noise_seconds"):
            pass
    assert timings["compare_seconds"] >= timings["noise_seconds"]
    with pytest.raises(ValueError):
        with timed(timings, "export_seconds"):
            raise ValueError("disk full")
    assert "export_seconds" not in timings
