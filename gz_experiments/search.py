"""Search-space declarations for sweeps: each approach's `SEARCH_SPACE` maps a config key to one
of these. They validate their bounds when declared and know how to ask an Optuna trial."""
from __future__ import annotations

import math
from dataclasses import dataclass

from gz_experiments.config import ConfigError


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False

    def __post_init__(self):
        if not (isinstance(self.low, int) and isinstance(self.high, int)) or self.low > self.high:
            raise ConfigError(f"Int range needs integers low <= high, got {self.low}..{self.high}")
        if self.log and self.low < 1:
            raise ConfigError(f"a log-scale Int range must start at 1 or more, got {self.low}")

    def suggest(self, trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ConfigError(f"Float range needs finite low <= high, got {self.low}..{self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"a log-scale Float range must be positive, got {self.low}")

    def suggest(self, trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Categorical:
    choices: tuple

    def __post_init__(self):
        if not self.choices:
            raise ConfigError("a Categorical needs at least one choice")

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, list(self.choices))
