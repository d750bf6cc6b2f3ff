"""The report and `seeds=` end to end on the tiny synthetic set, real MLflow (sqlite) throughout:
a report killed (-9) in its third approach resumes without retraining the two it finished; the
parent holds the table, figures and `test_rmse/<approach>`; `mlflow run -e report` reuses the
baseline and trains a new seed as a nested run; `from=` rebuilds the table without training; and
`train seeds=1,2` makes one run per seed on one split."""
from __future__ import annotations

import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, search_runs, tiny_overrides
from gz_experiments.cli import main

pytestmark = pytest.mark.slow

ARTIFACTS = {"results.md", "results.csv", "results.png", "per_question.png", "curves.png"}
APPROACHES = "baseline,cnn_cropped,cnn_slim_head"


@dataclass
class Store:
    workdir: Path
    uri: str
    env: dict

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(self.uri)

    def runs(self, filter_string: str = ""):
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        return self.client.search_runs(experiments, filter_string)

    def report_tokens(self, data_dir: Path) -> list[str]:
        return [f"{k}={v}" for k, v in tiny_overrides(data_dir).items()]

    def frame(self, run_id: str, name: str = "results.csv") -> pd.DataFrame:
        path = self.client.download_artifacts(run_id, name, str(self.workdir / "downloads" / run_id))
        return pd.read_csv(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    workdir = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, GZ_CACHE_DIR=str(workdir / "cache"), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(PROJECT_ROOT), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    store = Store(workdir, uri, env)
    store.runs()   # create the tables now: the polling below must not race the report's own migration
    return store


def report_process(store: Store, tokens: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gz_experiments", "report", *tokens], cwd=store.workdir,
                            env=store.env, text=True, **popen)


def kill_while_third_trains(store: Store, process: subprocess.Popen, timeout: float = 420) -> None:
    """SIGKILL the report once cnn_slim_head has logged an epoch: baseline and cnn_cropped are done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the report ended before it could be killed:\n{process.stdout.read()[-3000:]}"
        third = store.runs("tags.report_label = 'cnn_slim_head'")
        if third and "val_rmse" in store.client.get_run(third[0].info.run_id).data.metrics:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail("cnn_slim_head never started training")


@pytest.fixture(scope="module")
def resumed(store, synthetic_dir) -> dict:
    """A report killed in its third approach (made slow with cnn_slim_head.epochs=300), then rerun."""
    tokens = [f"approaches={APPROACHES}", *store.report_tokens(synthetic_dir)]
    crashed = report_process(store, [*tokens, "cnn_slim_head.epochs=300"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    kill_while_third_trains(store, crashed)
    first_parent = store.runs("tags.approach = 'report'")[0]
    rerun = report_process(store, tokens, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, f"the rerun failed:\n{stderr[-4000:]}"
    parents = store.runs("tags.approach = 'report'")
    second_parent = next(r for r in parents if r.info.run_id != first_parent.info.run_id)
    return {"first": first_parent, "second": second_parent, "stdout": stdout}


def test_a_killed_report_resumes_without_retraining_finished_approaches(store, resumed):
    first, second = resumed["first"].data.tags, resumed["second"].data.tags
    for label in ("baseline", "cnn_cropped"):
        assert second[f"report_run.{label}"] == first[f"report_run.{label}"], f"{label} was retrained"
        assert f"{label}: reusing finished run {first[f'report_run.{label}']}" in resumed["stdout"]
        assert len(store.runs(f"tags.report_label = '{label}'")) == 1
    assert "report_run.cnn_slim_head" not in first   # killed before it finished
    slim = store.runs("tags.report_label = 'cnn_slim_head'")
    # the killed one is never reused: the rerun's first act closed it FAILED (its process is gone)
    assert len(slim) == 2 and {r.info.status for r in slim} == {"FAILED", "FINISHED"}
    killed = next(r for r in slim if r.info.status == "FAILED")
    assert killed.data.tags["error"].startswith("orphaned: process")
    retrained = store.client.get_run(second["report_run.cnn_slim_head"])
    assert retrained.info.status == "FINISHED" and retrained.data.params["epochs"] == "1"
    assert retrained.data.tags["mlflow.parentRunId"] == resumed["second"].info.run_id


def test_the_report_run_holds_the_table_figures_and_metrics(store, resumed):
    parent = store.client.get_run(resumed["second"].info.run_id)
    assert parent.info.status == "FINISHED"
    assert ARTIFACTS <= {a.path for a in store.client.list_artifacts(parent.info.run_id)}
    frame = store.frame(parent.info.run_id)
    assert list(frame["approach"]) == APPROACHES.split(",")
    assert list(frame["reused"].fillna("")) == ["baseline", "cnn_cropped", ""]
    for row in frame.itertuples():
        run = store.client.get_run(row.run_ids)
        assert parent.data.metrics[f"test_rmse/{row.approach}"] == pytest.approx(run.data.metrics["test_rmse"])
        assert row.test_rmse == pytest.approx(run.data.metrics["test_rmse"])
    cropped = frame.set_index("approach").loc["cnn_cropped"]
    # synthetic galaxies: nothing set beside the paper's figures, and the table says why
    assert math.isnan(cropped["report_test_rmse"]) and cropped["images_per_s"] > 0 and cropped["epochs"] == 1
    assert "test_rmse_tta/cnn_cropped" in parent.data.metrics
    markdown = Path(store.client.download_artifacts(parent.info.run_id, "results.md", str(store.workdir / "md")))
    assert "| cnn_slim_head | " in markdown.read_text() and "Synthetic data" in markdown.read_text()
    assert "synthetic" in parent.data.tags["mlflow.note.content"] and parent.info.run_name.startswith("report: ")
    side_by_side = store.client.get_metric_history(parent.info.run_id, "test_rmse_by_approach")   # one chart
    assert [m.value for m in sorted(side_by_side, key=lambda m: m.step)] == pytest.approx(list(frame["test_rmse"]))


def test_mlflow_run_report_reuses_the_baseline_and_trains_a_new_seed(store, resumed, synthetic_dir):
    mlflow_exe = shutil.which("mlflow", path=store.env["PATH"])
    args = [mlflow_exe, "run", str(PROJECT_ROOT), "-e", "report", "--env-manager", "local",
            "-P", "approaches=baseline,cnn_cropped", "-P", "seeds=7"]
    for key, value in tiny_overrides(synthetic_dir).items():
        args += ["-P", f"{key}={value}"]
    done = subprocess.run(args, cwd=store.workdir, env=store.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    parent_id = re.search(r"run with ID '([0-9a-f]{32})'", done.stderr).group(1)
    parent = store.client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["approach"] == "report"
    assert parent.data.tags["report_run.baseline"] == resumed["first"].data.tags["report_run.baseline"]
    seeded = store.client.get_run(parent.data.tags["report_run.cnn_cropped-seed7"])
    assert seeded.data.tags["mlflow.parentRunId"] == parent_id and seeded.data.params["seed"] == "7"
    assert store.frame(parent_id).set_index("approach").loc["cnn_cropped", "seeds"] == 7


def test_from_rebuilds_the_table_without_training(store, resumed, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    mlflow.set_tracking_uri(store.uri)
    runs_before = len(store.runs())
    source = resumed["second"].info.run_id
    assert main(["report", "--from", source]) == 0
    rebuilt = store.runs(f"tags.report_rebuilt_from = '{source}'")
    assert len(rebuilt) == 1 and len(store.runs()) == runs_before + 1   # nothing trained
    assert ARTIFACTS <= {a.path for a in store.client.list_artifacts(rebuilt[0].info.run_id)}
    columns = ["approach", "test_rmse", "test_rmse_tta", "best_val_rmse", "reused", "run_ids"]
    pd.testing.assert_frame_equal(store.frame(rebuilt[0].info.run_id)[columns], store.frame(source)[columns])
    assert main(["report", "from=0123456789abcdef0123456789abcdef"]) == 2


def test_train_seeds_makes_one_run_per_seed_on_one_split(synthetic_dir, tmp_path, capsys):
    tokens = [f"{k}={v}" for k, v in tiny_overrides(synthetic_dir).items()]
    assert main(["train", "cnn_cropped", "seeds=1,2", *tokens]) == 0
    printed = capsys.readouterr().out
    assert "seed 1:" in printed and "seed 2:" in printed
    client = mlflow.MlflowClient()
    parent = search_runs("tags.approach = 'seeds:cnn_cropped'", client)[0]
    children = search_runs(f"tags.mlflow.parentRunId = '{parent.info.run_id}'", client)
    assert sorted(r.data.params["seed"] for r in children) == ["1", "2"]
    assert {r.data.params["split_seed"] for r in children} == {"42"}
    splits = [pd.read_csv(client.download_artifacts(r.info.run_id, "split.csv", str(tmp_path / r.info.run_id)))
              for r in children]
    pd.testing.assert_frame_equal(splits[0], splits[1])   # different seed, same split_seed: same split
    assert {"test_rmse_by_seed", "mean_test_rmse"} <= set(parent.data.metrics)
