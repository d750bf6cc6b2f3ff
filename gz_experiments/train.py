"""One training loop for every approach: `train(config) -> metrics`, tracked in MLflow."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace
from typing import Callable

import keras
import numpy as np

from gz_experiments import figures, models
from gz_experiments.tracking import system_metrics
from gz_experiments.tracking.recorder import KERAS_TO_METRIC, Recorder, recording
from gz_experiments.config import TrainConfig, flat_params
from gz_experiments.data.dataset import PreparedData, prepare
from gz_experiments.data.pipeline import make_dataset
from gz_experiments.errors import GzError
from gz_experiments.hardware import distribution_strategy, precision_policy, resolve_precision, run_params
from gz_experiments.models.layers import training_callbacks
from gz_experiments.served.predictor import Predictor
from gz_experiments.progress import keras_verbose
from gz_experiments.schedule import TrainingPlan
from gz_experiments.scoring import evaluate_split

# Called after each epoch with (epoch, val_rmse); returning True stops training (sweeps prune so).
EpochHook = Callable[[int, float], bool]


class DivergedError(GzError):
    """The loss became NaN or infinite: training stopped there and no model was kept."""


class StopOnDivergence(keras.callbacks.Callback):
    """Raise `DivergedError` at the first NaN or infinite loss or RMSE: a training batch's at once,
    validation's at the end of its epoch. Runs before the other callbacks, so none sees the value."""

    WATCHED = ("loss", "rmse", "val_loss", "val_rmse")

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config, self.epoch = config, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise DivergedError(self.message(f"epoch {self.epoch}, batch {batch + 1}", f"training loss {loss}"))

    def on_epoch_end(self, epoch, logs=None):
        bad = {key: float(value) for key, value in (logs or {}).items()
               if key in self.WATCHED and not math.isfinite(float(value))}
        if bad:
            found = ", ".join(f"{KERAS_TO_METRIC[key]} {value}" for key, value in bad.items())
            raise DivergedError(self.message(f"the end of epoch {epoch + 1}", found))

    def message(self, where: str, found: str) -> str:
        tries = [f"a lower learning_rate (now {self.config.learning_rate})"]
        if self.config.precision != "float32":   # bfloat16's coarse rounding can tip a marginal run over
            tries.append(f"precision=float32 (now {self.config.precision})")
        return (f"training diverged at {where}: {found}; no model was kept. Try {', '.join(tries)}, "
                f"or check the inputs for bad labels or images")


class KeepBestWeights(keras.callbacks.Callback):
    """Restore the epoch with the lowest val RMSE at the end, as the issue's 'best epoch' asks."""

    def __init__(self, hook: EpochHook | None = None, restore: bool = True):
        super().__init__()
        self.hook, self.best, self.best_epoch, self.weights, self.stopped = hook, np.inf, 0, None, False
        self.restore = restore   # off for a refit: its validation split was trained on

    def on_epoch_end(self, epoch, logs=None):
        val_rmse = float(logs["val_rmse"])
        if math.isfinite(val_rmse) and val_rmse < self.best:
            self.best, self.best_epoch, self.weights = val_rmse, epoch + 1, self.model.get_weights()
        if self.hook is not None and self.hook(epoch + 1, val_rmse):
            self.stopped = self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore and self.weights is not None:
            self.model.set_weights(self.weights)


class EpochLogger(keras.callbacks.Callback):
    """Keras' history under the project's metric names, step = epoch (1-based, as the bar shows)."""

    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def on_epoch_end(self, epoch, logs=None):
        self.recorder.epoch(epoch + 1, {KERAS_TO_METRIC[k]: float(v) for k, v in (logs or {}).items()
                                        if k in KERAS_TO_METRIC})


def train(config: TrainConfig, *, defaults: TrainConfig | None = None, epoch_hook: EpochHook | None = None,
          evaluate_test: bool = True, log_model: bool = True, progress: bool = True) -> dict[str, float]:
    """Train `config`'s approach, log everything to the active (or a new) MLflow run, return metrics.
    `defaults` (the approach's own config) names the run by what differs from it."""
    with recording(config.approach, {"approach": config.approach}, experiment_name=config.tracking.experiment) as rec, \
            system_metrics.sampled(config.tracking.system_metrics):
        precision = resolve_precision(config.precision)   # `auto` becomes what this machine computes fast
        rec.params({**flat_params(config), **run_params(precision)})
        rec.name_training(config, defaults)
        rec.describe_training(config)
        try:
            return _train(replace(config, precision=precision.name), rec, epoch_hook, evaluate_test, log_model,
                          progress)
        except BaseException as error:
            with contextlib.suppress(Exception):   # a store that failed must not hide the error itself
                rec.describe_training(config, error=error)
            raise


def _train(config: TrainConfig, rec: Recorder, epoch_hook, evaluate_test: bool, log_model: bool,
           progress: bool) -> dict[str, float]:
    started = time.perf_counter()
    pretrained = models.prepare_weights(config.model)   # before data work: an offline download fails fast
    data = prepare(config.data, progress=progress)
    log_data(rec, data, config)
    with precision_policy(config.precision), distribution_strategy().scope():
        model = compile_model(config, pretrained)
    keeper = KeepBestWeights(epoch_hook, restore=not config.data.refit)
    plan = TrainingPlan(config, steps_per_epoch=-(-len(data.train) // config.batch_size),
                        say=(lambda line: print(line, flush=True)) if progress else None)
    callbacks = [StopOnDivergence(config), EpochLogger(rec), keeper, plan, *training_callbacks(model)]
    history = fit(model, data, config, callbacks, progress)
    metrics = {"best_val_rmse": keeper.best, "best_epoch": keeper.best_epoch,
               "epochs_run": len(history["loss"]), "train_seconds": time.perf_counter() - started}
    tag_stops(rec, keeper, plan, config)
    predictor = Predictor(model, config.data.image_size, config.data.crop)
    if evaluate_test:
        metrics.update(evaluate_split(predictor, data.test.images, data.test.labels, config.tta))
    rec.figure(figures.learning_curves(history, f"{config.approach}: loss and RMSE"), "learning_curves.png")
    if log_model:   # first: the test scores logged next are tied to it (the Models tab)
        rec.model(predictor, config, input_example_jpeg=data.source.images.read(int(data.test.ids[0])))
    rec.results(metrics)
    if log_model and config.tracking.register and evaluate_test:   # a sweep registers its best trial once tested
        rec.register(config.tracking.register, metrics.get("test_rmse"))
    rec.describe_training(config, {n: len(getattr(data, n)) for n in ("train", "val", "test")}, metrics)
    return metrics


def tag_stops(rec: Recorder, keeper: KeepBestWeights, plan: TrainingPlan, config: TrainConfig) -> None:
    """Why training ended before `epochs`, where it did: a hook (a sweep's pruner), the time budget's
    plan (`planned_epochs`), or the budget spent before the plan's end (`stopped_by=time_budget`)."""
    tags = {"stopped_early": True} if keeper.stopped else {}
    if config.budget_minutes is not None:
        tags["planned_epochs"] = plan.planned
    if plan.cut_short:
        tags.update(stopped_by="time_budget", stopped_at_epoch=plan.out_of_time_at)
    if tags:
        rec.tags(tags)


def compile_model(config: TrainConfig, pretrained=None) -> keras.Model:
    """The network with `pretrained` (from `models.prepare_weights`) loaded, compiled for training."""
    keras.utils.set_random_seed(config.seed)
    model = models.build_model(config.model, config.data.image_size, pretrained)
    model.compile(optimizer=make_optimizer(config), loss="mse",
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse")], jit_compile=config.jit_compile)
    return model


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """A schedule's rate is set batch by batch by `TrainingPlan`, which knows how long training runs."""
    return keras.optimizers.get({"class_name": config.optimizer, "config": {
        "learning_rate": config.learning_rate, "weight_decay": config.weight_decay or None}})


def fit(model, data: PreparedData, config: TrainConfig, callbacks, progress: bool) -> dict:
    train_ds = make_dataset(data.train.images, data.train.labels, config.batch_size, training=True,
                            augment=config.data.augment, seed=config.seed)
    val_ds = make_dataset(data.val.images, data.val.labels, config.batch_size, training=False)
    # shuffle=False: the dataset shuffles itself; Keras would only warn that it ignores the flag.
    history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, shuffle=False,
                        verbose=keras_verbose(progress))
    return history.history


def log_data(rec: Recorder, data: PreparedData, config: TrainConfig) -> None:
    rec.params({"data_fingerprint": data.fingerprint, "data_path": str(data.source.root.resolve()),
                "n_train_used": len(data.train), "n_val_used": len(data.val), "n_test_used": len(data.test),
                "n_bad_images": len(data.bad)})   # a param: a metric would be a lone bar, mostly 0
    rec.splits(data.source, {n: getattr(data, n).ids for n in ("train", "val", "test")})
    rec.table(data.split_frame(), "split.csv")
    rec.figure(figures.training_samples(data, config), "input_samples.png")
