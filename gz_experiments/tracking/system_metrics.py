"""CPU, memory, disk, network (and GPU where present) sampled while a model trains: the run page's
"System metrics" tab (`system/cpu_utilization_percentage`, `system/system_memory_usage_megabytes` …).

MLflow's own monitor starts only with `start_run`, which a sweep's trials and `mlflow run`'s run
bypass here, and it drops the last partial interval, so a run shorter than one interval showed
nothing; this wrapper fixes both."""
from __future__ import annotations

import contextlib
import logging

import mlflow
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor   # needs psutil

SAMPLING_SECONDS = 5.0   # MLflow's default is 10 s; a tiny or quick run still gets a few points
_log = logging.getLogger(__name__)


@contextlib.contextmanager
def sampled(enabled: bool = True):
    """Sample system metrics into the active run while the block runs (if enabled)."""
    run = mlflow.active_run()
    if not enabled or run is None or _already_sampled(run.info.run_id):
        yield
        return
    try:
        monitor = _Monitor(run.info.run_id, sampling_interval=SAMPLING_SECONDS, resume_logging=True)
        monitor.start()
    except Exception as error:   # training matters more than its CPU chart
        _log.warning("system metrics are not logged: %s", error)
        monitor = None
    try:
        yield
    finally:
        if monitor is not None:
            monitor.finish()


def _already_sampled(run_id: str) -> bool:
    """MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true starts MLflow's monitor with the run: don't log twice."""
    from mlflow.tracking import fluent
    return run_id in getattr(fluent, "run_id_to_system_metrics_monitor", {})


class _Monitor(SystemMetricsMonitor):
    def start(self):
        self._first_step = self._logging_step
        super().start()

    def finish(self):
        super().finish()
        if self._logging_step == self._first_step:   # stopped within the first interval
            try:
                self.collect_metrics()
                self.publish_metrics(self.aggregate_metrics())
                self.mlflow_logger.flush()
            except Exception as error:
                _log.warning("the last system metrics sample was not logged: %s", error)
