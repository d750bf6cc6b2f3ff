"""The link every command prints: the experiment's runs table as MLflow's "share view" restores it
(sorted by test RMSE, the scores and the parameters that differ as columns), on model training."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import mlflow

from gz_experiments.tracking import links
from gz_experiments.tracking.recorder import Recorder, spelled


@dataclass
class _Data:
    params: dict = field(default_factory=dict)


@dataclass
class _Run:
    data: _Data


def test_the_view_state_sorts_by_test_rmse_with_the_scores_as_columns():
    state = links.view_state(["dropout"])
    assert state["orderByKey"] == "metrics.`test_rmse`" and state["orderByAsc"] is True
    assert {"metrics.`test_rmse`", "metrics.`test_rmse_tta`", "metrics.`best_val_rmse`",
            "params.`dropout`"} <= set(state["selectedColumns"])


def test_only_parameters_that_differ_become_columns():
    runs = [_Run(_Data({"dropout": "0.5", "epochs": "5", "data_path": "/a", "tta": "true"})),
            _Run(_Data({"dropout": "0.3", "epochs": "5", "data_path": "/b", "tta": "True"})),
            _Run(_Data({"model_uri": "runs:/x/model", "tta": "false"}))]   # an evaluate run: not a training
    assert links.differing_params(runs) == ["dropout"]   # data_path differs but tells nothing; tta in two spellings


def test_the_link_opens_the_stored_view_on_model_training():
    link = links.comparison_link("7", "http://127.0.0.1:5000")
    assert link == ("http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey=gz-compare"
                    "&workflowType=machine_learning")


def test_refresh_view_stores_the_state_as_the_experiment_tag_the_ui_reads():
    experiment_id = mlflow.create_experiment("links")
    for dropout in ("0.5", "0.3"):
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_params({"dropout": dropout, "epochs": 5})
            mlflow.log_metric("test_rmse", float(dropout))
    link = links.refresh_view(experiment_id)
    tag = mlflow.MlflowClient().get_experiment(experiment_id).tags["mlflow.sharedViewState.gz-compare"]
    assert "params.`dropout`" in json.loads(tag)["selectedColumns"]
    assert "params.`epochs`" not in json.loads(tag)["selectedColumns"]
    assert link.endswith(f"/#/experiments/{experiment_id}/runs?viewStateShareKey=gz-compare&workflowType=machine_learning")


def test_booleans_and_none_have_one_spelling():
    assert [spelled(True), spelled(False), spelled(None), spelled(3)] == ["true", "false", "none", 3]
    with mlflow.start_run() as run:
        Recorder(run.info.run_id, run.info.experiment_id).params({"tta": True, "augment": False})
    assert mlflow.get_run(run.info.run_id).data.params == {"tta": "true", "augment": "false"}
