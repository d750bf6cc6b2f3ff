"""Before any heavy work: can this command write where its results go? The MLflow tracking
database, the artifact location of the experiment the run will log to and the image cache
(GZ_CACHE_DIR) are checked by writing a probe (into the database too, in a transaction rolled
back), so a read-only or misnamed place is one error naming it, not a traceback after training.
A new sqlite database's tables are created under the project's lock before the store is read."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

from gz_experiments.errors import GzError
from gz_experiments.tracking.runs import ready_store, sqlite_path


class PlaceError(GzError):
    """A folder or database this command must write to cannot be written."""


def check_writable_places(experiment: str | None = None) -> None:
    """`experiment`: the command's `experiment` parameter (MLFLOW_EXPERIMENT_NAME/_ID win, as in runs)."""
    from gz_experiments.data.cache import cache_root
    _check_folder(cache_root(), "the image cache GZ_CACHE_DIR", "set GZ_CACHE_DIR to a writable folder")
    check_tracking(experiment)


def check_tracking(experiment: str | None = None) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException
    uri = mlflow.get_tracking_uri()
    advice = f"set MLFLOW_TRACKING_URI to a writable store, e.g. sqlite:///{Path.cwd() / 'mlflow.db'}"
    database = sqlite_path(uri)
    if database is not None:
        _check_sqlite(database, advice)
    elif _local_path(uri) is not None:
        _check_folder(_local_path(uri), "the MLflow tracking folder", advice)
    try:
        ready_store()   # before any other access: two commands on a new database must not both create it
        artifacts = _artifact_location(experiment)
    except MlflowException as error:
        raise PlaceError(f"the MLflow tracking store {uri} cannot be used ({str(error).splitlines()[0]}); "
                         f"{advice}") from None
    folder = _local_path(artifacts) if artifacts else None
    if folder is not None:
        _check_folder(folder, "the MLflow artifact location", "point the experiment (or MLFLOW_TRACKING_URI, "
                      "whose default artifact folder is ./mlruns) at a writable folder, or run from a writable one")


def _artifact_location(requested: str | None = None) -> str | None:
    """Where this command's run will keep its artifacts: `mlflow run`'s run, else its experiment's
    (chosen as `experiment.use` chooses it: MLFLOW_EXPERIMENT_ID/_NAME, else `requested`)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    client = MlflowClient()
    if os.environ.get("MLFLOW_RUN_ID"):
        return client.get_run(os.environ["MLFLOW_RUN_ID"]).info.artifact_uri
    experiment = None
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        experiment = client.get_experiment(os.environ["MLFLOW_EXPERIMENT_ID"])
    elif os.environ.get("MLFLOW_EXPERIMENT_NAME") or requested:
        experiment = client.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME") or requested)
    if experiment is None:   # a new experiment's folder goes beside the default one's
        try:
            return client.get_experiment("0").artifact_location.rsplit("/", 1)[0]
        except MlflowException:   # no default experiment: nothing to go by
            return None
    return experiment.artifact_location


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(uri) if parsed.scheme == "" else None


def _check_sqlite(path: Path, advice: str) -> None:
    if not path.exists():   # MLflow creates it, but not its folder
        _check_folder(path.parent, f"the folder of the MLflow tracking database {path}", advice, create=False)
        return
    try:   # BEGIN IMMEDIATE alone succeeds on a read-only file: only a real write tells
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("CREATE TABLE gz_write_probe (x)")
            connection.execute("ROLLBACK")
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise PlaceError(f"the MLflow tracking database {path} cannot be written ({error}); {advice}") from None


def _check_folder(folder: Path, what: str, advice: str, create: bool = True) -> None:
    folder = Path(folder).expanduser()
    probe = folder / f".write-probe-{os.getpid()}"
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise PlaceError(f"{what} {folder} cannot be written ({error.strerror or error}); {advice}") from None
