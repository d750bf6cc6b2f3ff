"""The floor every comparison needs: predict the training split's mean vote fractions."""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from gz_experiments import tracking, tree
from gz_experiments.config import TrainConfig
from gz_experiments.data.dataset import resolve_data_dir
from gz_experiments.data.source import open_source
from gz_experiments.data.split import SPLITS, split_ids
from gz_experiments.predictor import score


def baseline(config: TrainConfig) -> dict[str, float]:
    """Same split as `train` for the same data_dir, n_* and split_seed; decodes no image."""
    with tracking.run(run_name="baseline", tags={"approach": "baseline"}):
        data = config.data
        tracking.log_params({"approach": "baseline", "data_dir": data.data_dir, "n_train": data.n_train,
                             "n_val": data.n_val, "n_test": data.n_test, "split_seed": data.split_seed})
        source = open_source(resolve_data_dir(data))   # the data set `train` uses (see prepare)
        ids = split_ids(source.labels.index, data.n_train, data.n_val, data.n_test, data.split_seed, str(source.root))
        labels = {name: source.labels.loc[ids[name]].to_numpy(np.float64) for name in SPLITS}
        mean = labels["train"].mean(axis=0)
        metrics = {**score(labels["test"], np.broadcast_to(mean, labels["test"].shape)),
                   "val_rmse": score(labels["val"], np.broadcast_to(mean, labels["val"].shape))["test_rmse"]}
        mlflow.log_params({"data_path": str(source.root), "labels_hash": source.labels_hash[:16]})
        mlflow.log_metrics(metrics)
        frame = pd.DataFrame([(int(i), n) for n in SPLITS for i in ids[n]], columns=[tree.ID_COLUMN, "split"])
        tracking.log_frame(frame, "split.csv")
        return metrics
