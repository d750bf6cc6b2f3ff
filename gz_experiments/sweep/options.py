"""What a sweep invocation is told: its options (parsed and checked before any study is opened)
and the error a sweep raises when it can't go on."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from gz_experiments.config import ConfigError, parse_value
from gz_experiments.errors import GzError


class SweepError(GzError):
    """The sweep can't go on (e.g. every trial fails); the message says why and what to do."""


@dataclass(frozen=True)
class SweepOptions:
    approach: str = "cnn_cropped"
    n_trials: int = 20                    # complete + pruned trials of the whole study, all workers
    study_name: str | None = None         # None: "<approach>-sweep"; an existing name resumes
    storage: str = "sqlite:///optuna.db"  # or postgresql+psycopg://user:pw@host/db for many workers
    pruner: str = "median"                # median | hyperband | none
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 2
    sampler_seed: int | None = None       # None: each worker draws its own (same seeds = same trials)
    heartbeat_interval: int = 20          # seconds between a running trial's heartbeats
    grace_period: int = 90                # a trial silent this long is FAIL (its worker died)
    max_retry: int = 2                    # times a dead worker's parameters are tried again
    max_failures_in_row: int = 3          # a worker gives up after this many failed trials in a row
    # A trial's training budget in minutes: a trial still training then stops after its epoch and
    # counts with its best val_rmse so far (tag stopped_by=time_limit). None: epochs decide alone.
    trial_minutes: float | None = None

    @property
    def name(self) -> str:
        return self.study_name or f"{self.approach}-sweep"


PRUNERS = ("median", "hyperband", "none")
OPTION_NAMES = {f.name for f in dataclasses.fields(SweepOptions)}


def parse_options(tokens: dict[str, str]) -> tuple[SweepOptions, dict[str, str]]:
    """Split `key=value` tokens into sweep options and config overrides fixed for every trial."""
    hints = typing.get_type_hints(SweepOptions)
    chosen = {k: parse_value(k, v, hints[k]) for k, v in tokens.items() if k in OPTION_NAMES}
    options = SweepOptions(**chosen)
    if options.n_trials < 1:
        raise ConfigError(f"parameter 'n_trials' must be at least 1, got {options.n_trials}")
    if options.pruner not in PRUNERS:
        raise ConfigError(f"parameter 'pruner' must be one of {', '.join(PRUNERS)}; got {options.pruner!r}")
    if options.trial_minutes is not None and not options.trial_minutes > 0:
        raise ConfigError(f"parameter 'trial_minutes' must be positive minutes (or none), got {options.trial_minutes}")
    if min(options.heartbeat_interval, options.grace_period) < 1 or options.grace_period <= options.heartbeat_interval:
        raise ConfigError("parameters 'heartbeat_interval' and 'grace_period' must be positive seconds "
                          f"with grace_period > heartbeat_interval; got {options.heartbeat_interval}, "
                          f"{options.grace_period}")
    return options, {k: v for k, v in tokens.items() if k not in OPTION_NAMES}
