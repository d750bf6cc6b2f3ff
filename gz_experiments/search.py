"""Search-space declarations for sweeps: each approach's `SEARCH_SPACE` maps a config key to one
of these. They validate their bounds when declared and know how to ask an Optuna trial;
`validate_space` checks a whole space against the config it will override, before any trial."""
from __future__ import annotations

import math
from dataclasses import dataclass

from gz_experiments.config import ConfigError, override


class SearchSpaceError(ConfigError):
    """A search space names an unknown parameter or has a range the config can't take."""


@dataclass(frozen=True)
class _Range:
    """A numeric range, log-scaled or not, checked when declared; Int and Float say which bounds
    they take (in code and in words) and which `trial.suggest_*` asks for a value."""
    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        kind = type(self).__name__
        if not (self.takes(self.low) and self.takes(self.high)) or self.low > self.high:
            raise SearchSpaceError(f"{kind} range needs {self.bounds} low <= high, got {self.low}..{self.high}")
        if self.log and not self.log_can_start_at(self.low):
            raise SearchSpaceError(f"a log-scale {kind} range must {self.log_start}, got {self.low}")

    def suggest(self, trial, name: str):
        return getattr(trial, self.suggest_with)(name, self.low, self.high, log=self.log)

    def extremes(self) -> tuple:
        return self.low, self.high


@dataclass(frozen=True)
class Int(_Range):
    low: int
    high: int
    bounds, log_start, suggest_with = "integers", "start at 1 or more", "suggest_int"

    @staticmethod
    def takes(value) -> bool:
        return isinstance(value, int)

    @staticmethod
    def log_can_start_at(low) -> bool:
        return low >= 1


@dataclass(frozen=True)
class Float(_Range):
    bounds, log_start, suggest_with = "finite", "be positive", "suggest_float"

    @staticmethod
    def takes(value) -> bool:
        return math.isfinite(value)

    @staticmethod
    def log_can_start_at(low) -> bool:
        return low > 0


@dataclass(frozen=True)
class Categorical:
    choices: tuple

    def __post_init__(self):
        if not self.choices:
            raise SearchSpaceError("a Categorical needs at least one choice")

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, list(self.choices))

    def extremes(self) -> tuple:
        return tuple(self.choices)


DISTRIBUTIONS = (Int, Float, Categorical)


def validate_space(space: dict, config) -> None:
    """Every key must be a parameter `override` knows, and every bound (or choice) a value it
    accepts for that key: a typo or an impossible range fails here, naming it, not in trial 7."""
    if not space:
        raise SearchSpaceError(f"the search space of {config.approach!r} is empty: nothing to sweep "
                               f"(every searched parameter was fixed by an override?)")
    for key, distribution in space.items():
        if not isinstance(distribution, DISTRIBUTIONS):
            raise SearchSpaceError(f"search space entry {key!r} must be Int, Float or Categorical "
                                   f"(gz_experiments.search), got {distribution!r}")
        for value in distribution.extremes():
            try:
                override(config, {key: value})
            except ConfigError as error:
                raise SearchSpaceError(f"search space entry {key!r} = {distribution} does not fit "
                                       f"{config.approach!r}: {error}") from None


def without_fixed(space: dict, fixed: set[str]) -> dict:
    """The space minus what the user fixed: `dropout=0.3` fixes `dropout`, `filters=…` every `filters[i]`."""
    return {key: d for key, d in space.items() if key not in fixed and key.split("[")[0] not in fixed}
