"""`gz-experiments train APPROACH [key=value …]`: one approach trained and recorded in MLflow, or
one run per seed (`seeds=1,2,3`); `--help-params` lists the approach's parameters."""
from __future__ import annotations

from gz_experiments.errors import ConfigError


def run(tokens: list[str]) -> None:
    """The approach first, then its parameters: validated, then the places results go checked, then
    ResNet's weights (before any data are generated: offline ResNet fails in seconds), then training."""
    import experiments
    from gz_experiments import models
    from gz_experiments.commands import print_metrics
    from gz_experiments.commands.seeds import split_seeds, train_each_seed
    from gz_experiments.config import override
    from gz_experiments.data.dataset import with_data_folder
    from gz_experiments.options import parse_overrides
    from gz_experiments.tracking.preflight import check_writable_places
    if not tokens or "=" in tokens[0] or tokens[0].startswith("-"):
        raise ConfigError(f"train needs an approach first: train APPROACH [key=value …]; "
                          f"approaches: {', '.join(experiments.APPROACHES)}")
    approach, tokens = tokens[0], tokens[1:]
    defaults = experiments.load(approach).CONFIG
    if "--help-params" in tokens:
        print_params(defaults)
        return
    overrides, seeds = split_seeds(parse_overrides(tokens))
    config = override(defaults, overrides)
    check_writable_places(config.tracking.experiment)
    models.prepare_weights(config.model)
    config = with_data_folder(config)
    if seeds:
        train_each_seed(config, seeds, defaults, show=print_metrics)
        return
    from gz_experiments.train import train   # after validation: a bad parameter fails before TensorFlow loads
    print_metrics(train(config, defaults=defaults))


def print_params(config) -> None:
    from gz_experiments.config import describe_params
    print(f"parameters of {config.approach} (set with key=value, or -P key=value under mlflow run):")
    print(describe_params(config))
