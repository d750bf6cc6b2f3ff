"""`seeds=1,2,3`: one run per seed from one command, all on the split `split_seed` draws."""
from __future__ import annotations

from gz_experiments.config import ConfigError


def parse_seeds(raw: str) -> tuple[int, ...]:
    """'1,2,3' -> (1, 2, 3): distinct whole numbers ≥ 0, at least one."""
    words = [w.strip() for w in str(raw).replace(";", ",").split(",") if w.strip()]
    if not words or not all(w.isdigit() for w in words):
        raise ConfigError(f"parameter 'seeds' takes whole numbers ≥ 0 separated by commas, e.g. seeds=1,2,3; "
                          f"got {raw!r}")
    seeds = tuple(int(w) for w in words)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"parameter 'seeds' lists a seed twice ({raw!r}): each seed is one run")
    return seeds


def split_seeds(overrides: dict[str, str]) -> tuple[dict[str, str], tuple[int, ...]]:
    """Take `seeds` out of the command's parameters (it is not a config field). It sets each run's
    `seed`, so a `seed` given too (an entry point's declared default) is dropped, and said so."""
    if "seeds" not in overrides:
        return overrides, ()
    seeds = parse_seeds(overrides["seeds"])
    if "seed" in overrides:
        print(f"seeds={','.join(map(str, seeds))}: each run's seed comes from seeds (seed={overrides['seed']} unused)")
    return {k: v for k, v in overrides.items() if k not in ("seeds", "seed")}, seeds


def train_each_seed(config, seeds: tuple[int, ...], show=print) -> None:
    """One nested run per seed under one parent run, every one on the split of `split_seed`;
    `show` gets each run's metrics as it ends."""
    import os

    import mlflow

    from gz_experiments.tracking import experiment
    from gz_experiments.tracking import runs as tracking
    from gz_experiments.config import override
    from gz_experiments.train import train
    with tracking.run(run_name=f"{config.approach}-seeds", tags={"approach": f"seeds:{config.approach}"},
                      experiment_id=experiment.use(config.tracking.experiment)):
        os.environ.pop("MLFLOW_RUN_ID", None)   # mlflow issue 15713: nested runs must not resume the parent
        mlflow.set_tag("seeds", ",".join(map(str, seeds)))
        for seed in seeds:
            with tracking.run(run_name=f"{config.approach}-seed{seed}", nested=True):
                metrics = train(override(config, seed=seed))
            mlflow.log_metric(f"test_rmse/seed_{seed}", metrics.get("test_rmse", float("nan")))
            print(f"seed {seed}:")
            show(metrics)
