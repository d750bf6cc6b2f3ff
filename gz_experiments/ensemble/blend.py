"""Blend weights for an ensemble: the convex combination of the members' predictions with the
lowest squared error on the validation split.

Convex (weights ≥ 0, summing to 1) because that keeps the Galaxy Zoo constraints: a blend of
tree-valid predictions is tree-valid (see `averaging`). Fitted on validation, never on test, so the
test split still measures the ensemble honestly. With K members the problem is a K-dimensional
quadratic over the simplex: projected gradient descent solves it exactly enough in milliseconds.
"""
from __future__ import annotations

import numpy as np


def fit_convex_weights(predictions: list[np.ndarray], labels: np.ndarray, steps: int = 5000) -> np.ndarray:
    """Weights w on the simplex minimising mean((Σ w_k P_k − labels)²)."""
    flat = np.stack([np.asarray(p, np.float64).ravel() for p in predictions])   # (K, n·37)
    target = np.asarray(labels, np.float64).ravel()
    gram, corr = flat @ flat.T / target.size, flat @ target / target.size
    weights = np.full(len(predictions), 1.0 / len(predictions))
    step = 1.0 / max(np.linalg.eigvalsh(gram).max(), 1e-12) / 2   # 1/L for the gradient 2(Gw − c)
    for _ in range(steps):
        weights = project_to_simplex(weights - step * 2 * (gram @ weights - corr))
    return weights


def project_to_simplex(vector: np.ndarray) -> np.ndarray:
    """The closest point with non-negative entries summing to 1 (Duchi et al. 2008)."""
    ordered = np.sort(vector)[::-1]
    cumulative = np.cumsum(ordered) - 1
    rho = np.nonzero(ordered - cumulative / np.arange(1, len(vector) + 1) > 0)[0][-1]
    return np.maximum(vector - cumulative[rho] / (rho + 1), 0)
