"""How progress is shown: a terminal gets bars redrawn in place; a pipe (`mlflow run` in CI, output
sent to a log file) gets one line per epoch, and a line every tenth for the project's own bars,
because a bar redrawn per step leaves a carriage-return line per step in a log."""
from __future__ import annotations

import sys


def interactive() -> bool:
    """stdout is a terminal (Keras and the bars below write there)."""
    return sys.stdout.isatty()


def keras_verbose(progress: bool) -> int:
    """Keras' `verbose` for fit: 1 redraws a bar per step, 2 prints one line per epoch."""
    return 1 if progress and interactive() else 2


class _Lines:
    """Progbar's `update(done)` as a line at every tenth of the total."""

    def __init__(self, total: int, unit: str, steps: int = 10):
        self.total, self.unit, self.steps, self.shown = total, unit, steps, 0

    def update(self, done: int) -> None:
        reached = self.steps if done >= self.total else done * self.steps // max(self.total, 1)
        if reached > self.shown:
            self.shown = reached
            print(f"{done}/{self.total} {self.unit}s ({100 * done // max(self.total, 1)}%)", flush=True)


def progress_bar(total: int, unit: str = "image"):
    """An object with `update(done)`: Keras' bar on a terminal, a line every 10% otherwise."""
    if interactive():
        from keras.utils import Progbar   # Keras' bar, as in training, so logs look alike
        return Progbar(total, unit_name=unit)
    return _Lines(total, unit)
