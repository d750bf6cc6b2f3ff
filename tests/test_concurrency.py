"""Commands that share a store and start on one instant all succeed: a brand-new sqlite database's
tables, the experiment, the dataset rows, the registered model and its `champion` alias are each
written once, by whichever process comes first, and the others use that row. Each racer waits for
one start time (after its imports), so they reach the store together."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import PROJECT_ROOT, tiny_overrides

RACER = """
import sys, time
from gz_experiments.cli import main
start = float(sys.argv[1])
while time.time() < start:   # every racer has imported what it needs: they meet at the store
    time.sleep(0.001)
sys.exit(main(sys.argv[2:]))
"""


def race(commands: list[list[str]], cwd: Path, uri: str, lead: float = 6.0) -> list[subprocess.CompletedProcess]:
    """Run each command in its own process, all starting at one instant; their results in order."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "MLFLOW_TRACKING_URI": uri,
           "PYTHONPATH": str(PROJECT_ROOT), "GZ_CACHE_DIR": str(cwd / "cache")}
    start = time.time() + lead
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(start), *command], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for command in commands]
    outputs = [racer.communicate(timeout=600)[0] for racer in racers]
    return [subprocess.CompletedProcess(r.args, r.returncode, out) for r, out in zip(racers, outputs)]


def assert_all_succeeded(done: list[subprocess.CompletedProcess]) -> None:
    failed = [d.stdout[-2500:] for d in done if d.returncode != 0]
    assert not failed, "\n----\n".join(failed)


def as_tokens(params: dict) -> list[str]:
    return [f"{k}={v}" for k, v in params.items()]


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_commands_starting_together_on_a_new_sqlite_store_all_succeed(synthetic_dir, tmp_path, round_):
    """On main, 3 of 3 tries died (`duplicate column name: step`): the preflight opened the store
    before taking the table-creation lock."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    baseline = ["baseline", *as_tokens(tiny_overrides(synthetic_dir))]
    done = race([baseline] * 4, tmp_path, uri)
    assert_all_succeeded(done)
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
