"""Models: the report's layer sizes and parameter counts, a clear error for frames too small, the
decision-tree output's constraint and serialisation, and ResNet's partial fine-tuning and
pretrained weights."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import experiments
from gz_experiments import models, tree
from gz_experiments.config import ConfigError, ModelConfig, override
from gz_experiments.models.layers import DecisionTreeOutput
from gz_experiments.models import build_model
from gz_experiments.models.cnn import CnnConfig
from gz_experiments.models.resnet import BACKBONE, ResNetConfig, WeightsError


def report_model(approach: str, **changes):
    config = experiments.load(approach).CONFIG
    if changes:
        config = override(config, changes)
    return build_model(config.model, config.data.image_size), config


def layer_kinds(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def expected_cnn_params(size: int, filters, dense, kernel: int = 3) -> int:
    """Parameters of the report's CNN from its description: valid k×k convs, 2×2 pools, dense head, 37 out."""
    total, channels = 0, 3
    for f in filters:
        total += kernel * kernel * channels * f + f
        size, channels = (size - kernel + 1) // 2, f
    width = size * size * channels
    for units in (*dense, tree.N_OUTPUTS):
        total += width * units + units
        width = units
    return total


@pytest.mark.parametrize("approach, filters, dense, size, params", [
    # params by hand: cnn_full 896 + 18,496 + 73,856 + 147,584 + (4·4·128·512 + 512) + (512·37 + 37)
    ("cnn_full", (32, 64, 128, 128), (512,), 100, 1_308_901),
    ("cnn_cropped", (32, 64, 128, 128), (512,), 70, 522_469),
    ("cnn_slim_head", (32, 96, 128, 128), (96, 64), 70, 344_805),
])
def test_report_cnns_have_the_reports_layers(approach, filters, dense, size, params):
    model, config = report_model(approach)
    assert model.input_shape == (None, size, size, 3)
    convs = layer_kinds(model, keras.layers.Conv2D)
    assert [c.filters for c in convs] == list(filters)
    assert all(c.kernel_size == (3, 3) and c.activation.__name__ == "relu" for c in convs)
    assert [p.pool_size for p in layer_kinds(model, keras.layers.MaxPooling2D)] == [(2, 2)] * 4
    denses = layer_kinds(model, keras.layers.Dense)
    assert [d.units for d in denses] == [*dense, 37]
    assert [d.activation.__name__ for d in denses] == ["relu"] * len(dense) + ["sigmoid"]
    # Report: a dropout of 0.5 right before every hidden dense layer.
    order = [type(layer).__name__ for layer in model.layers]
    assert order[order.index("Flatten"):] == ["Flatten"] + ["Dropout", "Dense"] * len(dense) + ["Dense"]
    assert all(d.rate == 0.5 for d in layer_kinds(model, keras.layers.Dropout))
    assert model.count_params() == expected_cnn_params(size, filters, dense) == params
    assert model.output_shape == (None, 37)


def test_resnet_is_keras_resnet50_with_the_reports_head():
    model, config = report_model("resnet", weights="none")
    backbone = model.get_layer(BACKBONE)
    assert backbone.count_params() == 23_587_712   # Keras' ResNet50 without top
    order = [type(layer).__name__ for layer in model.layers]
    tail = order[order.index("Functional"):]
    assert tail == ["Functional", "GlobalAveragePooling2D", "Flatten", "Dense", "Dropout", "Dense"]
    dense = layer_kinds(model, keras.layers.Dense)
    assert [(d.units, d.activation.__name__) for d in dense] == [(512, "relu"), (37, "sigmoid")]
    assert layer_kinds(model, keras.layers.Dropout)[0].rate == 0.5
    assert model.input_shape == (None, 70, 70, 3)
    assert model.count_params() == 23_587_712 + 2048 * 512 + 512 + 512 * 37 + 37
    assert all(w.trainable for w in backbone.weights if "moving" not in w.path)   # report: every layer trained


# resnet is built (at its full size, which is slow) in the test above.
@pytest.mark.parametrize("approach", [a for a in experiments.APPROACHES if a != "resnet"])
def test_every_registered_approach_builds_and_predicts(approach):
    model, config = report_model(approach)
    size = config.data.image_size
    out = model.predict(np.random.default_rng(0).random((2, size, size, 3), np.float32), verbose=0)
    assert out.shape == (2, 37) and np.all((out >= 0) & (out <= 1))


@pytest.mark.parametrize("model_cfg", [
    ModelConfig(),                                               # 4 convs, 3×3: 46
    ModelConfig(body=CnnConfig(filters=(8, 8), kernel_size=5)),  # 2 convs, 5×5: 22
    ModelConfig(body=CnnConfig(filters=(8, 8, 8, 8, 8))),        # 5 convs: 94
], ids=["report", "k5", "five_convs"])
def test_minimum_input_size_is_exact(model_cfg):
    smallest = models.get("cnn").minimum_input_size(model_cfg.body)
    assert build_model(model_cfg, smallest).output_shape == (None, 37)
    with pytest.raises(ConfigError) as error:
        build_model(model_cfg, smallest - 1)
    message = str(error.value)
    assert f"image_size={smallest - 1}" in message and f"at least {smallest}" in message


def test_resnet_frame_too_small_is_a_config_error():
    with pytest.raises(ConfigError, match=r"image_size=24 .*resnet.*at least 32"):
        build_model(ModelConfig(architecture="resnet", body=ResNetConfig(weights="none")), 24)


def test_unknown_architecture_is_a_config_error():
    with pytest.raises(ConfigError, match="'architecture' must be one of cnn, galaxy_cnn, resnet; got 'vgg'"):
        ModelConfig(architecture="vgg")


def tree_model():
    cfg = ModelConfig(body=CnnConfig(filters=(8, 16)), dense=(32,), output="tree")
    return build_model(cfg, 48)


def test_tree_output_obeys_the_constraint_for_random_inputs():
    images = np.random.default_rng(1).random((64, 48, 48, 3), np.float32)
    pred = tree_model().predict(images, verbose=0)
    assert pred.shape == (64, 37) and pred.min() >= 0 and pred.max() <= 1
    assert tree.constraint_violation(pred).max() < 1e-5


def test_tree_layer_obeys_the_constraint_even_when_a_question_is_all_negative():
    raw = np.random.default_rng(2).normal(0, 3, size=(2000, 37)).astype(np.float32)
    raw[:10] = -1.0                                   # every answer ReLU'd to zero
    out = np.asarray(DecisionTreeOutput()(raw))
    assert out.min() >= 0 and out.max() <= 1 + 1e-6
    assert tree.constraint_violation(out).max() < 1e-5
    np.testing.assert_allclose(out[0, :3], 1 / 3, rtol=1e-6)   # an empty question splits evenly


def test_a_fresh_tree_model_has_no_dead_question():
    """Each question starts at its even split with every raw answer positive, and every answer
    gets a gradient: a question whose answers all start below zero would never learn."""
    model, images = tree_model(), np.random.default_rng(5).random((16, 48, 48, 3), np.float32)
    raw = keras.Model(model.input, model.get_layer("votes_raw").output).predict(images, verbose=0)
    assert raw.min() > 0
    pred = model.predict(images, verbose=0)
    for s, parent in zip(tree.question_slices(), tree.parent_indices()):
        reach = 1.0 if parent is None else pred[:, parent:parent + 1]
        even = np.broadcast_to(reach / (s.stop - s.start), pred[:, s].shape)
        np.testing.assert_allclose(pred[:, s], even, rtol=1e-5)
    targets = tree_consistent_labels(np.random.default_rng(6), 16).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean((model(images, training=True) - targets) ** 2)
    bias_grad = tape.gradient(loss, model.get_layer("votes_raw").bias).numpy()
    assert (bias_grad[:, None] != 0).all()


def test_tree_layer_passes_valid_labels_through():
    """Fed its own ideal logits (the labels), the layer returns them: the tree is wired right."""
    rng = np.random.default_rng(3)
    labels = tree_consistent_labels(rng, 500)
    assert tree.constraint_violation(labels).max() < 1e-6
    out = np.asarray(DecisionTreeOutput()(labels.astype(np.float32)))
    nonzero_reach = tree.reach_fractions(labels).min(axis=1) > 0.01
    np.testing.assert_allclose(out[nonzero_reach], labels[nonzero_reach], atol=1e-5)


def tree_consistent_labels(rng, n: int) -> np.ndarray:
    """Random vote fractions that follow the tree: each question's shares times its reach."""
    labels = np.zeros((n, tree.N_OUTPUTS))
    for index in tree.topological_order():
        s, parent = tree.question_slices()[index], tree.parent_indices()[index]
        reach = np.ones(n) if parent is None else labels[:, parent]
        labels[:, s] = rng.dirichlet(np.ones(s.stop - s.start), size=n) * reach[:, None]
    return labels


def test_tree_model_survives_save_and_load(tmp_path):
    model = tree_model()
    images = np.random.default_rng(4).random((8, 48, 48, 3), np.float32)
    path = tmp_path / "x.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("votes"), DecisionTreeOutput)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_fine_tune_blocks_freezes_the_early_stages():
    model = build_model(ModelConfig(architecture="resnet", body=ResNetConfig(weights="none", fine_tune_blocks=2)), 32)
    stages = {}
    for layer in model.get_layer(BACKBONE).layers:
        if layer.weights:
            stage = layer.name[:5] if layer.name[:4] == "conv" else layer.name
            stages.setdefault(stage, set()).add(layer.trainable)
    assert stages == {"conv1": {False}, "conv2": {False}, "conv3": {False}, "conv4": {True}, "conv5": {True}}
    head = [layer for layer in model.layers if layer.name != BACKBONE and layer.weights]
    assert head and all(layer.trainable for layer in head)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert frozen > 0 and model.count_params() > frozen


@pytest.fixture(scope="module")
def resnet_weights_file(tmp_path_factory):
    """A `.weights.h5` for ResNet50 without top (random, not ImageNet: no download in tests)."""
    path = tmp_path_factory.mktemp("weights") / "resnet50_notop.weights.h5"
    keras.utils.set_random_seed(7)
    keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(str(path))
    return path


def test_resnet_loads_pretrained_weights_from_a_file(resnet_weights_file):
    cfg = ModelConfig(architecture="resnet", body=ResNetConfig(weights=str(resnet_weights_file)))
    pretrained = models.prepare_weights(cfg)
    assert pretrained == resnet_weights_file
    keras.utils.set_random_seed(8)   # a different start, so equal weights can only come from the file
    model = build_model(cfg, 32, pretrained)
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    reference.load_weights(str(resnet_weights_file))
    loaded, expected = model.get_layer(BACKBONE).get_weights(), reference.get_weights()
    assert len(loaded) == len(expected) and all(np.array_equal(a, b) for a, b in zip(loaded, expected))


def test_resnet_weights_none_trains_from_scratch_and_a_missing_file_is_a_config_error(tmp_path):
    assert models.prepare_weights(ModelConfig(architecture="resnet", body=ResNetConfig(weights="none"))) is None
    missing = ModelConfig(architecture="resnet", body=ResNetConfig(weights=str(tmp_path / "nope.weights.h5")))
    with pytest.raises(ConfigError, match="nope.weights.h5.*no such file"):
        models.prepare_weights(missing)


def test_a_weights_file_of_another_network_is_a_weights_error(tmp_path):
    path = tmp_path / "small.weights.h5"
    build_model(ModelConfig(body=CnnConfig(filters=(4,))), 8).save_weights(str(path))
    cfg = ModelConfig(architecture="resnet", body=ResNetConfig(weights=str(path)))
    with pytest.raises(WeightsError, match="does not fit ResNet50"):
        build_model(cfg, 32, models.prepare_weights(cfg))


def test_models_other_than_resnet_need_no_pretrained_weights():
    for name in ("cnn", "galaxy_cnn"):
        assert models.prepare_weights(ModelConfig(architecture=name)) is None
