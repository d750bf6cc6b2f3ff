"""The report's figures for every run: learning curves (figures 4–7) and input samples (1–3)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

if TYPE_CHECKING:
    from gz_experiments.config import TrainConfig
    from gz_experiments.data.dataset import PreparedData

matplotlib.use("Agg")   # no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curves(history: dict[str, list[float]], title: str):
    """Loss and RMSE per epoch, train against val."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for axis, key, label in ((axes[0], "loss", "loss (MSE)"), (axes[1], "rmse", "RMSE")):
        axis.plot(epochs, history.get(key, []), "o-", label="train")
        axis.plot(epochs, history.get(f"val_{key}", []), "o-", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return figure


def input_samples(rows: dict[str, np.ndarray], title: str):
    """One row of images per stage (as loaded, cropped/resized, augmented), uint8 or [0, 1]."""
    n = max(len(images) for images in rows.values())
    figure, axes = plt.subplots(len(rows), n, figsize=(2 * n, 2.1 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n):
            axis = axes[r][c]
            axis.axis("off")
            if c < len(images):
                axis.imshow(np.clip(images[c], 0, 255 if images[c].dtype == np.uint8 else 1))
        axes[r][0].set_title(label, loc="left", fontsize=9)
    figure.suptitle(title)
    return figure


def training_samples(data: PreparedData, config: TrainConfig, n: int = 6):
    """Figures 1–3 for a run: its first training images as loaded, cropped and resized, and augmented."""
    ids, frames = data.train.ids[:n], data.train.images[:n]
    rows = {"as loaded (424²)": list(data.source.images.as_loaded(ids)),
            f"crop {config.data.crop or 'none'} → {config.data.image_size}²": list(frames)}
    if config.data.augment is not None:
        rows["augmented"] = list(_augmented(np.asarray(frames), config.data.augment, config.seed))
    return input_samples(rows, f"{config.approach}: training images")


def _augmented(frames: np.ndarray, augment, seed: int) -> np.ndarray:
    # Imported here: the sweep report uses this module's plots without TensorFlow.
    import tensorflow as tf

    from gz_experiments.data.pipeline import augment_batch
    return augment_batch(tf.constant(frames), augment, tf.random.Generator.from_seed(seed)).numpy()
