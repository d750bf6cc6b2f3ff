"""End to end through the real `mlflow run . -e <entry> --env-manager local`: every approach trains
one epoch on the tiny synthetic set and leaves its parameters, per-epoch metrics, test RMSE,
figures, split and a servable model in the MLflow store; `baseline` scores the mean on the same
split; `evaluate` scores a logged model on a folder; and `cnn_cropped` learns the synthetic galaxies.

The mlflow runs share one store per module (`project`) and are made once each (about six in all):
each costs a process start, TensorFlow's import and MLflow's, which dominate the tiny training.
"""
from __future__ import annotations

import base64
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import experiments
from conftest import PROJECT_ROOT, command_env, mlflow_run, run_id_of, tiny_overrides
from gz_experiments import tree
from gz_experiments.commands.baseline import baseline
from gz_experiments.config import override
from gz_experiments.data.cache import load_or_build
from gz_experiments.data.dataset import prepare
from gz_experiments.data.source import open_source
from gz_experiments.scoring import score
from gz_experiments.served.serving import load_predictor
from gz_experiments.synthetic import generate
from gz_experiments.train import train

pytestmark = pytest.mark.slow

SPLIT_PARAMS = ("data_dir", "n_train", "n_val", "n_test", "seed")
LOGGED_PARAMS = ("approach", "image_size", "crop", "architecture", "dropout", "batch_size", "epochs", "optimizer",
                 "learning_rate", "n_train", "n_val", "n_test", "seed", "data_fingerprint")
EPOCH_METRICS = ("train_loss", "train_rmse", "val_loss", "val_rmse")
TEST_METRICS = ("test_rmse", "test_rmse_tta", "test_rmse_by_question")


# ---- running commands as a user would ----------------------------------------------------------

@dataclass
class Project:
    """One MLflow store for the module; `run` launches an entry point once per distinct parameters."""
    workdir: Path
    tracking_uri: str
    env: dict
    runs: dict = field(default_factory=dict)

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(self.tracking_uri)

    def run(self, entry: str, **params) -> tuple[str, subprocess.CompletedProcess]:
        key = (entry, tuple(sorted(params.items())))
        if key not in self.runs:
            done = mlflow_run(entry, params, self.env, self.workdir)
            assert done.returncode == 0, f"mlflow run -e {entry} failed:\n{done.stderr[-4000:]}"
            self.runs[key] = run_id_of(done), done
        return self.runs[key]

    def download(self, run_id: str, path: str) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(self.workdir / "downloads" / run_id)))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    workdir = tmp_path_factory.mktemp("e2e")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    return Project(workdir, uri, command_env(uri, workdir / "cache"))


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory) -> Path:
    """A `.weights.h5` for ResNet50 without top (random, not ImageNet: no download in tests)."""
    import keras
    path = tmp_path_factory.mktemp("weights") / "resnet50_notop.weights.h5"
    keras.applications.ResNet50(include_top=False, weights=None, input_shape=(48, 48, 3)).save_weights(str(path))
    return path


def training_params(approach: str, synthetic_dir: Path, resnet_weights_path=None) -> dict[str, str]:
    # ResNet50 is the costliest model to train and save here, so its one run also covers the
    # decision-tree output through `mlflow run` (the CNNs' tree output is tested in-process).
    more = {"weights": str(resnet_weights_path), "output": "tree"} if approach == "resnet" else {}
    return tiny_overrides(synthetic_dir, **more)


@pytest.fixture(scope="module", params=experiments.REPORT_APPROACHES)
def trained(request, project, synthetic_dir):
    """(approach, its MLflow run, the parameters it was given) after `mlflow run -e <approach>`."""
    approach = request.param
    weights = request.getfixturevalue("resnet_weights") if approach == "resnet" else None
    params = training_params(approach, synthetic_dir, weights)
    run_id, _ = project.run(approach, **params)
    return approach, project.client.get_run(run_id), params


@pytest.fixture
def use_project_store(project, monkeypatch):
    """Point this process's MLflow at the module's store, for `runs:/` URIs."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.tracking_uri)
    mlflow.set_tracking_uri(project.tracking_uri)


# ---- each approach ------------------------------------------------------------------------------

def test_run_finishes_with_every_parameter_and_metric(trained, project):
    approach, run, params = trained
    assert run.info.status == "FINISHED"
    assert run.data.tags["approach"] == approach
    logged = run.data.params
    assert set(LOGGED_PARAMS) <= set(logged), f"missing params: {set(LOGGED_PARAMS) - set(logged)}"
    expected = {"approach": approach, "image_size": "48", "epochs": "1", "batch_size": "32", "n_train": "96",
                "n_val": "32", "n_test": "32", "seed": "42", "optimizer": "adamax",
                "crop": "none" if approach == "cnn_full" else "250"}
    assert {k: logged[k] for k in expected} == expected
    if approach == "resnet":   # each model logs its own parameters only
        assert logged["weights"] == params["weights"] and "filters" not in logged
    else:
        assert logged["filters"] == {"cnn_slim_head": "32,96,128,128"}.get(approach, "32,64,128,128")
        assert "weights" not in logged
    assert re.fullmatch(r"[0-9a-f]{16}", logged["data_fingerprint"])

    for name in EPOCH_METRICS:
        history = project.client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == [1], name
        assert np.isfinite(history[0].value) and history[0].value >= 0
    for name in TEST_METRICS:
        assert 0 < run.data.metrics[name] < 1, name


def test_run_logs_model_figures_and_split(trained, project, synthetic_dir, use_project_store):
    approach, run, params = trained
    run_id = run.info.run_id
    names = {a.path for a in project.client.list_artifacts(run_id)}
    assert {"learning_curves.png", "input_samples.png", "split.csv"} <= names
    # the model is a LoggedModel of the run (MLflow 3) named for what it is; the command printed its URI
    [logged] = project.client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run_id}'")
    assert logged.name == f"{approach}-seed{run.data.params['seed']}"
    _, done = project.run(approach, **params)
    assert re.search(rf"^\s*model:\s+models:/{logged.model_id} \({logged.name}\)$", done.stdout, re.M), done.stdout
    for figure in ("learning_curves.png", "input_samples.png"):
        data = project.download(run_id, figure).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000, figure

    mlmodel = project.download(run_id, f"{logged.name}/MLmodel").read_text()
    assert re.search(r"^  keras:", mlmodel, re.M) and re.search(r"^  python_function:", mlmodel, re.M)
    assert "signature:" in mlmodel

    split = pd.read_csv(project.download(run_id, "split.csv"))
    sizes = split["split"].value_counts().to_dict()
    assert sizes == {"train": int(params["n_train"]), "val": int(params["n_val"]), "test": int(params["n_test"])}
    assert split[tree.ID_COLUMN].is_unique
    labelled = set(pd.read_csv(synthetic_dir / "training_solutions_rev1.csv")[tree.ID_COLUMN])
    assert set(split[tree.ID_COLUMN]) <= labelled


def test_logged_model_predicts_jpegs_and_reproduces_test_rmse(trained, project, synthetic_dir, use_project_store):

    approach, run, params = trained
    _, done = project.run(approach, **params)
    printed = re.search(r"^\s*model:\s+(models:/\S+)", done.stdout, re.M).group(1)   # MLflow's own tools take it
    split = pd.read_csv(project.download(run.info.run_id, "split.csv"))
    test_ids = split.loc[split["split"] == "test", tree.ID_COLUMN].to_numpy()

    model = mlflow.pyfunc.load_model(printed)
    jpeg = (synthetic_dir / "images_training_rev1" / f"{test_ids[0]}.jpg").read_bytes()
    answer = model.predict(pd.DataFrame({"image": [base64.b64encode(jpeg).decode()]}))
    assert list(answer.columns) == list(tree.CLASS_COLUMNS) and answer.shape == (1, 37)
    assert ((answer.to_numpy() >= 0) & (answer.to_numpy() <= 1)).all()

    predictor = load_predictor(f"runs:/{run.info.run_id}/model")   # ours also take the run's one model
    assert (predictor.image_size, predictor.crop) == (48, None if approach == "cnn_full" else 250)
    np.testing.assert_allclose(answer.to_numpy()[0], predictor.predict_jpegs([jpeg])[0], atol=1e-5)
    source = open_source(synthetic_dir)
    cached = load_or_build(source.images, test_ids, predictor.image_size, predictor.crop, progress=False)
    labels = source.labels.loc[cached.ids].to_numpy(np.float32)
    predicted = predictor.predict_images(np.asarray(cached.images))
    assert score(labels, predicted)["test_rmse"] == pytest.approx(run.data.metrics["test_rmse"], abs=1e-4)
    if params.get("output") == "tree":
        assert run.data.params["output"] == "tree"
        for views in (predicted, predictor.predict_images(np.asarray(cached.images), tta=True)):
            assert tree.constraint_violation(views).max() < 1e-5
            np.testing.assert_allclose(views[:, 0:3].sum(axis=1), 1, atol=1e-5)


# ---- one source of defaults ---------------------------------------------------------------------

def test_experiment_modules_are_the_defaults_mlflow_run_trains(project, synthetic_dir, tmp_path):
    """MLproject repeats no default: a changed experiment module changes what `mlflow run` trains,
    and the run logs -P values in the user's spelling and every other field's resolved value."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, copy, ignore=lambda folder, names: [
        n for n in names if n.startswith(".") or n in ("__pycache__", "mlruns", "mlflow.db", "tests", "benchmarks")])
    with open(copy / "experiments" / "cnn_cropped.py", "a") as module:
        module.write("\nCONFIG = override(CONFIG, dropout=0.123, batch_size=16)\n")
    params = {**tiny_overrides(synthetic_dir), "learning_rate": "1e-3"}
    del params["batch_size"]
    done = mlflow_run("cnn_cropped", params, project.env, project.workdir, root=copy)
    assert done.returncode == 0, done.stderr[-4000:]
    run = project.client.get_run(run_id_of(done))
    logged = run.data.params
    assert logged["dropout"] == "0.123" and logged["batch_size"] == "16"   # the edited module's defaults
    assert logged["learning_rate"] == "1e-3" and logged["epochs"] == "1"  # as given with -P
    assert set(LOGGED_PARAMS) <= set(logged)
    assert "\r" not in done.stdout   # not a terminal: one line per epoch, no redrawn progress bar


# ---- baseline and evaluate ----------------------------------------------------------------------

def test_baseline_scores_the_mean_on_the_training_split(project, synthetic_dir):
    params = training_params("cnn_cropped", synthetic_dir)
    trained_id, _ = project.run("cnn_cropped", **params)
    # n_train=all is the rest after val and test: 96 here too, so the very same split
    baseline_id, _ = project.run("baseline", **{**{k: params.get(k, "42") for k in SPLIT_PARAMS}, "n_train": "all"})
    run = project.client.get_run(baseline_id)
    assert run.info.status == "FINISHED" and run.data.tags["approach"] == "baseline"

    trained_split = pd.read_csv(project.download(trained_id, "split.csv"))
    baseline_split = pd.read_csv(project.download(baseline_id, "split.csv"))
    for name in ("train", "val", "test"):
        ids = [set(s.loc[s["split"] == name, tree.ID_COLUMN]) for s in (trained_split, baseline_split)]
        assert ids[0] == ids[1], f"baseline's {name} split differs from the training run's"

    labels = pd.read_csv(synthetic_dir / "training_solutions_rev1.csv").set_index(tree.ID_COLUMN)
    ids_of = {n: baseline_split.loc[baseline_split["split"] == n, tree.ID_COLUMN] for n in ("train", "test")}
    mean = labels.loc[ids_of["train"]].to_numpy().mean(axis=0)
    expected = np.sqrt(((labels.loc[ids_of["test"]].to_numpy() - mean) ** 2).mean())
    assert run.data.metrics["test_rmse"] == pytest.approx(expected, abs=1e-6)
    assert "test_rmse_by_question" in run.data.metrics
    assert "val_rmse" not in run.data.metrics and "best_val_rmse" in run.data.metrics   # no lone step-0 point


def test_evaluate_scores_a_logged_model_on_a_folder(project, synthetic_dir, use_project_store):

    trained_id, _ = project.run("cnn_cropped", **training_params("cnn_cropped", synthetic_dir))
    uri = f"runs:/{trained_id}/model"
    evaluate_id, done = project.run("evaluate", model_uri=uri, data_dir=str(synthetic_dir))
    metrics = project.client.get_run(evaluate_id).data.metrics
    assert set(TEST_METRICS) <= set(metrics)
    printed = re.search(r"^\s*test_rmse\s+([0-9.]+)$", done.stdout, re.M)
    assert printed, f"evaluate printed no test_rmse:\n{done.stdout[-2000:]}"
    assert float(printed.group(1)) == pytest.approx(metrics["test_rmse"], abs=1e-4)

    source = open_source(synthetic_dir)   # every labelled galaxy of the folder, not just a split
    predictor = load_predictor(uri)
    ids = np.sort(source.labels.index.to_numpy())
    cached = load_or_build(source.images, ids, predictor.image_size, predictor.crop, progress=False)
    expected = score(source.labels.loc[ids].to_numpy(np.float32), predictor.predict_images(np.asarray(cached.images)))
    assert metrics["test_rmse"] == pytest.approx(expected["test_rmse"], abs=1e-4)
    assert project.client.get_run(evaluate_id).data.params["n_evaluated"] == str(len(ids))


def test_baseline_and_training_share_the_built_in_synthetic_set(tmp_path):
    """data_dir=synthetic: the baseline must score the split of the very data set training uses."""

    config = override(experiments.load("cnn_cropped").CONFIG, {
        "data_dir": "synthetic", "n_train": 40, "n_val": 10, "n_test": 10, "seed": 7, "image_size": 48})
    baseline(config)
    logged = pd.read_csv(mlflow.artifacts.download_artifacts(
        f"runs:/{mlflow.last_active_run().info.run_id}/split.csv", dst_path=str(tmp_path)))
    trained = prepare(config.data, progress=False).split_frame()
    pd.testing.assert_frame_equal(logged, trained)


# ---- the learning test --------------------------------------------------------------------------

# Measured (2 shared cores): 500 training images, 10 epochs of batch 16 with adam reach 0.83–0.86 of
# the mean baseline's test RMSE on two generator seeds, in about 30 s. The report's own recipe
# (adamax, augmentation) needs far more steps: 0.96 after 12 such epochs.
LEARNING = {"n_train": 500, "n_val": 50, "n_test": 100, "seed": 1, "image_size": 48, "epochs": 10,
            "batch_size": 16, "optimizer": "adam", "augment": "none", "tta": False}


@pytest.fixture(scope="module")
def learnable_dir(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("learnable") / "gz", 650, seed=5, progress=False)


def test_cnn_cropped_beats_the_mean_baseline_clearly(learnable_dir):

    config = override(experiments.load("cnn_cropped").CONFIG, {"data_dir": str(learnable_dir), **LEARNING})
    floor = baseline(config)["test_rmse"]
    metrics = train(config, progress=False, log_model=False)
    assert metrics["test_rmse"] <= 0.9 * floor, (
        f"cnn_cropped reached test RMSE {metrics['test_rmse']:.4f} after {config.epochs} epochs, not clearly "
        f"below the mean baseline's {floor:.4f}: the synthetic galaxies are not learnable enough")
