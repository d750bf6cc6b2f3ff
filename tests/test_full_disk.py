"""A disk that fills is an error like any other: one line naming the folder and the bytes needed,
no partial file left behind, the run FAILED. Each case runs a real command on a small tmpfs mount
(the tests run as root in CI; elsewhere, where mounting is not allowed, they are skipped)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from conftest import command_env, tiny_overrides, tmpfs

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs at tmp_path/small."""
    with tmpfs(tmp_path / "small", "3m") as mount:
        yield mount


def gz(tmp_path: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**command_env(f"sqlite:///{tmp_path / 'mlflow.db'}", cache), "MLFLOW_EXPERIMENT_NAME": "full-disk"}
    return subprocess.run([sys.executable, "-m", "gz_experiments", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, f"exit {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def runs_of(tmp_path: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return client.search_runs([client.get_experiment_by_name("full-disk").experiment_id])


def test_a_full_cache_disk_is_one_line_and_a_failed_run(synthetic_dir, tmp_path, small_disk):
    # 160 images of 128² RGB need 7.9 MB: more than the 3 MB disk holds.
    params = tiny_overrides(synthetic_dir, image_size=128)
    done = gz(tmp_path, small_disk, "train", "cnn_cropped", *(f"{k}={v}" for k, v in params.items()))
    line = one_error_line(done)
    assert str(small_disk) in line and "bytes" in line and "GZ_CACHE_DIR" in line, line
    assert [p.name for p in small_disk.iterdir() if p.suffix != ".lock"] == []   # no partial array left
    [run] = runs_of(tmp_path)
    assert run.info.status == "FAILED" and "no space left" in run.data.tags["error"]


def test_a_full_artifact_store_is_one_line_a_failed_run_and_a_failed_model(synthetic_dir, tmp_path, small_disk):
    # cnn_cropped's model.keras is ~5 MB: the metrics and figures fit on the 3 MB disk, the model does not.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    client.create_experiment("full-disk", artifact_location=str(small_disk / "artifacts"))
    params = tiny_overrides(synthetic_dir)
    done = gz(tmp_path, tmp_path / "cache", "train", "cnn_cropped", *(f"{k}={v}" for k, v in params.items()))
    line = one_error_line(done)
    assert "no space left" in line and str(small_disk) in line, line
    [run] = runs_of(tmp_path)
    assert run.info.status == "FAILED"
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert models and {m.status.name for m in models} == {"FAILED"}   # main: PENDING for ever
