"""`gz-experiments` — thin commands over the library; MLproject's entry points call these.

Every command takes its parameters as `key=value` or `--key value` (what `mlflow run -P` appends
for parameters an entry point does not declare), read by one parser. A user error (`GzError`) is
one line `error: …` and exit status 2, also recorded on the run `mlflow run` made; Ctrl-C is one
line and exit status 130; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import errno
import os
import sys

from gz_experiments import progress
from gz_experiments.errors import ConfigError, GzError

REQUIRED = object()
# Options of the commands that take no training config: name -> (type, default).
EVALUATE = {"model_uri": (str, REQUIRED), "data_dir": (str, REQUIRED), "tta": (bool, "true"),
            "skip_bad_images": (bool, "false")}
PREDICT = {"model_uri": (str, REQUIRED), "images": (str, REQUIRED), "out": (str, "submission.csv"),
           "tta": (bool, "false"), "batch_size": (int, "500"), "skip_bad_images": (bool, "false")}
UI = {"port": (int, "5000"), "host": (str, "127.0.0.1")}
SYNTHETIC = {"out": (str, "data/synthetic"), "n": (int, "2000"), "n_test": (int, "0"), "seed": (int, "0")}
# A sweep trains many models: shorter than an approach's own run unless epochs=… is given.
SWEEP_EPOCHS = "6"


def parse_overrides(tokens: list[str]) -> dict[str, str]:
    """`key=value`, `--key value` and `--key=value` tokens -> {key: value}; `-` in keys reads as `_`."""
    return {key.replace("-", "_"): value for key, value in _pairs(tokens)}


def _pairs(tokens: list[str]):
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("--"):
            key, has_value, value = token[2:].partition("=")
            if not has_value:
                if i + 1 >= len(tokens):
                    raise ConfigError(f"parameter --{key} needs a value")
                value, i = tokens[i + 1], i + 1
        elif "=" in token:
            key, _, value = token.partition("=")
        else:
            raise ConfigError(f"expected key=value or --key value, got {token!r}")
        yield key, value
        i += 1


def _options(command: str, given: dict[str, str], spec: dict) -> dict:
    """Parsed values of `spec`'s options, or one error naming the unknown and missing ones."""
    from gz_experiments.config import parse_value
    unknown = sorted(set(given) - set(spec))
    missing = [k for k, (_, default) in spec.items() if default is REQUIRED and k not in given]
    if unknown or missing:
        usage = " ".join(f"{k}=…" if d is REQUIRED else f"[{k}={d}]" for k, (_, d) in spec.items())
        raise ConfigError(f"{command} takes {usage}; unknown {unknown or 'none'}, missing {missing or 'none'}")
    return {k: parse_value(k, given.get(k, default), hint) for k, (hint, default) in spec.items()}


# ---- the commands --------------------------------------------------------------------------------

def cmd_train(tokens: list[str]) -> None:
    """train APPROACH [key=value …] [--help-params]: one approach, logged to MLflow."""
    import experiments
    from gz_experiments.config import override
    if not tokens or "=" in tokens[0] or tokens[0].startswith("-"):
        raise ConfigError(f"train needs an approach first: train APPROACH [key=value …]; "
                          f"approaches: {', '.join(experiments.APPROACHES)}")
    approach, tokens = tokens[0], tokens[1:]
    if "--help-params" in tokens:
        _print_params(experiments.load(approach).CONFIG)
        return
    from gz_experiments.commands.seeds import split_seeds
    overrides, seeds = split_seeds(_given(tokens))
    defaults = experiments.load(approach).CONFIG
    config = override(defaults, overrides)
    config = _ready(config, config.tracking.experiment)
    from gz_experiments import models
    models.prepare_weights(config.model)   # before any data are generated: offline ResNet fails in seconds
    config = with_data_folder(config)
    if seeds:
        from gz_experiments.commands.seeds import train_each_seed
        train_each_seed(config, seeds, defaults, show=_print_metrics)
        _print_links()
        return
    from gz_experiments.train import train   # after validation: a bad parameter fails before TensorFlow loads
    _print_metrics(train(config, defaults=defaults))
    _print_links()


def cmd_baseline(tokens: list[str]) -> None:
    """baseline [key=value …]: the mean-prediction floor on the split training uses."""
    import experiments
    from gz_experiments.commands.baseline import baseline
    from gz_experiments.config import override
    config = override(experiments.load("cnn_cropped").CONFIG, _given(tokens))
    _print_metrics(baseline(with_data_folder(_ready(config, config.tracking.experiment))))
    _print_links()


def cmd_evaluate(tokens: list[str]) -> None:
    """evaluate model_uri=… data_dir=… [tta=true] [skip_bad_images=false]: score a logged model."""
    options = _ready(_options("evaluate", _given(tokens), EVALUATE))
    from gz_experiments.commands.evaluate import evaluate
    _print_metrics(evaluate(**options))
    _print_links()


def cmd_predict(tokens: list[str]) -> None:
    """predict model_uri=… images=… [out=submission.csv] [tta=false] [batch_size=500]: a submission CSV."""
    options = _options("predict", _given(tokens), PREDICT)
    if options["batch_size"] < 1:
        raise ConfigError(f"parameter 'batch_size' must be at least 1, got {options['batch_size']}")
    _ready(options)
    from gz_experiments.commands.predict import predict
    predict(**options)


def cmd_sweep(tokens: list[str]) -> None:
    """sweep approach=… n_trials=… [study_name=… storage=… pruner=…] [key=value fixed for every trial]."""
    from gz_experiments.sweep import parse_options, safe_url, sweep
    options, fixed = parse_options(_given(tokens))
    _ready(options, fixed.get("experiment"))
    summary = sweep(options, _sweep_fixed(options.approach, {"epochs": SWEEP_EPOCHS, **fixed}))
    for key in sorted(summary):
        value = summary[key]
        print(f"{key:>24} {value:.4f}" if isinstance(value, float) else f"{key:>24} {value}")
    print(f"study {options.name!r} in {safe_url(options.storage)}; watch it with: "
          f"optuna-dashboard {safe_url(options.storage)}   and: gz-experiments ui")
    _print_links()


def cmd_report(tokens: list[str]) -> None:
    """report data_dir=… [approaches=…] [seeds=…] [from=RUN_ID] [key=value …]: the report's table."""
    from gz_experiments.report import parse_options, report
    options, fixed = _ready(parse_options(_given(tokens)))
    print(report(options, fixed)["summary"])
    _print_links()


def cmd_ensemble(tokens: list[str]) -> None:
    """ensemble models=URI,… | experiment=… approach=… top_k=3 [data_dir=…] [register=…]: one averaged model."""
    from gz_experiments.ensemble.options import parse_options
    options = parse_options(_given(tokens))
    _ready(options, options.experiment)
    from gz_experiments.ensemble.build import ensemble   # after validation: TensorFlow loads here
    _print_metrics(ensemble(options))
    _print_links()


def cmd_synthetic(tokens: list[str]) -> None:
    """synthetic [out=data/synthetic] [n=2000] [n_test=0] [seed=0]: a data set in the competition layout."""
    options = _options("synthetic", parse_overrides(tokens), SYNTHETIC)
    if min(options["n"], options["n_test"] + 1, options["seed"] + 1) < 1:
        raise ConfigError(f"synthetic needs n ≥ 1, n_test ≥ 0 and seed ≥ 0; got {options}")
    from gz_experiments.synthetic import generate
    path = generate(options["out"], options["n"], seed=options["seed"], n_test=options["n_test"])
    print(f"wrote {options['n']} synthetic galaxies to {path}")


def cmd_ui(tokens: list[str]) -> None:
    """ui [port=5000] [host=127.0.0.1]: `mlflow ui` on the tracking store, and the link that compares runs."""
    options = _options("ui", parse_overrides(tokens), UI)
    from gz_experiments.tracking.ui import serve
    serve(options["host"], options["port"])


COMMANDS = {"train": cmd_train, "baseline": cmd_baseline, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "sweep": cmd_sweep, "report": cmd_report, "ensemble": cmd_ensemble, "synthetic": cmd_synthetic, "ui": cmd_ui}


def _given(tokens: list[str]) -> dict[str, str]:
    """The command line's parameters; under `mlflow run` these are the ones MLflow logged already."""
    return parse_overrides(tokens)


def _ready(validated, experiment: str | None = None):
    """Once the parameters are valid and before any heavy work: can results be written (into
    `experiment`, the command's `experiment` parameter, where it has one)?"""
    from gz_experiments.tracking.preflight import check_writable_places
    check_writable_places(experiment)
    return validated


def with_data_folder(config):
    """`data_dir=synthetic` names the built-in data set: generate it (once, into the cache) here,
    so the library is handed a folder like any other."""
    from gz_experiments.config import override
    from gz_experiments.data.dataset import SYNTHETIC, resolve_data_dir
    if config.data.data_dir != SYNTHETIC:
        return config
    data = config.data
    print(f"data: the built-in synthetic set ({(data.n_train or 8000) + data.n_val + data.n_test} generated galaxies, "
          f"not the competition's); give data_dir=<folder> for real data")
    return override(config, data_dir=str(resolve_data_dir(config.data)))


def _sweep_fixed(approach: str, fixed: dict[str, str]) -> dict[str, str]:
    import experiments
    from gz_experiments.config import override
    try:
        config = override(experiments.load(approach).CONFIG, fixed)
    except ConfigError:   # sweep() reports it, listing the sweep options too
        return fixed
    resolved = with_data_folder(config).data.data_dir
    return fixed if resolved == config.data.data_dir else {**fixed, "data_dir": resolved}


def _print_params(config) -> None:
    from gz_experiments.config import describe_params
    print(f"parameters of {config.approach} (set with key=value, or -P key=value under mlflow run):")
    print(describe_params(config))


def _print_metrics(metrics: dict) -> None:
    for key in sorted(metrics):
        if "_q" not in key:
            print(f"{key:>16} {metrics[key]:.4f}" if isinstance(metrics[key], float) else f"{key:>16} {metrics[key]}")


def _print_links() -> None:
    """The run just recorded and the experiment's runs compared, as `gz-experiments ui` serves them."""
    from gz_experiments.tracking import links, store
    found = links.last_run_links()
    if found is not None:
        run_id, run, compare = found
        print(f"MLflow run {run_id} in {store.tracking_uri()}; with `gz-experiments ui` running:\n"
              f"  this run:         {run}\n  compare the runs: {compare}")
        for line in links.model_lines(run_id):
            print(line)


def usage() -> str:
    lines = [__doc__.splitlines()[0], "", "usage: python -m gz_experiments COMMAND [key=value …]", ""]
    lines += [f"  {name:<10} {command.__doc__.splitlines()[0]}" for name, command in COMMANDS.items()]
    return "\n".join(lines)


# ---- running one ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # keep TensorFlow's start-up chatter out
    progress.quiet_library_bars()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, tokens = argv[0], argv[1:]
    try:
        if name not in COMMANDS:
            raise ConfigError(f"unknown command {name!r}; commands: {', '.join(COMMANDS)}")
        if {"-h", "--help"} & set(tokens):
            print(COMMANDS[name].__doc__)
            return 0
        from gz_experiments.tracking.runs import begin_command
        begin_command()   # follow an `mlflow run` launcher; close runs whose process died
        COMMANDS[name](tokens)
    except GzError as error:
        print(f"error: {error}", file=sys.stderr)
        from gz_experiments.tracking.runs import record_command_error
        record_command_error(error)
        return 2
    except OSError as error:   # a disk filled (the run was ended FAILED already): an error like any other
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = error.filename2 or error.filename or "a folder this command writes"   # a copy's destination
        print(f"error: no space left on the device of {where} "
              f"({error.strerror}); free some space there, or point the store (MLFLOW_TRACKING_URI, the "
              f"experiment's artifact location) or GZ_CACHE_DIR at a disk with room", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # the run was ended KILLED already, with the reason; no traceback
        print(f"interrupted (Ctrl-C): {name} stopped", file=sys.stderr)
        return 130
    finally:   # models and files fetched from MLflow: nothing is left in $TMPDIR
        if "gz_experiments.tracking.downloads" in sys.modules:
            sys.modules["gz_experiments.tracking.downloads"].remove_all()
    return 0
