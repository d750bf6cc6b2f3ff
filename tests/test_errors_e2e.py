"""Bad input, as a user meets it: through `python -m gz_experiments train ...` and `mlflow run`, each
mistake exits non-zero with ONE line `error: ...` naming the parameter or file, and no traceback;
a run that had started ends FAILED in MLflow with tag `error` and the artifact `error.txt`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import command_env, mlflow_run, run_id_of, tiny_overrides

pytestmark = pytest.mark.slow

LABELS = "training_solutions_rev1.csv"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str]:
    """One MLflow store for the module (creating a sqlite store costs seconds); each case logs to
    its own experiment, named after it, so its run is easy to find."""
    workdir = tmp_path_factory.mktemp("errors")
    return workdir, f"sqlite:///{workdir / 'mlflow.db'}"


def cli(store, experiment: str, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    workdir, uri = store
    env = {**command_env(uri, workdir / "cache"), "MLFLOW_EXPERIMENT_NAME": experiment, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "gz_experiments", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


def the_error_line(done: subprocess.CompletedProcess) -> str:
    """The one `error:` line of stderr, after checking the exit code and that no traceback leaked."""
    assert done.returncode != 0, f"expected a failure, got exit 0:\n{done.stdout[-2000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, f"expected one 'error:' line in stderr, got {lines}:\n{done.stderr[-3000:]}"
    return lines[0]


def only_run(store, experiment: str) -> str:
    """The id of the one run a CLI call started in its experiment."""
    found = mlflow.MlflowClient(store[1]).get_experiment_by_name(experiment)
    assert found is not None, f"no run was started in experiment {experiment!r}"
    runs = mlflow.MlflowClient(store[1]).search_runs([found.experiment_id])
    assert len(runs) == 1
    return runs[0].info.run_id


def failed_run(store, run_id: str) -> tuple[str, str]:
    """(tag `error`, error.txt) of a run that must have ended FAILED with its error recorded."""
    client = mlflow.MlflowClient(store[1])
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    error_txt = Path(client.download_artifacts(run_id, "error.txt", str(store[0] / "downloads" / run_id)))
    return run.data.tags["error"], error_txt.read_text()


def flat(params: dict) -> list[str]:
    return [f"{k}={v}" for k, v in params.items()]


# ---- through the CLI ----------------------------------------------------------------------------

def test_unknown_approach(store):
    line = the_error_line(cli(store, "unknown", "train", "cnn_huge", "epochs=1"))
    assert "cnn_huge" in line and "cnn_cropped" in line   # names it and lists what exists


def test_epochs_below_one(store):
    line = the_error_line(cli(store, "epochs", "train", "cnn_cropped", "epochs=0"))
    assert "'epochs'" in line and "at least 1" in line


def test_image_size_too_small_for_the_network(store, synthetic_dir):
    done = cli(store, "image_size", "train", "cnn_cropped", *flat(tiny_overrides(synthetic_dir, image_size=40)))
    line = the_error_line(done)
    assert "image_size=40" in line and "at least 46" in line
    # Refused when the parameters are read: no run got as far as reading images.
    client = mlflow.MlflowClient(store[1])
    found = client.get_experiment_by_name("image_size")
    runs = client.search_runs([found.experiment_id]) if found else []
    assert all("data_fingerprint" not in run.data.params for run in runs)


def test_missing_data_dir(store, tmp_path):
    missing = tmp_path / "no-such-folder"
    line = the_error_line(cli(store, "missing", "train", "cnn_cropped", f"data_dir={missing}", "epochs=1"))
    assert str(missing) in line and "data_dir" in line
    tag, _ = failed_run(store, only_run(store, "missing"))
    assert str(missing) in tag


def test_bad_labels_file(store, data_copy):
    labels = pd.read_csv(data_copy / LABELS, dtype=str)
    labels.loc[3, "Class1.2"] = "lots"
    labels.to_csv(data_copy / LABELS, index=False)
    line = the_error_line(cli(store, "labels", "train", "cnn_cropped", *flat(tiny_overrides(data_copy))))
    assert LABELS in line and "row 5" in line   # header is row 1: the 4th data row
    tag, _ = failed_run(store, only_run(store, "labels"))
    assert LABELS in tag


# ---- through mlflow run -------------------------------------------------------------------------

@pytest.mark.parametrize("params, named", [
    ({"epochs": "0"}, "'epochs'"),                                # fails before training starts
    ({"data_dir": "/no/such/galaxies"}, "/no/such/galaxies"),     # fails inside training
], ids=["epochs", "data_dir"])
def test_mlflow_run_fails_cleanly_and_records_the_error(store, params, named):
    workdir, uri = store
    done = mlflow_run("cnn_cropped", {"n_train": "96", "n_val": "32", "n_test": "32", **params},
                      command_env(uri, workdir / "cache"), workdir)
    line = the_error_line(done)
    assert named in line
    tag, error_txt = failed_run(store, run_id_of(done))
    assert named in tag and named in error_txt


# ---- pretrained weights offline -----------------------------------------------------------------

def offline_env(tmp_path) -> dict[str, str]:
    """A machine without cached ImageNet weights and without internet, whatever this one has: an
    empty KERAS_HOME, and every download sent to a proxy port where nothing listens."""
    nowhere = "http://127.0.0.1:9"
    return {"KERAS_HOME": str(tmp_path / "keras-home"), "https_proxy": nowhere, "HTTPS_PROXY": nowhere,
            "http_proxy": nowhere, "HTTP_PROXY": nowhere, "no_proxy": "", "NO_PROXY": ""}


TIME_THE_FAILURE = """
import time
import keras  # loaded by training anyway: the time below is the download's
from gz_experiments.models.resnet import WeightsError, imagenet_file
started = time.perf_counter()
try:
    imagenet_file()
except WeightsError:
    print(f"failed after {time.perf_counter() - started} s")
"""


def test_imagenet_weights_offline_fail_fast_with_advice(store, synthetic_dir, tmp_path):
    offline = offline_env(tmp_path)
    timed = subprocess.run([sys.executable, "-c", TIME_THE_FAILURE], env={**os.environ, **offline},
                           capture_output=True, text=True, timeout=300)
    failed = re.search(r"failed after ([0-9.e-]+) s", timed.stdout)
    assert failed, f"no WeightsError offline:\n{timed.stdout[-2000:]}{timed.stderr[-3000:]}"
    assert float(failed.group(1)) < 10, "offline, the weights should fail within seconds"

    done = cli(store, "weights", "train", "resnet", "weights=imagenet", *flat(tiny_overrides(synthetic_dir)),
               extra_env=offline)
    line = the_error_line(done)
    assert "ImageNet weights" in line and "weights=none" in line and ".weights.h5" in line
    # Checked before any data are made or any run opened: nothing half-begun is left in MLflow.
    found = mlflow.MlflowClient(store[1]).get_experiment_by_name("weights")
    assert found is None or not mlflow.MlflowClient(store[1]).search_runs([found.experiment_id])
