"""What a sweep invocation is told: its options (parsed and checked before any study is opened)
and the error a sweep raises when it can't go on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gz_experiments.config import ConfigError
from gz_experiments.errors import GzError
from gz_experiments.options import option, others, parameters, parse


class SweepError(GzError):
    """The sweep can't go on (e.g. every trial fails); the message says why and what to do."""


@dataclass(frozen=True)
class SweepOptions:
    """An Optuna sweep over an approach's SEARCH_SPACE: one parent run, one nested run per trial."""
    approach: str = option("cnn_cropped", "whose SEARCH_SPACE (experiments/<approach>.py) is searched")
    n_trials: int = option(20, "complete + pruned trials of the whole study, all workers", min=1)
    study_name: str | None = option(None, "none: <approach>-sweep; an existing name resumes it")
    storage: str = option("sqlite:///optuna.db", "or postgresql+psycopg://user@host/db for many workers")
    pruner: Literal["median", "hyperband", "none"] = option("median", "stops trials behind on val_rmse")
    pruner_startup_trials: int = option(5, "trials finished before any is pruned", min=0)
    pruner_warmup_epochs: int = option(2, "epochs of each trial never pruned", min=0)
    sampler_seed: int | None = option(None, "none: each worker draws its own (same seeds = same trials)", min=0)
    heartbeat_interval: int = option(20, "seconds between a running trial's heartbeats", min=1)
    grace_period: int = option(90, "seconds: a trial silent this long is FAIL (its worker died)", min=1)
    max_retry: int = option(2, "times a dead worker's parameters are tried again", min=0)
    max_failures_in_row: int = option(3, "a worker gives up after this many failed trials in a row", min=1)
    # Sets each trial's budget_minutes: it trains the epochs that fit (at most epochs=…), its schedule
    # sized to them, so slow configurations are judged at the end of a schedule, not cut inside one.
    trial_minutes: float | None = option(None, "a trial's training budget in minutes; none: epochs decide", above=0)
    fixed: dict[str, str] = others("any training parameter, fixed for every trial (6 epochs a trial unless epochs=…)")

    @property
    def name(self) -> str:
        return self.study_name or f"{self.approach}-sweep"

    def check(self) -> None:
        if self.grace_period <= self.heartbeat_interval:
            raise ConfigError("parameters 'heartbeat_interval' and 'grace_period' must be positive seconds "
                              f"with grace_period > heartbeat_interval; got {self.heartbeat_interval}, "
                              f"{self.grace_period}")


OPTION_NAMES = frozenset(parameters(SweepOptions))


def parse_options(given: dict[str, str]) -> tuple[SweepOptions, dict[str, str]]:
    """`key=value` tokens -> the sweep's options and the training parameters fixed for every trial."""
    options = parse(SweepOptions, given, "sweep")
    return options, dict(options.fixed)
