"""Interim: registers the `sweep` command until cli.py gets its own (then delete this file)."""
from __future__ import annotations


def cmd_sweep(args, rest) -> None:
    from gz_experiments.cli import parse_overrides
    from gz_experiments.sweep import SweepError, format_summary, parse_options, sweep
    options, fixed = parse_options(parse_overrides(rest))
    try:
        summary = sweep(options, fixed)
    except SweepError as error:
        raise SystemExit(f"error: {error}") from None
    print(format_summary(summary, options))


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="Optuna sweep: sweep approach=cnn_cropped n_trials=30 [study_name=… storage=…] "
                      "[key=value fixed for every trial]")
    parser.set_defaults(run=cmd_sweep)
