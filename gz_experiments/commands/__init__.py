"""The commands, one module each (`cli.COMMANDS` lists them with their options): train, baseline,
evaluate, predict, seeds (train's seeds=…), synthetic, ui. The sweep, report and ensemble commands
are packages of their own (`gz_experiments/sweep`, `report`, `ensemble`)."""


def print_metrics(metrics: dict) -> None:
    """A command's scores, one a line; per-question ones (`…_q…`) stay in MLflow."""
    for key in sorted(metrics):
        if "_q" not in key:
            print(f"{key:>16} {metrics[key]:.4f}" if isinstance(metrics[key], float) else f"{key:>16} {metrics[key]}")
