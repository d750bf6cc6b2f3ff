"""The report's options: which approaches (and seeds), and the overrides for all of them
(`field=value`) or for one (`<approach>.field=value`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import experiments
from gz_experiments.config import ConfigError
from gz_experiments.options import option, others, parse

BASELINE = "baseline"
DEFAULT_APPROACHES = (BASELINE, *experiments.REPORT_APPROACHES)   # the report's table: its four models
Approach = Literal[(BASELINE, *experiments.APPROACHES)]


@dataclass(frozen=True)
class ReportOptions:
    """The report's table: each approach a nested run under one parent run, on one seeded split."""
    approaches: tuple[Approach, ...] = option(DEFAULT_APPROACHES, "the table's rows, distinct, comma-separated")
    seeds: tuple[int, ...] = option((), "one run per seed of each approach; none: each approach's own seed", min=0)
    from_run: str | None = option(None, "a report's run id: rebuild its table and figures, train nothing",
                                  name="from")
    fixed: dict[str, str] = others("field=value for every approach, <approach>.field=value for one "
                                   "(e.g. resnet.weights=none)")

    def check(self) -> None:
        if not self.approaches or len(set(self.approaches)) != len(self.approaches):
            raise ConfigError(f"parameter 'approaches' takes distinct names, at least one, comma-separated; "
                              f"got {','.join(self.approaches)!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"parameter 'seeds' lists a seed twice ({','.join(map(str, self.seeds))}): "
                              f"each seed is one run")
        for key in self.fixed:
            scope = key.split(".", 1)[0] if "." in key else None
            if scope is not None and scope not in self.approaches:
                raise ConfigError(f"parameter {key!r} is for approach {scope!r}, which this report doesn't run "
                                  f"(approaches: {', '.join(self.approaches)})")
        if self.seeds and "seed" in self.fixed:
            raise ConfigError("give either seed=N or seeds=N,M,… to a report, not both")
        given = [*(["approaches"] if self.approaches != DEFAULT_APPROACHES else []),
                 *(["seeds"] if self.seeds else []), *self.fixed]
        if self.from_run and given:
            raise ConfigError(f"report from=RUN_ID rebuilds that report as it was; drop {given}")


def parse_options(given: dict[str, str]) -> tuple[ReportOptions, dict[str, str]]:
    """`key=value` tokens -> the report's options and the overrides: `field=value` for every approach,
    `<approach>.field=value` for one (e.g. resnet.weights=none)."""
    options = parse(ReportOptions, given, "report")
    return options, dict(options.fixed)


def overrides_for(approach: str, fixed: dict[str, str]) -> dict[str, str]:
    shared = {k: v for k, v in fixed.items() if "." not in k}
    own = {k.split(".", 1)[1]: v for k, v in fixed.items() if k.startswith(f"{approach}.")}
    return {**shared, **own}
