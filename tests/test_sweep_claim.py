"""The claim lock of a SQLite study: exclusive between processes started on one instant, and gone
from TMPDIR once released (each sweep used to leave an empty `gz-sweep-<digest>.lock` there)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from conftest import PROJECT_ROOT
from gz_experiments.sweep.claim import ClaimLock

WORKER = textwrap.dedent("""
    import os, sys, time
    from gz_experiments.sweep.claim import ClaimLock
    storage, log, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    for _ in range(5):
        with ClaimLock(storage, "study"):
            with open(log, "a") as out:
                out.write(f"enter {os.getpid()}\\n")
            time.sleep(0.01)
            with open(log, "a") as out:
                out.write(f"leave {os.getpid()}\\n")
""")


def test_processes_starting_together_take_the_lock_in_turn_and_leave_no_file(tmp_path):
    tmpdir, log = tmp_path / "tmp", tmp_path / "log"
    tmpdir.mkdir()
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(PROJECT_ROOT)}
    start = time.time() + 3   # every worker imports first, then all go on one instant
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, storage, str(log), str(start)], env=env)
               for _ in range(4)]
    assert [w.wait(timeout=120) for w in workers] == [0] * 4

    lines = log.read_text().split()
    events = list(zip(lines[0::2], lines[1::2]))
    assert len(events) == 4 * 5 * 2
    for (enter, who), (leave, same) in zip(events[0::2], events[1::2]):   # never two inside at once
        assert (enter, leave, who) == ("enter", "leave", same)
    assert list(tmpdir.iterdir()) == []


def test_a_lock_file_left_by_a_killed_holder_is_taken_and_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)   # read TMPDIR again
    lock = ClaimLock(f"sqlite:///{tmp_path / 'optuna.db'}", "study")
    left = lock._lock_path()
    left.touch()                                    # what a SIGKILLed holder leaves: the kernel freed its lock
    with lock:
        assert left.exists()
    assert not left.exists()
