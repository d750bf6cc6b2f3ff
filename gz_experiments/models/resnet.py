"""The report's transfer-learning model: Keras' ResNet50 without top, ImageNet's preprocessing built
in, global average pooling; its head is dense then dropout. Pretrained weights are `imagenet`
(Keras' download and cache), a local `.weights.h5`, or `none`; failing offline takes seconds and
says what to do instead.

Keras is imported inside the functions that build or load: configuration imports this module,
and must not load TensorFlow.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from gz_experiments.errors import ConfigError, GzError
from gz_experiments.models.architecture import Architecture

BACKBONE = "resnet50"   # the backbone's layer name, which pretrained weights are loaded into
STAGES = 5              # ResNet50's stages conv1 … conv5
# Keras' own file for ResNet50 without top (keras/src/applications/resnet.py), so its cache is shared.
IMAGENET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
IMAGENET_HASH = "4d473c1dd8becc155b73f8504c6f6626"


class WeightsError(GzError):
    """Pretrained weights cannot be had; the message says how to get them or what to pass."""


@dataclass(frozen=True)
class ResNetConfig:
    weights: str = "imagenet"              # imagenet | none | path/to/file.weights.h5
    fine_tune_blocks: int | None = None    # None trains all; k trains the last k stages (0: the head only)

    def __post_init__(self):
        if self.fine_tune_blocks is not None and not 0 <= self.fine_tune_blocks <= STAGES:
            raise ConfigError(f"parameter 'fine_tune_blocks' must be 0 to {STAGES} (trailing stages of ResNet50 "
                              f"to train) or none (train all); got {self.fine_tune_blocks}")


def minimum_input_size(cfg: ResNetConfig) -> int:
    return 32   # five stride-2 steps: Keras' ResNet50 refuses smaller frames


def body(x, cfg: ResNetConfig):
    import keras

    from gz_experiments.models.layers import fuse_batch_norm
    x = keras.applications.resnet.preprocess_input(x * 255.0)
    backbone = fuse_batch_norm(keras.applications.ResNet50(include_top=False, weights=None, input_shape=x.shape[1:]))
    backbone.name = BACKBONE
    freeze_early_stages(backbone, cfg.fine_tune_blocks)
    x = backbone(x, training=None if cfg.fine_tune_blocks is None else False)
    return keras.layers.Flatten()(keras.layers.GlobalAveragePooling2D()(x))


def freeze_early_stages(backbone, trainable_stages: int | None) -> None:
    """Train only the last `trainable_stages` of ResNet50's five (conv1 … conv5); None trains all."""
    if trainable_stages is None:
        return
    first_trainable = STAGES + 1 - trainable_stages   # stage numbers are 1..5
    for layer in backbone.layers:
        stage = int(layer.name[4]) if layer.name.startswith("conv") and layer.name[4].isdigit() else 1
        layer.trainable = stage >= first_trainable


def imagenet_file() -> Path:
    import keras
    try:
        return Path(keras.utils.get_file(Path(IMAGENET_URL).name, IMAGENET_URL,
                                         cache_subdir="models", file_hash=IMAGENET_HASH))
    except Exception as error:   # urllib/HTTP/hash errors all mean the same to the user
        raise WeightsError(
            f"could not download ImageNet weights for ResNet50 ({type(error).__name__}: {error}). "
            f"Either run once with internet access so Keras caches {Path(IMAGENET_URL).name} in "
            f"~/.keras/models, copy that file there, pass weights=/path/to/resnet50.weights.h5, "
            f"or train from scratch with weights=none") from None


def prepare_weights(cfg: ResNetConfig) -> Path | None:
    """The weights file to load, found (or downloaded) before any data work so a bad value or an
    offline machine fails within seconds; None trains from scratch."""
    if cfg.weights in ("none", ""):
        return None
    path = imagenet_file() if cfg.weights == "imagenet" else Path(cfg.weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"weights={cfg.weights!r}: no such file; pass imagenet, none or a .weights.h5 path")
    return path


def load_weights(model, path: Path) -> None:
    """Load a backbone's weights file (from `prepare_weights`) into the built model, all of it: Keras
    only warns about parts of the network the file lacks, which would train them from scratch."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.get_layer(BACKBONE).load_weights(str(path))
        except ValueError as error:
            raise WeightsError(f"{path} does not fit ResNet50 without top: {error}") from None
    missing = [w for w in caught if "freshly-initialized" in str(w.message)]
    if missing:
        raise WeightsError(f"{path} does not fit ResNet50 without top: {missing[0].message}")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


ARCHITECTURE = Architecture("resnet", ResNetConfig, minimum_input_size, body, dropout_before_dense=False,
                            prepare_weights=prepare_weights, load_weights=load_weights)
