"""A report's runs in MLflow: the finished run a rerun may reuse, each run's results read back, and
the table and figures logged on the report's parent run (also when rebuilt with `from=`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import mlflow

from gz_experiments import report_figures, report_table, tracking
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


def publish(tags: dict[str, str], trained_under: str | None = None) -> dict:
    """Log results.md/.csv, the figures and `test_rmse/<approach>` on the active (parent) run; runs
    not nested under `trained_under` (default: this run) are listed as reused."""
    parent_id = mlflow.active_run().info.run_id
    results, missing = results_of(tags, trained_under or parent_id)
    if not results:
        return {"summary": "report: no approach finished; nothing to tabulate", "results": []}
    frame = report_table.table(results)
    text = report_table.markdown(frame, report_table.split_line(results), missing)
    mlflow.log_metrics(report_table.parent_metrics(frame))
    tracking.log_frame(frame, "results.csv")
    mlflow.log_text(text, "results.md")
    for figure, name in ((report_figures.results_figure(frame), "results.png"),
                         (report_figures.per_question_figure(report_table.question_matrix(results)), "per_question.png"),
                         (report_figures.curves_figure(results), "curves.png")):
        tracking.log_figure(figure, name)
        report_figures.plt.close(figure)
    reused = [r.label for r in results if r.reused]
    summary = f"{text}\nreport run {parent_id} in {mlflow.get_tracking_uri()}"
    if reused:
        summary += f"; reused finished runs for: {', '.join(reused)}"
    return {"summary": summary, "results": results, "run_id": parent_id, "reused": reused, "missing": missing}


def rebuild(source_run_id: str) -> dict:
    """A new report run with the table and figures of `source_run_id`'s finished runs; trains nothing."""
    try:
        source = mlflow.MlflowClient().get_run(source_run_id)
    except mlflow.exceptions.MlflowException as error:
        raise ReportError(f"report from={source_run_id}: no such run in {mlflow.get_tracking_uri()} "
                      f"({str(error).splitlines()[0]}); pass a report's parent run id") from None
    labelled = {k: v for k, v in source.data.tags.items() if k.startswith(RUN_TAG)}
    if not labelled:
        raise ReportError(f"run {source_run_id} is not a report run (it names no approach runs: tags {RUN_TAG}*)")
    with tracking.run(run_name="report", tags={"approach": "report", "report_rebuilt_from": source_run_id,
                                               **labelled}, experiment_id=source.info.experiment_id):
        mlflow.log_params({k: v for k, v in source.data.params.items() if k in ("approaches", "seeds")})
        return publish(labelled, trained_under=source_run_id)
