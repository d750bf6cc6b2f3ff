"""The report's protocol: a seeded random subset split into train/val/test."""
from __future__ import annotations

import numpy as np

from gz_experiments.data.source import DataError

SPLITS = ("train", "val", "test")


def split_ids(ids, n_train: int | None, n_val: int, n_test: int, seed: int, where: str = "") -> dict[str, np.ndarray]:
    """Test and val are drawn first, so changing n_train never changes what a run is scored on.

    `n_train=None` ("all") takes every galaxy left after val and test.
    """
    ids = np.sort(np.asarray(list(ids), dtype=np.int64))
    available = len(ids) - n_val - n_test
    asked = "all (at least 1)" if n_train is None else n_train
    if n_train is None:
        n_train = available
    if n_train < 1 or n_train > available:
        # n_train=all helps only when n_train was the one too large
        advice = " or use n_train=all" if available >= 1 and asked != "all (at least 1)" else ""
        raise DataError(f"{where or 'the data'} has {len(ids)} galaxies, too few for n_train={asked} + "
                        f"n_val={n_val} + n_test={n_test} = {max(n_train, 1) + n_val + n_test}; lower them "
                        f"(at most {max(available, 0)} left for training){advice}")
    order = np.random.default_rng(seed).permutation(ids)
    return {
        "test": order[:n_test],
        "val": order[n_test:n_test + n_val],
        "train": order[n_test + n_val:n_test + n_val + n_train],
    }
