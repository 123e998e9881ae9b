"""Where catvec meets Prefect: each pipeline step runs as a task, with one retry policy.

The pipelines (catvec.pretraining.pipeline.pretrain, catvec.finetuning.pipeline.finetune)
call their steps as plain functions. `steps_as_tasks()` installs a runner
(catvec.base.steps) that runs every step call as the Prefect task made from that step:
the task is keyed by the step object itself, named after it, and retried only when the
step is marked io=True and its input is missing (InputNotFound) or the OS failed.
Training, alignment and publishing fail loudly on the first error. No task result is
persisted or hashed: results stay in memory.

    with steps_as_tasks():
        result = pretrain(cfg)
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager

import flows  # noqa: F401  (the startup setting, before prefect is imported)
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from catvec.base.errors import CatvecError, InputNotFound
from catvec.base.steps import Step, steps_run_by

IO_RETRIES = 3
IO_RETRY_DELAYS = [10, 30, 60]  # seconds: a late upstream export usually lands within a minute

_TASKS: dict[Step, object] = {}


def input_not_ready(task, task_run, state) -> bool:
    """Retry an io step only while its input is missing (an upstream job may still be
    writing it) or the OS failed; input that is there but wrong fails at once."""
    exc = state.data
    if isinstance(exc, CatvecError):
        return isinstance(exc, InputNotFound)
    return isinstance(exc, OSError)


def task_of(step: Step):
    """The Prefect task of a step (made once per step object)."""
    made = _TASKS.get(step)
    if made is None:
        options = {"name": step.info.name, "persist_result": False}
        if step.info.run_name:
            options["task_run_name"] = step.info.run_name
        if step.info.io:
            options.update(retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=input_not_ready)
        made = _TASKS[step] = task(step.fn, **options)
    return made


def run_as_task(step: Step, args: tuple, kwargs: dict):
    return task_of(step)(*args, **kwargs)


@contextmanager
def steps_as_tasks():
    """Within the block, every pipeline step runs as its task."""
    with steps_run_by(run_as_task):
        yield


def run_pipeline(pipeline, cfg, what: str, **kwargs):
    """Run `pipeline(cfg, **kwargs)` with its steps as tasks; on failure say that `latest` stayed."""
    try:
        with steps_as_tasks():
            return pipeline(cfg, **kwargs)
    except BaseException:
        get_run_logger().error("%s failed: nothing was published; %s/latest is unchanged", what, cfg.out)
        raise


def publish_artifacts(result, report_key: str, link_key: str, title: str) -> None:
    """The version's report.md (with links to its files) and a link to its directory."""
    from catvec.reports.render import artifact_markdown

    create_markdown_artifact(key=report_key, markdown=artifact_markdown(result.path, title), description=title)
    create_link_artifact(key=link_key, link=result.path.resolve().as_uri(), link_text=str(result.path),
                         description="the new version directory (OUT/latest points here)")


def command_line(flow_fn, positional: tuple[str, ...], argv=None) -> str:
    """`python flows/<name>.py [POSITIONAL ...]`: run the flow once and return what it returns."""
    parser = argparse.ArgumentParser(description=(flow_fn.description or "").strip().splitlines()[0],
                                     epilog="Every other parameter: call the flow from Python or set it in prefect.yaml.")
    for name in positional:
        parser.add_argument(name, nargs="?", help=f"the {name} parameter (default: the flow's default)")
    args = parser.parse_args(argv)
    return flow_fn(**{name: getattr(args, name) for name in positional if getattr(args, name) is not None})
