"""The study in its storage: opened (or resumed) with this sweep's sampler, pruner and heartbeat,
checked to be the same setup as when it started, and storage URLs made safe to log."""
from __future__ import annotations

import contextlib
import warnings

from gz_experiments.config import TRACKING_FIELDS, ConfigError, flat_params, override
from gz_experiments.sweep.claim import ClaimLock
from gz_experiments.sweep.options import SweepOptions


def open_study(options: SweepOptions, config, fixed: dict[str, str]):
    import optuna
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
            if study.metric_names != ["val_rmse"]:   # optuna-dashboard labels the objective with it
                study.set_metric_names(["val_rmse"])
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
    if options.pruner == "hyperband":
        # Many short trials (tens, at a few epochs each): successive halving in brackets, epochs
        # as the resource; the first judgement after the warm-up, the budget from the first trial.
        return optuna.pruners.HyperbandPruner(min_resource=options.pruner_warmup_epochs + 1, max_resource="auto",
                                              reduction_factor=3)
    # Median by default: sweeps here run tens of trials of a few epochs, too few to fill
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
    pruner = {"none": "NopPruner",
              "hyperband": f"HyperbandPruner(min_resource={options.pruner_warmup_epochs + 1}, "
                           f"max_resource=auto, reduction_factor=3)",
              "median": f"MedianPruner(n_startup_trials={options.pruner_startup_trials}, "
                        f"n_warmup_steps={options.pruner_warmup_epochs + 1})"}[options.pruner]
    return {"pruner_config": pruner,
            "sampler": f"TPESampler(multivariate, constant_liar, n_startup_trials="
                       f"{tpe_startup_trials(options)}, seed={options.sampler_seed})"}


def check_same_setup(study, options: SweepOptions, config, fixed: dict[str, str]) -> None:
    """A resumed study must sweep the same approach with the same fixed settings, or its trials
    are not comparable: refuse clearly rather than mix them."""
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
