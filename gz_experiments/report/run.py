"""Run a report: each job trained in a nested run under one parent, or a FINISHED run with the
same configuration hash and data fingerprint reused; a failed approach leaves the others' table."""
from __future__ import annotations

import gc
import os
import sys

from gz_experiments.report.options import BASELINE, ReportOptions
from gz_experiments.report.plan import Job, check_weights, data_fingerprint, plan
from gz_experiments.report.runs import CONFIG_HASH_TAG, DATA_TAG, RUN_TAG, ReportError, find_finished

LABEL_TAG = "report_label"


def report(options: ReportOptions, fixed: dict[str, str]) -> dict:
    """Train (or reuse) every approach, then log the table and figures on the parent run."""
    import mlflow

    from gz_experiments.tracking import experiment
    from gz_experiments.tracking import runs as tracking
    from gz_experiments.report import publish
    if options.from_run:
        return publish.rebuild(options.from_run)
    jobs = plan(options, fixed)
    fingerprints = {}
    for job in jobs:   # a bad data_dir or split fails here, before anything trains
        data_fingerprint(job.config, fingerprints)
    check_weights(jobs)
    with tracking.run(run_name="report", tags={"approach": "report"},
                      experiment_id=experiment.use(fixed.get("experiment"))) as parent:
        os.environ.pop("MLFLOW_RUN_ID", None)   # mlflow issue 15713: nested runs must not resume the parent
        tracking.log_params({"approaches": ",".join(options.approaches),
                             "seeds": ",".join(map(str, options.seeds)) or "none",
                             **{f"set.{k}": v for k, v in fixed.items()}})
        failed = {}
        for job in jobs:
            fingerprint = data_fingerprint(job.config, fingerprints)
            run_id = find_finished(job.config_hash, fingerprint)
            if run_id:
                print(f"report: {job.label}: reusing finished run {run_id} (same data, split and configuration)")
            else:
                run_id, error = run_job(job, fingerprint)
                if error is not None:
                    failed[job.label] = error
                    continue
            mlflow.set_tag(f"{RUN_TAG}{job.label}", run_id)
        summary = publish.publish(mlflow.MlflowClient().get_run(parent.info.run_id).data.tags)
        if failed:
            errors = "; ".join(f"{label}: {type(e).__name__}: {e}" for label, e in failed.items())
            raise ReportError(f"{len(failed)} of {len(jobs)} approaches failed ({errors}); the table holds the "
                              f"others. Fix the cause and run the same command again: finished approaches "
                              f"are reused, not retrained")
        return summary


def run_job(job: Job, fingerprint: str) -> tuple[str, Exception | None]:
    """Train one job in a nested run tagged with what identifies its result; an error ends that run
    FAILED (with error.txt) and the report goes on with the next approach."""
    from gz_experiments.tracking import runs as tracking
    tags = {CONFIG_HASH_TAG: job.config_hash, DATA_TAG: fingerprint, LABEL_TAG: job.label}
    print(f"report: {job.label}: training")
    try:
        with tracking.run(run_name=job.label, tags=tags, nested=True) as run:   # in the parent's experiment
            if job.approach == BASELINE:
                from gz_experiments.commands.baseline import baseline
                baseline(job.config)
            else:
                from gz_experiments.train import train
                train(job.config, progress=False)
        return run.info.run_id, None
    except Exception as error:   # KeyboardInterrupt and kills stop the whole report
        print(f"report: {job.label} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return "", error
    finally:
        release_memory()


def release_memory() -> None:
    gc.collect()
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
