"""`gz-experiments ui`: MLflow's UI on this project's store (`tracking.ui` starts it)."""
from __future__ import annotations

from dataclasses import dataclass

from gz_experiments.options import option


@dataclass(frozen=True)
class UiOptions:
    """`mlflow ui` on the tracking store, and the link that compares runs."""
    port: int = option(5000, "the port it listens on", min=1)
    host: str = option("127.0.0.1", "the address it listens on (0.0.0.0: every network interface)")


def run(options: UiOptions) -> None:
    from gz_experiments.tracking.ui import serve
    serve(options.host, options.port)
