"""A sweep invocation: this worker's share of the study's trials under the study's one parent MLflow
run (`parent`), then — by the worker that finds the budget met — the whole study's summary on it."""
from __future__ import annotations

import os
import time

from gz_experiments.config import ConfigError, override
from gz_experiments.sweep.options import OPTION_NAMES, SweepOptions
from gz_experiments.sweep.parent import attach, finish, interrupted
from gz_experiments.sweep.report import format_summary, log_setup, summarize
from gz_experiments.sweep.study import describe, open_study
from gz_experiments.sweep.trial import make_objective
from gz_experiments.sweep.worker import work

# A sweep trains many models: shorter than an approach's own run unless epochs=… is given.
SWEEP_EPOCHS = "6"


def command(options: SweepOptions) -> None:
    """`gz-experiments sweep`: once the places results go are writable; prints the study's summary."""
    from gz_experiments.tracking.preflight import check_writable_places
    check_writable_places(options.fixed.get("experiment"))
    fixed = _with_data_folder(options.approach, {"epochs": SWEEP_EPOCHS, **options.fixed})
    print(format_summary(sweep(options, fixed), options))


def _with_data_folder(approach: str, fixed: dict[str, str]) -> dict[str, str]:
    """`data_dir=synthetic` generated once here, so that every trial (and worker) reads its folder."""
    import experiments

    from gz_experiments.data.dataset import with_data_folder
    try:
        config = override(experiments.load(approach).CONFIG, fixed)
    except ConfigError:   # sweep() reports it, listing the sweep options too
        return fixed
    resolved = with_data_folder(config).data.data_dir
    return fixed if resolved == config.data.data_dir else {**fixed, "data_dir": resolved}


def sweep(options: SweepOptions, fixed: dict[str, str] | None = None, search_space: dict | None = None) -> dict:
    """Run this worker's share of the study; the study's summary once its budget is met."""
    import experiments

    from gz_experiments.search import validate_space, without_fixed
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")   # a bar per model copy
    module = experiments.load(options.approach)
    if options.trial_minutes is not None:   # each trial's training budget: its epochs and schedule fit it
        fixed = {"budget_minutes": str(options.trial_minutes), **(fixed or {})}
    try:
        config = override(module.CONFIG, fixed or {})
    except ConfigError as error:   # a mistyped sweep option lands here: list those too
        hint = f"; sweep options: {', '.join(sorted(OPTION_NAMES))}" if "unknown parameter" in str(error) else ""
        raise ConfigError(f"{error}{hint}") from None
    space = without_fixed(module.SEARCH_SPACE if search_space is None else search_space, set(fixed or {}))
    validate_space(space, config)
    study = open_study(options, config, fixed or {})
    parent_id = attach(study, options, config.tracking.experiment, f"sweep {options.name} ({options.approach})",
                       {"approach": f"sweep:{options.approach}", "study_name": options.name})
    started = time.perf_counter()
    try:
        failure = work(study, make_objective(config, space, options.name, parent_id), options)
    except BaseException as error:
        interrupted(options, parent_id, error)
        raise

    def write(rec) -> dict:
        log_setup(rec, options, config, space, describe(options))
        rec.results({"sweep_seconds": time.perf_counter() - started})
        return summarize(rec, study, config)

    summary = finish(study, options, parent_id, failure, write)
    if failure is not None:
        raise failure
    return summary
