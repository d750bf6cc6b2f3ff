"""A diverged run is a failure: the first NaN or infinite loss stops training with `DivergedError`
naming the epoch and what to try; the MLflow run ends FAILED with the error, and no model is logged."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest

from conftest import PROJECT_ROOT, tiny_overrides
from gz_experiments.tracking import logged_models

DIVERGING = {"learning_rate": "inf", "epochs": "2"}   # config validation lets inf through, on purpose


def _config(data_dir, **more):
    import experiments
    from gz_experiments.config import override
    return override(experiments.load("cnn_cropped").CONFIG, tiny_overrides(data_dir, **more))


def test_a_non_finite_training_loss_stops_at_that_batch():
    from gz_experiments.train import DivergedError, StopOnDivergence
    check = StopOnDivergence(_config("synthetic", learning_rate="0.5", precision="mixed_bfloat16"))
    check.on_epoch_begin(2)
    check.on_train_batch_end(0, {"loss": 0.3, "rmse": 0.5})
    with pytest.raises(DivergedError) as raised:
        check.on_train_batch_end(4, {"loss": math.nan, "rmse": math.nan})
    message = str(raised.value)
    assert "epoch 3, batch 5" in message and "training loss nan" in message
    assert "learning_rate (now 0.5)" in message and "precision=float32 (now mixed_bfloat16)" in message


def test_a_non_finite_validation_loss_stops_at_the_end_of_its_epoch():
    from gz_experiments.errors import GzError
    from gz_experiments.train import StopOnDivergence
    check = StopOnDivergence(_config("synthetic"))
    check.on_epoch_end(0, {"loss": 0.1, "rmse": 0.3, "val_loss": 0.1, "val_rmse": 0.3})
    with pytest.raises(GzError, match=r"at the end of epoch 2: val_loss inf, val_rmse inf"):
        check.on_epoch_end(1, {"loss": 0.1, "rmse": 0.3, "val_loss": math.inf, "val_rmse": math.inf})


def test_keep_best_weights_never_takes_a_non_finite_val_rmse():
    from gz_experiments.train import KeepBestWeights
    seen = []

    def hook(epoch: int, val_rmse: float) -> bool:
        seen.append(epoch)
        return False
    keeper = KeepBestWeights(hook)
    for epoch, val_rmse in enumerate([math.nan, math.inf]):
        keeper.on_epoch_end(epoch, {"val_rmse": val_rmse})
    assert keeper.best == math.inf and keeper.best_epoch == 0 and keeper.weights is None
    assert seen == [1, 2]


def _assert_failed_without_model(client, run, epoch_text: str) -> None:
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("DivergedError: training diverged at ")
    assert epoch_text in run.data.tags["error"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "error.txt" in artifacts and logged_models.of_run(run.info.run_id, client) == []
    assert "best_val_rmse" not in run.data.metrics and "test_rmse" not in run.data.metrics
    assert all(np.isfinite(v) for v in run.data.metrics.values())   # no NaN epoch was logged
    note = run.data.tags["mlflow.note.content"]   # the description says it failed, and why
    assert "Result: **failed**: DivergedError: training diverged" in note and "Result: training." not in note


@pytest.mark.slow
def test_training_with_an_infinite_learning_rate_fails_in_its_first_epoch(synthetic_dir):
    from gz_experiments.train import DivergedError, train
    with pytest.raises(DivergedError, match=r"diverged at epoch 1, batch 2: training loss nan"):
        train(_config(synthetic_dir, **DIVERGING), progress=False)
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    _assert_failed_without_model(client, run, "epoch 1")


@pytest.mark.slow
def test_the_cli_reports_divergence_as_one_error_line(synthetic_dir, tmp_path):
    args = [f"{key}={value}" for key, value in tiny_overrides(synthetic_dir, **DIVERGING).items()]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}   # this checkout's package, from any cwd
    done = subprocess.run([sys.executable, "-m", "gz_experiments", "train", "cnn_cropped", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    _assert_failed_without_model(client, run, "epoch 1")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and "diverged at epoch 1" in errors[0] and "lower learning_rate" in errors[0]
