"""The progress display of the cache build, `predict` and the synthetic set: short in logs, live on a terminal."""
from __future__ import annotations

import io
import os

import mlflow

from gz_experiments.cli import main
from gz_experiments.progress import LOG_LINES, Progress, keras_verbose, quiet_library_bars

BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_it_writes_a_line_per_tenth_and_one_at_the_end():
    log = io.StringIO()
    bar = Progress(1000, "decoding", stream=log)
    for done in range(1, 1001):
        bar.update(done)
    lines = log.getvalue().splitlines()
    assert len(lines) == LOG_LINES and "\r" not in log.getvalue()
    assert lines[0].startswith("decoding: 100/1000 images") and lines[-1].startswith("decoding: 1000/1000 images")


def test_on_a_terminal_it_redraws_one_line_and_ends_it():
    terminal = Terminal()
    bar = Progress(3, "predicting", stream=terminal)
    for done in (1, 2, 3):
        bar.update(done)
    text = terminal.getvalue()
    assert text.startswith("\rpredicting: 1/3 images") and text.endswith("\n") and text.count("\n") == 1
    assert "\rpredicting: 3/3 images" in text


def test_keras_prints_a_line_per_epoch_unless_on_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())   # as under mlflow run or CI
    assert keras_verbose(True) == 2 and keras_verbose(False) == 2
    monkeypatch.setattr("sys.stdout", Terminal())
    assert keras_verbose(True) == 1 and keras_verbose(False) == 2


def test_in_a_log_mlflow_artifact_bars_are_off_unless_asked_for(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv(BARS, "")   # so that teardown restores what was there (delenv alone can't)
    monkeypatch.delenv(BARS)
    quiet_library_bars(Terminal())
    assert BARS not in os.environ
    main(["help"])   # every command starts so; stderr is captured here, as in a log
    assert os.environ[BARS] == "false"
    files = tmp_path / "files"
    files.mkdir()
    for name in "abc":
        (files / name).write_text(name)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(files), "files")
    capfd.readouterr()
    mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/files", dst_path=str(tmp_path / "out"))
    assert "Downloading artifacts" not in capfd.readouterr().err
    monkeypatch.setenv(BARS, "true")   # asked for explicitly: kept
    quiet_library_bars(io.StringIO())
    assert os.environ[BARS] == "true"
