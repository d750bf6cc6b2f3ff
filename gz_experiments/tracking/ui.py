"""`gz-experiments ui`: MLflow's UI on this project's tracking store, started the quick way, and the
link that opens the runs compared (see `links`)."""
from __future__ import annotations

import os
import subprocess
import sys

import mlflow

from gz_experiments.tracking import experiment, links, processes, runs


def command(host: str, port: int) -> list[str]:
    """One worker, no job runner: the UI is up in seconds and holds one process."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", mlflow.get_tracking_uri(),
            "--host", host, "--port", str(port), "--workers", "1"]


def serve(host: str = "127.0.0.1", port: int = 5000) -> None:
    """Print the links, then run `mlflow ui` in the foreground until Ctrl-C."""
    base = f"http://{host}:{port}"
    runs.ready_store()
    experiment_id = experiment.use()   # galaxy-zoo, or MLFLOW_EXPERIMENT_NAME: made ready for the UI
    print(f"MLflow UI on {mlflow.get_tracking_uri()} at {base} (Ctrl-C stops it)")
    if experiment_id is not None:
        links.refresh_view(experiment_id)
        print(f"  compare the runs: {links.comparison_link(experiment_id, base)}")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(command(host, port), env=env)
    signals = processes.raise_on_stop_signals()   # SIGTERM as Ctrl-C: the server goes with us
    try:
        server.wait()
    except BaseException:   # Ctrl-C, SIGTERM, SIGHUP
        server.terminate()
        server.wait(timeout=30)
    finally:
        processes.restore_signals(signals)
