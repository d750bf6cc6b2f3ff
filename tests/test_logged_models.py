"""Models named for what they are (`<approach>-seed<seed>`, `trial-N`, `ensemble-<k>-members`), and
`runs:/<run_id>/model` still meaning a run's one model in our commands: as `models:/<model_id>`, or
one clear error for a run with no model or several. Real sqlite stores, tiny untrained networks."""
from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_logged_model_name

import experiments
from gz_experiments import cli
from gz_experiments.config import override
from gz_experiments.errors import ConfigError
from gz_experiments.tracking import links, logged_models
from gz_experiments.tracking.logged_models import RunModelError, model_name


def _tiny_predictor(config):
    from gz_experiments.models import build_model
    from gz_experiments.served.predictor import Predictor
    return Predictor(build_model(config.model, config.data.image_size), config.data.image_size, config.data.crop)


def _models_of(run_id: str) -> list:
    return logged_models.of_run(run_id)


def test_names_say_approach_and_seed_trial_or_members():
    config = override(experiments.load("galaxy_cnn").CONFIG, seed=1)
    assert model_name(config) == "galaxy_cnn-seed1"
    assert model_name(override(config, refit="true")) == "galaxy_cnn-seed1-refit"
    assert model_name(config, trial=7) == "trial-7"
    assert model_name(members=3) == "ensemble-3-members"
    for approach in experiments.APPROACHES:   # every name is one MLflow accepts (no '.', '/', ':')
        _validate_logged_model_name(model_name(experiments.load(approach).CONFIG))


def test_a_training_run_and_a_sweep_trial_log_their_models_by_those_names():
    from gz_experiments.tracking.recorder import recording
    config = override(experiments.load("cnn_cropped").CONFIG, image_size=32, filters="4,8", seed=5)
    predictor = _tiny_predictor(config)
    with recording("trained") as rec:
        trained = rec.model(predictor, config)
    with recording("trial-4", {"trial_number": 4}) as rec:
        trial = rec.model(predictor, config)
    client = mlflow.MlflowClient()
    assert client.get_logged_model(trained).name == "cnn_cropped-seed5"
    assert client.get_logged_model(trial).name == "trial-4"
    # the Models tab's Description column and the model's page read this note
    trained_note = client.get_logged_model(trained).tags["mlflow.note.content"]
    assert trained_note.startswith("cnn_cropped network, seed 5; logged by run 'trained'"), trained_note
    assert client.get_logged_model(trial).tags["mlflow.note.content"].startswith("Sweep trial 4's cnn_cropped")
    run_id = client.get_logged_model(trained).source_run_id
    # ours: the run's one model; MLflow's own: the model's id, or the run and the model's name
    assert logged_models.resolve(f"runs:/{run_id}/model") == f"models:/{trained}"
    assert logged_models.resolve(f"runs:/{run_id}/model/MLmodel") == f"runs:/{run_id}/cnn_cropped-seed5/MLmodel"
    assert (Path(mlflow.artifacts.download_artifacts(f"models:/{trained}")) / "MLmodel").is_file()
    assert mlflow.artifacts.download_artifacts(f"runs:/{run_id}/cnn_cropped-seed5/MLmodel").endswith("MLmodel")
    with pytest.raises(MlflowException):   # what MLflow alone does with the name every model once had
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model/MLmodel")
    # the line a command prints after its run links
    [line] = links.model_lines(run_id)
    assert re.fullmatch(rf"\s+model:\s+models:/{trained} \(cnn_cropped-seed5\)", line), line


def test_other_uris_pass_through_unchanged():
    for uri in ("models:/gz@champion", "models:/m-123", "runs:/abc/split.csv", "runs:/abc/best_model", "/a/folder"):
        assert logged_models.resolve(uri) == uri


def test_a_run_without_a_model_is_one_clear_error_naming_the_run(capsys, synthetic_dir):
    with mlflow.start_run(run_name="baseline of sorts") as run:
        mlflow.log_metric("test_rmse", 0.2)
    run_id = run.info.run_id
    with pytest.raises(RunModelError) as caught:
        logged_models.resolve(f"runs:/{run_id}/model")
    message = str(caught.value)
    assert run_id in message and "baseline of sorts" in message and "logged no model" in message
    assert "models:/<model_id>" in message   # what to give instead
    from gz_experiments.served.serving import load_predictor
    with pytest.raises(ConfigError, match=f"model_uri 'runs:/{run_id}/model': run {run_id}"):
        load_predictor(f"runs:/{run_id}/model")
    # the CLI: one `error:` line, exit 2
    assert cli.main(["evaluate", f"model_uri=runs:/{run_id}/model", f"data_dir={synthetic_dir}"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "logged no model" in errors[0] and run_id in errors[0], errors
    assert links.model_lines(run_id) == []


def test_a_run_with_several_models_lists_them():
    with mlflow.start_run() as run:
        first = mlflow.create_external_model(name="first")
        second = mlflow.create_external_model(name="second")
    with pytest.raises(RunModelError, match=f"logged 2 models .*first: models:/{first.model_id}, "
                                            f"second: models:/{second.model_id}"):
        logged_models.uri_of_run(run.info.run_id)


def test_an_ensemble_names_a_run_without_a_model_as_its_error(synthetic_dir):
    from gz_experiments.ensemble.members import EnsembleError, resolve
    with mlflow.start_run(run_name="empty") as empty:
        pass
    with mlflow.start_run() as trained:
        model = mlflow.create_external_model(name="cnn_cropped-seed1")
    with pytest.raises(EnsembleError, match=f"model 'runs:/{empty.info.run_id}/model': run {empty.info.run_id} "
                                            r"\(empty\) logged no model"):
        resolve([f"runs:/{trained.info.run_id}/model", f"runs:/{empty.info.run_id}/model"])
    with pytest.raises(EnsembleError, match="lists a model twice"):   # the same model under two URIs
        resolve([f"runs:/{trained.info.run_id}/model", f"models:/{model.model_id}"])


def test_a_parent_run_prints_its_childrens_models():
    with mlflow.start_run(run_name="seeds") as parent:
        for seed in (1, 2):
            with mlflow.start_run(run_name=f"cnn_cropped-seed{seed}", nested=True):
                mlflow.create_external_model(name=f"cnn_cropped-seed{seed}")
        with mlflow.start_run(run_name="trial-0", nested=True, tags={"trial_number": "0"}):
            mlflow.create_external_model(name="trial-0")
    lines = links.model_lines(parent.info.run_id)
    assert [re.search(r"\((.*)\)$", line).group(1) for line in lines] == ["cnn_cropped-seed1", "cnn_cropped-seed2"]
    assert all(re.match(r"\s+model:\s+models:/m-\w+ ", line) for line in lines), lines
