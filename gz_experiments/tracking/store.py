"""Reading what earlier runs recorded: runs by filter, their metric histories and artifacts, and
the models they logged — for the commands that build on other runs (report, ensemble, sweep)."""
from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from gz_experiments.tracking import downloads, metric_groups

# What reading another run may fail with: a missing run, artifact or model, a store that went away.
ReadError = (MlflowException, OSError)


def tracking_uri() -> str:
    return mlflow.get_tracking_uri()


def get_run(run_id: str):
    return MlflowClient().get_run(run_id)


def find_runs(where: str, experiment_ids: list[str] | None = None, order_by: list[str] | None = None,
              max_results: int = 1000) -> list:
    """Runs matching `where` in the given experiments (default: every experiment)."""
    client = MlflowClient()
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    if not experiment_ids:
        return []
    return client.search_runs(experiment_ids, where, max_results=max_results, order_by=order_by or [])


def experiment_id(name: str) -> str | None:
    found = MlflowClient().get_experiment_by_name(name)
    return found.experiment_id if found else None


def history(run_id: str, metric: str) -> list:
    return MlflowClient().get_metric_history(run_id, metric)


def results(run) -> dict[str, float]:
    """A run's single-value metrics, with the per-question RMSE under the scorer's names (`test_rmse_q1` …)."""
    metrics = dict(run.data.metrics)
    for name in [n for n in metrics if n.endswith(metric_groups.BY_QUESTION)]:
        metrics.pop(name)
        metrics.update(metric_groups.question_metrics(name, history(run.info.run_id, name)))
    return metrics


def download(uri: str | None = None, *, run_id: str | None = None, path: str | None = None,
             into: str | None = None) -> Path:
    """An artifact (or a model's folder) on local disk: in `into`, or in this process's download
    folder, which is removed when the command ends (never a stray copy in $TMPDIR)."""
    where = {"artifact_uri": uri} if uri is not None else {"run_id": run_id, "artifact_path": path}
    if into is None:
        return downloads.download(**where)
    return Path(mlflow.artifacts.download_artifacts(dst_path=into, **where))


def source_run_of_model(uri: str):
    """The run that logged the model behind `runs:/…` or `models:/…` (None for a plain path)."""
    from mlflow.store.artifact.utils.models import get_model_name_and_version
    client = MlflowClient()
    if uri.startswith("runs:/"):
        return client.get_run(uri[len("runs:/"):].split("/")[0])
    if uri.startswith("models:/"):
        found = get_model_name_and_version(client, uri)
        run_id = client.get_logged_model(found[0]).source_run_id if len(found) == 1 else \
            client.get_model_version(*found).run_id
        return client.get_run(run_id) if run_id else None
    return None


def pyfunc_conf(folder: Path) -> dict:
    """The python_function flavour's settings of a downloaded model folder."""
    from mlflow.models import Model
    return Model.load(str(folder / "MLmodel")).flavors.get("python_function", {})


def end_run(run_id: str, status: str, tags: dict[str, str]) -> None:
    """Tag and end another process's run (a dead sweep worker's trial)."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    client.set_terminated(run_id, status)


def tag_run(run_id: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def is_running(run_id: str) -> bool:
    try:
        return MlflowClient().get_run(run_id).info.status == "RUNNING"
    except MlflowException:   # logged to another tracking server
        return False
