"""How long training runs and at what learning rate: one callback owns both, because a time budget
decides the length and a cosine schedule must know the length to end at zero.

Without a budget, `epochs` is the length. With `budget_minutes`, the length is planned after every
epoch from the pace of the last few (the first is left out: it includes tracing and compiling): as
many epochs as fit, at most `epochs`. The plan follows the machine both ways, and the rate stays
continuous through every change: the schedule tracks how far along its cosine it is, and each batch
moves that fraction on by an equal share of what is left of it over the steps left in the plan. With
a fixed plan that is exactly Keras' `CosineDecay` (tested); when the plan changes, only the speed of
the decay does, so the rate never jumps and never rises. Only a slowdown too late to replan ends
training with no epoch left to lower the rate in; the run's tags say so (`stopped_by=time_budget`).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import keras

PACE_EPOCHS = 5   # the pace is the mean of the last few epochs: recent enough to follow the machine


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
        self.step, self.decayed, self.started, self.epoch_ends, self.pace = 0, 0.0, None, [], None

    def on_train_begin(self, logs=None):
        # The budget counts training, not preparing the data (a cold cache is no fault of the
        # configuration's) nor building the network.
        self.started = self.clock()

    def on_train_batch_begin(self, batch, logs=None):
        if self.cosine:   # a constant rate stays as compiled
            self.model.optimizer.learning_rate = self.next_rate()

    def next_rate(self) -> float:
        """This step's rate: a linear warmup from 0, then a half cosine from `rate` to 0 whose
        progress (`decayed`, 0 → 1) takes an equal share of what is left at each step left."""
        warmup_steps = self.warmup_epochs * self.steps_per_epoch
        step, self.step = self.step, self.step + 1
        if step < warmup_steps:
            return self.rate * step / warmup_steps
        rate = self.rate * 0.5 * (1.0 + math.cos(math.pi * self.decayed))
        steps_left = self.planned * self.steps_per_epoch - step
        self.decayed += (1.0 - self.decayed) / max(steps_left, 1)
        return rate

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
        """Epochs that fit the budget at the recent pace (never fewer than are done)."""
        if done == 1:
            self.pace = elapsed
        else:
            recent = self.epoch_ends[-min(done, PACE_EPOCHS + 1):]
            self.pace = (recent[-1] - recent[0]) / (len(recent) - 1)
        fits = done + math.floor((self.budget_s - elapsed) / max(self.pace, 1e-9))
        return max(done, min(self.most_epochs, fits))

    @property
    def cut_short(self) -> bool:
        return self.out_of_time_at is not None
