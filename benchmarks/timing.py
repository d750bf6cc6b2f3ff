"""Steady-state throughput: a fixed number of steps after warm-up ones, timed at step boundaries.

The warm-up steps run inside the same `fit` (or on the same iterator), so iterator start-up,
tracing, XLA compilation and prefetch start-up stay out of the timed window.
"""
from __future__ import annotations

import statistics
import time

import keras


class StepClock(keras.callbacks.Callback):
    """Wall time from the end of step `warmup` to the end of the last step. Keras calls
    `on_train_batch_end` after the step's tf.function has returned, i.e. after it computed."""

    def __init__(self, warmup: int):
        super().__init__()
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if batch == self.warmup - 1:
            self.start = now
        elif batch >= self.warmup:
            self.end, self.steps = now, self.steps + 1


def fit_images_per_s(model, dataset, batch_size: int, warmup: int, steps: int) -> float:
    """Training throughput of `model` fed by `dataset` (anything `fit` takes)."""
    clock = StepClock(max(1, warmup))
    model.fit(dataset, steps_per_epoch=max(1, warmup) + steps, epochs=1, verbose=0, callbacks=[clock],
              shuffle=False)   # the datasets shuffle themselves
    if clock.start is None or clock.steps != steps:
        raise RuntimeError(f"the input ran out after {clock.steps} of {steps} timed steps; use more images")
    return clock.steps * batch_size / (clock.end - clock.start)


def batches_per_s(next_batch, warmup: int, steps: int) -> float:
    """Rate at which `next_batch()` delivers batches, after `warmup` calls."""
    for _ in range(warmup):
        next_batch()
    start = time.perf_counter()
    for _ in range(steps):
        next_batch()
    return steps / (time.perf_counter() - start)


def median(values) -> float:
    return float(statistics.median(values))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator/denominator, or None where either was not measured."""
    return round(numerator / denominator, 3) if numerator and denominator else None
