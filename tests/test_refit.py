"""A refit trains the chosen configuration on train + validation for fixed epochs (the test split
untouched) and keeps its last weights; weight decay reaches the optimizer."""
from __future__ import annotations

import mlflow
import numpy as np
import pytest

import experiments
from conftest import tiny_overrides
from gz_experiments.config import ConfigError, override
from gz_experiments.data.dataset import prepare
from gz_experiments.served.serving import load_predictor

CONFIG = experiments.load("cnn_cropped").CONFIG


def test_refit_trains_on_train_and_validation_and_tests_on_the_same_galaxies(synthetic_dir):
    plain = override(CONFIG, tiny_overrides(synthetic_dir))
    refit = override(plain, refit="true")
    before, after = prepare(plain.data, progress=False), prepare(refit.data, progress=False)
    assert list(after.train.ids) == [*before.train.ids, *before.val.ids]
    np.testing.assert_array_equal(after.train.images[len(before.train):], before.val.images)
    np.testing.assert_array_equal(after.train.labels, np.concatenate([before.train.labels, before.val.labels]))
    assert list(after.test.ids) == list(before.test.ids) and list(after.val.ids) == list(before.val.ids)


def test_weight_decay_reaches_the_optimizer_and_is_checked():
    from gz_experiments.train import make_optimizer
    assert make_optimizer(override(CONFIG, weight_decay="1e-4")).weight_decay == pytest.approx(1e-4)
    assert make_optimizer(CONFIG).weight_decay is None
    with pytest.raises(ConfigError, match="'weight_decay' must be in"):
        override(CONFIG, weight_decay="-0.1")


@pytest.mark.slow
def test_a_refit_keeps_its_last_epoch_not_the_best_on_seen_data(synthetic_dir):
    from gz_experiments.train import train
    config = override(CONFIG, tiny_overrides(synthetic_dir, epochs=3, refit="true"))
    train(config, progress=False)
    run = mlflow.last_active_run()
    assert int(run.data.params["n_train_used"]) == int(config.data.n_train) + config.data.n_val
    last = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_rmse")[-1]
    data = prepare(config.data, progress=False)
    predictor = load_predictor(f"runs:/{run.info.run_id}/model")
    assert last.step == 3
    assert np.sqrt(np.mean((predictor.predict_images(data.val.images) - data.val.labels) ** 2)) == \
        pytest.approx(last.value, abs=1e-3)
