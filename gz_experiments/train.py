"""One training loop for every approach: `train(config) -> metrics`, tracked in MLflow."""
from __future__ import annotations

import contextlib
import time
import warnings
from typing import Callable

import keras
import mlflow
import numpy as np
import tensorflow as tf

from gz_experiments import figures, serving, tracking
from gz_experiments.config import TrainConfig, flat_params
from gz_experiments.data.dataset import PreparedData, prepare
from gz_experiments.data.images import preprocess
from gz_experiments.data.pipeline import augment_batch, make_dataset
from gz_experiments.layers import training_callbacks
from gz_experiments.models import build_model
from gz_experiments.predictor import Predictor, score
from gz_experiments import weights as pretrained

# Called after each epoch with (epoch, val_rmse); returning True stops training (sweeps prune so).
EpochHook = Callable[[int, float], bool]


class KeepBestWeights(keras.callbacks.Callback):
    """Restore the epoch with the lowest val RMSE at the end, as the issue's 'best epoch' asks."""

    def __init__(self, hook: EpochHook | None = None):
        super().__init__()
        self.hook, self.best, self.best_epoch, self.weights, self.stopped = hook, np.inf, 0, None, False

    def on_epoch_end(self, epoch, logs=None):
        val_rmse = float(logs["val_rmse"])
        if val_rmse < self.best:
            self.best, self.best_epoch, self.weights = val_rmse, epoch + 1, self.model.get_weights()
        if self.hook is not None and self.hook(epoch + 1, val_rmse):
            self.stopped = self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self.model.set_weights(self.weights)


class EpochLogger(keras.callbacks.Callback):
    """Keras' history under the project's metric names, step = epoch (1-based, as the bar shows)."""

    def on_epoch_end(self, epoch, logs=None):
        metrics = {tracking.KERAS_TO_METRIC[k]: float(v) for k, v in (logs or {}).items()
                   if k in tracking.KERAS_TO_METRIC}
        mlflow.log_metrics(metrics, step=epoch + 1)


def train(config: TrainConfig, *, epoch_hook: EpochHook | None = None, evaluate_test: bool = True,
          log_model: bool = True, progress: bool = True) -> dict[str, float]:
    """Train `config`'s approach, log everything to the active (or a new) MLflow run, return metrics."""
    with tracking.run(run_name=config.approach, tags={"approach": config.approach}):
        tracking.log_params(flat_params(config))
        started = time.perf_counter()
        weights_file = pretrained.resolve(config.model.weights) if config.model.architecture == "resnet" else None
        data = prepare(config.data, progress=progress)
        log_data(data, config)
        with precision_policy(config.precision), distribution_strategy().scope():
            model = compile_model(config, -(-len(data.train) // config.batch_size), weights_file)
        keeper = KeepBestWeights(epoch_hook)
        history = fit(model, data, config, [EpochLogger(), keeper, *training_callbacks(model)], progress)
        metrics = {"best_val_rmse": keeper.best, "best_epoch": keeper.best_epoch,
                   "epochs_run": len(history["loss"]), "train_seconds": time.perf_counter() - started}
        if keeper.stopped:
            mlflow.set_tag("stopped_early", "true")
        predictor = Predictor(model, config.data.image_size, config.data.crop)
        if evaluate_test:
            metrics.update(evaluate_split(predictor, data.test.images, data.test.labels, config.tta))
        mlflow.log_metrics(metrics)
        tracking.log_figure(figures.learning_curves(history, f"{config.approach}: loss and RMSE"), "learning_curves.png")
        if log_model:
            serving.log(predictor)
        return metrics


def evaluate_split(predictor: Predictor, images, labels, tta: bool, prefix: str = "test_rmse") -> dict[str, float]:
    metrics = score(labels, predictor.predict_images(images), prefix)
    if tta:
        metrics.update(score(labels, predictor.predict_images(images, tta=True), f"{prefix}_tta"))
    return metrics


def compile_model(config: TrainConfig, steps_per_epoch: int, weights_file=None) -> keras.Model:
    keras.utils.set_random_seed(config.seed)
    model = build_model(config.model, config.data.image_size)
    pretrained.load_pretrained(model, weights_file)
    model.compile(optimizer=make_optimizer(config, steps_per_epoch), loss="mse",
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse")])
    return model


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    rate = config.learning_rate
    if config.lr_schedule == "cosine":
        warmup = config.warmup_epochs * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else rate, max(1, (config.epochs - config.warmup_epochs) * steps_per_epoch),
            warmup_target=rate if warmup else None, warmup_steps=warmup)
    return keras.optimizers.get({"class_name": config.optimizer, "config": {"learning_rate": rate}})


def fit(model, data: PreparedData, config: TrainConfig, callbacks, progress: bool) -> dict:
    train_ds = make_dataset(data.train.images, data.train.labels, config.batch_size, training=True,
                            augment=config.data.augment, seed=config.seed)
    val_ds = make_dataset(data.val.images, data.val.labels, config.batch_size, training=False)
    # shuffle=False: the dataset shuffles itself; Keras would only warn that it ignores the flag.
    history = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, shuffle=False,
                        verbose=1 if progress else 2)
    return history.history


def log_data(data: PreparedData, config: TrainConfig) -> None:
    mlflow.log_params({"data_fingerprint": data.fingerprint, "data_path": str(data.source.root),
                       "n_train_used": len(data.train), "n_val_used": len(data.val), "n_test_used": len(data.test)})
    mlflow.log_metric("n_bad_images", len(data.bad))
    tracking.log_frame(data.split_frame(), "split.csv")
    tracking.log_figure(sample_figure(data, config), "input_samples.png")


def sample_figure(data: PreparedData, config: TrainConfig, n: int = 6):
    """The report's figures 1–3: images as loaded, cropped and resized, and augmented."""
    ids = data.train.ids[:n]
    frames = data.train.images[:n]
    rows = {"as loaded (424²)": [preprocess(data.source.images.read(i), 424) for i in ids],
            f"crop {config.data.crop or 'none'} → {config.data.image_size}²": list(frames)}
    if config.data.augment is not None:
        rng = tf.random.Generator.from_seed(config.seed)
        rows["augmented"] = list(augment_batch(tf.constant(np.asarray(frames)), config.data.augment, rng).numpy())
    return figures.input_samples(rows, f"{config.approach}: training images")


@contextlib.contextmanager
def precision_policy(name: str):
    """bfloat16 compute with float32 weights (and output layer) on CPUs with AVX-512 BF16."""
    if name == "mixed_bfloat16" and not bfloat16_is_native():
        warnings.warn("precision=mixed_bfloat16 on a CPU without AVX-512 BF16/AMX and no GPU: bfloat16 is "
                      "emulated and was measured ~9x slower than float32 on such a CPU; use float32 here")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def bfloat16_is_native() -> bool:
    """GPUs, or x86 CPUs with AVX-512 BF16 / AMX, compute bfloat16 in hardware."""
    if tf.config.list_logical_devices("GPU"):
        return True
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return True   # not Linux: don't guess
    return "avx512_bf16" in flags or "amx_bf16" in flags


def distribution_strategy() -> tf.distribute.Strategy:
    """Every visible GPU through MirroredStrategy when there are several; otherwise the default."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
