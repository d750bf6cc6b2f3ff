"""MLflow: runs that end FAILED with their error, per-epoch metrics under stable names, figures.

Metric names are the contract between training, sweeps and the UI:
`train_loss`, `train_rmse`, `val_loss`, `val_rmse` per epoch (step = epoch);
`best_val_rmse`, `test_rmse`, `test_rmse_tta`, `test_rmse_by_question` (step = question) after
training (`metric_groups`). Commands record through `recorder.Recorder`; this module keeps the run's
life: which run, its end state, orphans.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
import traceback
from pathlib import Path
from urllib.parse import unquote

import mlflow

# Keras' history keys -> the names above (train.EpochLogger logs them). No keras import here: the
# CLI, baseline and error paths stay free of TensorFlow's start-up.
KERAS_TO_METRIC = {"loss": "train_loss", "rmse": "train_rmse", "val_loss": "val_loss", "val_rmse": "val_rmse"}


# Which process runs a run, for `close_orphaned_runs`. Under `mlflow.`: the UI hides that prefix
# from a run's tags and from Compare (`getVisibleTagValues`), where these would show as differences
# between any two runs; nobody filters by them. (A param would be worse: params are the experiment's
# knobs, shown as columns and compared.)
PROCESS_TAGS = {"host": "mlflow.gz.host", "pid": "mlflow.gz.pid", "start": "mlflow.gz.process_start"}
NOTE = "mlflow.note.content"
# A run no one process owns (a sweep's parent, shared by its workers): each process using it adds a
# tag `mlflow.gz.user.<host>/<pid>` = its start time and removes it when done; `close_orphaned_runs`
# closes the run only once every process so named is certainly gone.
SHARED_TAG = "mlflow.gz.shared"
USER_TAG = "mlflow.gz.user."
_opened: list[str] = []   # runs this process's `run` started and has not ended, innermost last


@contextlib.contextmanager
def run(run_name: str | None = None, tags: dict | None = None, *, nested: bool = False,
        parent_run_id: str | None = None, experiment_id: str | None = None):
    """The MLflow run to log into, ended FAILED (or KILLED, by a signal or Ctrl-C) with the error
    and a note when the block raises.

    Which run, explicitly: a child of `parent_run_id`, or of the active run with `nested=True` (a
    sweep's trial); else the active run if this module opened it (train inside that trial); else the
    run `mlflow run` created (MLFLOW_RUN_ID); else a new one. Someone else's active run is never
    written into: the run becomes its child, in the parent's experiment unless `experiment_id` says. Every run is tagged with this process's host, pid and
    start time, so `close_orphaned_runs` can close it if the process dies without a word."""
    from gz_experiments.tracking import processes
    active = mlflow.active_run()
    adopted = active is not None and not nested and parent_run_id is None and _opened[-1:] == [active.info.run_id]
    if adopted:
        current = active
    elif active is None and parent_run_id is None and os.environ.get("MLFLOW_RUN_ID"):
        current = mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"])
    else:
        parent = active.info if active is not None else (mlflow.get_run(parent_run_id).info if parent_run_id else None)
        current = mlflow.start_run(run_name=run_name, nested=active is not None, parent_run_id=parent_run_id,
                                   experiment_id=parent.experiment_id if parent else experiment_id)
    if not adopted:
        _opened.append(current.info.run_id)
    signals = processes.raise_on_stop_signals()
    try:
        mlflow.set_tags({**process_tags(), **(tags or {})})
        yield current
    except BaseException as error:
        record_failure(error)
        if not adopted:
            mlflow.end_run(_end_status(error))
        raise
    finally:
        processes.restore_signals(signals)
        if not adopted:
            _opened.remove(current.info.run_id)
    if not adopted:
        mlflow.end_run()


def _end_status(error: BaseException) -> str:
    from gz_experiments.tracking.processes import Killed
    return "KILLED" if isinstance(error, (KeyboardInterrupt, Killed)) else "FAILED"


def process_tags() -> dict[str, str]:
    from gz_experiments.tracking.processes import identity
    return {PROCESS_TAGS[key]: value for key, value in identity().items()}


def record_failure(error: BaseException) -> None:
    from gz_experiments.tracking.processes import Killed
    with contextlib.suppress(Exception):
        mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
        if isinstance(error, (KeyboardInterrupt, Killed)):
            why = error.reason if isinstance(error, Killed) else "interrupted (SIGINT, Ctrl-C)"
            mlflow.set_tags({"killed_by": why, NOTE: f"Stopped: {why} at {_now()}; the run did not finish."})
        mlflow.log_text("".join(traceback.format_exception(error)), "error.txt")
    with contextlib.suppress(Exception):
        active = mlflow.active_run()
        fail_pending_models(mlflow.MlflowClient(), active.info.run_id, active.info.experiment_id)


def fail_pending_models(client, run_id: str, experiment_id: str) -> None:
    """A run's LoggedModels still PENDING (its logging died: a full disk, the process killed) are
    marked FAILED: never left looking as if they were still being written."""
    from mlflow.entities import LoggedModelStatus
    for model in client.search_logged_models(experiment_ids=[experiment_id],
                                             filter_string=f"source_run_id = '{run_id}'"):
        if model.status == LoggedModelStatus.PENDING:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)


def begin_command() -> None:
    """What every command of the project does first: stop with its `mlflow run` launcher, tag the
    launcher's run with this process, and close the runs of processes that died (kill -9, power loss)."""
    from gz_experiments.tracking import processes
    processes.follow_launcher()
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:   # if we die before `run` adopts it, the next command can still tell it is orphaned
        with contextlib.suppress(Exception):
            client = mlflow.MlflowClient()
            for key, value in process_tags().items():
                client.set_tag(run_id, key, value)
    close_orphaned_runs()


def close_orphaned_runs() -> list[str]:
    """End FAILED, with the reason, every RUNNING run whose process (on this host) is certainly gone.
    Runs of other hosts, of live processes, or without process tags are left alone. One query;
    never raises (the command's own use of the store reports a broken one)."""
    from gz_experiments.tracking import processes
    if not _store_exists():
        return []
    closed = []
    try:
        ready_store()   # the file may exist while another command is still creating its tables
        client = mlflow.MlflowClient()
        experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
        host = processes.HOST.replace("'", "")
        query = f"attributes.status = 'RUNNING' and tags.`{PROCESS_TAGS['host']}` = '{host}'"
        for found in client.search_runs(experiments, query, max_results=1000) if experiments else []:
            tags = found.data.tags
            pid, started = tags.get(PROCESS_TAGS["pid"], ""), tags.get(PROCESS_TAGS["start"])
            if processes.is_gone(tags[PROCESS_TAGS["host"]], pid, started):
                _close(client, found, f"process {pid} on {processes.HOST} ended without closing this run "
                                      f"(killed with SIGKILL, crashed, or the machine restarted)")
                closed.append(found.info.run_id)
        shared = f"attributes.status = 'RUNNING' and tags.`{SHARED_TAG}` = 'true'"
        for found in client.search_runs(experiments, shared, max_results=1000) if experiments else []:
            users = shared_users(found.data.tags)
            if all(processes.is_gone(host, pid, started) for host, pid, started in users):
                who = ", ".join(f"process {pid} on {host}" for host, pid, _ in users) or "every process using it"
                _close(client, found, f"{who} ended without closing this run "
                                      f"(killed with SIGKILL, crashed, or the machine restarted)")
                closed.append(found.info.run_id)
    except Exception:
        pass
    return closed


def shared_users(tags: dict) -> list[tuple[str, str, str]]:
    """(host, pid, start) of each process that says it uses a shared run."""
    return [(*key[len(USER_TAG):].rpartition("/")[::2], started) for key, started in tags.items()
            if key.startswith(USER_TAG)]


def _user_tag() -> tuple[str, str]:
    from gz_experiments.tracking.processes import identity
    me = identity()
    return f"{USER_TAG}{me['host']}/{me['pid']}", me["start"]


def create_shared(experiment_id: str, name: str, tags: dict) -> str:
    """A new shared run, RUNNING, used by this process (one write: never without a user)."""
    key, started = _user_tag()
    run = mlflow.MlflowClient().create_run(experiment_id, run_name=name,
                                           tags={**tags, SHARED_TAG: "true", key: started})
    return run.info.run_id


def use_shared(run_id: str) -> None:
    """This process uses the shared run from now on; an ended one is RUNNING again (a resumed sweep)."""
    client = mlflow.MlflowClient()
    client.set_tag(run_id, *_user_tag())
    if client.get_run(run_id).info.status != "RUNNING":
        with contextlib.suppress(Exception):   # an earlier close's reason no longer holds
            client.delete_tag(run_id, "error")
        client.update_run(run_id, "RUNNING")


def leave_shared(run_id: str) -> None:
    with contextlib.suppress(Exception):
        mlflow.MlflowClient().delete_tag(run_id, _user_tag()[0])


def other_users(run_id: str) -> list[str]:
    """The other processes using a shared run that may be alive (another host's can't be known
    dead); the tags of those certainly gone are removed."""
    from gz_experiments.tracking import processes
    client, mine = mlflow.MlflowClient(), _user_tag()[0]
    alive = []
    for host, pid, started in shared_users(client.get_run(run_id).data.tags):
        key = f"{USER_TAG}{host}/{pid}"
        if key == mine:
            continue
        if processes.is_gone(host, pid, started):
            with contextlib.suppress(Exception):
                client.delete_tag(run_id, key)
        else:
            alive.append(f"{host}:{pid}")
    return alive


def _close(client, found, reason: str) -> None:
    run_id = found.info.run_id
    note = found.data.tags.get(NOTE, "")
    client.set_tag(run_id, "error", f"orphaned: {reason}")
    client.set_tag(run_id, NOTE, (note + "\n\n" if note else "") + f"Closed as FAILED at {_now()}: {reason}.")
    client.set_terminated(run_id, "FAILED")
    with contextlib.suppress(Exception):
        fail_pending_models(client, run_id, found.info.experiment_id)


def ready_store() -> None:
    """Open the tracking store, creating a new sqlite database's tables under a file lock. MLflow
    creates them without one, so two commands starting together on a fresh database (sweep workers,
    parallel `train`s) both try and one dies with "table … already exists"."""
    path = sqlite_path(mlflow.get_tracking_uri())
    if path is None or not path.parent.is_dir():
        return   # a server, or a folder that doesn't exist: MLflow's own error says so
    try:
        lock = open(f"{path}.lock", "a")
    except OSError:   # a folder we may not write to: nothing to race with that we could create
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the file closes, or the process dies
        mlflow.MlflowClient().search_experiments(max_results=1)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///…` tracking URI; None for other stores and `:memory:`."""
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:///:memory:"):
        return None
    return Path(unquote(uri[len("sqlite:///"):].split("?")[0]))


def _store_exists() -> bool:
    """Don't create a tracking database just to find it empty (e.g. for `synthetic`)."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        path = sqlite_path(uri)
        return path is None or path.exists()
    if uri.startswith("file:") or "://" not in uri:
        return Path(uri.removeprefix("file://").removeprefix("file:")).exists()
    return True


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def record_command_error(error: BaseException) -> None:
    """Under `mlflow run` the run exists before the command starts: an error raised before training
    took it over (a bad parameter) is logged there too, so the FAILED run says why."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    message = f"{type(error).__name__}: {error}"
    try:
        client = mlflow.MlflowClient()
        if "error" not in client.get_run(run_id).data.tags:   # training's own record has the traceback
            client.set_tag(run_id, "error", message[:5000])
            client.log_text(run_id, message + "\n", "error.txt")
    except Exception:   # the store being unreachable must not hide the user's error
        pass
