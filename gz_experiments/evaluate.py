"""Score a logged model on any competition-layout folder: overall and per-question RMSE."""
from __future__ import annotations

import mlflow
import numpy as np

from gz_experiments import datasets, experiment, metric_groups, tracking
from gz_experiments.data.cache import load_or_build
from gz_experiments.data.source import open_source
from gz_experiments.serving import load_predictor
from gz_experiments.scoring import evaluate_split


def evaluate(model_uri: str, data_dir: str, tta: bool = True, skip_bad_images: bool = False,
             progress: bool = True) -> dict[str, float]:
    """Every labelled galaxy in `data_dir`, preprocessed as the model was trained."""
    with tracking.run(run_name="evaluate", tags={"approach": "evaluate"}, experiment_id=experiment.use()):
        tracking.log_params({"model_uri": model_uri, "data_dir": data_dir, "tta": tta})
        predictor = load_predictor(model_uri)
        source = open_source(data_dir)
        ids = np.sort(source.labels.index.to_numpy())
        cached = load_or_build(source.images, ids, predictor.image_size, predictor.crop, skip_bad_images, progress)
        good = np.array([int(i) not in cached.bad for i in cached.ids], dtype=bool)
        images = cached.images if good.all() else np.asarray(cached.images[good])
        labels = source.labels.loc[cached.ids[good]].to_numpy(np.float32)
        metrics = evaluate_split(predictor, images, labels, tta)
        mlflow.log_params({"n_evaluated": int(good.sum()), "image_size": predictor.image_size,
                           "crop": predictor.crop or "none"})
        mlflow.log_metrics(metric_groups.grouped(metrics))
        datasets.log_scored(source, cached.ids[good], data_dir)
        return metrics
