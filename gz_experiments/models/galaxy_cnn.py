"""galaxy_cnn's network: conv blocks with 'same' padding (each 2×2 pool halves the frame exactly, so
a rotated galaxy's edges are kept), batch norm before the ReLU if asked, then global average
pooling (features that don't depend on where in the frame they fired) or flatten.

Keras is imported inside `body`: configuration imports this module, and must not load TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass

from gz_experiments.models.architecture import Architecture
from gz_experiments.models.cnn import CnnConfig


@dataclass(frozen=True)
class GalaxyCnnConfig(CnnConfig):
    global_pool: bool = False   # global average pooling instead of flatten
    # 3×3 convs before each pool (VGG's stages): two see 5×5 at the cost of one more layer's
    # compute, with a ReLU between; depth that a small data set can still fit.
    convs_per_stage: int = 1
    # Dieleman et al.'s views: the convolutions see each image in this many dihedral orientations
    # (1, 2, 4 or 8) and the head their features side by side; costs views× the body's compute.
    views: int = 1


def minimum_input_size(cfg: GalaxyCnnConfig) -> int:
    return 2 ** len(cfg.filters)   # 'same' convs keep the frame: only the pools shrink it


def body(x, cfg: GalaxyCnnConfig):
    if cfg.views == 1:
        return _shared_body(x, cfg)
    from gz_experiments.models.layers import DihedralViews, ViewFeatures
    return ViewFeatures(cfg.views, name="view_features")(_shared_body(DihedralViews(cfg.views, name="views")(x), cfg))


def _shared_body(x, cfg: GalaxyCnnConfig):
    from keras import layers

    from gz_experiments.models.layers import BatchNormalization   # fused: see its docstring
    for i, filters in enumerate(cfg.filters):
        for j in range(cfg.convs_per_stage):
            suffix = f"{i + 1}" + (f"_{j + 1}" if j else "")   # conv1, conv1_2: one-conv models keep their names
            x = layers.Conv2D(filters, cfg.kernel_size, padding="same", use_bias=not cfg.batch_norm,
                              name=f"conv{suffix}")(x)
            if cfg.batch_norm:
                x = BatchNormalization(name=f"bn{suffix}")(x)
            x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    return layers.GlobalAveragePooling2D()(x) if cfg.global_pool else layers.Flatten()(x)


ARCHITECTURE = Architecture("galaxy_cnn", GalaxyCnnConfig, minimum_input_size, body, dropout_before_dense=True)
