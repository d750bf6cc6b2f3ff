"""Optuna sweeps end to end on the tiny synthetic set: nested MLflow runs under a parent that
`mlflow run` can't have overwritten, trial states told apart, a worker killed with SIGKILL and
resumed, two workers sharing one budget through a real PostgreSQL server, and bad search spaces."""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conftest import PROJECT_ROOT, tiny_overrides
from gz_experiments.config import ConfigError
from gz_experiments.search import Categorical, Float, Int, SearchSpaceError, validate_space
from gz_experiments.sweep import SweepOptions, open_study, parse_options, sweep

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sweep_args(synthetic_dir, storage: str, study: str, n_trials: int, **more) -> list[str]:
    fixed = tiny_overrides(synthetic_dir, crop=250, **more)
    return [f"{k}={v}" for k, v in {"approach": "cnn_cropped", "n_trials": n_trials, "study_name": study,
                                    "storage": storage, **fixed}.items()]


def every_experiment() -> list[str]:
    """Sweeps run in galaxy-zoo in-process, in mlflow run's Default experiment under `mlflow run`."""
    return [e.experiment_id for e in MlflowClient().search_experiments()]


def children(parent_id: str):
    runs = MlflowClient().search_runs(every_experiment(), f"tags.mlflow.parentRunId = '{parent_id}'", max_results=100)
    return sorted(runs, key=lambda r: int(r.data.tags["trial_number"]))


def artifacts(run_id: str, path: str = "") -> set[str]:
    return {a.path for a in MlflowClient().list_artifacts(run_id, path)}


@pytest.mark.slow
def test_sweep_through_mlflow_run_nests_trials_under_an_intact_parent(synthetic_dir, tmp_path):
    MlflowClient().search_experiments()   # create the store here, so artifacts land in tmp_path
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    params = [p for arg in sweep_args(synthetic_dir, storage, "via-mlflow-run", 2) for p in ("-P", arg)]
    result = subprocess.run([sys.executable, "-m", "mlflow", "run", str(PROJECT_ROOT), "-e", "sweep",
                             "--env-manager", "local", *params], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    [parent] = MlflowClient().search_runs(every_experiment(), "tags.approach = 'sweep:cnn_cropped'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["study_name"] == "via-mlflow-run"
    trials = children(parent.info.run_id)
    assert [t.data.tags["trial_number"] for t in trials] == ["0", "1"]
    assert {t.data.tags["trial_state"] for t in trials} == {"finished"}
    assert all(t.info.status == "FINISHED" and "val_rmse" in t.data.metrics for t in trials)
    assert len({t.info.run_id for t in trials} | {parent.info.run_id}) == 3
    # MLFLOW_RUN_ID (mlflow issue 15713): had a trial resumed the parent, the parent would hold
    # the trial's per-epoch metrics and config params.
    assert "val_rmse" not in parent.data.metrics and "dropout" not in parent.data.params
    assert parent.data.params["n_trials"] == "2" and parent.data.params["pruner"] == "median"
    assert parent.data.params["pruner_config"].startswith("MedianPruner")
    assert parent.data.metrics["n_complete"] == 2 and parent.data.metrics["n_failed"] == 0

    study = optuna.load_study(study_name="via-mlflow-run", storage=storage)
    best_run = MlflowClient().get_run(study.best_trial.user_attrs["mlflow_run_id"])
    assert parent.data.metrics["best_val_rmse"] == pytest.approx(study.best_value)
    assert parent.data.metrics["best_val_rmse"] == pytest.approx(best_run.data.metrics["best_val_rmse"])
    assert float(parent.data.params["best_dropout"]) == pytest.approx(study.best_params["dropout"])
    assert int(parent.data.params["best_filters_1"]) == study.best_params["filters[1]"]
    assert 0 < parent.data.metrics["test_rmse"] < 1 and "test_rmse_tta" in parent.data.metrics
    assert {"optimization_history.png", "parallel_coordinate.png", "param_importances.png",
            "search_space.json", "best_model"} <= artifacts(parent.info.run_id)
    assert "best_model/MLmodel" in artifacts(parent.info.run_id, "best_model")


def test_trial_states_are_tagged_and_counted(synthetic_dir, tmp_path):
    """An enqueued good trial completes, one with an input too small for the network fails, one
    that barely learns is pruned after epoch 1 against the first trial's median."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    options, fixed = parse_options(dict(a.split("=", 1) for a in sweep_args(
        synthetic_dir, storage, "states", 2, epochs=2, batch_size=16, pruner_startup_trials=1,
        pruner_warmup_epochs=0, max_failures_in_row=2)))
    fixed.pop("image_size")
    space = {"learning_rate": Float(1e-6, 1e-1, log=True), "image_size": Categorical((48, 20))}
    study = optuna.create_study(study_name="states", storage=storage)
    for learning_rate, image_size in ((1e-2, 48), (1e-2, 20), (1e-6, 48)):
        study.enqueue_trial({"learning_rate": learning_rate, "image_size": image_size})

    summary = sweep(options, fixed, search_space=space)

    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    assert (summary["n_complete"], summary["n_failed"], summary["n_pruned"]) == (1, 1, 1)
    [parent] = MlflowClient().search_runs(every_experiment(), "tags.approach = 'sweep:cnn_cropped'")
    good, failed, pruned = children(parent.info.run_id)
    assert [r.data.tags["trial_state"] for r in (good, failed, pruned)] == ["finished", "failed", "pruned"]
    assert failed.info.status == "FAILED" and "too small" in failed.data.tags["error"]
    assert pruned.info.status == "FINISHED" and pruned.data.tags.get("stopped_early") == "true"
    assert len(MlflowClient().get_metric_history(pruned.info.run_id, "val_rmse")) == 1
    assert float(parent.data.params["best_learning_rate"]) == pytest.approx(1e-2)
    assert parent.data.metrics["best_val_rmse"] == pytest.approx(study.best_value)
    assert "param_importances.txt" in artifacts(parent.info.run_id)   # one complete trial: a note
    assert study.user_attrs["test_of_best_trial"]["trial"] == 0
    assert parent.data.metrics["test_rmse"] == pytest.approx(study.user_attrs["test_of_best_trial"]["metrics"]["test_rmse"])


def wait_for(predicate, timeout: float, what: str, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"the worker exited ({process.returncode}) before {what}: {log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def start_worker(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gz_experiments", "sweep", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_killed_worker_trial_fails_by_heartbeat_and_resume_meets_the_budget(synthetic_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = sweep_args(synthetic_dir, storage, "killed", 2, pruner="none", heartbeat_interval=1, grace_period=3)
    worker = start_worker(args, tmp_path / "worker.log")

    def training_trial():
        try:
            trials = optuna.load_study(study_name="killed", storage=storage).get_trials(states=(TrialState.RUNNING,))
        except KeyError:   # the study isn't created yet
            return None
        # Tagged and every parameter suggested: the trial is training, so a retry must reuse them.
        return next((t for t in trials if "mlflow_run_id" in t.user_attrs and t.params), None)

    dead = wait_for(training_trial, 300, "a trial to start training", worker, tmp_path / "worker.log")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()

    options, fixed = parse_options(dict(a.split("=", 1) for a in args))
    summary = sweep(options, fixed)

    trials = optuna.load_study(study_name="killed", storage=storage).get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2 == summary["n_complete"]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert retry.state == TrialState.COMPLETE and retry.params == trials[dead.number].params != {}
    client = MlflowClient()
    dead_run = client.get_run(dead.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and dead_run.data.tags["trial_state"] == "failed"
    assert "heartbeats" in dead_run.data.tags["error"]
    assert client.get_run(dead.user_attrs["mlflow_parent_run_id"]).info.status == "FAILED"
    assert client.get_run(retry.user_attrs["mlflow_run_id"]).data.tags["retry_of_trial"] == str(dead.number)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path:
    """PostgreSQL's server binaries; installed with apt-get when missing and we are root."""
    def found():
        return sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found() and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], env=env, capture_output=True).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], env=env, capture_output=True)
    if not found():
        reason = "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(found()[-1]).parent


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 with a password, stopped afterwards. As root,
    the server runs as user `postgres` (it refuses root)."""
    binaries = postgres_bin()
    home = Path(tempfile.mkdtemp(prefix="gz-sweep-pg-"))
    as_owner = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    (home / "password").write_text("s3cret\n")
    port, data = free_port(), home / "data"

    def run(*command):
        subprocess.run([*as_owner, *command], check=True, capture_output=True, cwd=home)

    run(str(binaries / "initdb"), "-D", str(data), "-U", "gz", f"--pwfile={home / 'password'}",
        "--auth-local=trust", "--auth-host=scram-sha-256")
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-w", "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {home}", "start")
    try:
        run(str(binaries / "createdb"), "-h", str(home), "-p", str(port), "-U", "gz", "sweeps")
        yield f"postgresql+psycopg://gz:s3cret@127.0.0.1:{port}/sweeps"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_budget_through_postgresql(synthetic_dir, tmp_path, postgres_url):
    MlflowClient().search_experiments()
    args = sweep_args(synthetic_dir, postgres_url, "parallel", 3, pruner="none")
    workers = [start_worker(args, tmp_path / f"worker{i}.log") for i in range(2)]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, (tmp_path / "worker0.log").read_text()[-3000:]

    trials = optuna.load_study(study_name="parallel", storage=postgres_url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3   # none lost, none extra
    assert len({t.user_attrs["worker"] for t in trials}) == 2        # both took part
    run_ids = [t.user_attrs["mlflow_run_id"] for t in trials]
    assert len(set(run_ids)) == 3
    client = MlflowClient()
    runs = [client.get_run(r) for r in run_ids]
    assert {r.data.tags["trial_state"] for r in runs} == {"finished"}
    assert sorted(int(r.data.tags["trial_number"]) for r in runs) == [0, 1, 2]
    parents = client.search_runs(every_experiment(), "tags.approach = 'sweep:cnn_cropped'")
    assert len(parents) == 2 and {r.data.tags["mlflow.parentRunId"] for r in runs} <= {p.info.run_id for p in parents}
    assert all(p.data.metrics["n_complete"] == 3 for p in parents)
    # the test split is scored once per study: both parents carry the same number
    assert parents[0].data.metrics["test_rmse"] == parents[1].data.metrics["test_rmse"]
    assert all("s3cret" not in p.data.params["storage"] for p in parents)


def test_bad_search_spaces_and_options_get_clear_errors(tmp_path, capsys):
    import experiments
    from gz_experiments.cli import main
    config = experiments.load("cnn_cropped").CONFIG
    with pytest.raises(SearchSpaceError, match="'dropuot'.*unknown parameter"):
        validate_space({"dropuot": Float(0.1, 0.5)}, config)
    with pytest.raises(SearchSpaceError, match=r"'dropout'.*must be in \[0, 1\)"):
        validate_space({"dropout": Float(0.1, 1.5)}, config)
    with pytest.raises(SearchSpaceError, match=r"'filters\[4\]'.*only 4 elements"):
        validate_space({"filters[4]": Int(8, 16)}, config)
    with pytest.raises(SearchSpaceError, match="must be Int, Float or Categorical"):
        validate_space({"dropout": (0.1, 0.5)}, config)
    with pytest.raises(SearchSpaceError, match="low <= high"):
        Int(64, 16)
    with pytest.raises(SearchSpaceError, match="log-scale"):
        Float(0.0, 1.0, log=True)
    with pytest.raises(SearchSpaceError, match="empty"):
        sweep(SweepOptions(storage=f"sqlite:///{tmp_path / 'o.db'}"), {"learning_rate": "0.01"},
              search_space={"learning_rate": Float(1e-4, 1e-2)})

    for argv, message in ((["approach=cnn_nope"], "unknown approach 'cnn_nope'"),
                          (["n_trials=0"], "'n_trials' must be at least 1"),
                          (["pruner=hyperbnd"], "'pruner' must be one of median, none"),
                          (["storage=nosuchdb://x"], "parameter 'storage': can't open"),
                          (["dropout=2"], "'dropout' must be in [0, 1)"),
                          (["n_trail=5"], "unknown parameter 'n_trail'")):
        assert main(["sweep", *argv, f"storage=sqlite:///{tmp_path / 'o.db'}"] if "storage" not in argv[0]
                    else ["sweep", *argv]) == 2
        assert message in capsys.readouterr().err

    storage = f"sqlite:///{tmp_path / 'resume.db'}"
    open_study(SweepOptions(study_name="s", storage=storage), config, {"epochs": "1"})
    with pytest.raises(ConfigError, match="'epochs': '1'.*'epochs': '2'.*new study_name"):
        open_study(SweepOptions(study_name="s", storage=storage), config, {"epochs": "2"})
