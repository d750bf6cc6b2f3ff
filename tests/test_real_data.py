"""Integration on the real Galaxy Zoo sample (GZ_REAL_DATA_DIR; skipped cleanly without it): the
labels validate, a short cnn_cropped run on a small split trains and scores, and the mean baseline
lands where the mean of real vote fractions does."""
from __future__ import annotations

import mlflow
import numpy as np
import pytest

import experiments
from gz_experiments import tree
from gz_experiments.commands.baseline import baseline
from gz_experiments.config import override
from gz_experiments.data.source import open_source

pytestmark = pytest.mark.real_data

SAMPLE_SIZE = 7866   # labelled galaxies in ../shared/data/galaxy-zoo-sample


def test_sample_validates(real_data_dir):
    source = open_source(real_data_dir)
    assert source.labels.shape == (SAMPLE_SIZE, tree.N_OUTPUTS)
    assert list(source.labels.columns) == list(tree.CLASS_COLUMNS)
    assert source.labels.index.is_unique
    values = source.labels.to_numpy()
    assert values.min() >= 0 and values.max() <= 1
    assert len(source.images.ids) >= SAMPLE_SIZE


def test_short_cnn_cropped_run_trains_and_scores(real_data_dir):
    from gz_experiments.train import train
    # batch 16: 19 steps, enough to move off the untrained network's 0.5 outputs (test RMSE ~0.37)
    config = override(experiments.load("cnn_cropped").CONFIG, {
        "data_dir": str(real_data_dir), "n_train": 300, "n_val": 100, "n_test": 100,
        "epochs": 1, "image_size": 48, "crop": 250, "batch_size": 16})
    metrics = train(config, progress=False)
    run = mlflow.last_active_run()
    assert run.info.status == "FINISHED"
    assert run.data.params["data_path"] == str(real_data_dir)
    assert int(run.data.params["n_train_used"]) == 300
    assert 0 < metrics["test_rmse"] < 0.30
    assert run.data.metrics["test_rmse"] == pytest.approx(metrics["test_rmse"])
    assert all(np.isfinite(run.data.metrics[f"per_question/test_rmse_q{q}"]) for q in range(1, 12))


def test_baseline_on_the_real_split(real_data_dir):
    config = override(experiments.load("cnn_cropped").CONFIG, {
        "data_dir": str(real_data_dir), "n_train": 5866, "n_val": 1000, "n_test": 1000, "seed": 42})
    metrics = baseline(config)
    assert 0.14 <= metrics["test_rmse"] <= 0.20
    assert 0.14 <= metrics["best_val_rmse"] <= 0.20
