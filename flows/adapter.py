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

`command_line` is the flow scripts' command line (`python flows/pretrain.py --help`): the
CLI's options and error reporting, the options checked before Prefect starts.
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

import flows  # noqa: F401  (the startup setting, before prefect is imported)
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from catvec.base.errors import CatvecError, InputNotFound
from catvec.base.steps import Step, steps_run_by

IO_RETRIES = 3
IO_RETRY_DELAYS = [10, 30, 60]  # seconds: a late upstream export usually lands within a minute

# the name of a run's Failed state when the promotion gate kept the new version as a candidate
NOT_PROMOTED = "NotPromoted"
REFUSED = "Refused"  # a run that checked its inputs before any task and refused them: one line, no traceback

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


def publish_artifacts(result, report_key: str, link_key: str, title: str, promoted: bool = True) -> None:
    """The version's report.md (with links to its files) and a link to its directory
    (also for a candidate that the promotion gate kept out of `latest`)."""
    from catvec.reports.render import artifact_markdown

    where = "OUT/latest points here" if promoted else "a candidate: OUT/latest did not move"
    create_markdown_artifact(key=report_key, markdown=artifact_markdown(result.path, title), description=title)
    create_link_artifact(key=link_key, link=result.path.resolve().as_uri(), link_text=str(result.path),
                         description=f"the new version directory ({where})")


def command_line(flow_fn, cls, positional: tuple[str, ...], inputs: tuple[str, ...], argv=None) -> int:
    """`python flows/<name>.py [POSITIONAL ...] [--option VALUE ...]`: run the flow once.

    The options are the CLI's, generated from the same dataclass (catvec.cli.options): the
    config's fields, --config FILE.toml and --debug; the flow's own defaults apply to what is
    not given. The options are validated and the `inputs` paths checked before Prefect
    starts, so a typo fails at once (exit 2) instead of waiting through the retries that a
    scheduled run gives a late export. Failures are reported as the CLI reports them
    (catvec.cli.main.run_reporting_errors): 0 done (the result path on stdout), 2 bad option
    or input, 3 a candidate the promotion gate did not publish, 1 any other failed run.
    """
    import inspect

    from catvec.cli.main import run_reporting_errors
    from catvec.cli.options import add_common, add_config_arguments

    description = (flow_fn.description or "").strip().splitlines()[0]
    parser = argparse.ArgumentParser(prog=f"python flows/{Path(inspect.getsourcefile(flow_fn.fn)).name}",
                                     description=f"Run the {flow_fn.name} flow once: {description}",
                                     epilog="Options not given take the flow's defaults (as in prefect.yaml's "
                                            "parameter form). Exit status: 0 done, 2 bad option or input, "
                                            "3 kept as a candidate (not promoted), 1 failed.")
    add_config_arguments(parser, cls, positional=positional, flow=True)
    add_common(parser, quiet=False)
    args = parser.parse_args(argv)
    return run_reporting_errors(lambda: run_flow_once(flow_fn, cls, args, inputs), args.debug)


def run_flow_once(flow_fn, cls, args: argparse.Namespace, inputs: tuple[str, ...]) -> int:
    """Check the options and inputs, run the flow, print its result; a run that did not
    complete raises what the CLI would (NotPromoted, CatvecError, the run's own exception)."""
    import dataclasses

    from catvec.base.config import build_config, flow_default
    from catvec.base.errors import NotPromoted
    from catvec.cli.options import options_given

    params = options_given(cls, args)
    flow_defaults = {f.name: flow_default(f) for f in dataclasses.fields(cls)}
    cfg = build_config(cls, None, **{**flow_defaults, **params})
    for name in inputs:
        value = getattr(cfg, name)
        if value and not Path(value).exists():
            raise CatvecError(f"{name} {value} not found: give an existing path")

    state = flow_fn(**params, return_state=True)
    if state.is_completed():
        print(state.result())
        return 0
    if state.name == NOT_PROMOTED:
        raise NotPromoted(state.message or "not promoted")
    if state.name == REFUSED:
        raise CatvecError(state.message or "refused")
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, Exception):
        raise exc
    raise RuntimeError(f"the flow run ended {state.name}: {state.message or exc}")
