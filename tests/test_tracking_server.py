"""A team's shared MLflow server, as scripts/tracking-server.sh starts it: a PostgreSQL backend store
(a cluster the script makes in a temporary folder) and artifacts proxied by the server. A training run
and two `sweep` workers (one Optuna study in another PostgreSQL database) log to it over HTTP at once,
and everything lands: runs, nested trials, every artifact in the proxy's folder. The server restarts
under a training run, which carries on; nothing logged before is lost; no password is logged.

The figures (runs, trials, artifacts; what the restart did) are printed: run with `-s` to read them,
or set GZ_SERVER_FIGURES to a file to get them as JSON.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient

from conftest import PROJECT_ROOT, free_port, tiny_overrides, wait_for
from gz_experiments.tracking import logged_models

pytestmark = pytest.mark.slow

SCRIPT = PROJECT_ROOT / "scripts" / "tracking-server.sh"
PASSWORD = "s3cret"   # conftest's postgres_url: the Optuna database's password
RUN_ID = re.compile(r"MLflow run ([0-9a-f]{32})")
FIGURES: dict = {}


class TrackingServer:
    """The script's server in its own folder; `start`/`stop` as a person would call them."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.url = f"http://127.0.0.1:{port}"

    def script(self, command: str, *options: str) -> subprocess.CompletedProcess:
        done = subprocess.run(["bash", str(SCRIPT), command, "--dir", str(self.folder), *options],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode in (0, 3), f"tracking-server.sh {command}: {done.stdout}{done.stderr}"
        return done

    def start(self) -> float:
        began = time.monotonic()
        done = self.script("start", "--port", str(self.port))
        assert done.returncode == 0 and self.url in done.stdout
        return time.monotonic() - began

    def stop(self, *options: str) -> None:
        self.script("stop", *options)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    def all_runs(self, filter_string: str = "") -> list:
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        return self.client.search_runs(experiments, filter_string, max_results=1000)


@pytest.fixture(scope="module")
def server():
    # Not under pytest's private tmp folders: PostgreSQL runs as user `postgres` when we are root.
    folder = Path(tempfile.mkdtemp(prefix="gz-tracking-"))
    tracking = TrackingServer(folder, free_port())
    FIGURES["first_start_s"] = round(tracking.start(), 1)
    try:
        yield tracking
    finally:
        tracking.stop()
        FIGURES["server_log_mentions_password"] = PASSWORD in (folder / "server.log").read_text()
        report_figures()
        shutil.rmtree(folder, ignore_errors=True)


def report_figures() -> None:
    print("\ntracking server figures:", json.dumps(FIGURES, indent=1, sort_keys=True))
    if os.environ.get("GZ_SERVER_FIGURES"):
        Path(os.environ["GZ_SERVER_FIGURES"]).write_text(json.dumps(FIGURES, indent=1, sort_keys=True))


def user_env(server: TrackingServer, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=server.url, GZ_CACHE_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL="2",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return env


def gz(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gz_experiments", *command], env=env, cwd=log.parent,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)


@contextlib.contextmanager
def ended(*processes: subprocess.Popen):
    """Kill what is still running when the block fails (no training left behind a failed test)."""
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def as_tokens(params: dict) -> list[str]:
    return [f"{k}={v}" for k, v in params.items()]


@pytest.fixture(scope="module")
def landed(server, synthetic_dir, postgres_url, tmp_path_factory):
    """A training run and two sweep workers (3 trials in all), started together against the server."""
    work = tmp_path_factory.mktemp("team")
    env = user_env(server, work / "cache")
    train = {**tiny_overrides(synthetic_dir), "register": "gz-team-train"}
    sweep = {"approach": "cnn_cropped", "n_trials": 3, "study_name": "team", "storage": postgres_url,
             "pruner": "none", **tiny_overrides(synthetic_dir, crop=250), "register": "gz-team-sweep"}
    began = time.monotonic()
    processes = {"train": gz(["train", "cnn_cropped", *as_tokens(train)], env, work / "train.log"),
                 **{f"sweep{i}": gz(["sweep", *as_tokens(sweep)], env, work / f"sweep{i}.log") for i in (0, 1)}}
    with ended(*processes.values()):
        for name, process in processes.items():
            code = process.wait(timeout=900)
            assert code == 0, f"{name} exited {code}:\n{(work / f'{name}.log').read_text()[-4000:]}"
    FIGURES["train_and_two_sweep_workers_s"] = round(time.monotonic() - began, 1)
    train_id = RUN_ID.search((work / "train.log").read_text()).group(1)
    study = optuna.load_study(study_name="team", storage=postgres_url)
    return {"train_id": train_id, "study": study, "work": work}


def artifact_files(client: MlflowClient, run_id: str, path: str = "") -> list:
    files = []
    for item in client.list_artifacts(run_id, path):
        files += artifact_files(client, run_id, item.path) if item.is_dir else [item]
    return files


@pytest.fixture(autouse=True)
def quiet_downloads(monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def test_runs_trials_and_artifacts_all_land(server, landed):
    client = server.client
    train = client.get_run(landed["train_id"])
    assert train.info.status == "FINISHED" and 0 < train.data.metrics["test_rmse"] < 1
    assert [m.step for m in client.get_metric_history(train.info.run_id, "val_rmse")] == [1]

    parents = server.all_runs("tags.approach = 'sweep:cnn_cropped'")
    trials = [r for r in server.all_runs() if r.data.tags.get("mlflow.parentRunId") in {p.info.run_id for p in parents}]
    assert len(parents) == 1 and all(p.info.status == "FINISHED" for p in parents)   # one per study
    assert sorted(int(t.data.tags["trial_number"]) for t in trials) == [0, 1, 2]
    assert all(t.info.status == "FINISHED" and "val_rmse" in t.data.metrics for t in trials)
    study_runs = {t.user_attrs["mlflow_run_id"] for t in landed["study"].get_trials()}
    assert study_runs == {t.info.run_id for t in trials}
    assert all(p.data.metrics["n_complete"] == 3 for p in parents)

    # Every artifact went through the proxy into the server's folder, byte for byte.
    destination = server.folder / "artifacts"
    landed_files = 0
    for run in [train, *parents, *trials]:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
        local = destination / run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
        for item in artifact_files(client, run.info.run_id):
            assert (local / item.path).stat().st_size == item.file_size, item.path
            landed_files += 1
    for parent in parents:
        assert "best_model/MLmodel" in {f.path for f in artifact_files(client, parent.info.run_id, "best_model")}
    mlflow.set_tracking_uri(server.url)   # a run's LoggedModel is resolved through the default store
    model = Path(mlflow.artifacts.download_artifacts(logged_models.resolve(f"runs:/{train.info.run_id}/model"),
                                                     dst_path=str(landed["work"] / "download")))
    assert "python_function" in (model / "MLmodel").read_text()
    FIGURES.update(runs=1 + len(parents) + len(trials), training_runs=1, sweep_parents=len(parents),
                   trials=len(trials), run_artifact_files=landed_files,
                   files_in_artifact_folder=sum(1 for p in destination.rglob("*") if p.is_file()))


def test_no_password_in_params_tags_or_uris(server, landed):
    for run in server.all_runs():
        logged = {**run.data.params, **run.data.tags, "artifact_uri": run.info.artifact_uri}
        leaks = {k: v for k, v in logged.items() if PASSWORD in v}
        assert not leaks, f"run {run.info.run_id} logs the password: {leaks}"
    for parent in server.all_runs("tags.approach = 'sweep:cnn_cropped'"):
        assert parent.data.params["storage"].startswith("postgresql+psycopg://gz:")
    status = server.script("status").stdout
    assert "running" in status and PASSWORD not in status


def test_runs_go_to_a_model_training_experiment(server, landed):
    experiment = server.client.get_experiment_by_name("galaxy-zoo")
    assert experiment is not None
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    assert server.client.get_run(landed["train_id"]).info.experiment_id == experiment.experiment_id


def test_datasets_land(server, landed):
    inputs = server.client.get_run(landed["train_id"]).inputs.dataset_inputs
    contexts = {tag.value for i in inputs for tag in i.tags if tag.key == "mlflow.data.context"}
    assert {"training", "validation", "testing"} <= contexts
    assert all(i.dataset.digest for i in inputs)


def test_logged_models_land(server, landed):
    client = server.client
    experiment_id = client.get_run(landed["train_id"]).info.experiment_id
    models = client.search_logged_models(experiment_ids=[experiment_id])
    [model] = [m for m in models if m.source_run_id == landed["train_id"]]
    assert "MLmodel" in {f.path for f in client.list_logged_model_artifacts(model.model_id)}


def test_registry_and_champion_alias_land(server, landed):
    client = server.client
    [version] = client.search_model_versions("name = 'gz-team-train'")
    assert version.run_id == landed["train_id"]
    champion = client.get_model_version_by_alias("gz-team-sweep", "champion")
    trial_runs = {t.user_attrs["mlflow_run_id"] for t in landed["study"].get_trials()}
    parent_runs = {t.user_attrs.get("mlflow_parent_run_id") for t in landed["study"].get_trials()}
    assert champion.run_id in trial_runs | parent_runs
    FIGURES["champion"] = f"gz-team-sweep version {champion.version}"


def test_training_carries_on_across_a_server_restart(server, synthetic_dir, tmp_path):
    epochs = 30
    env = user_env(server, tmp_path / "cache")
    log = tmp_path / "train.log"
    process = gz(["train", "cnn_cropped", *as_tokens(tiny_overrides(synthetic_dir, epochs=epochs, seed=7))], env, log)
    client = server.client
    with ended(process):
        carry_on_across_a_restart(server, client, process, log, epochs, tmp_path)


def carry_on_across_a_restart(server, client, process, log, epochs, tmp_path):
    def first_epoch_logged():
        for run in server.all_runs(f"params.epochs = '{epochs}' and params.seed = '7'"):
            history = client.get_metric_history(run.info.run_id, "val_rmse")
            if history:
                return run.info.run_id, history

    run_id, _ = wait_for(first_epoch_logged, 600, "the first epoch's val_rmse", process, log, interval=0.3)
    before = {name: history_of(client, run_id, name) for name in ("train_rmse", "val_rmse")}
    server.stop("--keep-db")
    down_at = time.monotonic()
    alive_while_down = process.poll() is None
    time.sleep(5)
    restart_s = server.start()
    FIGURES["restart"] = {"epochs_logged_before_stop": len(before["val_rmse"]), "epochs": epochs,
                          "server_down_s": round(time.monotonic() - down_at, 1), "restart_s": round(restart_s, 1),
                          "training_alive_while_down": alive_while_down}
    code = process.wait(timeout=900)
    output = log.read_text()
    run = client.get_run(run_id)
    after = {name: history_of(client, run_id, name) for name in before}
    # A metric's timestamp is the client's clock when the call began: the epoch whose logging met the
    # outage was held by the client's retries (backoff 0, 4, 8, 16 s…), so the next epoch came late.
    times = [m.timestamp / 1000 for m in client.get_metric_history(run_id, "val_rmse")]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    FIGURES["restart"].update(exit_code=code, status=run.info.status, val_rmse_steps_after=len(after["val_rmse"]),
                              longest_gap_between_epochs_s=round(max(gaps), 1),
                              after_epoch=gaps.index(max(gaps)) + 1, median_gap_s=round(sorted(gaps)[len(gaps) // 2], 2))
    assert alive_while_down, "the run ended before the server went down: make it longer"
    # MLflow's client retried while the server was down (MLFLOW_HTTP_REQUEST_MAX_RETRIES: 7, backoff
    # factor 2: about 4 minutes in all), so the run carried on.
    assert code == 0, output[-4000:]
    assert run.info.status == "FINISHED"
    for name, logged in before.items():
        assert set(logged) <= set(after[name]), f"{name} logged before the restart was lost"
        assert [step for step, _ in after[name]] == list(range(1, epochs + 1)), f"{name}: an epoch lost or doubled"
    assert 0 < run.data.metrics["test_rmse"] < 1
    mlflow.set_tracking_uri(server.url)   # a run's LoggedModel is resolved through the default store
    model = mlflow.artifacts.download_artifacts(logged_models.uri_of_run(run_id), dst_path=str(tmp_path / "download"))
    assert (Path(model) / "MLmodel").is_file()


def history_of(client: MlflowClient, run_id: str, name: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, name)]
