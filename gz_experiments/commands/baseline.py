"""The floor every comparison needs: predict the training split's mean vote fractions."""
from __future__ import annotations

import numpy as np

from gz_experiments.config import TrainConfig, override
from gz_experiments.data.dataset import select, split_frame, with_data_folder
from gz_experiments.scoring import score
from gz_experiments.tracking.recorder import recording

SPLIT_PARAMS = ("n_train", "n_val", "n_test", "split_seed")


def run(tokens: list[str]) -> None:
    """`gz-experiments baseline [key=value …]`: training's parameters (cnn_cropped's defaults) choose
    the data and split; prints the scores."""
    import experiments
    from gz_experiments.commands import print_metrics
    from gz_experiments.options import parse_overrides
    from gz_experiments.tracking.preflight import check_writable_places
    config = override(experiments.load("cnn_cropped").CONFIG, parse_overrides(tokens))
    check_writable_places(config.tracking.experiment)
    print_metrics(baseline(with_data_folder(config)))


def baseline(config: TrainConfig) -> dict[str, float]:
    """Same split as `train` for the same data_dir, n_* and split_seed; decodes no image."""
    with recording("baseline", {"approach": "baseline"}, experiment_name=config.tracking.experiment) as rec:
        data = config.data
        rec.params({"approach": "baseline", "data_dir": data.data_dir, "n_train": data.n_train or "all",
                    "n_val": data.n_val, "n_test": data.n_test, "split_seed": data.split_seed})
        selection = select(data)   # the data set and split `train` uses
        mean = selection.labels("train").astype(np.float64).mean(axis=0)
        test, val = selection.labels("test"), selection.labels("val")
        metrics = {**score(test, np.broadcast_to(mean, test.shape)),
                   # a single value, not a one-point per-epoch val_rmse curve beside the trained runs
                   "best_val_rmse": score(val, np.broadcast_to(mean, val.shape))["test_rmse"]}
        rec.params({"data_path": str(selection.source.root), "labels_hash": selection.source.labels_hash[:16]})
        rec.splits(selection.source, selection.ids)
        rec.results(metrics)
        rec.name_training(config, _split_defaults(config), "baseline", keys=set(SPLIT_PARAMS))
        rec.describe_baseline(config, {name: len(ids) for name, ids in selection.ids.items()}, metrics)
        rec.table(split_frame(selection.ids), "split.csv")
        return metrics


def _split_defaults(config: TrainConfig) -> TrainConfig:
    """The split training uses by default: the baseline's name shows where its split departs from it."""
    from dataclasses import replace

    from gz_experiments.config import DataConfig
    fresh = DataConfig()
    return replace(config, data=replace(config.data, **{k: getattr(fresh, k) for k in SPLIT_PARAMS}))
