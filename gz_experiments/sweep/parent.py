"""The study's one parent MLflow run, shared by every worker and every resume of the study.

The study's first worker creates it and records its id in the study (user attr
`mlflow_parent_run_id`), under the study's `ClaimLock`, so workers starting on one instant agree;
later workers and resumes attach to it (RUNNING again if it had ended). No process owns it: each
worker names itself on it (a `mlflow.gz.user.<host>/<pid>` tag, see `tracking.runs`) and its
trials carry its process tags. The worker that finds the budget met logs the study's summary and the
best trial's test score on it, once per finished budget (user attr `parent_summary`), and ends it
FINISHED; the last worker out with the budget unmet ends it FAILED (KILLED when stopped by a signal).
A worker killed with SIGKILL just leaves its tag: the next command of the project closes the parent
FAILED only once every process named on it is certainly gone.

Under `mlflow run`, the launcher's run is not the study's parent (the launcher would end it when its
own worker exits, while others still work): it ends at once, FINISHED, tagged `sweep_parent_run_id`.
"""
from __future__ import annotations

import os

from gz_experiments.sweep.claim import ClaimLock
from gz_experiments.sweep.options import SweepOptions
from gz_experiments.sweep.worker import count

PARENT_ATTR = "mlflow_parent_run_id"
SUMMARY_ATTR = "parent_summary"   # {"done": n, "summary": {...}}: what the parent got for n trials done


def attach(study, options: SweepOptions, experiment_name: str | None, name: str, tags: dict) -> str:
    """The study's parent run id, created by its first worker; this process now uses it."""
    from gz_experiments.tracking import experiment, runs, store
    launcher = os.environ.get("MLFLOW_RUN_ID")
    experiment_id = experiment.use(experiment_name) or store.get_run(launcher).info.experiment_id
    # mlflow issue 15713: no later start_run (nor a child process) may resume the launcher's run.
    os.environ.pop("MLFLOW_RUN_ID", None)
    with ClaimLock(options.storage, options.name):
        parent_id = study.user_attrs.get(PARENT_ATTR)
        if parent_id is not None and usable(parent_id):
            runs.use_shared(parent_id)
        else:
            parent_id = runs.create_shared(experiment_id, name, tags)
            study.set_user_attr(PARENT_ATTR, parent_id)
    if launcher:
        store.end_run(launcher, "FINISHED", {
            "sweep_parent_run_id": parent_id, "study_name": options.name,
            runs.NOTE: f"A worker of sweep `{options.name}` started by `mlflow run`: its trials and the "
                       f"study's summary are under the study's parent run {parent_id}."})
    return parent_id


def usable(run_id: str) -> bool:
    """The recorded parent is in this tracking store and not deleted."""
    from gz_experiments.tracking import store
    try:
        return store.get_run(run_id).info.lifecycle_stage == "active"
    except store.ReadError:
        return False


def finish(study, options: SweepOptions, parent_id: str, failure: BaseException | None, write) -> dict:
    """Leave the parent: summarized (by `write(recorder)`) and ended as the study's state says."""
    from gz_experiments.tracking import runs, store
    from gz_experiments.tracking.recorder import into_run
    with ClaimLock(options.storage, options.name):
        done = count(study)[0]
        recorded = study.user_attrs.get(SUMMARY_ATTR)
        summary = {}
        if done >= options.n_trials and recorded and recorded["done"] == done:
            summary = recorded["summary"]   # another worker, or an earlier run, logged it
            if store.is_running(parent_id):
                store.end_run(parent_id, "FINISHED", {})
        elif done >= options.n_trials:
            summary = into_run(parent_id, write, None)
            study.set_user_attr(SUMMARY_ATTR, {"done": done, "summary": summary})
        elif not runs.other_users(parent_id):   # the last one out, the budget unmet
            summary = into_run(parent_id, write, failure)
        runs.leave_shared(parent_id)
    return summary


def interrupted(options: SweepOptions, parent_id: str, error: BaseException) -> None:
    """This worker stops on an error or a signal: the parent ends with it if no other worker uses it."""
    from gz_experiments.tracking import runs, store
    with ClaimLock(options.storage, options.name):
        if not runs.other_users(parent_id):
            store.end_run(parent_id, runs._end_status(error), {"error": f"{type(error).__name__}: {error}"[:5000]})
        runs.leave_shared(parent_id)
