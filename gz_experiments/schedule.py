"""How long training runs and at what learning rate: one callback owns both, because a time budget
decides the length and a cosine schedule must know the length to end at zero.

Without a budget, `epochs` is the length. With `budget_minutes`, the length is planned after every
epoch from the mean pace of the epochs after the first (the first includes tracing and compiling):
as many epochs as fit, at most `epochs`. Within the plan's first tenth, where a cosine is still flat,
the plan may grow or shrink as the pace estimate settles (one epoch's time varies by ±30% on a shared
machine); after that it only ever shrinks: a machine that slows down moves the schedule's end
earlier (the rate steps down, never up) rather than cutting training off at a high rate. Only a
slowdown too late to replan ends training with no epoch left to lower the rate in; the run's tags
say so (`stopped_by=time_budget`).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import keras

SETTLING = 0.1   # the fraction of the plan within which it may still grow (the cosine's factor ≥ 0.976)


def cosine_rate(rate: float, epoch_position: float, warmup_epochs: int, epochs: int) -> float:
    """Keras' `CosineDecay` with a linear warmup from 0 (alpha 0), counted in epochs:
    `epoch_position` is the epochs done so far, fractional (step / steps per epoch)."""
    if epoch_position < warmup_epochs:
        return rate * epoch_position / warmup_epochs
    decay = max(epochs - warmup_epochs, 1e-9)
    done = min(epoch_position - warmup_epochs, decay) / decay
    return rate * 0.5 * (1.0 + math.cos(math.pi * done))


class TrainingPlan(keras.callbacks.Callback):
    """Sets the learning rate before every batch and stops training at the planned epoch."""

    def __init__(self, config, steps_per_epoch: int, clock: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] | None = None):
        super().__init__()
        self.say = say   # told each new plan (a progress line); None: silent
        self.rate, self.cosine = config.learning_rate, config.lr_schedule == "cosine"
        self.warmup_epochs, self.most_epochs = config.warmup_epochs, config.epochs
        self.budget_s = None if config.budget_minutes is None else 60.0 * config.budget_minutes
        self.steps_per_epoch, self.clock = steps_per_epoch, clock
        self.planned, self.out_of_time_at = config.epochs, None
        self.step, self.started, self.epoch_ends, self.pace = 0, None, [], None

    def on_train_begin(self, logs=None):
        # The budget counts training, not preparing the data (a cold cache is no fault of the
        # configuration's) nor building the network.
        self.started = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        if self.cosine:
            self.model.optimizer.learning_rate = cosine_rate(
                self.rate, self.step / self.steps_per_epoch, self.warmup_epochs, self.planned)
        self.step += 1

    def on_epoch_end(self, epoch, logs=None):
        done, now = epoch + 1, self.clock()
        self.epoch_ends.append(now)
        if self.budget_s is not None:
            planned_before, self.planned = self.planned, self.plan(done, now - self.started)
            if 1 < done == self.planned < planned_before:   # no epoch left to lower the rate in
                self.out_of_time_at = done
            if self.say and self.planned != planned_before:
                self.say(f"budget_minutes={self.budget_s / 60:g}: {self.planned} epochs planned "
                         f"(at most {self.most_epochs}; {self.pace:.1f} s each)")
        if done >= self.planned:
            self.model.stop_training = True

    def plan(self, done: int, elapsed: float) -> int:
        """Epochs that fit the budget at the pace of the epochs after the first (never fewer than
        are done)."""
        self.pace = elapsed if done == 1 else (self.epoch_ends[-1] - self.epoch_ends[0]) / (done - 1)
        fits = done + math.floor((self.budget_s - elapsed) / max(self.pace, 1e-9))
        most = self.most_epochs if done <= max(2, SETTLING * self.planned) else self.planned
        return max(done, min(most, fits))

    @property
    def cut_short(self) -> bool:
        return self.out_of_time_at is not None
