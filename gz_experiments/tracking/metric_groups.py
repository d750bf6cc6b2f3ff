"""Metric names as a person reads a run's page in the MLflow UI.

MLflow 3.17's UI puts a chart in the section named by its metric's prefix before `/`; it shows the
named sections sorted by name, then the unprefixed metrics ("Model metrics"), then "System metrics"
(mlflow/server/js: `getBaseChartAndSectionConfigs`). So the per-epoch curves are also logged as
`per_epoch/<name>` (sorted first), the per-question RMSE only as `per_question/<name>` (second), and
the names searches rely on (`train_rmse`, `val_rmse`, `test_rmse`, `best_val_rmse` …) stay as they were.
"""
from __future__ import annotations

import re

EPOCH_GROUP = "per_epoch"
QUESTION_GROUP = "per_question"
_PER_QUESTION = re.compile(r"_q\d+$")


def per_epoch(metrics: dict[str, float]) -> dict[str, float]:
    """One epoch's metrics under their stable names and again in the section shown first."""
    return {**metrics, **{f"{EPOCH_GROUP}/{name}": value for name, value in metrics.items()}}


def grouped(metrics: dict[str, float]) -> dict[str, float]:
    """Single-value metrics with the per-question RMSE (`test_rmse_q1` …) moved into their own section."""
    return {f"{QUESTION_GROUP}/{name}" if _PER_QUESTION.search(name) else name: value
            for name, value in metrics.items()}
