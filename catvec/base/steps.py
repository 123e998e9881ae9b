"""Pipeline steps: a marker on plain functions, and one hook that decides how they run.

A pipeline (`catvec.pretraining.pipeline.pretrain`, `catvec.finetuning.pipeline.finetune`)
is a function that calls its steps one after the other, as plain Python: a reader (or a
tool) follows `cfg` from call to call. `@step` marks such a function with what an
orchestrator needs to know and imports nothing:

    @step(io=True)                      # reads input that may arrive late: worth retrying
    def read_events_table(cfg): ...

Called normally, a step is its function. Inside `with steps_run_by(runner):` every step
call becomes `runner(step, args, kwargs)`; the Prefect flows install a runner that runs
each step as a task (flows/adapter.py), keyed by the step object itself. A step called
from inside another step runs as a plain call, so a task never starts tasks.

    steps_of(catvec.pretraining.pipeline)   # the steps a pipeline module defines or imports

A pipeline records how long its parts took in the manifest's timings with `timed`:

    with timed(timings, "train_seconds"):
        vectors, stats = train_skipgram(corpus, cfg)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

Runner = Callable[["Step", tuple, dict], object]
_RUNNER: ContextVar[Runner | None] = ContextVar("catvec_step_runner", default=None)


@dataclass(frozen=True)
class StepInfo:
    name: str        # the task name an orchestrator shows: "read-events"
    io: bool         # True: reads or waits for input from outside (retry these, nothing else)
    run_name: str    # optional name of one run, formatted with the arguments: "train-{mode}"


class Step:
    """A marked step: call it like the function it wraps; `.info` says what it is."""

    def __init__(self, fn: Callable, info: StepInfo):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.info = info

    def __call__(self, *args, **kwargs):
        runner = _RUNNER.get()
        if runner is None:
            return self.fn(*args, **kwargs)
        token = _RUNNER.set(None)  # steps called from inside this one are plain calls
        try:
            return runner(self, args, kwargs)
        finally:
            _RUNNER.reset(token)

    def __repr__(self) -> str:
        return f"<step {self.info.name}{' (io)' if self.info.io else ''}: {self.fn.__module__}.{self.fn.__qualname__}>"


def step(fn: Callable | None = None, *, name: str = "", io: bool = False, run_name: str = ""):
    """Mark `fn` as a pipeline step. `name` defaults to the function name with dashes.

    Example: @step(name="train", run_name="train-{mode}")
    """
    def mark(fn: Callable) -> Step:
        return Step(fn, StepInfo(name=name or fn.__name__.replace("_", "-"), io=io, run_name=run_name))

    return mark(fn) if fn is not None else mark


@contextmanager
def steps_run_by(runner: Runner) -> Iterator[None]:
    """Within the block, every step call is `runner(step, args, kwargs)`."""
    token = _RUNNER.set(runner)
    try:
        yield
    finally:
        _RUNNER.reset(token)


def steps_of(module) -> list[Step]:
    """The steps a module defines or imports (a pipeline's steps), by task name."""
    return sorted({obj for obj in vars(module).values() if isinstance(obj, Step)}, key=lambda s: s.info.name)


@contextmanager
def timed(timings: dict, key: str) -> Iterator[None]:
    """`with timed(timings, "train_seconds"):` sets timings[key] to the block's seconds (4
    decimals) when it completes; a block that raises records nothing."""
    start = time.perf_counter()
    yield
    timings[key] = round(time.perf_counter() - start, 4)
