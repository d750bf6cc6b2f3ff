"""galaxy_cnn: its network builds as configured, its outputs obey the decision tree (with and without
the normalisation warm-up), the warm-up ramps as stated, and one tiny run trains through `train()`."""
from __future__ import annotations

import keras
import mlflow
import numpy as np
import pytest

import experiments
from conftest import tiny_overrides
from gz_experiments import tree
from gz_experiments.config import ConfigError, ModelConfig, override
from gz_experiments.models.layers import DecisionTreeOutput, TreeWarmup, WarmupDecisionTreeOutput
from gz_experiments.models import build_model
from gz_experiments.models.galaxy_cnn import GalaxyCnnConfig, minimum_input_size

CONFIG = experiments.load("galaxy_cnn").CONFIG


def assert_obeys_tree(votes: np.ndarray) -> None:
    """Each question's answers sum to the fraction that reached it (1 or the parent answer)."""
    assert np.all(votes >= 0) and np.all(votes <= 1 + 1e-6)
    assert tree.constraint_violation(votes).max() < 1e-4


def test_config_builds_the_network_it_states():
    model = build_model(CONFIG.model, CONFIG.data.image_size)
    assert model.input_shape == (None, CONFIG.data.image_size, CONFIG.data.image_size, 3)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    per_stage = CONFIG.model.body.convs_per_stage
    assert [c.filters for c in convs] == [f for f in CONFIG.model.body.filters for _ in range(per_stage)]
    assert all(c.padding == "same" for c in convs)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == (len(convs) if CONFIG.model.body.batch_norm else 0)
    assert isinstance(model.get_layer("votes"), DecisionTreeOutput)
    assert CONFIG.data.augment.rotation == 180 and CONFIG.data.augment.hflip and CONFIG.data.augment.vflip


@pytest.mark.parametrize("global_pool", [True, False])
def test_parameter_count_follows_the_body(global_pool):
    """'same' convs keep the frame until each pool halves it; the head sees channels or the whole map."""
    cfg = ModelConfig(architecture="galaxy_cnn", dense=(32,), output="tree",
                      body=GalaxyCnnConfig(filters=(8, 16), batch_norm=False, global_pool=global_pool))
    model = build_model(cfg, 20)
    convs = 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 * 16 + 16
    width = 16 if global_pool else 5 * 5 * 16
    assert model.count_params() == convs + width * 32 + 32 + 32 * 37 + 37


def test_convs_per_stage_deepens_each_stage_before_its_pool():
    cfg = override(CONFIG, filters="8,16", convs_per_stage=2, dense="16", image_size=16)
    model = build_model(cfg.model, 16)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.name, c.filters) for c in convs] == [("conv1", 8), ("conv1_2", 8), ("conv2", 16), ("conv2_2", 16)]
    assert model.get_layer("pool2").output.shape[1:3] == (4, 4)   # only the pools shrink the frame
    with pytest.raises(ConfigError, match="'convs_per_stage' must be at least 1"):
        override(CONFIG, convs_per_stage=0)
    with pytest.raises(ConfigError, match="applies to galaxy_cnn only"):
        override(experiments.load("cnn_cropped").CONFIG, convs_per_stage=2)


def test_views_show_the_shared_convolutions_each_orientation(tmp_path):
    """A quarter turn of the image turns the four views' features round by one block: the same
    convolutions saw every orientation. The model saves and loads with its view layers."""
    cfg = override(CONFIG, filters="4,8", views=4, dense="8", image_size=16)
    model = build_model(cfg.model, 16)
    features = keras.Model(model.input, model.get_layer("view_features").output)
    image = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    plain, turned = (keras.ops.convert_to_numpy(features(x)).reshape(2, 4, -1) for x in (image, np.rot90(image, 1, (1, 2))))
    np.testing.assert_allclose(turned, np.roll(plain, -1, axis=1), atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(loaded.predict(image, verbose=0), model.predict(image, verbose=0), atol=1e-6)
    with pytest.raises(ConfigError, match="'views' must be 1, 2, 4 or 8"):
        override(CONFIG, views=3)


def test_minimum_input_size_is_exact_for_same_padding():
    cfg = ModelConfig(architecture="galaxy_cnn", body=GalaxyCnnConfig(filters=(8, 8, 8)))
    assert minimum_input_size(cfg.body) == 8
    assert build_model(cfg, 8).output_shape == (None, 37)
    with pytest.raises(ConfigError, match="at least 8"):
        build_model(cfg, 7)


@pytest.mark.parametrize("warmup", [0, 3])
def test_predictions_obey_the_tree_with_and_without_warmup(warmup):
    cfg = override(CONFIG, tree_warmup_epochs=warmup, image_size=32)
    model = build_model(cfg.model, 32)
    if warmup:   # mid-warm-up: training outputs blend, inference still obeys the tree
        model.get_layer("votes").blend.assign(0.5)
    images = np.random.default_rng(1).random((16, 32, 32, 3), np.float32)
    assert_obeys_tree(np.asarray(model(images, training=False)))


def test_warmup_layer_blends_plain_relu_into_the_tree_in_training():
    layer = WarmupDecisionTreeOutput(4)
    raw = np.random.default_rng(2).normal(0.3, 1.0, (64, tree.N_OUTPUTS)).astype("float32")
    constrained = np.asarray(DecisionTreeOutput()(raw))
    layer(raw)   # builds `blend`
    layer.blend.assign(0.0)
    np.testing.assert_allclose(np.asarray(layer(raw, training=True)), np.maximum(raw, 0), atol=1e-6)
    layer.blend.assign(0.25)
    np.testing.assert_allclose(np.asarray(layer(raw, training=True)),
                               0.75 * np.maximum(raw, 0) + 0.25 * constrained, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(raw, training=False)), constrained, atol=1e-6)


@pytest.mark.slow
def test_tree_warmup_callback_ramps_blend_over_the_warmup_epochs():
    cfg = ModelConfig(architecture="galaxy_cnn", body=GalaxyCnnConfig(filters=(4,)), dense=(8,), output="tree",
                      tree_warmup_epochs=2)
    model = build_model(cfg, 8)
    model.compile("adam", "mse")
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(float(model.get_layer("votes").blend.numpy())))
    rng = np.random.default_rng(3)
    model.fit(rng.random((8, 8, 8, 3), np.float32), rng.random((8, 37), np.float32), epochs=4,
              verbose=0, callbacks=[TreeWarmup(), record])
    assert seen == [0.0, 0.5, 1.0, 1.0]


def test_warmup_model_survives_keras_save_and_load(tmp_path):
    cfg = override(CONFIG, tree_warmup_epochs=2, image_size=32)
    model = build_model(cfg.model, 32)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    images = np.random.default_rng(4).random((4, 32, 32, 3), np.float32)
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), atol=1e-6)
    assert loaded.get_layer("votes").warmup_epochs == 2


def test_negative_warmup_is_a_config_error():
    with pytest.raises(ConfigError, match="tree_warmup_epochs"):
        override(CONFIG, tree_warmup_epochs="-1")


def test_search_space_names_real_parameters_and_its_bounds_override():
    module = experiments.load("galaxy_cnn")
    for name, space in module.SEARCH_SPACE.items():
        values = space.choices if hasattr(space, "choices") else (space.low, space.high)
        for value in values:
            override(module.CONFIG, {name: str(value)})


@pytest.mark.slow
def test_one_tiny_epoch_trains_through_train(synthetic_dir):
    from gz_experiments.train import train
    config = override(CONFIG, tiny_overrides(synthetic_dir, tree_warmup_epochs=1))
    metrics = train(config, progress=False, log_model=False)
    assert metrics["epochs_run"] == 1
    assert 0 < metrics["test_rmse"] < 0.5 and 0 < metrics["test_rmse_tta"] < 0.5
    run = mlflow.last_active_run()
    assert run.data.tags["approach"] == "galaxy_cnn"
    assert run.data.params["architecture"] == "galaxy_cnn" and run.data.params["output"] == "tree"
    assert run.data.params["tree_warmup_epochs"] == "1"
