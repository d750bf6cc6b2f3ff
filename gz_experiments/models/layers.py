"""The project's own Keras layers: batch normalisation as one fused op, the decision-tree output
layer of Dieleman, Willett & Dambre (2015), section 4.2, and their rotation-invariant views
(section 4.1). Registered for loading saved models.

Each question's answers are ReLU'd, divided by their sum, then scaled by the fraction that
reached the question — its parent answer's value in the model's own normalised output — so the
predictions obey the same constraint as the volunteers' vote fractions.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from gz_experiments import tree


@keras.saving.register_keras_serializable(package="gz_experiments")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras' batch normalisation computed by TensorFlow's FusedBatchNormV3 (oneDNN on x86 CPUs, cuDNN
    on GPUs) for 4-D channels-last inputs. Keras 3 builds it from a dozen float32 element-wise ops
    (moments, normalise, and their gradients), upcasting bfloat16 inputs; on 2 AMX cores those took
    two thirds of galaxy_cnn's bfloat16 training step and swallowed the convolutions' 4x gain (docs/speed.md).
    The fused op reads bfloat16 and keeps its statistics in float32; same weights, same results up to
    rounding (its running variance is Bessel-corrected, Keras' is not: n/(n-1) for n = batch x pixels).
    Named as Keras' layer on purpose: weight files (.weights.h5) address a layer by its class name, so
    weights saved from either load into the other (ImageNet ResNet50 files included)."""

    def call(self, inputs, training=None, mask=None):
        if mask is not None or self.renorm or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = self.gamma.value if self.scale else tf.ones([channels], tf.float32)
        offset = self.beta.value if self.center else tf.zeros([channels], tf.float32)
        training = bool(training) and self.trainable
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, self.moving_mean.value, self.moving_variance.value, epsilon=self.epsilon,
            is_training=training, exponential_avg_factor=1.0 - self.momentum if training else 1.0)
        if training:   # the op returns the running averages already updated
            self.moving_mean.assign(mean)
            self.moving_variance.assign(variance)
        return outputs


def fuse_batch_norm(model: keras.Model) -> keras.Model:
    """A copy of a functional `model` (e.g. a Keras application) whose BatchNormalization layers are
    fused `BatchNormalization`s; weights are not copied (load them afterwards)."""
    def clone(layer):
        cls = BatchNormalization if type(layer) is keras.layers.BatchNormalization else type(layer)
        return cls.from_config(layer.get_config())
    return keras.models.clone_model(model, clone_function=clone)


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

# ---- Dieleman et al.'s rotation-invariant views (2015, section 4.1) ------------------------------
# Each image is shown to the same convolutions in several orientations — the dihedral group's 90°
# rotations, then their mirror images — and the features of all views are concatenated for the
# dense head. The views ride in the batch axis, so the shared convolutions run once on a batch
# `views` times larger: `views`× the body's compute, the body's own parameters.

# Which dihedral views each count takes: the image and its mirror; the 4 rotations; all 8.
VIEWS = {1: (0,), 2: (0, 4), 4: (0, 1, 2, 3), 8: tuple(range(8))}


def _view(images, k: int):
    """View k of the dihedral group: k % 4 quarter turns, mirrored for k >= 4 (NHWC)."""
    turned = ops.rot90(images, k=k % 4, axes=(1, 2)) if k % 4 else images
    return ops.flip(turned, axis=2) if k >= 4 else turned


@keras.saving.register_keras_serializable(package="gz_experiments")
class DihedralViews(keras.layers.Layer):
    """(batch, h, w, c) → (views·batch, h, w, c): view-major, so `ViewFeatures` can regroup."""

    def __init__(self, views: int, **kwargs):
        super().__init__(**kwargs)
        self.views = views

    def call(self, images):
        return ops.concatenate([_view(images, k) for k in VIEWS[self.views]], axis=0)

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "views": self.views}


@keras.saving.register_keras_serializable(package="gz_experiments")
class ViewFeatures(keras.layers.Layer):
    """(views·batch, f) → (batch, views·f): each image's views side by side, in view order."""

    def __init__(self, views: int, **kwargs):
        super().__init__(**kwargs)
        self.views = views

    def call(self, features):
        per_view = ops.reshape(features, (self.views, -1, features.shape[-1]))
        return ops.reshape(ops.transpose(per_view, (1, 0, 2)), (-1, self.views * features.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (None, self.views * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "views": self.views}
