"""The decision-tree output layer of Dieleman, Willett & Dambre (2015), section 4.2.

Each question's answers are ReLU'd, divided by their sum, then scaled by the fraction that
reached the question — its parent answer's value in the model's own normalised output — so the
predictions obey the same constraint as the volunteers' vote fractions.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from gz_experiments import tree


def _same_question_matrix() -> np.ndarray:
    matrix = np.zeros((tree.N_OUTPUTS, tree.N_OUTPUTS), np.float32)
    for s in tree.question_slices():
        matrix[s, s] = 1.0
    return matrix


def _parent_of_each_column() -> np.ndarray:
    """For every column, the column that scales it; N_OUTPUTS points at an appended column of ones."""
    parents = np.full(tree.N_OUTPUTS, tree.N_OUTPUTS, np.int32)
    for s, parent in zip(tree.question_slices(), tree.parent_indices()):
        if parent is not None:
            parents[s] = parent
    return parents


def _depth() -> int:
    parents, depth = _parent_of_each_column(), 0
    for column in range(tree.N_OUTPUTS):
        d, c = 0, column
        while c != tree.N_OUTPUTS:
            c, d = parents[c], d + 1
        depth = max(depth, d)
    return depth


@keras.saving.register_keras_serializable(package="gz_experiments")
class DecisionTreeOutput(keras.layers.Layer):
    """37 unconstrained values in, 37 vote fractions out that obey the Galaxy Zoo tree."""

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self._same_question = _same_question_matrix()
        self._parents = _parent_of_each_column()
        self._depth = _depth()

    def call(self, inputs):
        # + epsilon per answer: a question whose answers are all ReLU'd to zero splits its reach
        # evenly instead of summing to 0, so the constraint holds for every input.
        x = ops.relu(ops.cast(inputs, "float32")) + self.epsilon
        normalised = x / ops.matmul(x, ops.convert_to_tensor(self._same_question))
        ones = ops.ones_like(normalised[:, :1])
        out = normalised
        # The tree is `_depth` answers deep: after that many passes every scale is final.
        for _ in range(self._depth):
            with_ones = ops.concatenate([out, ones], axis=1)
            out = normalised * ops.take(with_ones, self._parents, axis=1)
        return out

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="gz_experiments")
class WarmupDecisionTreeOutput(DecisionTreeOutput):
    """The tree output with its normalisation switched on gradually in training: the loss sees
    plain ReLU outputs blended into the tree by `blend`, which `TreeWarmup` raises from 0 to 1 over
    `warmup_epochs`. A fresh network's random outputs often put every answer of a question below
    zero, where the normalisation passes no gradient; fitted first as plain ReLUs, the outputs
    nearly obey the tree already when it takes over. Evaluation and serving always get the tree,
    so a kept warm-up epoch still yields predictions that obey the constraint."""

    def __init__(self, warmup_epochs: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.warmup_epochs = warmup_epochs

    def build(self, input_shape):
        # A weight, not a Python number, so the compiled training step reads its current value;
        # 1 (the full tree) unless TreeWarmup lowers it.
        self.blend = self.add_weight(name="blend", shape=(), initializer="ones", trainable=False)

    def call(self, inputs, training=None):
        constrained = super().call(inputs)
        if not training:
            return constrained
        plain = ops.relu(ops.cast(inputs, "float32"))
        return plain + ops.cast(self.blend, "float32") * (constrained - plain)

    def get_config(self):
        return {**super().get_config(), "warmup_epochs": self.warmup_epochs}


class TreeWarmup(keras.callbacks.Callback):
    """Sets each warm-up tree layer's blend to epoch / warmup_epochs (at most 1) as an epoch begins."""

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self.model.layers:
            if isinstance(layer, WarmupDecisionTreeOutput):
                layer.blend.assign(min(1.0, epoch / layer.warmup_epochs))


def training_callbacks(model: keras.Model) -> list[keras.callbacks.Callback]:
    """Callbacks a model's own layers need during `fit` (none for most models)."""
    return [TreeWarmup()] if any(isinstance(l, WarmupDecisionTreeOutput) for l in model.layers) else []
