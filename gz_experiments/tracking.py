"""MLflow: runs that end FAILED with their error, per-epoch metrics under stable names, figures.

Metric names are the contract between training, sweeps and the UI:
`train_loss`, `train_rmse`, `val_loss`, `val_rmse` per epoch (step = epoch);
`best_val_rmse`, `test_rmse`, `test_rmse_tta`, `test_rmse_q1` … `test_rmse_q11` after training.
"""
from __future__ import annotations

import contextlib
import tempfile
import traceback
from pathlib import Path

import mlflow

# Keras' history keys -> the names above (train.EpochLogger logs them). No keras import here: the
# CLI, baseline and error paths stay free of TensorFlow's start-up.
KERAS_TO_METRIC = {"loss": "train_loss", "rmse": "train_rmse", "val_loss": "val_loss", "val_rmse": "val_rmse"}


@contextlib.contextmanager
def run(run_name: str | None = None, tags: dict | None = None, experiment_id: str | None = None):
    """Use the active run (a sweep's trial, `mlflow run`'s own) or start one; on error, log the
    traceback and the message, and let MLflow end the run FAILED."""
    owned = mlflow.active_run() is None
    active = mlflow.start_run(run_name=run_name, experiment_id=experiment_id) if owned else mlflow.active_run()
    try:
        if tags:
            mlflow.set_tags(tags)
        yield active
    except BaseException as error:
        record_failure(error)
        if owned:
            mlflow.end_run("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    if owned:
        mlflow.end_run()


def record_failure(error: BaseException) -> None:
    with contextlib.suppress(Exception):
        mlflow.set_tag("error", f"{type(error).__name__}: {error}"[:5000])
        mlflow.log_text("".join(traceback.format_exception(error)), "error.txt")


def log_params(params: dict) -> None:
    """Log params, except those `mlflow run` already logged from -P in the user's own spelling
    (`n_train=all`, `tta=true`, `learning_rate=1e-3`): MLflow refuses to change a param's value."""
    active = mlflow.active_run()
    logged = mlflow.get_run(active.info.run_id).data.params if active else {}
    mlflow.log_params({k: "none" if v is None else v for k, v in params.items() if k not in logged})


def log_figure(figure, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        figure.savefig(path, dpi=100, bbox_inches="tight")
        mlflow.log_artifact(str(path))


def log_frame(frame, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        frame.to_csv(path, index=False)
        mlflow.log_artifact(str(path))
