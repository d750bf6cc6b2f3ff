"""The training plan: the learning rate set batch by batch (the same curve as Keras' CosineDecay),
and a time budget that sizes the schedule from the first epochs' pace, stops at the planned epoch,
and cuts training short only when the machine slows after the plan."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import tiny_overrides
from gz_experiments.config import ConfigError, TrainConfig, override
from gz_experiments.schedule import TrainingPlan

STEPS = 4   # batches per epoch below: 32 samples, batch 8


@pytest.mark.parametrize("warmup_epochs", [0, 1, 3])
def test_a_fixed_plan_is_keras_cosine_decay_with_its_warmup(warmup_epochs):
    epochs, rate = 10, 0.002
    warmup = warmup_epochs * STEPS
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else rate, (epochs - warmup_epochs) * STEPS,
        warmup_target=rate if warmup else None, warmup_steps=warmup)
    plan = TrainingPlan(override(TrainConfig(), learning_rate=rate, lr_schedule="cosine",
                                 warmup_epochs=warmup_epochs, epochs=epochs), STEPS)
    for step in range(epochs * STEPS):
        assert plan.next_rate() == pytest.approx(float(keras_schedule(step)), rel=1e-5, abs=1e-9), step


class Clock:
    """Seconds that pass only when told: each epoch's end reads the next duration."""

    def __init__(self, epoch_seconds):
        self.now, self.durations = 0.0, list(epoch_seconds)

    def __call__(self):
        return self.now

    def tick(self):
        self.now += self.durations.pop(0)


class TickEachEpoch(keras.callbacks.Callback):
    """Advances the clock before the plan reads it, and keeps the rate each batch trained with."""

    def __init__(self, clock):
        super().__init__()
        self.clock, self.rates = clock, []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        self.clock.tick()


def fit_with_plan(epoch_seconds, say=None, **config):
    config = override(TrainConfig(), {"learning_rate": "0.01", "lr_schedule": "cosine", "warmup_epochs": "1",
                                       "epochs": "30", **config})
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    clock = Clock(epoch_seconds)
    plan, ticks = TrainingPlan(config, STEPS, clock=clock, say=say), TickEachEpoch(clock)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    history = model.fit(x, x[:, :1], batch_size=8, epochs=config.epochs, callbacks=[ticks, plan], verbose=0)
    return plan, ticks.rates, len(history.history["loss"])


def test_without_a_budget_the_schedule_runs_every_epoch_to_zero():
    plan, rates, epochs_run = fit_with_plan([1.0] * 30)
    assert epochs_run == 30 and plan.planned == 30 and not plan.cut_short
    assert max(rates) == pytest.approx(0.01, rel=0.02) and rates[-1] < 1e-4


def test_a_budget_plans_the_epochs_that_fit_and_ends_the_cosine_on_the_last():
    # 1 minute: epoch 1 (tracing included) took 15 s → 4 planned; epoch 2 took 10 s → 5 (25 + 3 × 10 s)
    plan, rates, epochs_run = fit_with_plan([15.0] + [10.0] * 29, budget_minutes="1")
    assert plan.planned == 5 and epochs_run == 5 and not plan.cut_short
    assert len(rates) == 5 * STEPS
    assert rates[-1] < 0.01 * 0.02                  # the cosine ran to its end, not cut inside
    after_warmup = rates[STEPS:]
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:]))


def test_the_plan_follows_the_pace_both_ways_and_the_rate_never_rises():
    # 10 minutes: epoch 1 (tracing) 30 s plans 20; epoch 2 at 10 s grows it to 58, which fit exactly
    plan, _, epochs_run = fit_with_plan([30.0] + [10.0] * 99, budget_minutes="10", epochs="100")
    assert epochs_run == 58 and plan.planned == 58 and not plan.cut_short
    # 5 minutes: 15 planned at 20 s an epoch; from epoch 4 on, 10 s: the plan grows with the pace
    plan, rates, epochs_run = fit_with_plan([20.0] * 3 + [10.0] * 97, budget_minutes="5", epochs="100")
    assert epochs_run == 27                         # 3 × 20 s + 24 × 10 s: the whole 5 minutes
    after_warmup = rates[STEPS:]
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:])) and rates[-1] < 0.01 * 0.02


def test_epochs_stay_the_most_a_budget_may_run():
    plan, _, epochs_run = fit_with_plan([1.0] * 30, budget_minutes="60", epochs="6")
    assert plan.planned == 6 and epochs_run == 6


def test_a_machine_that_slows_moves_the_schedules_end_earlier_within_the_budget():
    # 2 minutes: 12 epochs planned after epoch 2 (10 s each); then 15 s each, so the mean pace since
    # epoch 1 rises and the plan shrinks (9 after epoch 3, 8 after epoch 6): 110 s in all.
    said = []
    plan, rates, epochs_run = fit_with_plan([10.0, 10.0] + [15.0] * 28, budget_minutes="2", say=said.append)
    assert epochs_run == 8 and plan.planned == 8 and not plan.cut_short
    assert said == ["budget_minutes=2: 12 epochs planned (at most 30; 10.0 s each)",   # said when it changes
                    "budget_minutes=2: 9 epochs planned (at most 30; 12.5 s each)",
                    "budget_minutes=2: 8 epochs planned (at most 30; 14.0 s each)"]
    assert rates[-1] < 0.01 * 0.05                 # the shortened cosine still ran to its end
    after_warmup = rates[STEPS:]
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:]))   # stepped down, never up


def test_a_slowdown_too_late_to_replan_stops_at_the_budget_cut_short():
    # planned 6 after epoch 2 (20 s + 4 × 10 s); epoch 3 took 45 s: 65 s, no epoch fits any more
    plan, _, epochs_run = fit_with_plan([10.0, 10.0, 45.0] + [10.0] * 27, budget_minutes="1")
    assert epochs_run == 3 and plan.cut_short and plan.out_of_time_at == 3


def test_a_budget_smaller_than_one_epoch_still_trains_one():
    plan, _, epochs_run = fit_with_plan([120.0] * 30, budget_minutes="1")
    assert epochs_run == 1 and plan.planned == 1 and not plan.cut_short


@pytest.mark.parametrize("bad", ["0", "-2", "soon"])
def test_a_budget_must_be_a_positive_number_of_minutes(bad):
    with pytest.raises(ConfigError, match="'budget_minutes' must be"):
        override(TrainConfig(), budget_minutes=bad)
    assert override(TrainConfig(), budget_minutes="none").budget_minutes is None


def test_a_run_with_a_budget_logs_it_and_the_epochs_it_planned(synthetic_dir, tmp_path, monkeypatch):
    """End to end on the synthetic set: a budget far below one epoch's time plans one epoch of three."""
    import mlflow

    import experiments
    from gz_experiments.train import train
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("GZ_CACHE_DIR", str(tmp_path / "cache"))
    config = override(experiments.load("galaxy_cnn").CONFIG,
                      tiny_overrides(synthetic_dir, epochs=3, budget_minutes="1e-6", tta="false"))
    metrics = train(config, progress=False, log_model=False)
    run = mlflow.last_active_run()
    assert metrics["epochs_run"] == 1
    assert run.data.params["budget_minutes"] == "1e-06" and run.data.tags["planned_epochs"] == "1"
    assert "stopped_by" not in run.data.tags   # the plan ended it, the budget did not cut it
