"""The preflight checks what the command will really use: a tracking database it can't write, or
the artifact folder of the experiment the run will log to being read-only, is one error line
before any work, not a traceback after data preparation. Read-only places are read-only bind
mounts (root ignores file modes); skipped where mounting is not allowed."""
from __future__ import annotations

import mlflow

from conftest import one_error_line, read_only_view, tiny_overrides


def train_argv(data_dir) -> list[str]:
    return ["train", "cnn_cropped", *(f"{k}={v}" for k, v in tiny_overrides(data_dir).items())]


def test_a_read_only_tracking_database_fails_the_preflight(capsys, monkeypatch, tmp_path, synthetic_dir):
    (tmp_path / "store").mkdir()
    mlflow.MlflowClient(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}").search_experiments()   # made writable
    with read_only_view(tmp_path / "store", tmp_path / "ro") as view:
        uri = f"sqlite:///{view / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        line = one_error_line(capsys, train_argv(synthetic_dir))
        assert f"the MLflow tracking database {view / 'mlflow.db'} cannot be written" in line, line


def test_the_artifact_folder_checked_is_that_of_the_runs_experiment(capsys, tmp_path, synthetic_dir):
    (tmp_path / "shelf" / "artifacts").mkdir(parents=True)
    with read_only_view(tmp_path / "shelf", tmp_path / "ro") as view:
        mlflow.create_experiment("galaxy-zoo", artifact_location=str(view / "artifacts"))
        line = one_error_line(capsys, [*train_argv(synthetic_dir), "experiment=galaxy-zoo"])   # Default's ./mlruns is writable
        assert f"the MLflow artifact location {view / 'artifacts'} cannot be written" in line, line
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
