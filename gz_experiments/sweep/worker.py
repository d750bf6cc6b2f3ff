"""One sweep worker: claim a slot of the study's shared budget, run the trial, repeat until the
study holds `n_trials` complete + pruned trials.

Optuna's own `MaxTrialsCallback` checks the total only after a trial ends, so k workers overshoot
by up to k - 1 trials. Here the `ClaimLock` covers "count finished + running trials, then create
one", and the trial releases it as soon as it exists in storage: the total is exact. Before
counting, trials of dead workers are failed (and retried): by Optuna once their heartbeat is
`grace_period` old, and at once when their worker was on this machine and its process is gone.
"""
from __future__ import annotations

import copy
import os
import socket
import time
import warnings

from gz_experiments.sweep.claim import ClaimLock
from gz_experiments.sweep.options import SweepError, SweepOptions
from gz_experiments.sweep.study import engine_options
from gz_experiments.sweep.trial import PID_SPACE


def work(study, objective, options: SweepOptions) -> SweepError | None:
    """Run trials until the study's budget is met; a SweepError (returned, so the summary is still
    logged) when this worker's trials keep failing."""
    failures_in_row, waited_for = [], set()
    while True:
        with ClaimLock(options.storage, options.name) as lock:
            fail_stale_trials(study)
            done, running = count(study)
            if done >= options.n_trials:
                return None
            number = run_one(study, objective, lock) if done + running < options.n_trials else None
        if number is None:   # the rest of the budget is running elsewhere: wait in case a worker dies
            say_waiting(study, done, options, waited_for)
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


def running_trials(study) -> list:
    from optuna.trial import TrialState
    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def fail_stale_trials(study) -> None:
    """Fail (and so retry) the trials whose worker is dead: Optuna's rule, silent for grace_period,
    and ours, a worker on this machine whose process is gone."""
    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    for trial in running_trials(study):
        if worker_is_gone(trial.user_attrs):
            fail_and_retry(study, trial)


def worker_is_gone(attrs: dict) -> bool:
    """True only when certain: the trial's worker ran where our pids mean the same processes (this
    machine, this container) and no process has its pid (or the pid is ours, and this process runs
    no trial while it checks). Another machine's processes can't be checked."""
    host, _, pid = attrs.get("worker", "").rpartition(":")
    if (host, attrs.get("worker_pid_space")) != (socket.gethostname(), PID_SPACE) or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)   # signal 0 sends nothing: it only asks whether the pid exists
    except ProcessLookupError:
        return True
    except PermissionError:   # it exists, another user's
        pass
    return False


def fail_and_retry(study, trial) -> None:
    """What Optuna does to a trial whose heartbeat went stale, now: FAIL, then the retry callback."""
    import optuna
    from optuna.trial import TrialState
    storage, gone = study._storage, f"worker {trial.user_attrs['worker']} is no longer running"
    try:
        storage.set_trial_user_attr(trial._trial_id, "error", f"{gone} (its process on this machine is gone)")
        if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return
    except optuna.exceptions.UpdateFinishedTrialError:   # it ended meanwhile
        return
    print(f"sweep: trial {trial.number}'s {gone}; trial {trial.number} is failed and its parameters retried")
    retry = storage.get_heartbeat_stale_trial_callback()
    if retry is not None:
        retry(study, copy.deepcopy(storage.get_trial(trial._trial_id)))


def say_waiting(study, done: int, options: SweepOptions, waited_for: set[int]) -> None:
    """Say once per trial what this worker waits for, and when it stops waiting if that worker died."""
    for trial in running_trials(study):
        if trial.number in waited_for:
            continue
        waited_for.add(trial.number)
        age = heartbeat_age(options.storage, trial._trial_id)
        beat = "no heartbeat yet" if age is None else f"last heartbeat {age:.0f} s ago"
        print(f"sweep: {done}/{options.n_trials} trials done; waiting for trial {trial.number} on worker "
              f"{trial.user_attrs.get('worker', '(not yet tagged)')}, {beat}; if that worker has died, the "
              f"trial is failed and retried once its heartbeat is grace_period={options.grace_period} s old")


def heartbeat_age(storage_url: str, trial_id: int) -> float | None:
    """Seconds since the trial's last heartbeat, by the database's clock (as Optuna measures it)."""
    import sqlalchemy
    beats = sqlalchemy.table("trial_heartbeats", sqlalchemy.column("trial_id"),
                             sqlalchemy.column("heartbeat", sqlalchemy.DateTime))
    query = sqlalchemy.select(beats.c.heartbeat, sqlalchemy.func.now()).where(beats.c.trial_id == trial_id)
    engine = sqlalchemy.create_engine(storage_url, poolclass=sqlalchemy.pool.NullPool, **engine_options(storage_url))
    try:
        with engine.connect() as connection:
            row = connection.execute(query).first()
    finally:
        engine.dispose()
    if row is None:
        return None
    beat, now = (value.replace(tzinfo=None) for value in row)
    return (now - beat).total_seconds()
