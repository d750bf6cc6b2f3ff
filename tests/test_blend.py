"""Blend weights: convex, fitted on validation, and no worse than the best member or the mean."""
from __future__ import annotations

import numpy as np

from gz_experiments.ensemble.blend import fit_convex_weights, project_to_simplex


def mse(prediction, labels):
    return float(np.mean((prediction - labels) ** 2))


def test_projection_lands_on_the_simplex_and_keeps_points_already_there():
    rng = np.random.default_rng(0)
    for vector in rng.normal(size=(20, 5)):
        projected = project_to_simplex(vector)
        assert projected.min() >= 0 and abs(projected.sum() - 1) < 1e-12
    np.testing.assert_allclose(project_to_simplex(np.array([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5])


def test_fitted_weights_beat_the_mean_and_every_member_and_find_a_useless_one():
    rng = np.random.default_rng(1)
    labels = rng.random((500, 37))
    good, other = labels + rng.normal(0, 0.05, labels.shape), labels + rng.normal(0, 0.07, labels.shape)
    useless = rng.random(labels.shape)
    members = [good, other, useless]
    weights = fit_convex_weights(members, labels)
    assert weights.min() >= 0 and abs(weights.sum() - 1) < 1e-9
    assert weights[2] < 0.02 and weights[0] > weights[1] > 0.2   # independent errors: both good ones count
    blend = sum(w * p for w, p in zip(weights, members))
    assert mse(blend, labels) < min(mse(p, labels) for p in members)
    assert mse(blend, labels) < mse(np.mean(members, axis=0), labels)
    # two independent errors of variance a, b: the optimum weighs them b/(a+b), a/(a+b)
    np.testing.assert_allclose(weights[0] / (weights[0] + weights[1]), 0.07 ** 2 / (0.05 ** 2 + 0.07 ** 2), atol=0.03)
