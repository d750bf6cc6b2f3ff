"""Links into `mlflow ui` that open where a person compares runs.

MLflow 3.17's UI opens an experiment on its GenAI views unless the URL says
`workflowType=machine_learning` (it ignores the `mlflow.experimentKind` tag). Its "share view" stores
a runs-table state as the experiment tag `mlflow.sharedViewState.<key>` and restores it from
`?viewStateShareKey=<key>` (the JS bundle: search facets `orderByKey`, `orderByAsc`, … and UI state
`selectedColumns`, … merged over its defaults; a column is `metrics.\\`test_rmse\\``). So each command
refreshes one such view, sorted by test RMSE with the scores and the parameters that differ as
columns, and prints a link that opens it — and the URI of each model the command logged.
"""
from __future__ import annotations

import json
import os

import mlflow
from mlflow import MlflowClient

from gz_experiments.tracking import logged_models

UI_ADDRESS = "http://127.0.0.1:5000"   # what `mlflow ui` (and `gz-experiments ui`) listens on
VIEW_KEY = "gz-compare"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
MACHINE_LEARNING = "workflowType=machine_learning"
SCORES = ("test_rmse", "test_rmse_tta", "best_val_rmse")
SORTED_BY = "test_rmse"
# No attribute column (Dataset, Source, Models are wide): the scores must be on screen beside the run
# names, not scrolled off to the right (checked in Chromium at 1600 px with the Assistant panel open).
DEFAULT_COLUMNS = ()
MAX_PARAM_COLUMNS = 8
TRAINED = "epochs"   # a param every training run logs
# Params that differ between almost any two runs without telling them apart as experiments.
NOT_COLUMNS = {"data_path", "data_fingerprint", "storage", "members", "member_run_ids", "member_names",
               "model_uri", "images", "experiment", "study_name"}


def address() -> str:
    return os.environ.get("GZ_UI_ADDRESS", UI_ADDRESS).rstrip("/")


def run_link(experiment_id: str, run_id: str, base: str | None = None) -> str:
    return f"{base or address()}/#/experiments/{experiment_id}/runs/{run_id}?{MACHINE_LEARNING}"


def comparison_link(experiment_id: str, base: str | None = None) -> str:
    """The runs table of the experiment as `refresh_view` left it (sorted by test RMSE)."""
    return (f"{base or address()}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
            f"&{MACHINE_LEARNING}")


def view_state(param_columns: list[str]) -> dict:
    """The runs-table state the UI restores from a share key."""
    columns = [*DEFAULT_COLUMNS, *(f"metrics.`{m}`" for m in SCORES), *(f"params.`{p}`" for p in param_columns)]
    return {"orderByKey": f"metrics.`{SORTED_BY}`", "orderByAsc": True, "searchFilter": "",
            "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [],
            "modelVersionFilter": "All Runs", "selectedColumns": columns}


def differing_params(runs) -> list[str]:
    """Param keys whose value differs between the training runs (those with `epochs`; else all
    runs), most often-set first, at most MAX_PARAM_COLUMNS. Evaluate, predict and parent runs log
    other keys: they would make every key look different."""
    trained = [r for r in runs if TRAINED in r.data.params] or list(runs)
    values: dict[str, set] = {}
    counts: dict[str, int] = {}
    for run in trained:
        for key, value in run.data.params.items():
            values.setdefault(key, set()).add(value.lower())
            counts[key] = counts.get(key, 0) + 1
    differ = [k for k, v in values.items() if k not in NOT_COLUMNS and not k.startswith("set.") and len(v) > 1]
    return sorted(differ, key=lambda k: (-counts[k], k))[:MAX_PARAM_COLUMNS]


def refresh_view(experiment_id: str) -> str:
    """Store the comparison view on the experiment (its columns follow the runs there now); the link."""
    client = MlflowClient()
    found = client.search_runs([experiment_id], "attributes.status = 'FINISHED'", max_results=200,
                               order_by=["attributes.start_time DESC"])
    state = json.dumps(view_state(differing_params(found)))
    client.set_experiment_tag(experiment_id, VIEW_TAG, state)
    return comparison_link(experiment_id)


def last_run_links() -> tuple[str, str, str] | None:
    """(the last run's id, its page, the comparison view of its experiment, refreshed); None without a run."""
    run = mlflow.last_active_run()
    if run is None:
        return None
    try:
        view = refresh_view(run.info.experiment_id)
    except Exception:   # the links are a convenience: a store that went away must not fail the command
        view = comparison_link(run.info.experiment_id)
    return run.info.run_id, run_link(run.info.experiment_id, run.info.run_id), view


def model_lines(run_id: str) -> list[str]:
    """`  model: models:/<model_id> (<name>)` for the model the run logged; for a parent that logged
    none, its children's (a report's, a seeds run's) or a sweep's best trial's. The URI is what
    `mlflow models serve -m` and `mlflow.pyfunc.load_model` take. Empty when there is none or the
    store can't say (the lines are a convenience: they never fail the command)."""
    try:
        client = MlflowClient()
        models = _models_behind(client, client.get_run(run_id))
    except Exception:
        return []
    return [f"  {'model:':<17} models:/{m.model_id} ({m.name})" for m in models]


def _models_behind(client: MlflowClient, run) -> list:
    run_id = run.info.run_id
    own = logged_models.of_run(run_id, client)
    if own:
        return own
    best = run.data.tags.get("best_run_id")   # a sweep's parent: its best trial
    if best:
        return logged_models.of_run(best, client)
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'",
                                  max_results=100, order_by=["attributes.start_time ASC"])
    return [m for child in children if not logged_models.is_trial(child)
            for m in logged_models.of_run(child.info.run_id, client)]
