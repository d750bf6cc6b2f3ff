"""What every model shares: the image input, the dense head, and the 37 vote fractions (sigmoids or
the decision-tree layer), assembled around an architecture's body."""
from __future__ import annotations

import typing

import keras
from keras import layers

from gz_experiments import tree
from gz_experiments.models.layers import DecisionTreeOutput, WarmupDecisionTreeOutput
from gz_experiments.models.architecture import Architecture

if typing.TYPE_CHECKING:
    from gz_experiments.models import ModelConfig

TREE_BIAS_INIT = 1.0   # large next to the first updates of the zero kernel, so no answer crosses zero early


def build(architecture: Architecture, cfg: ModelConfig, image_size: int, pretrained=None) -> keras.Model:
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = architecture.body(inputs, cfg.body)
    for i, units in enumerate(cfg.dense):
        dense = layers.Dense(units, activation="relu", name=f"dense{i + 1}")
        if architecture.dropout_before_dense:
            x = dense(layers.Dropout(cfg.dropout)(x))
        else:
            x = layers.Dropout(cfg.dropout)(dense(x))
    model = keras.Model(inputs, output_head(x, cfg.output, cfg.tree_warmup_epochs), name=cfg.architecture)
    if pretrained is not None:
        architecture.load_weights(model, pretrained)
    return model


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
