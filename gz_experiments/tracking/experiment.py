"""Where runs go: a named MLflow experiment that the UI opens on model training, with a description.

Which experiment, in the precedence MLflow users expect: the one `mlflow run` already put the run in
(its `--experiment-name`, or MLflow's Default), then MLFLOW_EXPERIMENT_NAME / MLFLOW_EXPERIMENT_ID
(what `mlflow.set_experiment` sets too), then the `experiment` parameter, default `galaxy-zoo`.
"""
from __future__ import annotations

import os
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from gz_experiments.tracking import races
from gz_experiments.tracking import runs as tracking
from gz_experiments.config import ConfigError

DEFAULT = "galaxy-zoo"
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"   # else the UI opens GenAI views
NOTE_TAG = "mlflow.note.content"
DESCRIPTION = """Galaxy Zoo morphology, as in the report *Galaxy classification using convolutional networks*:
CNNs ({approaches}) and the mean `baseline`, each
scored by RMSE over the 37 vote fractions on a seeded train/validation/test split (lower is better).

- Compare runs by `test_rmse` (and `test_rmse_tta`, `best_val_rmse`); filter with `tags.approach = "cnn_cropped"`.
  `gz-experiments ui` prints a link that opens this table sorted by `test_rmse`, with the scores and the
  parameters that differ as columns.
- A run's charts: the curves by epoch (`train_loss`, `train_rmse`, `val_loss`, `val_rmse`), the single
  values, and `test_rmse_by_question` (the test RMSE per decision-tree question, step = question 1…11).
- The Datasets column names each split; equal digests mean the same galaxies and labels.
- Sweeps, reports and seeds are parent runs (expand them to see their runs); each says in its description what it holds.
"""


def use(requested: str | None = None) -> str | None:
    """The experiment id a new run should start in, made ready for the UI; None when the run
    already exists (`mlflow run`'s, or a sweep's parent): its experiment is only made ready."""
    tracking.ready_store()
    client = MlflowClient()
    existing = _existing_run_experiment(client)
    if existing is not None:
        experiment = client.get_experiment(existing)
        if requested not in (None, DEFAULT, experiment.name):
            print(f"note: this run is in experiment {experiment.name!r}, where `mlflow run` created it; "
                  f"experiment={requested} can't move it: use `mlflow run --experiment-name {requested}`",
                  file=sys.stderr)
        prepare(client, experiment.experiment_id)
        return None
    experiment = _chosen(client, requested or DEFAULT)
    prepare(client, experiment.experiment_id)
    return experiment.experiment_id


def _existing_run_experiment(client: MlflowClient) -> str | None:
    active = mlflow.active_run()
    if active is not None:
        return active.info.experiment_id
    run_id = os.environ.get("MLFLOW_RUN_ID")
    return client.get_run(run_id).info.experiment_id if run_id else None


def _chosen(client: MlflowClient, requested: str):
    by_name, by_id = os.environ.get("MLFLOW_EXPERIMENT_NAME"), os.environ.get("MLFLOW_EXPERIMENT_ID")
    if not by_name and by_id:
        try:
            return client.get_experiment(by_id)
        except MlflowException:
            raise ConfigError(f"MLFLOW_EXPERIMENT_ID={by_id} names no experiment in {mlflow.get_tracking_uri()}; "
                              f"unset it or give an existing id") from None
    name = by_name or requested
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            client.create_experiment(name)
        except MlflowException as error:   # another worker created it first
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage != "active":
        raise ConfigError(f"experiment {name!r} is deleted: restore it (mlflow experiments restore "
                          f"--experiment-id {experiment.experiment_id}) or pass experiment=<another name>")
    return experiment


def prepare(client: MlflowClient, experiment_id: str) -> None:
    """Mark the experiment as model training and give it a description, unless it has one."""
    tags = client.get_experiment(experiment_id).tags
    # Commands starting together both find the tag absent and insert it: the second one, made again, updates.
    if tags.get(KIND_TAG) != MODEL_TRAINING:
        races.retrying(lambda: client.set_experiment_tag(experiment_id, KIND_TAG, MODEL_TRAINING))
    if not tags.get(NOTE_TAG):
        import experiments
        approaches = ", ".join(f"`{a}`" for a in experiments.APPROACHES)
        races.retrying(lambda: client.set_experiment_tag(experiment_id, NOTE_TAG,
                                                       DESCRIPTION.format(approaches=approaches)))
