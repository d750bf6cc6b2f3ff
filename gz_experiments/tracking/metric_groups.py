"""Metric names as a person reads a run's page in the MLflow UI.

MLflow 3.17's UI puts a chart in the section named by its metric's prefix before `/`, named
sections before the unprefixed "Model metrics". So every training metric is unprefixed and logged
once: the per-epoch curves (`train_loss`, `train_rmse`, `val_loss`, `val_rmse`, step = epoch), the
single values (`test_rmse`, `test_rmse_tta`, `best_val_rmse`, …), and the per-question RMSE as one
metric per score with step = question (`test_rmse_by_question`, steps 1…11: one chart in question
order, instead of 11 one-bar charts sorted q1, q10, q11, q2…). Its history is where the report reads
the per-question numbers back.
"""
from __future__ import annotations

import re

BY_QUESTION = "_by_question"
_PER_QUESTION = re.compile(r"^(?P<score>.+)_q(?P<question>\d+)$")
TEST_SCORES = ("test_rmse", "test_rmse_tta")


def split_questions(metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
    """({single values}, {`<score>_by_question`: {question: value}}) from `test_rmse_q3`-style names."""
    single, by_question = {}, {}
    for name, value in metrics.items():
        match = _PER_QUESTION.match(name)
        if match:
            by_question.setdefault(match["score"] + BY_QUESTION, {})[int(match["question"])] = value
        else:
            single[name] = value
    return single, by_question


def is_test_score(name: str) -> bool:
    """A score measured on the test split (tied to that dataset and the model in MLflow)."""
    return name in TEST_SCORES


def question_metrics(name: str, history) -> dict[str, float]:
    """`test_rmse_by_question`'s history back as {`test_rmse_q1`: …} (the scorer's names)."""
    score = name.removesuffix(BY_QUESTION)
    return {f"{score}_q{m.step}": m.value for m in sorted(history, key=lambda m: m.step)}
