"""Runs that read right in the MLflow UI, against a real sqlite store: the experiment (kind tag and
description, and which one wins), run names and descriptions, dataset inputs, the LoggedModel and its
registration with the `champion` alias, system metrics, and UI-grouped metric names."""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pytest
from mlflow import MlflowClient

import experiments
from conftest import tiny_overrides
from gz_experiments.tracking import experiment, links, metric_groups, registry, run_notes
from gz_experiments.config import ConfigError, override
from gz_experiments.tracking.registry import Standing, champion_decision

KIND = experiment.KIND_TAG


# ---- fast: no training -------------------------------------------------------------------------

def test_experiment_is_model_training_with_a_description(monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    chosen = MlflowClient().get_experiment(experiment.use(None))
    assert chosen.name == "galaxy-zoo"
    assert chosen.tags[KIND] == "custom_model_development" and "Galaxy Zoo" in chosen.tags["mlflow.note.content"]
    assert MlflowClient().get_experiment(experiment.use("mine")).name == "mine"


def test_environment_beats_the_parameter_and_a_user_description_stays(monkeypatch):
    client = MlflowClient()
    existing = client.create_experiment("team", tags={"mlflow.note.content": "ours"})
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team")
    assert experiment.use("mine") == existing
    tags = client.get_experiment(existing).tags
    assert tags["mlflow.note.content"] == "ours" and tags[KIND] == "custom_model_development"


def test_an_existing_run_keeps_its_experiment_which_is_made_ready(monkeypatch, capsys):
    """Under `mlflow run` the run exists (MLFLOW_RUN_ID), e.g. in Default: only tag its experiment."""
    run = MlflowClient().create_run("0")
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
    assert experiment.use("elsewhere") is None
    assert MlflowClient().get_experiment("0").tags[KIND] == "custom_model_development"
    assert "mlflow run --experiment-name elsewhere" in capsys.readouterr().err


def test_a_deleted_experiment_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    MlflowClient().delete_experiment(MlflowClient().create_experiment("gone"))
    with pytest.raises(ConfigError, match="'gone' is deleted"):
        experiment.use("gone")
    with pytest.raises(ConfigError, match="experiment"):
        override(experiments.load("cnn_cropped").CONFIG, experiment=" ")


def test_run_names_show_what_differs_and_tell_alike_runs_apart():
    config = override(experiments.load("cnn_cropped").CONFIG, epochs=5, dropout=0.3, n_train=96)
    defaults = experiments.load("cnn_cropped").CONFIG
    names = {run_notes.run_name(config, run_id, defaults) for run_id in ("1a2b" + "0" * 28, "9f8e" + "0" * 28)}
    assert len(names) == 2
    assert all(n.startswith("cnn_cropped dropout=0.3 epochs=5 n_train=96 #") for n in names), names
    assert run_notes.run_name(defaults, "abcd" * 8, defaults) == "cnn_cropped #abcd"
    assert run_notes.run_name(config, "abcd" * 8) == "cnn_cropped #abcd"   # no defaults given: nothing to compare
    assert run_notes.run_name(override(defaults, augment="false"), "abcd" * 8, defaults) == \
        "cnn_cropped augment=false #abcd"   # booleans in one spelling


def test_tracking_parameters_pass_as_flat_names():
    config = override(experiments.load("cnn_full").CONFIG, experiment="x", register="gz", system_metrics="false")
    assert (config.tracking.experiment, config.tracking.register, config.tracking.system_metrics) == ("x", "gz", False)
    assert override(config, register="none").tracking.register is None


def test_per_question_rmse_is_one_metric_per_score_in_question_order():
    single, by_question = metric_groups.split_questions(
        {"test_rmse": 0.1, "test_rmse_q3": 0.2, "test_rmse_q10": 0.25, "test_rmse_tta_q11": 0.3})
    assert single == {"test_rmse": 0.1}
    assert by_question == {"test_rmse_by_question": {3: 0.2, 10: 0.25}, "test_rmse_tta_by_question": {11: 0.3}}
    assert not any("/" in name for name in [*single, *by_question])   # one section: "Model metrics"


@pytest.mark.parametrize("candidate, holder, moves", [
    (Standing("1", 0.20, "d1"), None, True),                         # first version: champion
    (Standing("2", 0.15, "d1"), Standing("1", 0.20, "d1"), True),     # better on the same data
    (Standing("2", 0.25, "d1"), Standing("1", 0.20, "d1"), False),    # worse
    (Standing("2", 0.20, "d1"), Standing("1", 0.20, "d1"), False),    # a tie keeps the holder
    (Standing("2", 0.05, "d2"), Standing("1", 0.20, "d1"), False),    # other test data: not comparable
    (Standing("2", None, None), Standing("1", 0.20, "d1"), False),    # never tested
])
def test_champion_moves_only_for_a_better_model_on_the_same_data(candidate, holder, moves):
    moved, why = champion_decision(candidate, holder)
    assert moved is moves and f"version {candidate.version}" in why
    if holder is not None and not moves:
        assert f"version {holder.version}" in why   # says which version keeps the alias


# ---- slow: real training -----------------------------------------------------------------------

def _train(synthetic_dir, **more):
    from gz_experiments.train import train
    config = override(experiments.load("cnn_cropped").CONFIG, tiny_overrides(synthetic_dir, **more))
    metrics = train(config, defaults=experiments.load("cnn_cropped").CONFIG, progress=False)
    return mlflow.get_run(mlflow.last_active_run().info.run_id), metrics


@dataclass
class TwoRuns:
    """Two tiny runs of one approach in one store: the second with system metrics off and 2 epochs."""
    client: MlflowClient
    first: object
    second: object
    metrics: dict


@pytest.fixture(scope="module")
def two_runs(synthetic_dir, tmp_path_factory):
    store = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", store)
        patch.setenv("GZ_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        patch.chdir(tmp_path_factory.mktemp("work"))
        for name in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
            patch.delenv(name, raising=False)
        mlflow.set_tracking_uri(store)
        first, metrics = _train(synthetic_dir, register="gz")
        second, _ = _train(synthetic_dir, register="gz", system_metrics="false", epochs=2)
    return TwoRuns(MlflowClient(store), first, second, metrics)


@pytest.mark.slow
def test_runs_sit_in_a_model_training_experiment_with_telling_names_and_notes(two_runs):
    first, second = two_runs.first, two_runs.second
    assert two_runs.client.get_experiment(first.info.experiment_id).tags[KIND] == "custom_model_development"
    assert first.info.run_name != second.info.run_name and first.info.run_name.startswith("cnn_cropped ")
    note = first.data.tags["mlflow.note.content"]
    assert "cnn_cropped" in note and "96 train / 32 validation / 32 test" in note
    assert f"test RMSE **{two_runs.metrics['test_rmse']:.4f}**" in note


@pytest.mark.slow
def test_each_split_is_a_dataset_input_and_the_same_data_has_the_same_digest(two_runs, synthetic_dir):
    inputs = {i.tags[0].value: i.dataset for i in two_runs.first.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "testing"}
    assert inputs["testing"].name == f"{synthetic_dir.name}-test" and str(synthetic_dir) in inputs["testing"].source
    same = {i.tags[0].value: i.dataset.digest for i in two_runs.second.inputs.dataset_inputs}
    assert same == {context: dataset.digest for context, dataset in inputs.items()}


@pytest.mark.slow
def test_the_model_is_a_logged_model_linked_to_the_run(two_runs):
    first = two_runs.first
    [model] = two_runs.client.search_logged_models([first.info.experiment_id],
                                                   f"source_run_id = '{first.info.run_id}'")
    assert model.name == f"cnn_cropped-seed{first.data.params['seed']}" and model.status.name == "READY"
    linked = two_runs.client.get_logged_model(model.model_id).metrics
    # the test scores, on the test split's dataset; no system metric ("CPU 0 %") tied to the model
    assert {m.key for m in linked} >= {"test_rmse"} and not any(m.key.startswith("system/") for m in linked)
    testing = {i.tags[0].value: i.dataset.name for i in first.inputs.dataset_inputs}["testing"]
    assert {m.dataset_name for m in linked if m.key == "test_rmse"} == {testing}


@pytest.mark.slow
def test_system_metrics_are_on_by_default_and_off_on_request(two_runs):
    assert "system/cpu_utilization_percentage" in two_runs.first.data.metrics
    assert "system/system_memory_usage_megabytes" in two_runs.first.data.metrics
    assert not any(k.startswith("system/") for k in two_runs.second.data.metrics)


@pytest.mark.slow
def test_each_metric_has_one_name_in_one_section_and_questions_are_in_order(two_runs):
    first, second = two_runs.first, two_runs.second
    assert "n_bad_images" in first.data.params and "n_bad_images" not in first.data.metrics
    history = two_runs.client.get_metric_history(second.info.run_id, "val_rmse")
    assert [m.step for m in history] == [1, 2]
    model_metrics = [k for k in first.data.metrics if not k.startswith("system/")]
    assert not any("/" in k for k in model_metrics), model_metrics   # no duplicate `per_epoch/…` section
    assert len(model_metrics) <= 12, model_metrics
    questions = two_runs.client.get_metric_history(first.info.run_id, "test_rmse_by_question")
    assert sorted(m.step for m in questions) == list(range(1, 12))
    assert first.data.params["tta"] == "true" and first.data.params["augment"] == "true"   # one spelling


@pytest.mark.slow
def test_register_adds_versions_and_champion_follows_the_better_one(two_runs):
    client = two_runs.client
    versions = {str(v.version): v for v in client.search_model_versions("name = 'gz'")}
    assert set(versions) == {"1", "2"}
    champion = str(client.get_model_version_by_alias("gz", registry.CHAMPION).version)
    better = client.get_run(two_runs.second.info.run_id).data.metrics["test_rmse"] < two_runs.metrics["test_rmse"]
    assert champion == ("2" if better else "1")
    test_digest = {i.tags[0].value: i.dataset.digest for i in two_runs.first.inputs.dataset_inputs}["testing"]
    assert versions["2"].tags["test_data_digest"] == test_digest
    # the registered model and each version say what they are
    assert client.get_registered_model("gz").description == registry.MODEL_DESCRIPTION
    assert versions["1"].description.startswith(f"From run {two_runs.first.info.run_name} (cnn_cropped): test RMSE ")


@pytest.mark.slow
def test_evaluate_and_predict_take_registry_uris(synthetic_dir, tmp_path):
    from gz_experiments.commands.evaluate import evaluate
    from gz_experiments.commands.predict import predict
    _, metrics = _train(synthetic_dir, register="gz", tta="false")
    for uri in ("models:/gz@champion", "models:/gz/1"):
        scored = evaluate(uri, str(synthetic_dir), tta=False, progress=False)
        assert 0 < scored["test_rmse"] < 1
        run = mlflow.get_run(mlflow.last_active_run().info.run_id)
        [scored_data] = run.inputs.dataset_inputs
        assert scored_data.tags[0].value == "evaluation" and "test_rmse_by_question" in run.data.metrics
    frame = predict("models:/gz@champion", str(synthetic_dir), str(tmp_path / "out.csv"), progress=False)
    assert len(frame) == 8 and (tmp_path / "out.csv").is_file()


@pytest.mark.slow
def test_baseline_logs_its_split_and_no_lone_curve_point(synthetic_dir):
    from gz_experiments.commands.baseline import baseline
    config = override(experiments.load("cnn_cropped").CONFIG, tiny_overrides(synthetic_dir))
    metrics = baseline(config)
    run = mlflow.get_run(mlflow.last_active_run().info.run_id)
    assert "val_rmse" not in run.data.metrics and run.data.metrics["best_val_rmse"] == metrics["best_val_rmse"]
    assert {i.tags[0].value for i in run.inputs.dataset_inputs} == {"training", "validation", "testing"}
    assert run.info.run_name.startswith("baseline") and "floor" in run.data.tags["mlflow.note.content"]


@pytest.mark.slow
def test_a_sweep_registers_its_best_trial_and_crowns_it(synthetic_dir, tmp_path, monkeypatch):
    import optuna

    from gz_experiments.search import Float
    from gz_experiments.sweep import parse_options, sweep
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    tokens = {"approach": "cnn_cropped", "n_trials": "2", "study_name": "crown", "register": "gz",
              "storage": f"sqlite:///{tmp_path / 'optuna.db'}", **tiny_overrides(synthetic_dir, crop=250)}
    options, fixed = parse_options(tokens)
    sweep(options, fixed, search_space={"learning_rate": Float(1e-3, 1e-2, log=True)})

    best = optuna.load_study(study_name="crown", storage=options.storage).best_trial
    best_run = MlflowClient().get_run(best.user_attrs["mlflow_run_id"])
    parent = MlflowClient().get_run(best_run.data.tags["mlflow.parentRunId"])
    assert best_run.info.experiment_id == parent.info.experiment_id   # trials nest in the parent's experiment
    assert MlflowClient().get_experiment(parent.info.experiment_id).name == "galaxy-zoo"
    [version] = MlflowClient().search_model_versions("name = 'gz'")
    assert version.run_id == best_run.info.run_id
    assert float(version.tags["test_rmse"]) == pytest.approx(parent.data.metrics["test_rmse"], rel=1e-5)
    assert str(MlflowClient().get_model_version_by_alias("gz", "champion").version) == str(version.version)
    # each trial's model is named for its trial; the sweep prints the best one's URI, and copies it whole
    [model] = MlflowClient().search_logged_models([parent.info.experiment_id],
                                                  f"source_run_id = '{best_run.info.run_id}'")
    assert model.name == f"trial-{best.number}" and version.source == f"models:/{model.model_id}"
    assert links.model_lines(parent.info.run_id) == [f"  model:            models:/{model.model_id} ({model.name})"]
    assert "best_model/MLmodel" in {a.path for a in MlflowClient().list_artifacts(parent.info.run_id, "best_model")}
