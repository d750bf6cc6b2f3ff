"""One module per approach: what the report specifies (`CONFIG`) and where sweeps look (`SEARCH_SPACE`).

Variants derive from a base with `override`, so each file holds only its differences. The modules
here are the catalogue: a module is an approach (the CLI, report, experiment description and tests
find it), and one of the report's says which (`REPORT = Report(number, test_rmse)`). Adding an
approach is adding a module (and its MLproject entry point, checked by a test).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Report:
    """Where an approach stands in the report: its number there and the test RMSE it reported."""
    number: int
    test_rmse: float


def _discover() -> dict[str, object]:
    modules = {info.name: importlib.import_module(f"{__name__}.{info.name}")
               for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")}
    in_report = sorted((m.REPORT.number, name) for name, m in modules.items() if getattr(m, "REPORT", None))
    others = sorted(name for name, m in modules.items() if not getattr(m, "REPORT", None))
    return {name: modules[name] for name in [*(n for _, n in in_report), *others]}


_MODULES = _discover()
APPROACHES = tuple(_MODULES)                                                    # the report's first, in its order
REPORT_APPROACHES = tuple(n for n, m in _MODULES.items() if getattr(m, "REPORT", None))   # the report's four models
REPORT_RMSE = {n: _MODULES[n].REPORT.test_rmse for n in REPORT_APPROACHES}      # the report's test RMSE of each


def load(approach: str):
    """The experiment module of an approach, or a clear error listing the known ones."""
    if approach not in APPROACHES:
        from gz_experiments.config import ConfigError
        raise ConfigError(f"unknown approach {approach!r}; choose one of: {', '.join(APPROACHES)}")
    return _MODULES[approach]
