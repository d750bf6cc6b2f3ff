"""The floor every comparison needs: predict the training split's mean vote fractions."""
from __future__ import annotations

import mlflow
import numpy as np

from gz_experiments.tracking import datasets, experiment, metric_groups, run_notes
from gz_experiments.tracking import runs as tracking
from gz_experiments.config import TrainConfig
from gz_experiments.data.dataset import select, split_frame
from gz_experiments.scoring import score


def baseline(config: TrainConfig) -> dict[str, float]:
    """Same split as `train` for the same data_dir, n_* and seed; decodes no image."""
    with tracking.run(run_name="baseline", tags={"approach": "baseline"},
                      experiment_id=experiment.use(config.tracking.experiment)):
        data = config.data
        tracking.log_params({"approach": "baseline", "data_dir": data.data_dir, "n_train": data.n_train or "all",
                             "n_val": data.n_val, "n_test": data.n_test, "split_seed": data.split_seed})
        selection = select(data)   # the data set and split `train` uses
        mean = selection.labels("train").astype(np.float64).mean(axis=0)
        test, val = selection.labels("test"), selection.labels("val")
        metrics = {**score(test, np.broadcast_to(mean, test.shape)),
                   # a single value, not a one-point per-epoch val_rmse curve beside the trained runs
                   "best_val_rmse": score(val, np.broadcast_to(mean, val.shape))["test_rmse"]}
        mlflow.log_params({"data_path": str(selection.source.root),
                           "labels_hash": selection.source.labels_hash[:16]})
        mlflow.log_metrics(metric_groups.grouped(metrics))
        datasets.log_splits(selection.source, selection.ids, data.data_dir)
        run_notes.name_run(config, "baseline", keys={"n_train", "n_val", "n_test", "split_seed"})
        run_notes.describe_baseline(config, {name: len(ids) for name, ids in selection.ids.items()}, metrics)
        tracking.log_frame(split_frame(selection.ids), "split.csv")
        return metrics
