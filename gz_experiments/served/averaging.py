"""The ensemble's predictor: the plain mean of its members' predictions, each member seeing the
images through its own crop and input size (and its own 8-view average under `tta`).

Averaging keeps valid vote fractions valid. The Galaxy Zoo constraints — every fraction in [0, 1],
a question's answers summing to the fraction that reached it (its parent answer's column, or 1) —
are bounds and linear equalities, and every member's output on the same image satisfies them when
it ends in the decision-tree layer; a convex combination (weights ≥ 0 summing to 1, here 1/n each)
of points satisfying linear equalities and bounds satisfies them too. Sigmoid members don't obey
the tree, and their mean doesn't either: averaging adds no violation, it repairs none.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

import numpy as np
import pandas as pd

from gz_experiments import tree
from gz_experiments.data.images import ImageError
from gz_experiments.served.inputs import Spec, decode, pack, stack


class AveragingPredictor:
    """The `Predictor` API (`inputs`, `predict_images`, `predict_jpegs`, pyfunc `predict`) over members."""

    def __init__(self, members: list):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)

    @property
    def inputs(self) -> tuple[Spec, ...]:
        """Each distinct preprocessing its members need, in the members' order."""
        return tuple(dict.fromkeys(spec for member in self.members for spec in member.inputs))

    @property
    def batch_size(self) -> int:
        return self.members[0].batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        for member in self.members:
            member.batch_size = value

    def member_predictions(self, frames, tta: bool = False) -> list[np.ndarray]:
        """Each member's (n, 37) prediction; `frames` is {spec: uint8 frames} (or one array when
        every member shares one preprocessing)."""
        by_spec = frames if isinstance(frames, Mapping) else {self.inputs[0]: frames}
        return [np.asarray(member.predict_images(pack(member, by_spec), tta=tta), np.float32)
                for member in self.members]

    def predict_images(self, frames, tta: bool = False) -> np.ndarray:
        """The members' mean: a convex combination, so tree-valid members give tree-valid output."""
        return np.mean(self.member_predictions(frames, tta), axis=0, dtype=np.float64).astype(np.float32)

    def predict_jpegs(self, jpegs: list[bytes], tta: bool = False) -> np.ndarray:
        return self.predict_images(stack(self, [decode(self, jpeg) for jpeg in jpegs]), tta=tta)

    # MLflow pyfunc interface: the same input (column `image`, base64 JPEGs) and output as a member's.
    def predict(self, model_input, params=None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "image" not in frame.columns:
            raise ValueError("input needs a column 'image' holding base64-encoded JPEG files")
        tta = bool((params or {}).get("tta", False))
        decoded = [_request_frames(self, row, value) for row, value in enumerate(frame["image"])]
        predictions = self.predict_images(stack(self, decoded), tta=tta)
        return pd.DataFrame(predictions, columns=list(tree.CLASS_COLUMNS))


def _request_frames(predictor, row: int, value) -> list[np.ndarray]:
    """One served image, preprocessed for each input; a bad one is the client's error (HTTP 400)
    naming its row, as a single model says it."""
    from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException
    try:
        jpeg = base64.b64decode(value, validate=True) if isinstance(value, str) else bytes(value)
        return decode(predictor, jpeg)
    except (ImageError, binascii.Error, TypeError) as error:
        raise MlflowException(f"row {row} of 'image': {error}; send base64-encoded 424×424 RGB JPEG files",
                              INVALID_PARAMETER_VALUE) from None
