"""Logged models as commands meet them: a half-written one (MLmodel present, data/ missing or
truncated: its logging died) is one line saying it can't be loaded and why, for evaluate, predict,
ensemble and serving (pyfunc); and no command leaves a copy of a model in $TMPDIR."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from conftest import PROJECT_ROOT, command_env, module_store, one_error_line, tiny_overrides


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory, synthetic_dir):
    """One store: two tiny cnn_cropped models, and a copy of the first's files on disk to damage."""
    import experiments
    from gz_experiments.config import override
    from gz_experiments.train import train
    root = tmp_path_factory.mktemp("models")
    with module_store(root) as uri:
        runs = []
        for seed in (1, 2):
            train(override(experiments.load("cnn_cropped").CONFIG, tiny_overrides(synthetic_dir, seed=seed)),
                  progress=False)
            runs.append(mlflow.last_active_run().info.run_id)
        # MLflow finds a run's model by its name (ours also take runs:/<run_id>/model: below)
        whole = Path(mlflow.artifacts.download_artifacts(f"runs:/{runs[0]}/cnn_cropped-seed1",
                                                         dst_path=str(root / "whole")))
        yield {"root": root, "uri": uri, "runs": runs, "whole": whole}


@pytest.fixture(autouse=True)
def the_worlds_store(world, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world["uri"])
    mlflow.set_tracking_uri(world["uri"])


@pytest.fixture(params=["data missing", "model truncated"])
def damaged(request, world, tmp_path) -> Path:
    model = Path(shutil.copytree(world["whole"], tmp_path / "model"))
    if request.param == "data missing":
        shutil.rmtree(model / "data")
    else:
        keras_file = model / "data" / "model.keras"
        keras_file.write_bytes(keras_file.read_bytes()[:1000])
    return model


def test_evaluate_of_a_half_written_model_is_one_line(capsys, damaged, synthetic_dir):
    line = one_error_line(capsys, ["evaluate", f"model_uri={damaged}", f"data_dir={synthetic_dir}"])
    assert "can't be loaded" in line or "cannot be loaded" in line, line
    assert "data" in line or "model.keras" in line, line


def test_predict_of_a_half_written_model_is_one_line(capsys, damaged, synthetic_dir, tmp_path):
    line = one_error_line(capsys, ["predict", f"model_uri={damaged}", f"images={synthetic_dir}",
                                   f"out={tmp_path / 'sub.csv'}"])
    assert "can't be loaded" in line or "cannot be loaded" in line, line


def test_an_ensemble_with_a_half_written_member_is_one_line(capsys, damaged, world, synthetic_dir):
    line = one_error_line(capsys, ["ensemble", f"models={damaged},runs:/{world['runs'][1]}/model",
                                   f"data_dir={synthetic_dir}"])
    assert str(damaged) in line and "can't be loaded" in line, line


def test_serving_a_half_written_model_says_why_in_one_line(damaged):
    from gz_experiments.errors import GzError
    with pytest.raises(GzError) as raised:   # what `mlflow models serve` shows as its last line
        mlflow.pyfunc.load_model(str(damaged))
    assert "can't be loaded" in str(raised.value) and "\n" not in str(raised.value)


def test_no_command_leaves_anything_in_tmpdir(world, synthetic_dir, tmp_path):
    """On main each of these left a full `tmp*/model` copy behind."""
    env = {**command_env(world["uri"], world["root"] / "cache"), "PYTHONPATH": str(PROJECT_ROOT)}
    first, second = (f"runs:/{run}/model" for run in world["runs"])
    commands = {
        "evaluate": ["evaluate", f"model_uri={first}", f"data_dir={synthetic_dir}", "tta=false"],
        "predict": ["predict", f"model_uri={first}", f"images={synthetic_dir}", f"out={tmp_path / 's.csv'}"],
        "ensemble": ["ensemble", f"models={first},{second}", "tta=false"],
    }
    for name, argv in commands.items():
        tmpdir = tmp_path / f"tmp-{name}"
        tmpdir.mkdir()
        done = subprocess.run([sys.executable, "-m", "gz_experiments", *argv], cwd=world["root"],
                              env={**env, "TMPDIR": str(tmpdir)}, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert sorted(p.name for p in tmpdir.iterdir()) == [], name
