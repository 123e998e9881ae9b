"""The pretrain flow: `catvec pretrain` as a Prefect flow, one task per pipeline step.

The flow calls catvec.pretraining.pipeline.pretrain, the function the CLI calls, with
every step running as a task (flows/adapter.py): a flow run and a CLI run with the same
parameters produce the same version (bit-identical vectors with exact=True). The
parameters are the fields of PretrainConfig, with the same names and defaults.

    validate config -> checksum-events -> load-attributes (with item attributes)
        -> load-parent (when OUT has a latest) -> cached-corpus? -> read-events -> extract-corpus
        -> inherit-settings (with a parent) | choose-settings -> train -> compose-cold (attributes)
        -> seed-noise, compare-parent (with a parent)
        -> evaluate (with a holdout) | validate-against-parent (with a parent, without one)
        -> export (staging) -> publish (move latest, when the gate promotes)
        -> artifacts: report.md with links, the version directory
        -> promoted: event catvec.vectors.promoted, labelled with the version (catvec.path) and its
           OUT (catvec.out): starts the finetune deployment that consumes that OUT (prefect.yaml)
           not promoted: the run ends Failed, named NotPromoted, with the gate's reason

The promotion gate (catvec.pretraining.lifecycle) may keep a new version as a candidate:
`latest` stays where it was. The run then ends in a Failed state named NotPromoted, so it
stands out in the UI and in failure notifications, and it emits no promoted event, so the
finetune deployment does not start; the candidate's report and link are still published.

Caching is the pipeline's own corpus cache (catvec.pretraining.corpus_cache: OUT/.cache,
keyed on the events file's sha256 and the extraction parameters); refresh=True extracts again.

Run once:   python flows/pretrain.py [EVENTS] [OUT] [--epochs N ...]   (--help: every option)
Serve:      python flows/serve.py   (deployments and schedules from prefect.yaml)
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `flows` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.adapter import command_line, publish_artifacts, run_pipeline  # noqa: E402  (sets up prefect first)
from flows.adapter import NOT_PROMOTED  # noqa: E402
from prefect import flow, get_run_logger  # noqa: E402
from prefect.artifacts import create_table_artifact  # noqa: E402
from prefect.states import Failed  # noqa: E402

from catvec.base.config import build_config, with_config_signature  # noqa: E402

from catvec.pretraining.config import PretrainConfig  # noqa: E402
from catvec.pretraining.pipeline import pretrain  # noqa: E402
from catvec.reports.lineage import drift_rows, gate_rows, gate_verdict  # noqa: E402

REPORT_KEY = "catvec-pretrain-report"
VERSION_KEY = "catvec-pretrain-version"
DRIFT_KEY = "catvec-pretrain-drift"
GATE_KEY = "catvec-pretrain-gate"
PROMOTED_EVENT = "catvec.vectors.promoted"  # the finetune deployment's trigger (prefect.yaml)
PATH_LABEL = "catvec.path"  # the promoted version directory, absolute: the trigger passes it on as `vectors`
OUT_LABEL = "catvec.out"  # its OUT, absolute and resolved: a trigger matches the OUT it consumes (prefect.yaml)


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
    get_run_logger().info("catvec pretrain: %s -> %s", cfg.events_path, cfg.out)
    result = run_pipeline(pretrain, cfg, "pretrain", on_epoch=log_epoch)
    title = f"catvec pretrain {result.version}" + ("" if result.promoted else " (candidate, not promoted)")
    publish_artifacts(result, REPORT_KEY, VERSION_KEY, title, promoted=result.promoted)
    rows = drift_rows(result.manifest)
    if rows:
        create_table_artifact(key=DRIFT_KEY, table=rows,
                              description=f"drift of {result.version} from its parent {result.manifest.get('parent')}, "
                                          f"beside seed noise; overlap ratio "
                                          f"{result.manifest['drift'].get('overlap_ratio', 'not measured')}")
    checks = gate_rows(result.manifest)
    if checks:
        create_table_artifact(key=GATE_KEY, table=checks,
                              description=f"promotion gate of {result.version}: {gate_verdict(result.manifest['gate'])}")
    if not result.promoted:
        message = not_promoted_message(result, cfg.out)
        get_run_logger().warning(message)
        return Failed(name=NOT_PROMOTED, message=message)
    emit_promoted(result)
    get_run_logger().info("version %s published: %s", result.version, result.path)
    return str(result.path)


def not_promoted_message(result, out) -> str:
    """One line: why the gate kept the version out of `latest`, and how to publish it anyway."""
    gate = result.gate or {}
    reasons = "; ".join(gate.get("reasons") or [gate.get("held") or "the promotion gate refused it"])
    return (f"version {result.version} kept as a candidate, {out}/latest unchanged: {reasons}. "
            f"To publish it anyway: catvec promote {out} {result.version}")


def emit_promoted(result) -> None:
    """Tell Prefect a new version is in `latest`: the event the finetune deployment waits for."""
    from prefect.events import emit_event

    path = result.path.resolve()
    emit_event(event=PROMOTED_EVENT,
               resource={"prefect.resource.id": f"catvec.vectors.{path}", "prefect.resource.name": result.version,
                         PATH_LABEL: str(path), OUT_LABEL: str(path.parent)},
               payload={"version": result.version, "parent": result.manifest.get("parent")})


if __name__ == "__main__":
    sys.exit(command_line(pretrain_flow, PretrainConfig, ("events", "out"), inputs=("events",)))
