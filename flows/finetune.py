"""The finetune flow: `catvec finetune` as a Prefect flow, one task per pipeline step.

Reads the weight files from a pretrain output (`vectors`: OUT/latest, OUT or a pinned
version directory), aligns them to the labeled table's categories, trains the tabular
model and writes a new model version. The flow calls catvec.finetuning.pipeline.finetune,
the function the CLI calls, with every step running as a task (flows/adapter.py); the
parameters are FinetuneConfig's fields, with the same names and defaults.

    validate config -> load-table, load-vectors (retried while missing) -> resolve-roles
        -> build-vocabs -> align -> prepare -> train (per mode) -> export -> publish
        -> artifacts: report.md with links, the alignment table, the model directory

Run once:   python flows/finetune.py [TABLE] [TARGET] [VECTORS] [OUT] [--epochs N ...]   (--help: every option)
Deployed:   prefect.yaml starts it when a pretrain run emits catvec.vectors.promoted, with
            `vectors` set to the promoted version directory.
Serve:      python flows/serve.py   (deployments and schedules from prefect.yaml)
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `flows` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.adapter import REFUSED, command_line, publish_artifacts, run_pipeline  # noqa: E402  (sets up prefect first)
from prefect import flow, get_run_logger  # noqa: E402
from prefect.artifacts import create_table_artifact  # noqa: E402
from prefect.states import Failed  # noqa: E402

from catvec.base.config import build_config, with_config_signature  # noqa: E402

from catvec.finetuning.config import FinetuneConfig  # noqa: E402
from catvec.base.errors import CatvecError, InputNotFound  # noqa: E402
from catvec.finetuning.pipeline import check_fit, finetune  # noqa: E402
from catvec.reports.finetune_report import alignment_rows  # noqa: E402

REPORT_KEY = "catvec-finetune-report"
ALIGNMENT_KEY = "catvec-finetune-alignment"
MODEL_KEY = "catvec-finetune-model"


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
    get_run_logger().info("catvec finetune: %s (target %s) with %s -> %s", cfg.table, cfg.target, cfg.vectors, cfg.out)
    try:  # vectors whose keys do not fit the table (a trigger from another OUT): one line, before any task
        check_fit(cfg)
    except InputNotFound:
        pass  # not there yet: the load steps retry
    except CatvecError as exc:
        from catvec.cli.main import one_line

        message = one_line(str(exc))
        get_run_logger().error("finetune refused, nothing was published: %s", message)
        return Failed(name=REFUSED, message=message)
    result = run_pipeline(finetune, cfg, "finetune", on_epoch=log_epoch, on_roles=log_roles)
    publish_artifacts(result, REPORT_KEY, MODEL_KEY, f"catvec finetune {result.version}")
    create_table_artifact(key=ALIGNMENT_KEY, table=alignment_rows(result.alignment),
                          description="AlignmentReport per pretrained column")
    get_run_logger().info("model %s published: %s", result.version, result.path)
    return str(result.path)


if __name__ == "__main__":
    sys.exit(command_line(finetune_flow, FinetuneConfig, ("table", "target", "vectors", "out"),
                          inputs=("table", "vectors")))
