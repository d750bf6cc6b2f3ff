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


WRITER = """
import sys, time
import mlflow
from gz_experiments.data.source import open_source
from gz_experiments.tracking import datasets, experiment, registry

start, data_dir, rmse = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
source = open_source(data_dir)
experiment_id = experiment.use("race")
with mlflow.start_run(experiment_id=experiment_id) as run:
    model = mlflow.create_external_model(name="model")
    while time.time() < start:                 # all at once: the same test split's dataset row
        time.sleep(0.001)
    datasets.log_splits(source, {"test": source.labels.index[:20]})
    while time.time() < start + 2:             # all at once: the registered model and its alias
        time.sleep(0.001)
    registry.register("racer", run.info.run_id, rmse, model_id=model.model_id)
"""
RMSES = [0.14, 0.11, 0.13, 0.12]   # the champion must end as the 0.11 one, whoever sets last


def race_writers(uri: str, cwd: Path, data_dir: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, "MLFLOW_TRACKING_URI": uri,
           "PYTHONPATH": str(PROJECT_ROOT)}
    start = time.time() + 10
    racers = [subprocess.Popen([sys.executable, "-c", WRITER, str(start), str(data_dir), str(rmse)], cwd=cwd,
                               env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
              for rmse in RMSES]
    done = [subprocess.CompletedProcess(r.args, r.wait(timeout=300), r.stdout.read()) for r in racers]
    assert_all_succeeded(done)


def assert_one_of_each_and_the_best_champion(client: MlflowClient) -> None:
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert len(runs) == len(RMSES)
    assert all(len(r.inputs.dataset_inputs) == 1 for r in runs)            # each run has its test split
    digests = {r.inputs.dataset_inputs[0].dataset.digest for r in runs}
    assert len(digests) == 1                                                # one dataset, shared
    versions = client.search_model_versions("name = 'racer'")
    assert len(versions) == len(RMSES)
    champion = client.get_model_version_by_alias("racer", "champion")
    assert float(champion.tags["test_rmse"]) == min(RMSES)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_runs_finishing_together_on_sqlite_share_rows_and_crown_the_best(synthetic_dir, tmp_path, round_):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    race_writers(uri, tmp_path, synthetic_dir)
    assert_one_of_each_and_the_best_champion(MlflowClient(uri))


@pytest.fixture(scope="module")
def team_server():
    """The team's server as scripts/tracking-server.sh starts it (PostgreSQL behind it)."""
    import shutil
    import tempfile
    from conftest import free_port, postgres_bin
    postgres_bin()
    folder, port = Path(tempfile.mkdtemp(prefix="gz-tracking-")), free_port()
    script = [str(PROJECT_ROOT / "scripts" / "tracking-server.sh")]
    done = subprocess.run(["bash", *script, "start", "--dir", str(folder), "--port", str(port)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", *script, "stop", "--dir", str(folder)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_runs_finishing_together_through_the_team_server_share_rows_and_crown_the_best(
        synthetic_dir, tmp_path, team_server, round_):
    client = MlflowClient(team_server, registry_uri=team_server)
    for name in ("racer",):   # a fresh registered model and experiment each round
        if client.search_registered_models(f"name = '{name}'"):
            client.delete_registered_model(name)
    if client.get_experiment_by_name("race"):
        client.rename_experiment(client.get_experiment_by_name("race").experiment_id, f"race-old-{time.time_ns()}")
    race_writers(team_server, tmp_path, synthetic_dir)
    assert_one_of_each_and_the_best_champion(client)
