"""A report's runs in MLflow: the finished run a rerun may reuse, and each run's results read back."""
from __future__ import annotations

from dataclasses import dataclass, field

from gz_experiments.errors import GzError
from gz_experiments.tracking import store

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
    runs = store.find_runs(f"tags.{CONFIG_HASH_TAG} = '{config_hash}' and tags.{DATA_TAG} = '{fingerprint}' "
                           f"and attributes.status = 'FINISHED'", max_results=1,
                           order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def collect(label: str, run_id: str, parent_id: str, defaults: dict[str, dict]) -> RunResult | None:
    """One run's results, or None unless it FINISHED; `defaults`: each approach's flat parameters."""
    run = store.get_run(run_id)
    if run.info.status != "FINISHED":
        return None
    metrics = {name: value for name, value in store.results(run).items() if "/" not in name}
    history = sorted(store.history(run_id, "val_rmse"), key=lambda m: m.step)
    approach = run.data.tags.get("approach", label.split("-seed")[0])
    result = RunResult(label, approach, run_id, run.data.tags.get("mlflow.parentRunId") != parent_id,
                       metrics, dict(run.data.params), [m.value for m in history if m.step > 0])
    result.settings = settings(result.params, defaults.get(approach))
    return result


def settings(params: dict[str, str], defaults: dict | None) -> str:
    """Where a run departs from its approach's configuration (`defaults`, flat; None for the
    baseline), e.g. `epochs=5, weights=none`: the table says so beside its numbers."""
    if defaults is None:
        return ""
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


def results_of(tags: dict[str, str], parent_id: str, defaults: dict[str, dict]) -> tuple[list[RunResult], list[str]]:
    """The parent's labelled runs that finished, and the labels whose run did not."""
    results, missing = [], []
    for key in sorted(k for k in tags if k.startswith(RUN_TAG)):
        result = collect(key[len(RUN_TAG):], tags[key], parent_id, defaults)
        (results.append(result) if result else missing.append(key[len(RUN_TAG):]))
    return results, missing
