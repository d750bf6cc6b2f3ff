"""The logged model behind the real `mlflow models serve`: base64 JPEGs in, 37 named columns out,
the same numbers as the in-process Predictor (so serving preprocesses exactly as training did)."""
from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from gz_experiments import tree
from conftest import REAL_DATA_ENV, tiny_overrides

pytestmark = pytest.mark.slow   # a real server: TensorFlow is imported a second time

STARTUP_TIMEOUT_S = 240   # TensorFlow's import alone took minutes on a 2-core machine shared by training jobs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_until_up(url: str, server: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow models serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    pytest.fail(f"no answer on {url}/ping after {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def served_model(synthetic_dir, tmp_path, capsys):
    """A tiny model trained in-process by the CLI, then the real server, as the README shows it, on
    the URI the command printed (`model: models:/<model_id>`), on a free port; stopped after."""
    from gz_experiments import cli
    assert cli.main(["train", "cnn_cropped", *(f"{k}={v}" for k, v in tiny_overrides(synthetic_dir).items())]) == 0
    printed = capsys.readouterr().out
    found = re.search(r"^\s*model:\s+(models:/m-\w+) \(cnn_cropped-seed\d+\)$", printed, re.M)
    assert found, printed[-2000:]
    model_uri, port, log = found.group(1), _free_port(), tmp_path / "server.log"
    with open(log, "w") as output:
        # Its own session, so the server and the workers it forks stop together.
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
             "-p", str(port), "--host", "127.0.0.1"],
            env={**os.environ, "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]},
            cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, server, log)
        yield url, model_uri
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _a_jpeg(synthetic_dir) -> bytes:
    """A real galaxy from the sample when it is there, else a synthetic one."""
    real = os.environ.get(REAL_DATA_ENV)
    folder = (os.path.join(real, "images_training_rev1") if real and os.path.isdir(real)
              else synthetic_dir / "images_training_rev1")
    return open(os.path.join(folder, sorted(os.listdir(folder))[0]), "rb").read()


def _answer_frame(answer: dict) -> pd.DataFrame:
    return pd.DataFrame(answer["predictions"])


def test_served_model_answers_a_posted_jpeg_like_the_in_process_predictor(served_model, synthetic_dir):
    from gz_experiments.served.serving import load_predictor
    url, model_uri = served_model
    jpeg = _a_jpeg(synthetic_dir)
    request = {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(jpeg).decode()]]}}
    predictor = load_predictor(model_uri)

    status, answer = _post(f"{url}/invocations", request)
    assert status == 200, answer
    served = _answer_frame(answer)
    assert list(served.columns) == list(tree.CLASS_COLUMNS) and len(served) == 1
    np.testing.assert_allclose(served.to_numpy(), predictor.predict_jpegs([jpeg]), atol=1e-5)

    status, answer = _post(f"{url}/invocations", {**request, "params": {"tta": True}})
    assert status == 200, answer
    served_tta = _answer_frame(answer)
    assert list(served_tta.columns) == list(tree.CLASS_COLUMNS)
    np.testing.assert_allclose(served_tta.to_numpy(), predictor.predict_jpegs([jpeg], tta=True), atol=1e-5)

    bad = {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(b"not a jpeg").decode()]]}}
    status, answer = _post(f"{url}/invocations", bad)
    assert status == 400 and "row 0 of 'image'" in answer["message"] and "not a readable image" in answer["message"]
