"""A sweep invocation: one parent MLflow run, this worker's share of the study's trials under it,
then the whole study's summary on it."""
from __future__ import annotations

import os
import time

from gz_experiments.config import ConfigError, override
from gz_experiments.sweep.claim import ClaimLock
from gz_experiments.sweep.options import OPTION_NAMES, SweepOptions
from gz_experiments.sweep.report import log_setup, summarize
from gz_experiments.sweep.study import describe, open_study
from gz_experiments.sweep.trial import WORKER, make_objective
from gz_experiments.sweep.worker import work


def sweep(options: SweepOptions, fixed: dict[str, str] | None = None, search_space: dict | None = None) -> dict:
    """Run this worker's share of the study, then log the study's summary on the parent run."""
    import experiments
    import mlflow

    from gz_experiments.tracking import experiment
    from gz_experiments.tracking import runs as tracking
    from gz_experiments.search import validate_space, without_fixed
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")   # a bar per model copy
    module = experiments.load(options.approach)
    try:
        config = override(module.CONFIG, fixed or {})
    except ConfigError as error:   # a mistyped sweep option lands here: list those too
        hint = f"; sweep options: {', '.join(sorted(OPTION_NAMES))}" if "unknown parameter" in str(error) else ""
        raise ConfigError(f"{error}{hint}") from None
    space = without_fixed(module.SEARCH_SPACE if search_space is None else search_space, set(fixed or {}))
    validate_space(space, config)
    study = open_study(options, config, fixed or {})
    with tracking.run(run_name=f"sweep-{options.name}", tags={"approach": f"sweep:{options.approach}"},
                      experiment_id=experiment.use(config.tracking.experiment)):
        # mlflow issue 15713: `mlflow run` hands the parent over in MLFLOW_RUN_ID; once it is
        # active, drop it so that no nested start_run (or child process) resumes the parent.
        os.environ.pop("MLFLOW_RUN_ID", None)
        mlflow.set_tags({"study_name": options.name, "worker": WORKER})
        log_setup(options, config, space, describe(options))
        started = time.perf_counter()
        failure = work(study, make_objective(config, space, options.name), options)
        mlflow.log_metric("sweep_seconds", time.perf_counter() - started)
        summary = summarize(study, config, claim=lambda: ClaimLock(options.storage, options.name))
        if failure is not None:
            raise failure
        return summary
