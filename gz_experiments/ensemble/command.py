"""`ensemble` on the command line: its options, read and checked before anything is downloaded.

    python -m gz_experiments ensemble models=runs:/<a>/model,models:/<name>@champion [key=value …]
    python -m gz_experiments ensemble experiment=<name> approach=galaxy_cnn top_k=3 [key=value …]
"""
from __future__ import annotations

from gz_experiments.ensemble.options import parse_options


def cmd_ensemble(tokens: list[str]) -> None:
    """ensemble models=… | experiment=… approach=… [top_k=3]: one model averaging logged models."""
    from gz_experiments.cli import _print_metrics, parse_overrides
    options = parse_options(parse_overrides(tokens))
    from gz_experiments.ensemble.build import ensemble   # after validation: TensorFlow loads here
    _print_metrics(ensemble(options))


def add_command(commands) -> None:
    """The argparse CLI's hook (see cli.EXTRA_COMMANDS)."""
    commands.add_parser("ensemble", help=cmd_ensemble.__doc__.splitlines()[0]).set_defaults(
        run=lambda args, rest: cmd_ensemble(rest))
