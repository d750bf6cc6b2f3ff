"""Optuna sweeps end to end on the tiny synthetic set: nested MLflow runs under a parent that
`mlflow run` can't have overwritten, trial states told apart, a worker killed with SIGKILL and
resumed, a dead worker's trial failed at once or waited for honestly, a diverging trial failed, two
workers sharing one budget through a real PostgreSQL server, and bad search spaces."""
from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from conftest import PROJECT_ROOT, search_runs, tiny_overrides, wait_for
from gz_experiments.config import ConfigError
from gz_experiments.search import Categorical, Float, Int, SearchSpaceError, validate_space
from gz_experiments.sweep import SweepError, SweepOptions, open_study, parse_options, sweep
from gz_experiments.sweep.trial import PID_SPACE, PruningHook, check_converged
from gz_experiments.sweep.worker import work

optuna.logging.set_verbosity(optuna.logging.WARNING)


def sweep_args(synthetic_dir, storage: str, study: str, n_trials: int, **more) -> list[str]:
    fixed = tiny_overrides(synthetic_dir, crop=250, **more)
    return [f"{k}={v}" for k, v in {"approach": "cnn_cropped", "n_trials": n_trials, "study_name": study,
                                    "storage": storage, **fixed}.items()]


def children(parent_id: str):
    runs = search_runs(f"tags.mlflow.parentRunId = '{parent_id}'")
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

    [parent] = search_runs("tags.approach = 'sweep:cnn_cropped'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["study_name"] == "via-mlflow-run"
    # the launcher's own run is not the study's parent: a finished run pointing at it
    [launcher] = search_runs(f"tags.sweep_parent_run_id = '{parent.info.run_id}'")
    assert launcher.info.status == "FINISHED" and launcher.info.run_id != parent.info.run_id
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


@pytest.mark.slow
def test_trial_states_are_tagged_and_counted(synthetic_dir, tmp_path):
    """An enqueued good trial completes, one asking for more galaxies than the data has fails, one
    that barely learns is pruned after epoch 1 against the first trial's median. (An image too small
    for the network can't fail a trial: the search space's bounds are validated before the study.)"""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    options, fixed = parse_options(dict(a.split("=", 1) for a in sweep_args(
        synthetic_dir, storage, "states", 2, epochs=2, batch_size=16, pruner_startup_trials=1,
        pruner_warmup_epochs=0, max_failures_in_row=2, trial_minutes=30)))
    n_train = int(fixed.pop("n_train"))
    space = {"learning_rate": Float(1e-6, 1e-1, log=True), "n_train": Categorical((n_train, 100_000))}
    study = optuna.create_study(study_name="states", storage=storage)
    for learning_rate, n in ((1e-2, n_train), (1e-2, 100_000), (1e-6, n_train)):
        study.enqueue_trial({"learning_rate": learning_rate, "n_train": n})

    summary = sweep(options, fixed, search_space=space)

    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    assert (summary["n_complete"], summary["n_failed"], summary["n_pruned"]) == (1, 1, 1)
    [parent] = search_runs("tags.approach = 'sweep:cnn_cropped'")
    good, failed, pruned = children(parent.info.run_id)
    assert [r.data.tags["trial_state"] for r in (good, failed, pruned)] == ["finished", "failed", "pruned"]
    assert failed.info.status == "FAILED" and "too few for n_train=100000" in failed.data.tags["error"]
    assert pruned.info.status == "FINISHED" and pruned.data.tags.get("stopped_early") == "true"
    assert len(MlflowClient().get_metric_history(pruned.info.run_id, "val_rmse")) == 1
    # trial_minutes is each trial's training budget: 2 epochs fit 30 minutes, so the plan is epochs'
    assert good.data.params["budget_minutes"] == "30.0" and good.data.tags["planned_epochs"] == "2"
    assert float(parent.data.params["best_learning_rate"]) == pytest.approx(1e-2)
    assert parent.data.metrics["best_val_rmse"] == pytest.approx(study.best_value)
    assert "param_importances.txt" in artifacts(parent.info.run_id)   # one complete trial: a note
    assert study.user_attrs["test_of_best_trial"]["trial"] == 0
    assert parent.data.metrics["test_rmse"] == pytest.approx(study.user_attrs["test_of_best_trial"]["metrics"]["test_rmse"])


def start_worker(args: list[str], log: Path) -> subprocess.Popen:
    # The test runs in tmp_path: PYTHONPATH makes the worker run this checkout's code, not an installed copy.
    return subprocess.Popen([sys.executable, "-m", "gz_experiments", "sweep", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})


@pytest.mark.slow
def test_killed_worker_trial_fails_at_once_and_resume_meets_the_budget(synthetic_dir, tmp_path, capsys):
    """The killed worker ran on this machine and its process is gone: the resumed sweep fails its
    trial at once (no waiting out grace_period) and retries its parameters."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = sweep_args(synthetic_dir, storage, "killed", 2, pruner="none", heartbeat_interval=1, grace_period=600)
    worker = start_worker(args, tmp_path / "worker.log")

    def training_trial():
        try:
            trials = optuna.load_study(study_name="killed", storage=storage).get_trials(states=(TrialState.RUNNING,))
        except KeyError:   # the study isn't created yet
            return None
        # Every parameter suggested (they reach the study one by one; the run gets them all at once,
        # after the last): the trial is training, so a retry must reuse them all.
        return next((t for t in trials if "mlflow_run_id" in t.user_attrs and any(
            key.startswith("trial_") for key in MlflowClient().get_run(t.user_attrs["mlflow_run_id"]).data.params)), None)

    dead = wait_for(training_trial, 300, "a trial to start training", worker, tmp_path / "worker.log")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()

    options, fixed = parse_options(dict(a.split("=", 1) for a in args))
    summary = sweep(options, fixed)

    said = capsys.readouterr().out
    assert f"trial {dead.number}'s worker {dead.user_attrs['worker']} is no longer running" in said
    assert "waiting for trial" not in said
    trials = optuna.load_study(study_name="killed", storage=storage).get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2 == summary["n_complete"]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert retry.state == TrialState.COMPLETE and retry.params == trials[dead.number].params != {}
    client = MlflowClient()
    dead_run = client.get_run(dead.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and dead_run.data.tags["trial_state"] == "failed"
    assert "is no longer running" in dead_run.data.tags["error"]
    # the resumed sweep attached to the study's one parent (the dead worker's), and finished it
    [parent] = search_runs("tags.approach = 'sweep:cnn_cropped'")
    assert parent.info.run_id == dead.user_attrs["mlflow_parent_run_id"] == retry.user_attrs["mlflow_parent_run_id"]
    assert parent.info.status == "FINISHED" and "error" not in parent.data.tags
    assert len(client.get_metric_history(parent.info.run_id, "test_rmse")) == 1
    assert client.get_run(retry.user_attrs["mlflow_run_id"]).data.tags["retry_of_trial"] == str(dead.number)


# A sweep worker that waits for a start time after its imports: workers launched on one instant.
AT_ONCE = ("import runpy, sys, time, gz_experiments.cli; time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "
           "sys.argv = ['gz_experiments', *sys.argv[2:]]; runpy.run_module('gz_experiments', run_name='__main__')")


def start_workers_together(args: list[str], logs: list[Path]) -> list[subprocess.Popen]:
    import time
    at = time.time() + 20   # imports take several seconds on a loaded machine
    return [subprocess.Popen([sys.executable, "-c", AT_ONCE, str(at), "sweep", *args], stdout=log.open("w"),
                             stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
            for log in logs]


def the_one_parent(study, client):
    """The study's only parent run: every trial its child, summary and test score logged on it once."""
    [parent] = search_runs("tags.approach = 'sweep:cnn_cropped'", client)
    trials = study.get_trials()
    assert parent.info.run_id == study.user_attrs["mlflow_parent_run_id"]
    assert {t.user_attrs["mlflow_parent_run_id"] for t in trials} == {parent.info.run_id}
    assert sorted(int(r.data.tags["trial_number"]) for r in children(parent.info.run_id)) == [t.number for t in trials]
    assert parent.info.status == "FINISHED" and "error" not in parent.data.tags
    assert [m.value for m in client.get_metric_history(parent.info.run_id, "test_rmse")] == \
        [study.user_attrs["test_of_best_trial"]["metrics"]["test_rmse"]]
    assert len(client.get_metric_history(parent.info.run_id, "n_complete")) == 1
    assert not [k for k in parent.data.tags if k.startswith("mlflow.gz.user.")]   # every worker left it
    return parent


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_two_workers_share_one_budget_and_one_parent_run(synthetic_dir, tmp_path, backend, request):
    """Two workers started on one instant: 3 trials in all, one parent run for the study, the test split
    scored once; a resume of the finished study attaches to that parent and logs nothing twice."""
    MlflowClient().search_experiments()
    storage = request.getfixturevalue("postgres_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'o.db'}"
    args = sweep_args(synthetic_dir, storage, "parallel", 3, pruner="none")
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    for worker, log in zip(start_workers_together(args, logs), logs):
        assert worker.wait(timeout=900) == 0, log.read_text()[-3000:]

    study = optuna.load_study(study_name="parallel", storage=storage)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3   # none lost, none extra
    assert len({t.user_attrs["worker"] for t in trials}) == 2        # both took part
    run_ids = [t.user_attrs["mlflow_run_id"] for t in trials]
    assert len(set(run_ids)) == 3
    client = MlflowClient()
    runs = [client.get_run(r) for r in run_ids]
    assert {r.data.tags["trial_state"] for r in runs} == {"finished"}
    parent = the_one_parent(study, client)
    assert parent.data.metrics["n_complete"] == 3 and "s3cret" not in parent.data.params["storage"]

    resumed = subprocess.run([sys.executable, "-m", "gz_experiments", "sweep", *args], capture_output=True,
                             text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert the_one_parent(study, client).info.run_id == parent.info.run_id


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
                          (["pruner=hyperbnd"], "'pruner' must be one of median, hyperband, none"),
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


def claimed_elsewhere(storage: str, worker: str, **more):
    """A study with one RUNNING trial, heartbeat just recorded, that `worker` (on this machine if
    its host is ours) claimed."""
    import experiments
    options = SweepOptions(study_name="elsewhere", storage=storage, n_trials=1, heartbeat_interval=1, **more)
    study = open_study(options, experiments.load("cnn_cropped").CONFIG, {})
    with pytest.warns(UserWarning, match="Heartbeat"):   # Optuna expects optimize(); the test claims by hand
        trial = study.ask()
    trial.set_user_attr("worker", worker)
    trial.set_user_attr("worker_pid_space", PID_SPACE if worker.startswith(f"{socket.gethostname()}:") else "?")
    study._storage.record_heartbeat(trial._trial_id)
    return options, study


def test_a_dead_local_workers_trial_is_failed_at_once_and_retried(tmp_path, capsys):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()   # reaped: no process has this pid now
    worker = f"{socket.gethostname()}:{finished.pid}"
    options, study = claimed_elsewhere(f"sqlite:///{tmp_path / 'o.db'}", worker, grace_period=600)

    assert work(study, lambda trial: 0.5, options) is None

    first, retry = study.get_trials()
    assert (first.state, retry.state) == (TrialState.FAIL, TrialState.COMPLETE)
    assert retry.system_attrs["failed_trial"] == 0
    assert first.user_attrs["error"].startswith(f"worker {worker} is no longer running")
    said = capsys.readouterr().out
    assert f"trial 0's worker {worker} is no longer running" in said and "waiting" not in said


def test_a_worker_on_another_host_is_waited_for_with_a_true_message(tmp_path, capsys):
    """Another machine's process can't be checked: wait for Optuna's grace period, saying so."""
    options, study = claimed_elsewhere(f"sqlite:///{tmp_path / 'o.db'}", "other-host:4242", grace_period=2)

    assert work(study, lambda trial: 0.5, options) is None

    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]
    said = capsys.readouterr().out
    assert "0/1 trials done; waiting for trial 0 on worker other-host:4242, last heartbeat " in said
    assert "failed and retried once its heartbeat is grace_period=2 s old" in said
    assert said.count("waiting for trial 0") == 1 and "other workers" not in said


def test_a_non_finite_val_rmse_stops_the_trial_as_a_failure():
    hook = PruningHook(trial=None)   # a NaN is never reported to the trial
    assert hook(2, math.nan) is True and hook.diverged_at == 2 and hook.pruned_at is None
    with pytest.raises(SweepError, match=r"diverged \(val_rmse nan at epoch 2"):
        check_converged(hook, 0.2)
    with pytest.raises(SweepError, match=r"diverged \(best_val_rmse inf"):
        check_converged(PruningHook(trial=None), math.inf)
    check_converged(PruningHook(trial=None), 0.2)


def test_hyperband_pruner_and_time_budget_are_options(tmp_path):
    from gz_experiments.sweep.study import describe, make_pruner
    options, _ = parse_options({"pruner": "hyperband", "pruner_warmup_epochs": "1", "trial_minutes": "7.5"})
    assert isinstance(make_pruner(options), optuna.pruners.HyperbandPruner)
    assert options.trial_minutes == 7.5
    assert describe(options)["pruner_config"].startswith("HyperbandPruner(min_resource=2")
    assert parse_options({"trial_minutes": "none"})[0].trial_minutes is None
    with pytest.raises(ConfigError, match="'trial_minutes' must be more than 0"):
        parse_options({"trial_minutes": "0"})


@pytest.mark.slow
def test_a_diverging_trial_fails_and_is_never_the_best(synthetic_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    options, fixed = parse_options(dict(a.split("=", 1) for a in sweep_args(
        synthetic_dir, storage, "diverged", 1, learning_rate="inf", max_failures_in_row=1)))

    with pytest.raises(SweepError, match="1 trials in a row failed"):
        sweep(options, fixed, search_space={"dropout": Float(0.1, 0.5)})

    [trial] = optuna.load_study(study_name="diverged", storage=storage).get_trials()
    assert trial.state == TrialState.FAIL and "diverged" in trial.user_attrs["error"].lower()
    [parent] = search_runs("tags.approach = 'sweep:cnn_cropped'")
    assert parent.data.tags["best_trial"].startswith("none") and "best_val_rmse" not in parent.data.metrics
    assert (parent.data.metrics["n_failed"], parent.data.metrics["n_complete"]) == (1, 0)
    [run] = children(parent.info.run_id)
    assert run.info.status == "FAILED" and run.data.tags["trial_state"] == "failed"
