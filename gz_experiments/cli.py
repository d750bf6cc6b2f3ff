"""`gz-experiments` — thin commands over the library; MLproject's entry points call these.

Only dispatches: a command's options are a dataclass beside it, read by `options.parse` from `key=value`
or `--key value` (what `mlflow run -P` appends); train and baseline take the training config's fields.
A user error (`GzError`) is one line `error: …` and exit status 2, also recorded on the run `mlflow run`
made; Ctrl-C is one line and exit status 130; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import errno
import importlib
import os
import sys
from typing import NamedTuple

from gz_experiments import progress
from gz_experiments.errors import ConfigError, GzError
from gz_experiments.options import parse, parse_overrides, usage as options_usage

TRAINING = None   # the command's key=value are the training config's fields (`train APPROACH --help-params`)


class Command(NamedTuple):
    options: str | None   # "module:Class" of its options dataclass, or TRAINING (then `run` gets the tokens)
    run: str              # "module:function" called with the parsed options; imported only to run it
    summary: str
    links: bool = True    # then print the links to the run it recorded


COMMANDS = {
    "train": Command(TRAINING, "commands.train:run", "APPROACH [key=value …] [seeds=1,2,3]: one approach, in MLflow"),
    "baseline": Command(TRAINING, "commands.baseline:run", "[key=value …]: the mean prediction on training's split"),
    "evaluate": Command("commands.evaluate:EvaluateOptions", "commands.evaluate:run", "score a logged model"),
    "predict": Command("commands.predict:PredictOptions", "commands.predict:run", "a submission CSV", links=False),
    "sweep": Command("sweep.options:SweepOptions", "sweep.run:command", "an Optuna sweep of an approach"),
    "report": Command("report.options:ReportOptions", "report.run:command", "the report's table, a run per approach"),
    "ensemble": Command("ensemble.options:EnsembleOptions", "ensemble.build:command", "a model averaging logged ones"),
    "synthetic": Command("commands.synthetic:SyntheticOptions", "commands.synthetic:run",
                         "a generated data set in the competition layout", links=False),
    "ui": Command("commands.ui:UiOptions", "commands.ui:run", "`mlflow ui` and a link comparing runs", links=False),
}


def _load(reference: str):
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(f"gz_experiments.{module}"), name)


def run(name: str, tokens: list[str]) -> None:
    """Parse the command's options (an error names them before any work), run it, show its run's links."""
    command = COMMANDS[name]
    options = tokens if command.options is TRAINING else parse(_load(command.options), parse_overrides(tokens), name)
    _load(command.run)(options)
    if command.links:
        _print_links()


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
    lines = [__doc__.splitlines()[0], "", "usage: gz-experiments COMMAND [key=value …]   (COMMAND --help)", ""]
    lines += [f"  {name:<10} {command.summary}" for name, command in COMMANDS.items()]
    return "\n".join(lines)


def command_help(name: str) -> str:
    command = COMMANDS[name]
    if command.options is TRAINING:
        return f"{name} {command.summary}\nparameters: the training config's (train APPROACH --help-params)"
    return f"{name}: {command.summary}\n{options_usage(_load(command.options), name)}"


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
            print(command_help(name))
            return 0
        from gz_experiments.tracking.runs import begin_command
        begin_command()   # follow an `mlflow run` launcher; close runs whose process died
        run(name, tokens)
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
