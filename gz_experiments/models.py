"""Model registry: a name -> a function building the network's body from a `ModelConfig`.

Every model takes float32 images in [0, 1] (the pipeline's contract) and ends in the same
37-unit head. Models never read files: pretrained weights are loaded by `gz_experiments.weights`.
"""
from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from gz_experiments import tree
from gz_experiments.config import ConfigError, ModelConfig
from gz_experiments.layers import DecisionTreeOutput, WarmupDecisionTreeOutput

BACKBONE = "resnet50"   # the name `gz_experiments.weights` looks up to load ImageNet weights


def cnn_body(x, cfg: ModelConfig):
    """The report's network: conv (ReLU) + 2×2 max-pool per entry of `filters`, then flatten."""
    for i, filters in enumerate(cfg.filters):
        x = layers.Conv2D(filters, cfg.kernel_size, activation=None if cfg.batch_norm else "relu",
                          name=f"conv{i + 1}")(x)
        if cfg.batch_norm:
            x = layers.Activation("relu")(layers.BatchNormalization(name=f"bn{i + 1}")(x))
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return layers.Flatten()(x)


def galaxy_cnn_body(x, cfg: ModelConfig):
    """Conv blocks with 'same' padding (each 2×2 pool halves the frame exactly, so a rotated
    galaxy's edges are kept), batch norm before the ReLU if asked, then global average pooling
    (features that don't depend on where in the frame they fired) or flatten."""
    for i, filters in enumerate(cfg.filters):
        x = layers.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=not cfg.batch_norm,
                          name=f"conv{i + 1}")(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(layers.Activation("relu")(x))
    return layers.GlobalAveragePooling2D()(x) if cfg.global_pool else layers.Flatten()(x)


def resnet_body(x, cfg: ModelConfig):
    """Keras' ResNet50 without top, ImageNet's preprocessing built in, then global average pooling."""
    x = keras.applications.resnet.preprocess_input(x * 255.0)
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=x.shape[1:])
    backbone.name = BACKBONE
    freeze_early_stages(backbone, cfg.fine_tune_blocks)
    x = backbone(x, training=None if cfg.fine_tune_blocks is None else False)
    return layers.Flatten()(layers.GlobalAveragePooling2D()(x))


def freeze_early_stages(backbone, trainable_stages: int | None) -> None:
    """Train only the last `trainable_stages` of ResNet50's five (conv1 … conv5); None trains all."""
    if trainable_stages is None:
        return
    first_trainable = 6 - trainable_stages   # stage numbers are 1..5
    for layer in backbone.layers:
        stage = int(layer.name[4]) if layer.name.startswith("conv") and layer.name[4].isdigit() else 1
        layer.trainable = stage >= first_trainable


MODELS: dict[str, Callable] = {"cnn": cnn_body, "resnet": resnet_body, "galaxy_cnn": galaxy_cnn_body}

# The smallest frame each body accepts: every 'valid' conv trims kernel-1 and each pool halves.
def minimum_input_size(cfg: ModelConfig) -> int:
    if cfg.architecture == "resnet":
        return 32
    if cfg.architecture == "galaxy_cnn":   # 'same' convs: only the pools shrink the frame
        return 2 ** len(cfg.filters)
    size = 1
    for _ in cfg.filters:
        size = size * 2 + cfg.kernel_size - 1
    return size


def build_model(cfg: ModelConfig, image_size: int) -> keras.Model:
    if cfg.architecture not in MODELS:
        raise ConfigError(f"unknown architecture {cfg.architecture!r}; known: {', '.join(MODELS)}")
    if image_size < minimum_input_size(cfg):
        raise ConfigError(f"image_size={image_size} is too small for {cfg.architecture} with "
                          f"{len(cfg.filters)} conv layers: use at least {minimum_input_size(cfg)}")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = MODELS[cfg.architecture](inputs, cfg)
    for i, units in enumerate(cfg.dense):
        if cfg.architecture == "resnet":   # the report's ResNet head: dense 512, then dropout
            x = layers.Dropout(cfg.dropout)(layers.Dense(units, activation="relu", name=f"dense{i + 1}")(x))
        else:                              # its CNNs: dropout before each dense layer
            x = layers.Dense(units, activation="relu", name=f"dense{i + 1}")(layers.Dropout(cfg.dropout)(x))
    outputs = output_head(x, cfg.output, cfg.tree_warmup_epochs)
    return keras.Model(inputs, outputs, name=cfg.architecture)


TREE_BIAS_INIT = 1.0   # large next to the first updates of the zero kernel, so no answer crosses zero early


def output_head(x, output: str, tree_warmup_epochs: int = 0):
    """37 vote fractions, computed in float32 even under mixed precision."""
    if output == "sigmoid":
        return layers.Dense(tree.N_OUTPUTS, activation="sigmoid", dtype="float32", name="votes")(x)
    # Every answer starts alive and equal (each question at its even split). With random weights a
    # question whose answers are all negative for every image gets no gradient through the ReLU and
    # stays at the even split for good: measured on the real sample, question 6 died that way
    # (test RMSE 0.35 against the mean's 0.21) and dragged its child, question 8, down with it.
    x = layers.Dense(tree.N_OUTPUTS, dtype="float32", name="votes_raw", kernel_initializer="zeros",
                     bias_initializer=keras.initializers.Constant(TREE_BIAS_INIT))(x)
    if tree_warmup_epochs:
        return WarmupDecisionTreeOutput(tree_warmup_epochs, name="votes", dtype="float32")(x)
    return DecisionTreeOutput(name="votes", dtype="float32")(x)
