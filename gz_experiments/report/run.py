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


def command(options: ReportOptions) -> None:
    """`gz-experiments report`: once the places results go are writable; prints the table."""
    from gz_experiments.tracking.preflight import check_writable_places
    check_writable_places(options.fixed.get("experiment"))
    print(report(options, dict(options.fixed))["summary"])


def report(options: ReportOptions, fixed: dict[str, str]) -> dict:
    """Train (or reuse) every approach, then log the table and figures on the parent run."""
    from gz_experiments.report import publish
    from gz_experiments.tracking import store
    from gz_experiments.tracking.recorder import recording
    defaults = approach_defaults()
    if options.from_run:
        return publish.rebuild(options.from_run, defaults)
    jobs = plan(options, fixed)
    fingerprints = {}
    for job in jobs:   # a bad data_dir or split fails here, before anything trains
        data_fingerprint(job.config, fingerprints)
    check_weights(jobs)
    seeds = f" × seeds {','.join(map(str, options.seeds))}" if options.seeds else ""
    with recording(f"report: {', '.join(options.approaches)}{seeds}", {"approach": "report"},
                   experiment_name=fixed.get("experiment")) as rec:
        os.environ.pop("MLFLOW_RUN_ID", None)   # mlflow issue 15713: nested runs must not resume the parent
        rec.params({"approaches": ",".join(options.approaches), "seeds": ",".join(map(str, options.seeds)) or "none",
                    **{f"set.{k}": v for k, v in fixed.items()}})
        failed = {}
        for job in jobs:
            fingerprint = data_fingerprint(job.config, fingerprints)
            run_id = find_finished(job.config_hash, fingerprint)
            if run_id:
                print(f"report: {job.label}: reusing finished run {run_id} (same data, split and configuration)")
            else:
                run_id, error = run_job(job, fingerprint, defaults)
                if error is not None:
                    failed[job.label] = error
                    continue
            rec.tags({f"{RUN_TAG}{job.label}": run_id})
        summary = publish.publish(rec, store.get_run(rec.run_id).data.tags, defaults)
        if failed:
            errors = "; ".join(f"{label}: {type(e).__name__}: {e}" for label, e in failed.items())
            raise ReportError(f"{len(failed)} of {len(jobs)} approaches failed ({errors}); the table holds the "
                              f"others. Fix the cause and run the same command again: finished approaches "
                              f"are reused, not retrained")
        return summary


def approach_defaults() -> dict[str, dict]:
    """Each approach's own parameters (flat), what a run's `settings` in the table depart from."""
    import experiments
    from gz_experiments.config import flat_params
    return {approach: flat_params(experiments.load(approach).CONFIG) for approach in experiments.APPROACHES}


def run_job(job: Job, fingerprint: str, defaults: dict[str, dict]) -> tuple[str, Exception | None]:
    """Train one job in a nested run tagged with what identifies its result; an error ends that run
    FAILED (with error.txt) and the report goes on with the next approach."""
    from gz_experiments.tracking.recorder import recording
    tags = {CONFIG_HASH_TAG: job.config_hash, DATA_TAG: fingerprint, LABEL_TAG: job.label}
    print(f"report: {job.label}: training")
    try:
        with recording(job.label, tags, nested=True) as rec:   # in the parent's experiment
            if job.approach == BASELINE:
                from gz_experiments.commands.baseline import baseline
                baseline(job.config)
            else:
                import experiments
                from gz_experiments.train import train
                train(job.config, defaults=experiments.load(job.approach).CONFIG, progress=False)
        return rec.run_id, None
    except Exception as error:   # KeyboardInterrupt and kills stop the whole report
        print(f"report: {job.label} failed: {type(error).__name__}: {error}", file=sys.stderr)
        return "", error
    finally:
        release_memory()


def release_memory() -> None:
    gc.collect()
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
