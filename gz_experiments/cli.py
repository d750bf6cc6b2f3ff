"""`gz-experiments` — thin commands over the library; MLproject's entry points call these.

Parameters are `key=value` or `--key value` (what `mlflow run -P` appends for undeclared ones),
parsed and validated by `gz_experiments.config.override`.
"""
from __future__ import annotations

import argparse
import os
import sys

EXPECTED_ERRORS = ("ConfigError", "DataError", "WeightsError", "ImageError", "SearchSpaceError", "EnsembleError")


def parse_overrides(tokens: list[str]) -> dict[str, str]:
    overrides, i = {}, 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            key, _, value = token[2:].partition("=")
            if not _:
                if i + 1 >= len(tokens):
                    raise SystemExit(f"error: parameter --{key} needs a value")
                value, i = tokens[i + 1], i + 1
        elif "=" in token:
            key, _, value = token.partition("=")
        else:
            raise SystemExit(f"error: expected key=value or --key value, got {token!r}")
        overrides[key.replace("-", "_")] = value
        i += 1
    return overrides


def cmd_train(args, rest) -> None:
    import experiments
    from gz_experiments.config import override
    if "--help-params" in rest:
        _print_params(experiments.load(args.approach).CONFIG)
        return
    config = override(experiments.load(args.approach).CONFIG, parse_overrides(rest))
    from gz_experiments.train import train   # after validation: a bad parameter fails before TensorFlow loads
    _print_metrics(train(config))


def _print_params(config) -> None:
    from gz_experiments.config import flat_params
    print(f"parameters of {config.approach} (set with key=value, or -P key=value under mlflow run):")
    for key, value in flat_params(config).items():
        print(f"  {key} = {'none' if value is None else value}")


def cmd_baseline(args, rest) -> None:
    import experiments
    from gz_experiments.baseline import baseline
    from gz_experiments.config import override
    _print_metrics(baseline(override(experiments.load("cnn_cropped").CONFIG, parse_overrides(rest))))


def cmd_evaluate(args, rest) -> None:
    from gz_experiments.config import _parse
    from gz_experiments.evaluate import evaluate
    options = parse_overrides(rest)
    unknown = set(options) - {"model_uri", "data_dir", "tta", "skip_bad_images"}
    if unknown or not {"model_uri", "data_dir"} <= set(options):
        raise SystemExit(f"error: evaluate takes model_uri=… data_dir=… [tta=true] [skip_bad_images=false]; "
                         f"got {sorted(options)}")
    _print_metrics(evaluate(options["model_uri"], options["data_dir"],
                            tta=_parse("tta", options.get("tta", "true"), bool),
                            skip_bad_images=_parse("skip_bad_images", options.get("skip_bad_images", "false"), bool)))


def cmd_synthetic(args, rest) -> None:
    from gz_experiments.synthetic import generate
    path = generate(args.out, args.n, seed=args.seed, n_test=args.n_test)
    print(f"wrote {args.n} synthetic galaxies to {path}")


def _print_metrics(metrics: dict) -> None:
    import mlflow
    for key in sorted(metrics):
        if "_q" not in key:
            print(f"{key:>16} {metrics[key]:.4f}" if isinstance(metrics[key], float) else f"{key:>16} {metrics[key]}")
    run = mlflow.last_active_run()
    if run is not None:
        print(f"MLflow run {run.info.run_id} in {mlflow.get_tracking_uri()} — see it with: mlflow ui")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gz-experiments", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one approach: train APPROACH [key=value ...]")
    train.add_argument("approach")
    train.set_defaults(run=cmd_train)
    commands.add_parser("baseline", help="log the mean-prediction floor on the same split").set_defaults(run=cmd_baseline)
    commands.add_parser("evaluate", help="evaluate model_uri=… data_dir=…").set_defaults(run=cmd_evaluate)
    synthetic = commands.add_parser("synthetic", help="write a synthetic data set in the competition layout")
    synthetic.add_argument("--out", required=True)
    synthetic.add_argument("--n", type=int, default=2000)
    synthetic.add_argument("--n-test", type=int, default=0)
    synthetic.add_argument("--seed", type=int, default=0)
    synthetic.set_defaults(run=cmd_synthetic)
    for extra in EXTRA_COMMANDS:
        extra(commands)
    return parser


EXTRA_COMMANDS: list = []   # sweep and predict register here, keeping this module thin


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # keep TensorFlow's start-up chatter out
    _register_extra_commands()
    args, rest = build_parser().parse_known_args(argv)
    try:
        args.run(args, rest)
    except Exception as error:
        if type(error).__name__ not in EXPECTED_ERRORS:
            raise
        print(f"error: {error}", file=sys.stderr)
        _record_in_project_run(error)
        return 2
    return 0


def _record_in_project_run(error: Exception) -> None:
    """Under `mlflow run` the run exists before the command starts: an error raised before training
    took it over (a bad parameter) is logged there too, so the FAILED run says why."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    from mlflow import MlflowClient
    message = f"{type(error).__name__}: {error}"
    try:
        client = MlflowClient()
        if "error" not in client.get_run(run_id).data.tags:   # training's own record has the traceback
            client.set_tag(run_id, "error", message[:5000])
            client.log_text(run_id, message + "\n", "error.txt")
    except Exception:   # the store being unreachable must not hide the user's error
        pass


def _register_extra_commands() -> None:
    import importlib
    for module in ("gz_experiments.sweep", "gz_experiments.predict", "gz_experiments.ensemble.command"):
        try:
            command = importlib.import_module(module).add_command
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            continue
        if command not in EXTRA_COMMANDS:   # main() may run several times in one process (tests)
            EXTRA_COMMANDS.append(command)
