"""A report's runs in MLflow: the finished run a rerun may reuse, and each run's results read back."""
from __future__ import annotations

from dataclasses import dataclass, field

import mlflow

from gz_experiments.errors import GzError

CONFIG_HASH_TAG, DATA_TAG = "report_config_hash", "report_data_fingerprint"
RUN_TAG = "report_run."   # on the parent: report_run.<label> = the run holding that label's results
NOT_SETTINGS = {"data_dir", "n_train", "n_val", "n_test", "split_seed", "seed", "approach"}


class ReportError(GzError):
    """A report can't be made or some of its approaches failed; the message says which and what to do."""


@dataclass
class RunResult:
    """What the table needs of one finished run, read back from MLflow."""
    label: str
    approach: str
    run_id: str
    reused: bool
    metrics: dict[str, float]
    params: dict[str, str]
    val_curve: list[float] = field(default_factory=list)
    settings: str = ""


def find_finished(config_hash: str, fingerprint: str) -> str | None:
    """The newest FINISHED run with this configuration on this data, in any experiment (`mlflow run`
    puts a rerun where it is told); a FAILED, KILLED or still RUNNING one is never reused."""
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    runs = client.search_runs(
        experiments, f"tags.{CONFIG_HASH_TAG} = '{config_hash}' and tags.{DATA_TAG} = '{fingerprint}' "
                         f"and attributes.status = 'FINISHED'", max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def collect(client, label: str, run_id: str, parent_id: str) -> RunResult | None:
    """One run's results, or None unless it FINISHED."""
    run = client.get_run(run_id)
    if run.info.status != "FINISHED":
        return None
    metrics = {name.split("/", 1)[-1]: value for name, value in run.data.metrics.items()
               if "/" not in name or name.startswith(("per_question/", "per_epoch/"))}
    history = sorted(client.get_metric_history(run_id, "val_rmse"), key=lambda m: m.step)
    approach = run.data.tags.get("approach", label.split("-seed")[0])
    result = RunResult(label, approach, run_id, run.data.tags.get("mlflow.parentRunId") != parent_id,
                       metrics, dict(run.data.params), [m.value for m in history if m.step > 0])
    result.settings = settings(approach, result.params)
    return result


def settings(approach: str, params: dict[str, str]) -> str:
    """Where a run departs from its approach's configuration (the report's settings), e.g.
    `epochs=5, weights=none`: the table says so beside its numbers."""
    import experiments
    from gz_experiments.config import flat_params
    if approach not in experiments.APPROACHES:
        return ""
    defaults = flat_params(experiments.load(approach).CONFIG)
    changed = [f"{k}={params[k]}" for k, v in defaults.items()
               if k in params and k not in NOT_SETTINGS and not _same(params[k], v)]
    return ", ".join(changed)


def _same(logged: str, value) -> bool:
    expected = "none" if value is None else str(value)
    if logged.strip().lower() == expected.lower():
        return True
    try:
        return float(logged) == float(expected)
    except ValueError:
        return False


def results_of(tags: dict[str, str], parent_id: str) -> tuple[list[RunResult], list[str]]:
    """The parent's labelled runs that finished, and the labels whose run did not."""
    client = mlflow.MlflowClient()
    results, missing = [], []
    for key in sorted(k for k in tags if k.startswith(RUN_TAG)):
        result = collect(client, key[len(RUN_TAG):], tags[key], parent_id)
        (results.append(result) if result else missing.append(key[len(RUN_TAG):]))
    return results, missing
