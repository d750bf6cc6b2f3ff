"""How a run reads in the MLflow UI's list and page: a name that tells runs of one approach apart, and a
description (`mlflow.note.content`) of what was trained, on which data, and what came out."""
from __future__ import annotations

import mlflow

from gz_experiments.tracking import datasets
from gz_experiments.config import TrainConfig, flat_params

NOTE_TAG, NAME_TAG, PARENT_TAG = "mlflow.note.content", "mlflow.runName", "mlflow.parentRunId"
NOT_IN_NAME = {"approach", "data_dir", "experiment", "register", "system_metrics"}
SPLIT_KEYS = {"n_train", "n_val", "n_test", "seed"}
MAX_IN_NAME = 4


def run_name(config: TrainConfig, run_id: str, label: str | None = None, keys=None) -> str:
    """`cnn_cropped epochs=5 dropout=0.3 #1f2e`: the approach, what differs from its defaults (among
    `keys`, default all), and the run id's first characters so that two runs alike still differ."""
    changed = [f"{k}={v}" for k, v in differences(config, keys).items()]
    if len(changed) > MAX_IN_NAME:
        changed = changed[:MAX_IN_NAME] + [f"+{len(changed) - MAX_IN_NAME}"]
    return " ".join([label or config.approach, *changed, f"#{run_id[:4]}"])


def differences(config: TrainConfig, keys=None) -> dict[str, object]:
    """Parameters (by flat name) whose value differs from the approach's own defaults."""
    defaults = _defaults(config.approach)
    if defaults is None:
        return {}
    mine, theirs = flat_params(config), flat_params(defaults)
    changed = {k: "none" if v is None else v for k, v in mine.items()
               if k not in NOT_IN_NAME and (keys is None or k in keys) and theirs.get(k) != v}
    return dict(sorted(changed.items(), key=lambda item: item[0] in SPLIT_KEYS))   # the model's first


def _defaults(approach: str) -> TrainConfig | None:
    import experiments
    try:
        return experiments.load(approach).CONFIG
    except Exception:   # a config built in code for an approach with no module: no defaults to show
        return None


def name_run(config: TrainConfig, label: str | None = None, keys=None) -> None:
    """Name the active run, unless it is a sweep's trial (the sweep names those `trial-N`)."""
    run = mlflow.active_run()
    if PARENT_TAG in mlflow.get_run(run.info.run_id).data.tags:
        return
    mlflow.set_tag(NAME_TAG, run_name(config, run.info.run_id, label, keys))


def describe_training(config: TrainConfig, split_sizes: dict[str, int] | None = None,
                      metrics: dict[str, float] | None = None) -> None:
    """What was trained, on which data and (once known) the result, as the run's description."""
    model, data = config.model, config.data
    view = f"central {data.crop} px crop" if data.crop else "whole 424 px frame"
    filters = getattr(model.body, "filters", None)   # resnet's body has a fixed shape
    body = f"filters {_tuple(filters)}, " if filters else ""
    lines = [f"**{config.approach}** ({model.architecture}: {body}dense "
             f"{_tuple(model.dense)}, dropout {model.dropout}, {model.output} output) on {data.image_size}² "
             f"images from the {view}; {config.optimizer} at learning rate {config.learning_rate}, batch "
             f"{config.batch_size}, {config.epochs} epochs.",
             "", _data_line(config, split_sizes), ""]
    lines.append(_result_line(metrics) if metrics else "Result: training (or stopped before a result).")
    mlflow.set_tag(NOTE_TAG, "\n".join(lines))


def describe_baseline(config: TrainConfig, split_sizes: dict[str, int], metrics: dict[str, float]) -> None:
    mlflow.set_tag(NOTE_TAG, "\n".join([
        "**baseline**: the training split's mean vote fractions, predicted for every galaxy.", "",
        _data_line(config, split_sizes), "",
        f"Result: test RMSE **{metrics['test_rmse']:.4f}**, validation RMSE {metrics['best_val_rmse']:.4f}: "
        f"the floor every model must beat."]))


def _data_line(config: TrainConfig, sizes: dict[str, int] | None) -> str:
    data = config.data
    counts = (f"{sizes['train']} train / {sizes['val']} validation / {sizes['test']} test galaxies" if sizes
              else f"n_train={data.n_train or 'all'}, n_val={data.n_val}, n_test={data.n_test}")
    return f"Data: `{datasets.label(data.data_dir)}` ({data.data_dir}), {counts}, split seed {config.seed}."


def _result_line(metrics: dict[str, float]) -> str:
    parts = []
    if "test_rmse" in metrics:
        tta = f" ({metrics['test_rmse_tta']:.4f} averaged over 8 views)" if "test_rmse_tta" in metrics else ""
        parts.append(f"test RMSE **{metrics['test_rmse']:.4f}**{tta}")
    if "best_val_rmse" in metrics:
        at = (f" at epoch {metrics['best_epoch']} of {metrics['epochs_run']}"
              if "best_epoch" in metrics and "epochs_run" in metrics else "")
        parts.append(f"best validation RMSE {metrics['best_val_rmse']:.4f}{at}")
    if "train_seconds" in metrics:
        parts.append(f"{metrics['train_seconds']:.0f} s")
    return "Result: " + "; ".join(parts) + "."


def _tuple(values) -> str:
    return "-".join(map(str, values))
