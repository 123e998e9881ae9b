"""The pretrain flow: `catvec pretrain` as a Prefect flow, one task per pipeline step.

The tasks are thin wrappers around the step functions in catvec.pretraining.pipeline, the same ones
`catvec pretrain` runs, so a flow run and a CLI run with the same parameters produce the
same version (bit-identical vectors with exact=True). The parameters are the fields of
PretrainConfig, with the same names and defaults.

    validate config -> checksum-events -> cached-corpus? -> read-events -> extract-corpus
        -> train -> evaluate (with a holdout) -> export (staging) -> publish (move latest)
        -> artifacts

The composition itself is `catvec.pipeline.pretrain`, called with `run_step=run_as_task`:
the order of the steps, the staging directory and what happens on failure (the staging
directory is discarded, `latest` is unchanged) are the CLI's, not a copy of them.

Caching is the pipeline's own corpus cache (OUT/.cache, keyed on the events file's sha256
and the extraction parameters); refresh=True extracts again. No task result is pickled.
Only the steps that read the events file retry; training fails loudly on the first error.

Run once:   python flows/pretrain.py [EVENTS] [OUT]
Serve:      python flows/serve.py   (deployments and schedules from prefect.yaml)
"""

import os
import sys
from pathlib import Path

# A fresh PREFECT_HOME makes the first temporary server start slow (database migrations);
# Prefect's default wait of 20 s is too short on a small machine. Must precede `import prefect`.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_link_artifact, create_markdown_artifact  # noqa: E402

from catvec.pretraining import pipeline  # noqa: E402
from catvec.base.config import PretrainConfig, build_config, with_config_signature  # noqa: E402
from catvec.base.errors import CatvecError, InputNotFound  # noqa: E402

REPORT_KEY = "catvec-pretrain-report"
VERSION_KEY = "catvec-pretrain-version"
IO_RETRIES = 3
IO_RETRY_DELAYS = [10, 30, 60]


def events_not_ready(task, task_run, state) -> bool:
    """Retry a read only when the events file is missing (not yet written) or the OS failed;
    a file that is there but wrong (bad columns, bad times) fails at once."""
    exc = state.data
    if isinstance(exc, CatvecError):
        return isinstance(exc, InputNotFound)
    return isinstance(exc, OSError)


IO_TASK = dict(retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAYS, retry_condition_fn=events_not_ready,
               persist_result=False)
STEP_TASK = dict(persist_result=False)  # results stay in memory: nothing is pickled or hashed


@task(name="checksum-events", **IO_TASK)
def checksum_events(cfg: PretrainConfig, events=None) -> str:
    return pipeline.input_checksum(cfg, events)


@task(name="cached-corpus", **STEP_TASK)
def find_cached_corpus(cfg: PretrainConfig, checksum: str):
    return pipeline.cached_corpus(cfg, checksum)


@task(name="read-events", **IO_TASK)
def read_events(cfg: PretrainConfig, events=None):
    return pipeline.read_events_step(cfg, events)


@task(name="extract-corpus", **STEP_TASK)
def extract_corpus(table, cfg: PretrainConfig, checksum: str):
    return pipeline.extract_step(table, cfg, checksum)


@task(name="train", **STEP_TASK)
def train(corpus, cfg: PretrainConfig, on_epoch=None):
    return pipeline.train_step(corpus, cfg, on_epoch)


@task(name="evaluate", **STEP_TASK)
def evaluate(vectors, cfg: PretrainConfig, table) -> dict:
    return pipeline.evaluate_step(vectors, cfg, table)


@task(name="export", **STEP_TASK)
def export_version(vectors, manifest: dict, staging: Path, cfg: PretrainConfig, *args):
    return pipeline.export_step(vectors, manifest, staging, cfg, *args)


@task(name="publish", **STEP_TASK)
def publish_version(store, name: str, staging: Path, keep: int = 0) -> Path:
    return pipeline.publish_step(store, name, staging, keep)


# pipeline step name -> its task; a step missing here still runs, as a plain call
TASKS = {"input_checksum": checksum_events, "cached_corpus": find_cached_corpus, "read_events_step": read_events,
         "extract_step": extract_corpus, "train_step": train, "evaluate_step": evaluate, "export_step": export_version,
         "publish_step": publish_version}


def run_as_task(step, *args, **kwargs):
    """The flow's `run_step`: each pipeline step runs as its task, so it shows in the UI."""
    task_ = TASKS.get(step.__name__)
    return task_(*args, **kwargs) if task_ is not None else step(*args, **kwargs)


def log_epoch(epoch: int, total: int, info: dict) -> None:
    get_run_logger().info("epoch %d/%d loss %.4f", epoch, total, info["loss"])


@flow(name="catvec-pretrain", persist_result=False)
@with_config_signature(PretrainConfig)
def pretrain_flow(**params) -> str:
    """Learn item vectors from an events table; a new version in OUT, then OUT/latest moves to it.

    The parameters are PretrainConfig's fields with its defaults, taken from the dataclass so
    they cannot drift from the CLI's. Returns the new version directory.
    """
    # Validate before any task runs: a bad config fails the run at once, with no retries.
    cfg = build_config(PretrainConfig, None, **params)
    logger = get_run_logger()
    logger.info("catvec pretrain: %s -> %s", cfg.events_path, cfg.out)
    try:
        result = pipeline.pretrain(cfg, on_epoch=log_epoch, run_step=run_as_task)
    except BaseException:
        logger.error("pretrain failed: nothing was published; %s/latest is unchanged", cfg.out)
        raise
    create_markdown_artifact(key=REPORT_KEY, markdown=pretrain_report(result.manifest, result.path),
                             description=f"catvec pretrain {result.version}")
    create_link_artifact(key=VERSION_KEY, link=result.path.resolve().as_uri(), link_text=str(result.path),
                         description="the new version directory (OUT/latest points here)")
    logger.info("version %s published: %s", result.version, result.path)
    return str(result.path)


def pretrain_report(manifest: dict, path: Path) -> str:
    """The markdown shown in the Prefect UI: corpus stats, training time, per-epoch loss, quality."""
    c, t = manifest["corpus"], manifest["training"]
    lines = [
        f"# catvec pretrain {manifest['version']}",
        "",
        f"Version directory: `{path}` (parent: {manifest.get('parent') or 'none'})",
        f"Input: `{manifest['input']['path']}` ({manifest['input']['checksum']})",
        f"Corpus cache: {'hit' if manifest.get('timings', {}).get('corpus_cached') else 'extracted'}",
        "",
        "## Corpus",
        "",
        "| events read | events dropped | users | sequences | tokens | items |",
        "|---|---|---|---|---|---|",
        f"| {c['events_read']} | {c['events_dropped']} | {c['users']} | {c['sequences']} | {c['tokens']} "
        f"| {c['vocab_size']} |",
        "",
        "## Training",
        "",
        f"{t['vocab_size']} vectors x {manifest['params']['dim']}, {t['workers']} worker(s), "
        f"{t['train_seconds']:.2f} s, {t['words_per_second']:,} words/s",
        "",
        "| epoch | loss | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {e['epoch']} | {e['loss']:.4f} | {e.get('seconds', '')} |" for e in t.get("epochs", [])]
    lines += ["", "## Files", ""] + [f"- [{name}]({(path / name).resolve().as_uri()})"
                                      for name in ("report.md", "vector_map.png") if (path / name).is_file()]
    quality = manifest.get("quality")
    if isinstance(quality, dict) and quality:
        lines += ["", "## Quality", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in _flatten(quality)]
    return "\n".join(lines) + "\n"


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    args = sys.argv[1:]
    print(pretrain_flow(**dict(zip(("events", "out"), args))))
