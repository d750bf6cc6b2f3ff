"""Score a logged model on any competition-layout folder: overall and per-question RMSE."""
from __future__ import annotations

from dataclasses import dataclass

from gz_experiments.options import option


@dataclass(frozen=True)
class EvaluateOptions:
    """Score a logged model on every labelled galaxy of a folder."""
    model_uri: str = option(help="models:/<model_id> (printed by training), runs:/<run id>/model, "
                                    "models:/<name>/<version>, models:/<name>@champion or a folder")
    data_dir: str = option(help="a competition-layout folder (CSV + images, or their zips)")
    tta: bool = option(True, "also test_rmse_tta: the mean over 8 dihedral views")
    skip_bad_images: bool = option(False, "leave unreadable images out (listed) instead of stopping")


def run(options: EvaluateOptions) -> None:
    """`gz-experiments evaluate`: once the places results go are writable; prints the scores."""
    from gz_experiments.commands import print_metrics
    from gz_experiments.tracking.preflight import check_writable_places
    check_writable_places(None)
    print_metrics(evaluate(options.model_uri, options.data_dir, options.tta, options.skip_bad_images))


def evaluate(model_uri: str, data_dir: str, tta: bool = True, skip_bad_images: bool = False,
             progress: bool = True) -> dict[str, float]:
    """Every labelled galaxy in `data_dir`, preprocessed as the model was trained. The folder and the
    model are checked before the run starts: a wrong one leaves no FAILED run behind."""
    import numpy as np

    from gz_experiments.data.source import open_source
    from gz_experiments.scoring import evaluate_split
    from gz_experiments.served import inputs
    from gz_experiments.served.serving import load_predictor
    from gz_experiments.tracking.recorder import recording
    source = open_source(data_dir)
    predictor = load_predictor(model_uri)
    with recording("evaluate", {"approach": "evaluate"}) as rec:
        rec.params({"model_uri": model_uri, "data_dir": data_dir, "tta": tta})
        ids = np.sort(source.labels.index.to_numpy())
        good_ids, frames = inputs.load_cached(predictor, source.images, ids, skip_bad_images, progress)
        labels = source.labels.loc[good_ids].to_numpy(np.float32)
        metrics = evaluate_split(predictor, frames, labels, tta)
        rec.params({"n_evaluated": len(good_ids), **inputs.describe(predictor)})
        rec.scored(source, good_ids)
        rec.results(metrics)
        return metrics
