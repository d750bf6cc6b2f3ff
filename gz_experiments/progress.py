"""How progress is shown: a terminal gets a line redrawn in place; a pipe (`mlflow run` in CI, a log
file) gets a few plain lines, because a bar redrawn per step leaves one carriage-return line per step
in a log. One display for the long loops outside `fit` (the image cache, predicting a folder, the
synthetic set) and Keras' verbosity for `fit`. No TensorFlow import, so the data tools stay light."""
from __future__ import annotations

import os
import sys
import time

REDRAW_SECONDS = 0.1   # on a terminal: often enough to look live, rarely enough to cost nothing
LOG_LINES = 10         # elsewhere (a log, `mlflow run`, CI): one line per tenth, never a line per step


def quiet_library_bars(stream=None) -> None:
    """In a log, MLflow's artifact bars would add a carriage-return line per file (an ensemble's
    members: hundreds); on a terminal they stay. An explicit MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR wins."""
    if not (sys.stderr if stream is None else stream).isatty():
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def keras_verbose(progress: bool) -> int:
    """Keras' `verbose` for fit: 1 redraws a bar per step (a terminal), 2 prints one line per epoch."""
    return 1 if progress and sys.stdout.isatty() else 2


class Progress:
    """`label: done/total (rate/s)` on stderr, redrawn in place on a terminal; in a log, about
    `LOG_LINES` plain lines, so captured output stays short. Call `update` with the number done."""

    def __init__(self, total: int, label: str, unit: str = "images", stream=None):
        self.total, self.label, self.unit = total, label, unit
        self.stream = sys.stderr if stream is None else stream
        self.live = self.stream.isatty()
        self.started, self.drawn_at = time.perf_counter(), float("-inf")   # the first update shows at once
        self.logged = 0   # how many of the LOG_LINES steps have been written

    def update(self, done: int) -> None:
        now, finished = time.perf_counter(), done >= self.total
        if self.live:
            if finished or now - self.drawn_at >= REDRAW_SECONDS:
                self.drawn_at = now
                self._write("\r" + self._line(done, now) + ("\n" if finished else ""))
        else:
            step = LOG_LINES if finished else done * LOG_LINES // max(self.total, 1)
            if step > self.logged:
                self.logged = step
                self._write(self._line(done, now) + "\n")

    def _line(self, done: int, now: float) -> str:
        rate = done / max(now - self.started, 1e-9)
        return f"{self.label}: {done}/{self.total} {self.unit} ({rate:,.0f}/s)"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
