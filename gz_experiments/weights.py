"""Pretrained weights for the ResNet backbone: `imagenet` (Keras' download and cache), a local
`.weights.h5`, or `none`. Failing offline takes seconds and says what to do instead."""
from __future__ import annotations

from pathlib import Path

import keras

from gz_experiments.config import ConfigError
from gz_experiments.errors import GzError
from gz_experiments.models import BACKBONE

# Keras' own file for ResNet50 without top (keras/src/applications/resnet.py), so its cache is shared.
IMAGENET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
IMAGENET_HASH = "4d473c1dd8becc155b73f8504c6f6626"


class WeightsError(GzError, RuntimeError):
    """Pretrained weights cannot be had; the message says how to get them or what to pass."""


def imagenet_file() -> Path:
    try:
        return Path(keras.utils.get_file(Path(IMAGENET_URL).name, IMAGENET_URL,
                                         cache_subdir="models", file_hash=IMAGENET_HASH))
    except Exception as error:   # urllib/HTTP/hash errors all mean the same to the user
        raise WeightsError(
            f"could not download ImageNet weights for ResNet50 ({type(error).__name__}: {error}). "
            f"Either run once with internet access so Keras caches {Path(IMAGENET_URL).name} in "
            f"~/.keras/models, copy that file there, pass weights=/path/to/resnet50.weights.h5, "
            f"or train from scratch with weights=none") from None


def resolve(weights: str | None) -> Path | None:
    """The weights file to load, found (or downloaded) before any data work so a bad value or an
    offline machine fails within seconds; None trains from scratch."""
    if weights in ("none", "", None):
        return None
    path = imagenet_file() if weights == "imagenet" else Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"weights={weights!r}: no such file; pass imagenet, none or a .weights.h5 path")
    return path


def load_pretrained(model: keras.Model, path: Path | None) -> None:
    """Load a backbone's weights file (from `resolve`) into the model."""
    if path is None:
        return
    try:
        model.get_layer(BACKBONE).load_weights(str(path))
    except ValueError as error:
        if "No such layer" in str(error):
            raise ConfigError(f"weights={str(path)!r} only applies to the resnet architecture") from None
        raise WeightsError(f"{path} does not fit ResNet50 without top: {error}") from None
