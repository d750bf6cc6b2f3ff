"""The Galaxy Zoo 2 decision tree: the one place that knows questions, answers, columns and parents.

Each label column is the fraction of *all* volunteers who gave that answer, so the answers of a
question sum to the fraction that reached the question (its parent answer), not to 1
(Willett et al. 2013; Dieleman et al. 2015, section 4.2).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Question:
    number: int
    text: str
    answers: tuple[str, ...]
    parent: str | None  # the column whose fraction reached this question; None = everyone

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"Class{self.number}.{i + 1}" for i in range(len(self.answers)))


QUESTIONS: tuple[Question, ...] = (
    Question(1, "Smooth, or features/disk?", ("smooth", "features or disk", "star or artefact"), None),
    Question(2, "Edge-on disk?", ("yes", "no"), "Class1.2"),
    Question(3, "Bar through the centre?", ("yes", "no"), "Class2.2"),
    Question(4, "Spiral arms?", ("yes", "no"), "Class2.2"),
    Question(5, "Bulge prominence?", ("none", "just noticeable", "obvious", "dominant"), "Class2.2"),
    # Question 6 is asked of everyone in the data set's normalisation, although the live tree
    # reaches it from the end of every branch: its answers sum to 1 in the CSV.
    Question(6, "Anything odd?", ("yes", "no"), None),
    Question(7, "How rounded?", ("completely round", "in between", "cigar-shaped"), "Class1.1"),
    Question(8, "Odd feature?", ("ring", "lens or arc", "disturbed", "irregular", "other", "merger",
                                 "dust lane"), "Class6.1"),
    Question(9, "Bulge shape (edge-on)?", ("rounded", "boxy", "no bulge"), "Class2.1"),
    Question(10, "Arm winding?", ("tight", "medium", "loose"), "Class4.1"),
    Question(11, "Number of arms?", ("1", "2", "3", "4", "more than four", "can't tell"), "Class4.1"),
)

CLASS_COLUMNS: tuple[str, ...] = tuple(c for q in QUESTIONS for c in q.columns)
ID_COLUMN = "GalaxyID"
LABELS_HEADER: tuple[str, ...] = (ID_COLUMN, *CLASS_COLUMNS)
N_OUTPUTS = len(CLASS_COLUMNS)  # 37


def column_index(column: str) -> int:
    return CLASS_COLUMNS.index(column)


def question_slices() -> list[slice]:
    """Column range of each question, in question order."""
    slices, start = [], 0
    for q in QUESTIONS:
        slices.append(slice(start, start + len(q.answers)))
        start += len(q.answers)
    return slices


def parent_indices() -> list[int | None]:
    """Column index of each question's parent answer (None: the question is asked of everyone)."""
    return [None if q.parent is None else column_index(q.parent) for q in QUESTIONS]


def topological_order() -> list[int]:
    """Question indices ordered so that every parent answer is computed before its children."""
    order, done = [], set()
    parents = parent_indices()
    slices = question_slices()
    while len(order) < len(QUESTIONS):
        for i, p in enumerate(parents):
            if i in done:
                continue
            if p is None or any(slices[j].start <= p < slices[j].stop for j in done):
                order.append(i)
                done.add(i)
    return order


def reach_fractions(labels: np.ndarray) -> np.ndarray:
    """Fraction that reached each question, shape (n, 11): 1 or the parent answer's column."""
    labels = np.asarray(labels)
    cols = [np.ones(len(labels)) if p is None else labels[:, p] for p in parent_indices()]
    return np.stack(cols, axis=1)


def constraint_violation(labels: np.ndarray) -> np.ndarray:
    """|sum of a question's answers - fraction that reached it|, shape (n, 11)."""
    labels = np.asarray(labels, dtype=np.float64)
    sums = np.stack([labels[:, s].sum(axis=1) for s in question_slices()], axis=1)
    return np.abs(sums - reach_fractions(labels))


def per_question_rmse(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE over each question's columns: `test_rmse_q1` … `test_rmse_q11` use these keys."""
    err = (np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)) ** 2
    return {f"q{q.number}": float(np.sqrt(err[:, s].mean())) for q, s in zip(QUESTIONS, question_slices())}
