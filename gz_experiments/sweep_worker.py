"""One sweep worker: claim a slot of the study's shared budget, run the trial in a nested MLflow
run, repeat until the study holds `n_trials` complete + pruned trials.

Optuna's own `MaxTrialsCallback` checks the total only after a trial ends, so k workers overshoot
by up to k - 1 trials. Here a lock shared by all workers (a PostgreSQL advisory lock, or a file
lock beside a SQLite study) covers "count finished + running trials, then create one", and the
objective releases it as soon as its trial exists in storage: the total is exact.
"""
from __future__ import annotations

import fcntl
import hashlib
import re
import tempfile
import time
import warnings
from pathlib import Path

from gz_experiments.config import override
from gz_experiments.sweep import WORKER, SweepError, SweepOptions


class ClaimLock:
    """Mutual exclusion between every worker of one study, wherever they run. A dead worker's lock
    goes with it: PostgreSQL ends its session, the kernel closes its file."""

    def __init__(self, storage_url: str, study_name: str):
        import sqlalchemy
        self.url, self.study_name = storage_url, study_name
        self.backend = sqlalchemy.engine.make_url(storage_url).get_backend_name()
        self._release = None

    def acquire(self) -> ClaimLock:
        if self.backend == "postgresql":
            self._release = self._advisory_lock()
        else:   # SQLite (one machine by nature); other databases get a local lock only
            handle = open(self._lock_path(), "a+")
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._release = handle.close
        return self

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()

    def _key(self) -> int:
        return int.from_bytes(hashlib.blake2b(f"gz-sweep:{self.study_name}".encode(), digest_size=8).digest(),
                              "big", signed=True)

    def _advisory_lock(self):
        import sqlalchemy
        engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        connection = engine.connect()
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key()})
        connection.commit()
        return lambda: (connection.close(), engine.dispose())   # session ends: lock released

    def _lock_path(self) -> Path:
        import sqlalchemy
        database = sqlalchemy.engine.make_url(self.url).database or ""
        where = str(Path(database).resolve()) if database and database != ":memory:" else self.url
        digest = hashlib.blake2b(f"{where}:{self.study_name}".encode(), digest_size=8).hexdigest()
        return Path(tempfile.gettempdir()) / f"gz-sweep-{digest}.lock"


def work(study, objective, options: SweepOptions) -> SweepError | None:
    """Run trials until the study's budget is met; a SweepError (returned, so the summary is still
    logged) when this worker's trials keep failing."""
    failures_in_row, waiting_said = [], False
    while True:
        with ClaimLock(options.storage, options.name) as lock:
            fail_stale_trials(study)
            done, running = count(study)
            if done >= options.n_trials:
                return None
            number = run_one(study, objective, lock) if done + running < options.n_trials else None
        if number is None:   # the rest of the budget is running elsewhere: wait in case a worker dies
            if not waiting_said:
                print(f"sweep: {done}/{options.n_trials} trials done, the rest running on other workers; waiting")
                waiting_said = True
            time.sleep(min(5, options.heartbeat_interval))
            continue
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        failures_in_row = failures_in_row + [trial] if trial.state.name == "FAIL" else []
        if len(failures_in_row) >= options.max_failures_in_row:
            errors = "; ".join(f"trial {t.number}: {t.user_attrs.get('error', '?')}" for t in failures_in_row)
            return SweepError(f"{len(failures_in_row)} trials in a row failed ({errors}); fix the cause "
                              f"(the trial runs' error.txt in MLflow has the tracebacks) and resume")


def run_one(study, objective, lock: ClaimLock) -> int | None:
    """One trial through `study.optimize`, which brings the heartbeat thread and stale-trial
    handling; the lock is released once the trial exists (RUNNING) in storage."""
    started = []

    def claimed(trial):
        started.append(trial.number)
        lock.release()
        return objective(trial)

    study.optimize(claimed, n_trials=1, catch=(Exception,), gc_after_trial=True)
    return started[0] if started else None


def count(study) -> tuple[int, int]:
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return len(trials) - running, running


def fail_stale_trials(study) -> None:
    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


class PruningHook:
    """train's epoch hook: report val_rmse to the trial (step = epoch), stop when Optuna prunes."""

    def __init__(self, trial):
        self.trial, self.pruned_at, self.val_rmse = trial, None, None

    def __call__(self, epoch: int, val_rmse: float) -> bool:
        self.trial.report(val_rmse, epoch)
        if self.trial.should_prune():
            self.pruned_at, self.val_rmse = epoch, val_rmse
            return True
        return False


def mlflow_key(name: str) -> str:
    """`filters[1]` → `filters_1`: MLflow keys allow no brackets."""
    return re.sub(r"\[(\d+)\]", r"_\1", name)


def make_objective(config, space: dict, study_name: str):
    def objective(trial) -> float:
        import mlflow
        import optuna

        from gz_experiments import tracking
        from gz_experiments.train import train
        parent = mlflow.active_run().info.run_id
        with mlflow.start_run(nested=True, run_name=f"trial-{trial.number}",   # in the parent's experiment
                              experiment_id=mlflow.active_run().info.experiment_id) as run:
            hook = PruningHook(trial)
            try:
                tag_trial(trial, run.info.run_id, parent, study_name)
                params = {key: distribution.suggest(trial, key) for key, distribution in space.items()}
                mlflow.log_params({f"trial_{mlflow_key(k)}": v for k, v in params.items()})
                metrics = train(override(config, params), epoch_hook=hook, evaluate_test=False, progress=False)
            except BaseException as error:
                tracking.record_failure(error)
                mlflow.set_tag("trial_state", "failed")
                trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:500])
                raise
            mlflow.set_tag("trial_state", "pruned" if hook.pruned_at else "finished")
        if hook.pruned_at:
            raise optuna.TrialPruned(f"val_rmse {hook.val_rmse:.4f} at epoch {hook.pruned_at} is worse than "
                                     f"the median of earlier trials")
        return metrics["best_val_rmse"]

    return objective


def tag_trial(trial, run_id: str, parent_run_id: str, study_name: str) -> None:
    """Link the Optuna trial and its MLflow run both ways (a retry also names the dead trial)."""
    import mlflow
    trial.set_user_attr("mlflow_run_id", run_id)
    trial.set_user_attr("mlflow_parent_run_id", parent_run_id)
    trial.set_user_attr("worker", WORKER)
    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    retry_of = frozen.system_attrs.get("failed_trial")
    mlflow.set_tags({"trial_number": trial.number, "study_name": study_name, "trial_state": "running",
                     "worker": WORKER, **({"retry_of_trial": retry_of} if retry_of is not None else {})})
