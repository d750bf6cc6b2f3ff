"""How long training runs and at what learning rate: one callback owns both, because a time budget
decides the length and a cosine schedule must know the length to end at zero.

Without a budget, `epochs` is the length. With `budget_minutes`, the length is planned from the
epochs' measured time: after the first epoch (which includes tracing and compiling, so it
overestimates) and again after the second; from then on the plan holds, so the rate never jumps.
Training then runs as many epochs as fit the budget, at most `epochs`, and the cosine reaches zero
on the last of them. Should the machine slow down later, training still stops once the budget is
spent — cut short, as the run's tags say (`stopped_by=time_budget`).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import keras

PLANNED_AFTER = (1, 2)   # epochs after which the plan is (re)made


def cosine_rate(rate: float, epoch_position: float, warmup_epochs: int, epochs: int) -> float:
    """Keras' `CosineDecay` with a linear warmup from 0 (alpha 0), in epochs: `epoch_position` is
    the fraction of epochs done (step / steps per epoch)."""
    if epoch_position < warmup_epochs:
        return rate * epoch_position / warmup_epochs
    decay = max(epochs - warmup_epochs, 1e-9)
    done = min(epoch_position - warmup_epochs, decay) / decay
    return rate * 0.5 * (1.0 + math.cos(math.pi * done))


class TrainingPlan(keras.callbacks.Callback):
    """Sets the learning rate before every batch and stops training at the planned epoch."""

    def __init__(self, config, steps_per_epoch: int, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.rate, self.cosine = config.learning_rate, config.lr_schedule == "cosine"
        self.warmup_epochs, self.most_epochs = config.warmup_epochs, config.epochs
        self.budget_s = None if config.budget_minutes is None else 60.0 * config.budget_minutes
        self.steps_per_epoch, self.clock = steps_per_epoch, clock
        self.planned, self.out_of_time_at = config.epochs, None
        self.step, self.started, self.epoch_ends = 0, None, []

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
            elapsed = now - self.started
            if done in PLANNED_AFTER:
                self.planned = self.plan(done, elapsed)
            if elapsed >= self.budget_s and done < self.planned:
                self.out_of_time_at = done
        if done >= self.planned or self.out_of_time_at:
            self.model.stop_training = True

    def plan(self, done: int, elapsed: float) -> int:
        """Epochs that fit the budget at the latest epoch's pace (never fewer than are done)."""
        per_epoch = elapsed if done == 1 else self.epoch_ends[-1] - self.epoch_ends[-2]
        more = math.floor((self.budget_s - elapsed) / max(per_epoch, 1e-9))
        return max(done, min(self.most_epochs, done + more))

    @property
    def cut_short(self) -> bool:
        return self.out_of_time_at is not None
