"""The finetune flow: `catvec finetune` as a Prefect flow, one task per step.

Reads the weight files from a pretrain output (`vectors`: OUT/latest, OUT or a pinned
version directory), aligns them to the labeled table's categories, trains the tabular
model and writes a new model version. The composition is `catvec.finetune.finetune`
itself, called with `run_step=run_as_task`, so the flow runs exactly what the CLI runs;
the parameters are FinetuneConfig's fields, with the same names and defaults.

    validate config -> load-table, load-vectors (retried while missing) -> resolve-roles
        -> build-vocabs -> align -> prepare -> train (per mode) -> export -> publish
        -> artifacts: report, alignment table, link to the model directory

Run once:   python flows/finetune.py TABLE TARGET [VECTORS] [OUT]
Serve:      python flows/serve.py   (deployments and schedules from prefect.yaml)
"""

import os
import sys

# See flows/pretrain.py: the first temporary server on a fresh PREFECT_HOME starts slowly.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact  # noqa: E402

from catvec.finetuning import pipeline as steps  # noqa: E402
from catvec.base.config import FinetuneConfig, build_config, with_config_signature  # noqa: E402
from catvec.base.errors import CatvecError, InputNotFound  # noqa: E402

REPORT_KEY = "catvec-finetune-report"
ALIGNMENT_KEY = "catvec-finetune-alignment"
MODEL_KEY = "catvec-finetune-model"
ALIGNMENT_COLUMNS = ("column", "vocab_size", "hits", "misses", "entry_coverage", "row_coverage",
                     "value_coverage", "pretrained_keys", "pretrained_unused", "oov_init")


def input_not_ready(task, task_run, state) -> bool:
    """Retry a load only while an input is missing (the nightly pretrain may still be
    writing its version) or the OS failed; a table that is there but wrong fails at once."""
    exc = state.data
    if isinstance(exc, CatvecError):
        return isinstance(exc, InputNotFound)
    return isinstance(exc, OSError)


IO_TASK = dict(retries=3, retry_delay_seconds=[10, 30, 60], retry_condition_fn=input_not_ready,
               persist_result=False)
STEP_TASK = dict(persist_result=False)  # results stay in memory: nothing is pickled or hashed


@task(name="load-table", **IO_TASK)
def load_table(cfg: FinetuneConfig, table=None):
    return steps.load_table_step(cfg, table)


@task(name="load-vectors", **IO_TASK)
def load_vectors(cfg: FinetuneConfig) -> dict:
    return steps.load_vectors_step(cfg)


@task(name="resolve-roles", **STEP_TASK)
def resolve_roles(labeled, vectors: dict, cfg: FinetuneConfig):
    return steps.resolve_roles_step(labeled, vectors, cfg)


@task(name="build-vocabs", **STEP_TASK)
def build_vocabs(labeled, roles, vectors: dict, cfg: FinetuneConfig) -> dict:
    return steps.build_vocabs_step(labeled, roles, vectors, cfg)


@task(name="align", **STEP_TASK)
def align(labeled, roles, vocabs: dict, vectors: dict, cfg: FinetuneConfig) -> dict:
    return steps.align_step(labeled, roles, vocabs, vectors, cfg)


@task(name="prepare", **STEP_TASK)
def prepare(labeled, roles, vocabs: dict, cfg: FinetuneConfig):
    return steps.prepare_step(labeled, roles, vocabs, cfg)


@task(name="train", task_run_name="train-{mode}", **STEP_TASK)
def train(prepared, roles, vocabs: dict, aligned: dict, cfg: FinetuneConfig, mode: str, checkpoint_dir, on_epoch):
    return steps.train_step(prepared, roles, vocabs, aligned, cfg, mode, checkpoint_dir, on_epoch)


@task(name="export", **STEP_TASK)
def export_model(staging, *args):
    return steps.export_step(staging, *args)


@task(name="publish", **STEP_TASK)
def publish_model(out, version: str, staging, keep: int = 0):
    return steps.publish_step(out, version, staging, keep)


# catvec.finetuning.pipeline step name -> its task; a step missing here still runs, as a plain call
TASKS = {"load_table_step": load_table, "load_vectors_step": load_vectors, "resolve_roles_step": resolve_roles,
         "build_vocabs_step": build_vocabs, "align_step": align, "prepare_step": prepare, "train_step": train,
         "export_step": export_model, "publish_step": publish_model}


def run_as_task(step, *args, **kwargs):
    """The flow's `run_step`: each step runs as its task, so it shows in the UI."""
    task_ = TASKS.get(step.__name__)
    return task_(*args, **kwargs) if task_ is not None else step(*args, **kwargs)


def log_epoch(mode: str, epoch: int, total: int, info: dict) -> None:
    text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items() if k != "epoch")
    get_run_logger().info("%s: epoch %d/%d %s", mode, epoch, total, text)


def log_roles(roles) -> None:
    get_run_logger().info("roles: %s", roles)


@flow(name="catvec-finetune", persist_result=False)
@with_config_signature(FinetuneConfig)
def finetune_flow(**params) -> str:
    """Train a tabular model whose embeddings start from pretrained vectors; a new version in OUT.

    The parameters are FinetuneConfig's fields with its defaults, taken from the dataclass so
    they cannot drift from the CLI's. Returns the new model directory.
    """
    # Validate before any task runs: a bad config fails the run at once, with no retries.
    cfg = build_config(FinetuneConfig, None, **params)
    logger = get_run_logger()
    logger.info("catvec finetune: %s (target %s) with %s -> %s", cfg.table, cfg.target, cfg.vectors, cfg.out)
    try:
        result = steps.finetune(cfg, on_epoch=log_epoch, on_roles=log_roles, run_step=run_as_task)
    except BaseException:
        logger.error("finetune failed: nothing was published; %s/latest is unchanged", cfg.out)
        raise
    report = result.path / "report.md"
    files = [f"- [{name}]({(result.path / name).resolve().as_uri()})"
             for name in ("report.md", "training_curves.png", "metrics.json") if (result.path / name).is_file()]
    markdown = report.read_text(encoding="utf-8") if report.is_file() else f"# catvec finetune {result.version}\n"
    create_markdown_artifact(key=REPORT_KEY, description=f"catvec finetune {result.version}",
                             markdown=markdown + "\n## Files\n\n" + "\n".join(files) + "\n")
    create_table_artifact(key=ALIGNMENT_KEY, table=alignment_rows(result.alignment),
                          description="AlignmentReport per pretrained column")
    create_link_artifact(key=MODEL_KEY, link=result.path.resolve().as_uri(), link_text=str(result.path),
                         description="the new model directory (OUT/latest points here)")
    logger.info("model %s published: %s", result.version, result.path)
    return str(result.path)


def alignment_rows(alignment: dict) -> list[dict]:
    """{column: AlignmentReport.to_json()} -> one table row per column."""
    rows = []
    for column, report in alignment.items():
        row = {"column": column, **{k: report.get(k) for k in ALIGNMENT_COLUMNS[1:]}}
        rows.append({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return rows


if __name__ == "__main__":
    args = sys.argv[1:]
    print(finetune_flow(**dict(zip(("table", "target", "vectors", "out"), args))))
