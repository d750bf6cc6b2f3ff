"""A trained network together with the preprocessing it was trained with: what evaluation,
`predict` and the served MLflow model all use, so they can't drift apart."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from gz_experiments import tree
from gz_experiments.data.images import ImageError, preprocess
from gz_experiments.data.pipeline import to_model_input


def dihedral_views(images: np.ndarray):
    """The 8 rotations by 90° and flips of a (n, h, w, c) batch: galaxies have no 'up'."""
    for flipped in (images, images[:, :, ::-1]):
        for k in range(4):
            yield np.rot90(flipped, k, axes=(1, 2))


@dataclass
class Predictor:
    model: keras.Model
    image_size: int
    crop: int | None
    batch_size: int = 256

    @property
    def inputs(self) -> tuple[tuple[int, int | None], ...]:
        """The one preprocessing it needs (an ensemble may need several; see `gz_experiments.served.inputs`)."""
        return ((self.image_size, self.crop),)

    def predict_images(self, images_uint8: np.ndarray, tta: bool = False) -> np.ndarray:
        """(n, 37) vote fractions for preprocessed uint8 frames; `tta` averages the 8 views."""
        views = dihedral_views(images_uint8) if tta else [images_uint8]
        total = None
        for view in views:
            out = self._predict(np.ascontiguousarray(view))
            total = out if total is None else total + out
        return total / (8 if tta else 1)

    def _predict(self, images_uint8: np.ndarray) -> np.ndarray:
        # Under MirroredStrategy, predict_on_batch hands every replica the whole batch and returns
        # each replica's copy; `predict` splits the batch across them instead.
        mirrored = self.model.distribute_strategy.num_replicas_in_sync > 1
        predict = (lambda x: self.model.predict(x, batch_size=self.batch_size, verbose=0)) if mirrored \
            else self.model.predict_on_batch
        outputs = [predict(to_model_input(images_uint8[i:i + self.batch_size]))
                   for i in range(0, len(images_uint8), self.batch_size)]
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in outputs]) if outputs else \
            np.zeros((0, tree.N_OUTPUTS), np.float32)

    def predict_jpegs(self, jpegs: list[bytes], tta: bool = False) -> np.ndarray:
        frames = np.stack([preprocess(j, self.image_size, self.crop) for j in jpegs]) if jpegs else \
            np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
        return self.predict_images(frames, tta=tta)

    # MLflow pyfunc interface: a DataFrame with a column `image` of base64 JPEGs.
    def predict(self, model_input, params=None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "image" not in frame.columns:
            raise ValueError("input needs a column 'image' holding base64-encoded JPEG files")
        tta = bool((params or {}).get("tta", False))
        frames = [self._request_frame(row, value) for row, value in enumerate(frame["image"])]
        images = np.stack(frames) if frames else np.zeros((0, self.image_size, self.image_size, 3), np.uint8)
        return pd.DataFrame(self.predict_images(images, tta=tta), columns=list(tree.CLASS_COLUMNS))

    def _request_frame(self, row: int, value) -> np.ndarray:
        """One served image; a bad one is the client's error (HTTP 400) naming its row, not a 500."""
        from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException
        try:
            jpeg = base64.b64decode(value, validate=True) if isinstance(value, str) else bytes(value)
            return preprocess(jpeg, self.image_size, self.crop)
        except (ImageError, binascii.Error, TypeError) as error:
            raise MlflowException(f"row {row} of 'image': {error}; send base64-encoded 424×424 RGB JPEG files",
                                  INVALID_PARAMETER_VALUE) from None

