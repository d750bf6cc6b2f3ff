"""Writes that two processes can make at once. MLflow's get-or-create writes (a dataset row,
a registered model, an experiment) look, then insert, with no lock: the second of two processes
doing it together hits the store's unique constraint — `sqlite3.IntegrityError: UNIQUE constraint
failed` locally, an MlflowException from a tracking server (PostgreSQL: `duplicate key value`).
The second writer only needs the first one's row, so the write is simply made again; the failed
attempt was one transaction, rolled back. Read-decide-write sequences (the `champion` alias) take a
file lock where every writer shares the store's disk (`store_lock`)."""
from __future__ import annotations

import contextlib
import fcntl
import time

import mlflow

UNIQUE_RACE = ("UNIQUE constraint failed", "duplicate key value violates unique constraint", "IntegrityError",
               "RESOURCE_ALREADY_EXISTS")


def is_unique_race(error: BaseException) -> bool:
    text = f"{type(error).__name__}: {error} {getattr(error, 'error_code', '')}"
    return any(mark in text for mark in UNIQUE_RACE)


def retrying(write, attempts: int = 5, pause: float = 0.2):
    """`write()`, made again when it lost a unique-constraint race (the row now exists)."""
    for attempt in range(attempts):
        try:
            return write()
        except Exception as error:
            if attempt == attempts - 1 or not is_unique_race(error):
                raise
            time.sleep(pause * (attempt + 1))


@contextlib.contextmanager
def store_lock(name: str):
    """An exclusive file lock beside a sqlite tracking database, named `name`; a no-op for other
    stores (a server's clients share no disk: they compare after setting instead)."""
    from gz_experiments.tracking.runs import sqlite_path
    path = sqlite_path(mlflow.get_tracking_uri())
    try:
        handle = open(f"{path}.{name}.lock", "a") if path is not None else None
    except OSError:   # a folder we may not write to: the write itself will say so
        handle = None
    if handle is None:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)   # released when the file closes, or the process dies
        yield
