"""A report's table and figures logged on its parent run: after training, or rebuilt (`from=`)
from an earlier report's finished runs."""
from __future__ import annotations

import mlflow

from gz_experiments.tracking import runs as tracking
from gz_experiments.report import figures, table
from gz_experiments.report.runs import RUN_TAG, ReportError, results_of


def publish(tags: dict[str, str], trained_under: str | None = None) -> dict:
    """Log results.md/.csv, the figures and `test_rmse/<approach>` on the active (parent) run; runs
    not nested under `trained_under` (default: this run) are listed as reused."""
    parent_id = mlflow.active_run().info.run_id
    results, missing = results_of(tags, trained_under or parent_id)
    if not results:
        return {"summary": "report: no approach finished; nothing to tabulate", "results": []}
    frame = table.table(results)
    text = table.markdown(frame, table.split_line(results), missing)
    mlflow.log_metrics(table.parent_metrics(frame))
    tracking.log_frame(frame, "results.csv")
    mlflow.log_text(text, "results.md")
    for figure, name in ((figures.results_figure(frame), "results.png"),
                         (figures.per_question_figure(table.question_matrix(results)), "per_question.png"),
                         (figures.curves_figure(results), "curves.png")):
        tracking.log_figure(figure, name)
        figures.plt.close(figure)
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
