"""One module per approach: what the report specifies (`CONFIG`) and where sweeps look (`SEARCH_SPACE`).

Variants derive from a base with `override`, so each file holds only its differences.
"""
from __future__ import annotations

import importlib

REPORT_APPROACHES = ("cnn_full", "cnn_cropped", "cnn_slim_head", "resnet")   # the report's four models
APPROACHES = (*REPORT_APPROACHES, "galaxy_cnn")                                # and the project's own


def load(approach: str):
    """The experiment module of an approach, or a clear error listing the known ones."""
    if approach not in APPROACHES:
        from gz_experiments.config import ConfigError
        raise ConfigError(f"unknown approach {approach!r}; choose one of: {', '.join(APPROACHES)}")
    return importlib.import_module(f"experiments.{approach}")
