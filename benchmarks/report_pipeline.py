"""The report's input pipeline, rebuilt for the benchmark: Keras' `ImageDataGenerator` with the
report's augmentation and rescaling, `flow_from_dataframe` decoding every JPEG on every epoch.

The report does not say how it cropped 424² → 250² before resizing to 70². `flow_from_dataframe`
resizes as it loads (to `target_size`, nearest neighbour, Keras' default) and its only per-image
hook, `preprocessing_function`, runs after the augmentation and may not change the shape. So the
crop here takes the central 250/424 of the augmented 70² frame and resizes it back to 70²: the
same region, at the least cost any reading of the report allows — it never makes the report's
pipeline look slower than it was.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from gz_experiments.data.images import FRAME
from gz_experiments.data.source import DataError, ImageStore

# The report's generator, word for word (section 2.2).
REPORT_AUGMENTATION = dict(rescale=1. / 255, rotation_range=40, width_shift_range=0.2, height_shift_range=0.2,
                           shear_range=0.2, zoom_range=0.2, horizontal_flip=True)


def central_crop(image_size: int, crop: int, frame: int = FRAME):
    """A `preprocessing_function`: keep the central crop/frame of the image, resized back."""
    margin = image_size * (1 - crop / frame) / 2
    box = (margin, margin, image_size - margin, image_size - margin)

    def crop_and_resize(x: np.ndarray) -> np.ndarray:
        image = Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))
        return np.asarray(image.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box),
                          dtype=x.dtype)
    return crop_and_resize


def report_flow(store: ImageStore, ids, labels: np.ndarray, image_size: int, crop: int | None,
                batch_size: int, seed: int = 0, min_batches: int = 1):
    """A `DataFrameIterator` over the images of `ids` with the report's augmentation.

    The frame is repeated when it holds fewer than `min_batches` batches, so a measurement on a
    tiny data set never runs out of data mid-epoch (Keras would stop the fit early).
    """
    import tensorflow as tf
    if not store.folder.is_dir():
        raise DataError(f"the report's pipeline reads image files, and {store.folder} is not a folder; "
                        f"unpack {store.zip_path.name} next to it and run again")
    columns = [f"y{i}" for i in range(labels.shape[1])]
    frame = pd.DataFrame(np.asarray(labels, dtype=np.float32), columns=columns)
    frame.insert(0, "filename", [f"{int(i)}.jpg" for i in ids])
    repeats = max(1, -(-min_batches * batch_size // len(frame)))
    frame = pd.concat([frame] * repeats, ignore_index=True)
    generator = tf.keras.preprocessing.image.ImageDataGenerator(
        **REPORT_AUGMENTATION, preprocessing_function=central_crop(image_size, crop) if crop else None)
    return generator.flow_from_dataframe(
        frame, directory=str(store.folder), x_col="filename", y_col=columns, class_mode="raw",
        target_size=(image_size, image_size), batch_size=batch_size, shuffle=True, seed=seed)
