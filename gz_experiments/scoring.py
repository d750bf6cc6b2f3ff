"""Scores under the project's metric names: what training, `evaluate`, sweeps and the baseline report.

`{prefix}` is the overall RMSE (the competition's metric), `{prefix}_q1` … `{prefix}_q11` one per
question of the decision tree, and `{prefix}_tta` the same over the 8 dihedral views.
"""
from __future__ import annotations

import numpy as np

from gz_experiments import tree


def score(labels: np.ndarray, predictions: np.ndarray, prefix: str = "test_rmse") -> dict[str, float]:
    """Overall RMSE and one per question: `{prefix}`, `{prefix}_q1`…"""
    overall = float(np.sqrt(np.mean((np.asarray(labels, np.float64) - predictions) ** 2)))
    return {prefix: overall, **{f"{prefix}_{q}": v for q, v in tree.per_question_rmse(labels, predictions).items()}}


def evaluate_split(predictor, images: np.ndarray, labels: np.ndarray, tta: bool,
                   prefix: str = "test_rmse") -> dict[str, float]:
    """A `Predictor`'s scores on preprocessed uint8 frames; with `tta` also the 8-view average's."""
    metrics = score(labels, predictor.predict_images(images), prefix)
    if tta:
        metrics.update(score(labels, predictor.predict_images(images, tta=True), f"{prefix}_tta"))
    return metrics
