"""What the registry holds for each model: everything that differs between models, in one record.

Nothing here imports Keras: configuration imports the registry to know each model's fields and
smallest input, and a bad parameter must fail before TensorFlow loads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


def no_pretrained_weights(body_config) -> None:
    return None


@dataclass(frozen=True)
class Architecture:
    """A whole model. Its body and weight loading import Keras themselves when called."""
    name: str
    # A frozen dataclass of the parameters only this model reads (e.g. `weights`); users set them by
    # their flat names, and runs log only the chosen model's.
    config: type
    # (body config) -> the smallest image_size the body takes: pure Python, checked at validation.
    minimum_input_size: Callable[[Any], int]
    # (image tensor in [0, 1], body config) -> a feature vector for the shared dense head.
    body: Callable[[Any, Any], Any]
    # The head's order inside each hidden layer: the report's CNNs put dropout before each dense
    # layer, its ResNet dense then dropout.
    dropout_before_dense: bool = True
    # (body config) -> what `load_weights` needs (e.g. a file, found or downloaded), or None. Called
    # before any data work, so an unreachable download fails within seconds.
    prepare_weights: Callable[[Any], Any] = no_pretrained_weights
    # (built keras model, what prepare_weights returned) -> None; only called with a non-None value.
    load_weights: Callable[[Any, Any], None] | None = None
