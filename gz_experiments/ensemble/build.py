"""`ensemble(options) -> metrics`: one MLflow run that builds, scores, logs (and registers) the
model averaging its members."""
from __future__ import annotations

import numpy as np

from gz_experiments.served import inputs
from gz_experiments.data.source import open_source
from gz_experiments.ensemble import members as chosen
from gz_experiments.ensemble.blend import fit_convex_weights
from gz_experiments.served import ensemble as ensemble_model
from gz_experiments.served.averaging import AveragingPredictor
from gz_experiments.ensemble.options import EnsembleOptions
from gz_experiments.served.serving import DamagedModelError
from gz_experiments.ensemble.scored_images import TestImages, folder_test_split, members_test_split
from gz_experiments.scoring import score
from gz_experiments.tracking.recorder import Recorder, recording


def command(options: EnsembleOptions) -> None:
    """`gz-experiments ensemble`: once the places results go are writable; prints the scores."""
    from gz_experiments.commands import print_metrics
    from gz_experiments.tracking.preflight import check_writable_places
    check_writable_places(options.experiment)
    print_metrics(ensemble(options))


def ensemble(options: EnsembleOptions, progress: bool = True) -> dict[str, float]:
    """Resolve and check the members before loading any network, then score and log the ensemble."""
    uris = list(options.models) or chosen.best_runs(options.experiment, options.approach, options.top_k,
                                                    options.data_fingerprint)
    members = chosen.resolve(uris)
    images = folder_test_split(options.data_dir, options.split) if options.data_dir else \
        members_test_split(members)
    predictor = AveragingPredictor([_load(member) for member in members])   # before the run, as the rest
    # beside the runs it was chosen from (`mlflow run`'s own run stays where MLflow put it)
    with recording(f"ensemble of {len(members)}", {"approach": "ensemble"},
                   experiment_name=options.experiment) as rec:
        _log_choice(rec, options, members, images)
        fitted = fit_blend(predictor, images, options, progress)
        rec.params({"blend": "fit" if fitted else "mean", "blend_weights": ",".join(f"{w:.4f}" for w in predictor.weights)})
        metrics = {**score_members(predictor, images, options, progress), **fitted}
        model_id = rec.ensemble_model([m.model for m in members], weights=predictor.weights if fitted else None)
        rec.results(metrics)
        rec.describe(_description(options, members, predictor.weights, metrics))
        if options.register:
            rec.register(options.register, metrics["test_rmse"], model_id=model_id)
        return metrics


def _load(member: chosen.Member):
    try:
        return ensemble_model.load_member(member.model)
    except DamagedModelError as error:
        raise chosen.EnsembleError(f"member {member.name}: {error}") from None


def _description(options: EnsembleOptions, members: list[chosen.Member], weights, metrics: dict) -> str:
    listed = "\n".join(f"- {m.name}: weight {w:.3f}" for m, w in zip(members, weights))
    how = ("weights fitted on the members' validation split (convex: the tree's constraints hold)"
           if "val_rmse_blend" in metrics else "equal weights")
    scored = f"data_dir {options.data_dir}" if options.data_dir else "the members' common test split"
    return (f"**Ensemble** of {len(members)} models (each with its own crop, input size and TTA), {how}:\n\n"
            f"{listed}\n\nScored on {scored}: test RMSE **{metrics['test_rmse']:.4f}** "
            f"({metrics['test_rmse_equal_weights']:.4f} with equal weights), the best member "
            f"{metrics['best_member_test_rmse']:.4f} (`member_test_rmse/<i>` each).")


def _log_choice(rec: Recorder, options: EnsembleOptions, members: list[chosen.Member], images: TestImages) -> None:
    runs = [m.run.info.run_id if m.run else "none" for m in members]
    rec.params({
        "members": ",".join(m.model.uri for m in members), "member_run_ids": ",".join(runs),
        "member_names": ",".join(m.run.info.run_name if m.run else m.model.uri for m in members),
        "n_members": len(members), "selection": "models" if options.models else
        f"top {options.top_k} {options.approach} by {chosen.SELECTION_METRIC} in {options.experiment}",
        "tta": options.tta, "scored_on": f"data_dir {options.data_dir}" if options.data_dir else "members' test split",
    })
    rec.params({"data_path": images.data_path, "n_test_used": len(images.ids),
                **({"data_fingerprint": images.fingerprint} if images.fingerprint else {})})
    rec.table(images.split_frame(), "split.csv")


def fit_blend(predictor: AveragingPredictor, images: TestImages, options: EnsembleOptions,
              progress: bool = True) -> dict[str, float]:
    """With blend=fit and a validation split the members share: the convex weights with the lowest
    validation RMSE (with test-time averaging when `tta`) set on `predictor`, and that RMSE beside
    the plain mean's. Otherwise nothing (the plain mean), and the command says why."""
    if options.blend == "mean":
        return {}
    if images.val_ids is None:
        print("ensemble: blend=fit needs the members' common validation split (or data_dir with n_val > 0); "
              "averaging with equal weights")
        return {}
    source = open_source(images.data_path)
    good_ids, frames = inputs.load_cached(predictor, source.images, images.val_ids, options.skip_bad_images, progress)
    labels = source.labels.loc[good_ids].to_numpy(np.float32)
    # fitted on the predictions the headline score uses: with TTA, the members' view-averaged ones
    each = predictor.member_predictions(frames, tta=options.tta)
    predictor.weights = fit_convex_weights(each, labels)
    rmse = lambda prediction: float(np.sqrt(np.mean((prediction - labels) ** 2)))   # noqa: E731
    return {"val_rmse_equal_weights": rmse(np.mean(each, axis=0)), "val_rmse_blend": rmse(predictor.blend(each))}


def score_members(predictor: AveragingPredictor, images: TestImages, options: EnsembleOptions,
                  progress: bool = True) -> dict[str, float]:
    """The ensemble's `test_rmse` (+ `_tta`, + per question; `_equal_weights` for the plain mean) and
    each member's own, on the same images."""
    source = open_source(images.data_path)
    good_ids, frames = inputs.load_cached(predictor, source.images, images.ids, options.skip_bad_images, progress)
    labels = source.labels.loc[good_ids].to_numpy(np.float32)
    metrics = {"n_members": len(predictor.members), "n_scored": len(good_ids)}
    for tta, prefix in ((False, "test_rmse"), (True, "test_rmse_tta"))[:1 + options.tta]:
        each = predictor.member_predictions(frames, tta=tta)
        metrics.update(score(labels, predictor.blend(each), prefix))
        metrics[f"{prefix}_equal_weights"] = score(labels, np.mean(each, axis=0, dtype=np.float64), prefix)[prefix]
        own = [score(labels, prediction, prefix)[prefix] for prediction in each]
        metrics.update({f"member_{prefix}/{i}": value for i, value in enumerate(own)})
        metrics[f"best_member_{prefix}"] = min(own)
        metrics[f"gain_over_best_member_{prefix}"] = min(own) - metrics[prefix]
    return metrics
