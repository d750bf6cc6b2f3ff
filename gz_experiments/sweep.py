"""Optuna sweeps over an approach's `SEARCH_SPACE`, tracked in MLflow: one parent run per invocation,
one nested run per trial, pruned on per-epoch `val_rmse`.

The study lives in an RDB storage (a local SQLite file by default), so an invocation with the same
`study_name` resumes it, and the same command run on several machines against one PostgreSQL URL
makes them parallel workers. `n_trials` is the study's total of complete + pruned trials, shared
by all workers; a worker that dies stops its heartbeat, its trial turns FAIL and is retried.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
import typing
import warnings
from dataclasses import dataclass

from gz_experiments.config import TRACKING_FIELDS, ConfigError, _parse, override

WORKER = f"{socket.gethostname()}:{os.getpid()}"


class SweepError(RuntimeError):
    """The sweep can't go on (e.g. every trial fails); the message says why and what to do."""


@dataclass(frozen=True)
class SweepOptions:
    approach: str = "cnn_cropped"
    n_trials: int = 20                    # complete + pruned trials of the whole study, all workers
    study_name: str | None = None         # None: "<approach>-sweep"; an existing name resumes
    storage: str = "sqlite:///optuna.db"  # or postgresql+psycopg://user:pw@host/db for many workers
    pruner: str = "median"                # median | none
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 2
    sampler_seed: int | None = None       # None: each worker draws its own (same seeds = same trials)
    heartbeat_interval: int = 20          # seconds between a running trial's heartbeats
    grace_period: int = 90                # a trial silent this long is FAIL (its worker died)
    max_retry: int = 2                    # times a dead worker's parameters are tried again
    max_failures_in_row: int = 3          # a worker gives up after this many failed trials in a row

    @property
    def name(self) -> str:
        return self.study_name or f"{self.approach}-sweep"


OPTION_NAMES = {f.name for f in dataclasses.fields(SweepOptions)}


def parse_options(tokens: dict[str, str]) -> tuple[SweepOptions, dict[str, str]]:
    """Split `key=value` tokens into sweep options and config overrides fixed for every trial."""
    hints = typing.get_type_hints(SweepOptions)
    chosen = {k: _parse(k, v, hints[k]) for k, v in tokens.items() if k in OPTION_NAMES}
    options = SweepOptions(**chosen)
    if options.n_trials < 1:
        raise ConfigError(f"parameter 'n_trials' must be at least 1, got {options.n_trials}")
    if options.pruner not in ("median", "none"):
        raise ConfigError(f"parameter 'pruner' must be one of median, none; got {options.pruner!r}")
    if min(options.heartbeat_interval, options.grace_period) < 1 or options.grace_period <= options.heartbeat_interval:
        raise ConfigError("parameters 'heartbeat_interval' and 'grace_period' must be positive seconds "
                          f"with grace_period > heartbeat_interval; got {options.heartbeat_interval}, "
                          f"{options.grace_period}")
    return options, {k: v for k, v in tokens.items() if k not in OPTION_NAMES}


def sweep(options: SweepOptions, fixed: dict[str, str] | None = None, search_space: dict | None = None) -> dict:
    """Run this worker's share of the study, then log the study's summary on the parent run."""
    import experiments
    import mlflow

    from gz_experiments import experiment, sweep_report, tracking
    from gz_experiments.search import validate_space, without_fixed
    from gz_experiments.sweep_worker import ClaimLock, make_objective, work
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
        sweep_report.log_setup(options, config, space, describe(options))
        started = time.perf_counter()
        failure = work(study, make_objective(config, space, options.name), options)
        mlflow.log_metric("sweep_seconds", time.perf_counter() - started)
        summary = sweep_report.summarize(study, config, claim=lambda: ClaimLock(options.storage, options.name))
        if failure is not None:
            raise failure
        return summary


def open_study(options: SweepOptions, config, fixed: dict[str, str]):
    import optuna

    from gz_experiments.sweep_worker import ClaimLock
    with storage_errors(options.storage), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)   # heartbeats, since 2.9
        # Workers starting together on a fresh database would race on CREATE TABLE/TYPE.
        with ClaimLock(options.storage, "<schema>"):
            storage = optuna.storages.RDBStorage(
                options.storage, engine_kwargs=engine_options(options.storage),
                heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_period,
                # Optuna 4.9 renamed failed_trial_callback/RetryFailedTrialCallback to these.
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(options.max_retry))
            study = optuna.create_study(storage=storage, study_name=options.name, direction="minimize",
                                        sampler=make_sampler(options), pruner=make_pruner(options),
                                        load_if_exists=True)
    check_same_setup(study, options, config, fixed)
    return study


def engine_options(url: str) -> dict:
    # SQLite: several local workers wait for each other's writes; servers: survive idle drops.
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}


@contextlib.contextmanager
def storage_errors(url: str):
    import sqlalchemy
    try:
        yield
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.OperationalError, ImportError) as error:
        raise ConfigError(f"parameter 'storage': can't open {safe_url(url)!r} "
                          f"({type(error).__name__}: {str(error).splitlines()[0]}); use e.g. "
                          f"sqlite:///optuna.db or postgresql+psycopg://user@host:5432/db") from None


def safe_url(url: str) -> str:
    """The storage URL without its password, for logs and params."""
    import sqlalchemy
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url.split("@")[-1]


def make_pruner(options: SweepOptions):
    import optuna
    if options.pruner == "none":
        return optuna.pruners.NopPruner()
    # Median rather than Hyperband: sweeps here run tens of trials of a few epochs, too few to fill
    # Hyperband's brackets, and a CNN's first epoch or two sit on the predict-the-mean plateau
    # (val RMSE ≈ 0.16 whatever the architecture), so judging starts after a warm-up and only once
    # a few trials have set the median. Compared step by step, it is robust to noisy epochs.
    # Steps are 1-based epochs and Optuna may prune at step == n_warmup_steps: hence the + 1.
    return optuna.pruners.MedianPruner(n_startup_trials=options.pruner_startup_trials,
                                       n_warmup_steps=options.pruner_warmup_epochs + 1)


def make_sampler(options: SweepOptions):
    import optuna
    # constant_liar: parallel workers treat each other's running trials as bad results, so they
    # don't all propose the same point; multivariate: filters/size/learning rate interact.
    return optuna.samplers.TPESampler(seed=options.sampler_seed, multivariate=True, constant_liar=True,
                                      n_startup_trials=tpe_startup_trials(options))


def tpe_startup_trials(options: SweepOptions) -> int:
    """Random trials before TPE models the results: a third of the budget, 3 to 10."""
    return min(10, max(3, options.n_trials // 3))


def describe(options: SweepOptions) -> dict[str, str]:
    pruner = ("NopPruner" if options.pruner == "none" else
              f"MedianPruner(n_startup_trials={options.pruner_startup_trials}, "
              f"n_warmup_steps={options.pruner_warmup_epochs + 1})")
    return {"pruner_config": pruner,
            "sampler": f"TPESampler(multivariate, constant_liar, n_startup_trials="
                       f"{tpe_startup_trials(options)}, seed={options.sampler_seed})"}


def check_same_setup(study, options: SweepOptions, config, fixed: dict[str, str]) -> None:
    """A resumed study must sweep the same approach with the same fixed settings, or its trials
    are not comparable: refuse clearly rather than mix them."""
    from gz_experiments.config import flat_params
    flat = flat_params(override(config, fixed))   # idempotent when config already has them
    setup = {"approach": options.approach, **{k.split("[")[0]: str(flat.get(k.split("[")[0])) for k in fixed
                                              if k not in TRACKING_FIELDS}}   # where results go may change
    recorded = study.user_attrs.get("setup")
    if recorded is None:
        study.set_user_attr("setup", setup)
    elif recorded != setup:
        changed = sorted(k for k in set(setup) | set(recorded) if setup.get(k) != recorded.get(k))
        raise ConfigError(f"study {options.name!r} in {safe_url(options.storage)} was started with "
                          f"{ {k: recorded.get(k) for k in changed} }, this command has "
                          f"{ {k: setup.get(k) for k in changed} }: use the same settings to resume, "
                          f"or a new study_name")


def cmd_sweep(args, rest) -> None:
    from gz_experiments.cli import parse_overrides
    options, fixed = parse_options(parse_overrides(rest))
    try:
        summary = sweep(options, fixed)
    except SweepError as error:
        raise SystemExit(f"error: {error}") from None
    for key in sorted(summary):
        value = summary[key]
        print(f"{key:>24} {value:.4f}" if isinstance(value, float) else f"{key:>24} {value}")
    print(f"study {options.name!r} in {safe_url(options.storage)}; watch it with: "
          f"optuna-dashboard {safe_url(options.storage)}   and: mlflow ui")


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="Optuna sweep: sweep approach=cnn_cropped n_trials=30 [study_name=… storage=…] "
                      "[key=value fixed for every trial]")
    parser.set_defaults(run=cmd_sweep)
