"""Dieleman et al.'s rotation-invariant views (2015, section 4.1), as two Keras layers.

Each image is shown to the same convolutions in several orientations — the dihedral group's
90° rotations, then their mirror images — and the features of all views are concatenated for the
dense head. The views ride in the batch axis, so the shared convolutions run once on a batch
`views` times larger; the cost is `views`× the body's compute, the parameters are the body's own.
Registered for saving, so a logged model with views loads like any other.
"""
from __future__ import annotations

import keras
from keras import ops

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
