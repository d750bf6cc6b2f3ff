"""The report's CNN: conv (ReLU) + 2×2 max-pool per entry of `filters`, 'valid' padding, then flatten.

Keras is imported inside `body`: configuration imports this module, and must not load TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass

from gz_experiments.models.architecture import Architecture


@dataclass(frozen=True)
class CnnConfig:
    filters: tuple[int, ...] = (32, 64, 128, 128)   # one conv + pool per entry
    kernel_size: int = 3                   # the report doesn't say; 3×3 is Keras tutorials' default
    batch_norm: bool = False               # batch normalisation between each conv and its ReLU


def minimum_input_size(cfg: CnnConfig) -> int:
    """Every 'valid' conv trims kernel_size - 1 pixels and each pool halves: undo them from 1 pixel."""
    size = 1
    for _ in cfg.filters:
        size = size * 2 + cfg.kernel_size - 1
    return size


def body(x, cfg: CnnConfig):
    from keras import layers

    from gz_experiments.models.layers import BatchNormalization   # fused: see its docstring
    for i, filters in enumerate(cfg.filters):
        x = layers.Conv2D(filters, cfg.kernel_size, activation=None if cfg.batch_norm else "relu",
                          name=f"conv{i + 1}")(x)
        if cfg.batch_norm:
            x = layers.Activation("relu")(BatchNormalization(name=f"bn{i + 1}")(x))
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return layers.Flatten()(x)


ARCHITECTURE = Architecture("cnn", CnnConfig, minimum_input_size, body, dropout_before_dense=True)
