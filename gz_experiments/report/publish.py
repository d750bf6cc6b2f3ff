"""A report's table and figures logged on its parent run: after training, or rebuilt (`from=`)
from an earlier report's finished runs."""
from __future__ import annotations

from gz_experiments.report import figures, table
from gz_experiments.report.runs import RUN_TAG, ReportError, results_of
from gz_experiments.synthetic import is_synthetic
from gz_experiments.tracking import store


def publish(rec, tags: dict[str, str], defaults: dict[str, dict], trained_under: str | None = None) -> dict:
    """Log results.md/.csv, the figures and `test_rmse/<approach>` on `rec`'s (parent) run; runs
    not nested under `trained_under` (default: this run) are listed as reused. `defaults`: each
    approach's own flat parameters (what the table's `settings` column departs from)."""
    results, missing = results_of(tags, trained_under or rec.run_id, defaults)
    if not results:
        return {"summary": "report: no approach finished; nothing to tabulate", "results": []}
    competition = not any(is_synthetic(r.params.get("data_path", "")) for r in results)
    frame = table.table(results, competition=competition)
    text = table.markdown(frame, table.split_line(results), missing, competition=competition)
    rec.results(table.parent_metrics(frame))
    order = list(frame["approach"])
    for step, value in enumerate(frame["test_rmse"], start=1):   # one chart, the approaches side by side
        rec.metric(BY_APPROACH, float(value), step=step)
    rec.table(frame, "results.csv")
    rec.text(text, "results.md")
    rec.describe(description(results, missing, competition, order))
    for figure, name in ((figures.results_figure(frame), "results.png"),
                         (figures.per_question_figure(table.question_matrix(results)), "per_question.png"),
                         (figures.curves_figure(results), "curves.png")):
        rec.figure(figure, name)
        figures.plt.close(figure)
    reused = [r.label for r in results if r.reused]
    summary = f"{text}\nreport run {rec.run_id} in {store.tracking_uri()}"
    if reused:
        summary += f"; reused finished runs for: {', '.join(reused)}"
    return {"summary": summary, "results": results, "run_id": rec.run_id, "reused": reused, "missing": missing}


BY_APPROACH = "test_rmse_by_approach"


def description(results, missing: list[str], competition: bool, order: list[str] = ()) -> str:
    """What the report run holds, as its description in the UI."""
    labels = ", ".join(r.label for r in results)
    data = ("" if competition else " on **synthetic** galaxies (not the competition's: the numbers compare "
            "the approaches with each other, not with the report's)")
    lines = [f"**Report table**{data}: {labels}, each a run of its own (expand this run; reused runs are "
             f"listed in results.md). `results.md`/`results.csv` hold the table, `results.png`, "
             f"`per_question.png` and `curves.png` the figures; `test_rmse/<approach>` the test RMSE per approach."]
    if order:
        steps = ", ".join(f"{i} {approach}" for i, approach in enumerate(order, start=1))
        lines.append(f"`{BY_APPROACH}` holds every approach's test RMSE in one chart: step {steps}.")
    if missing:
        lines.append(f"Not finished, left out: {', '.join(missing)}.")
    return "\n\n".join(lines)


def rebuild(source_run_id: str, defaults: dict[str, dict]) -> dict:
    """A new report run with the table and figures of `source_run_id`'s finished runs; trains nothing."""
    from gz_experiments.tracking.recorder import recording
    try:
        source = store.get_run(source_run_id)
    except store.ReadError as error:
        raise ReportError(f"report from={source_run_id}: no such run in {store.tracking_uri()} "
                          f"({str(error).splitlines()[0]}); pass a report's parent run id") from None
    labelled = {k: v for k, v in source.data.tags.items() if k.startswith(RUN_TAG)}
    if not labelled:
        raise ReportError(f"run {source_run_id} is not a report run (it names no approach runs: tags {RUN_TAG}*)")
    with recording(f"report ({', '.join(k[len(RUN_TAG):] for k in sorted(labelled))}) rebuilt",
                   {"approach": "report", "report_rebuilt_from": source_run_id, **labelled},
                   parent_run_id=None, experiment_id=source.info.experiment_id) as rec:
        rec.params({k: v for k, v in source.data.params.items() if k in ("approaches", "seeds")})
        return publish(rec, labelled, defaults, trained_under=source_run_id)
