"""Ensembles end to end on tiny synthetic data: two members trained with different seeds, their
ensemble built by URIs and by `experiment=… approach=… top_k=2`, logged as a model that pyfunc loads
and `evaluate` scores; members on different data are one `error:` line unless data_dir is given."""
from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT, command_env, mlflow_run, module_store, tiny_overrides

pytestmark = pytest.mark.slow
EXPERIMENT = "ensemble-e2e"


def _seed_overrides(i: int) -> dict:
    """Members differing by `seed`, on one split: where the split has its own seed (`split_seed`),
    `seed` only changes initialisation and shuffling; before that, the split followed `seed`."""
    from gz_experiments.config import DataConfig
    if "split_seed" in {f.name for f in dataclasses.fields(DataConfig)}:
        return {"seed": i}
    return {"learning_rate": 0.001 * i}


def _train(approach: str, data_dir, **more) -> mlflow.entities.Run:
    import experiments
    from gz_experiments.config import override
    from gz_experiments.train import train
    train(override(experiments.load(approach).CONFIG, tiny_overrides(data_dir, **more)), progress=False)
    return mlflow.last_active_run()


@pytest.fixture(scope="module")
def world(tmp_path_factory, synthetic_dir):
    """One store for the module: two cnn_cropped members on `synthetic_dir`, a cnn_full on other data."""
    from gz_experiments.synthetic import generate
    root = tmp_path_factory.mktemp("ensemble")
    with module_store(root) as uri:
        mlflow.set_experiment(EXPERIMENT)
        other_data = generate(root / "other", 160, seed=11, n_test=2, progress=False)
        runs = [_train("cnn_cropped", synthetic_dir, **_seed_overrides(i)) for i in (1, 2)]
        other = _train("cnn_full", other_data, image_size=56)
        yield {"root": root, "uri": uri, "members": runs, "other": other}


@pytest.fixture
def in_world(world, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world["uri"])
    monkeypatch.setenv("GZ_CACHE_DIR", str(world["root"] / "cache"))
    monkeypatch.chdir(world["root"])
    mlflow.set_tracking_uri(world["uri"])
    return world


def _model_uri(run) -> str:
    """What our commands take for a run's one model."""
    return f"runs:/{run.info.run_id}/model"


def _logged_model(run):
    [model] = mlflow.MlflowClient().search_logged_models([run.info.experiment_id],
                                                         f"source_run_id = '{run.info.run_id}'")
    return model


def _build(**given):
    from gz_experiments.ensemble.build import ensemble
    from gz_experiments.ensemble.options import parse_options
    metrics = ensemble(parse_options(given), progress=False)
    return metrics, mlflow.last_active_run()


def test_ensemble_of_uris_is_scored_beside_its_members_and_loads_as_a_model(in_world, synthetic_dir):
    members = in_world["members"]
    metrics, run = _build(models=",".join(_model_uri(r) for r in members))
    assert run.info.status == "FINISHED" and run.data.tags["approach"] == "ensemble"
    assert run.data.params["member_run_ids"] == ",".join(r.info.run_id for r in members)
    own = [metrics[f"member_test_rmse/{i}"] for i in range(2)]
    # Recomputed on the members' own test split: what each training run measured.
    np.testing.assert_allclose(own, [r.data.metrics["test_rmse"] for r in members], atol=1e-5)
    # Blend weights fitted on the members' validation split: convex, logged, and the validation RMSE
    # they reach is at most the plain mean's (which the fit starts from).
    weights = np.array([float(w) for w in run.data.params["blend_weights"].split(",")])
    assert run.data.params["blend"] == "fit" and weights.min() >= 0 and abs(weights.sum() - 1) < 1e-3
    assert metrics["val_rmse_blend"] <= metrics["val_rmse_equal_weights"] + 1e-7
    # RMSE is a norm: a convex blend's error is at most the members' weighted error (triangle inequality).
    assert metrics["test_rmse"] <= weights @ own + 1e-6
    assert metrics["test_rmse_equal_weights"] <= np.mean(own) + 1e-7
    assert {"test_rmse_tta", "test_rmse_by_question", "member_test_rmse_tta/1"} <= set(run.data.metrics)

    jpeg = sorted((synthetic_dir / "images_test_rev1").glob("*.jpg"))[0].read_bytes()
    request = pd.DataFrame({"image": [base64.b64encode(jpeg).decode()]})
    # named for what they are; MLflow's own loader takes models:/<model_id> (what the commands print)
    assert _logged_model(run).name == "ensemble-2-members"
    assert [_logged_model(r).name for r in members] == ["cnn_cropped-seed1", "cnn_cropped-seed2"]
    assert run.data.params["members"] == ",".join(f"models:/{_logged_model(r).model_id}" for r in members)
    assert _logged_model(run).tags["mlflow.note.content"].startswith(
        f"Ensemble of 2 models: {run.data.params['members'].replace(',', ', ')}")
    answer = mlflow.pyfunc.load_model(f"models:/{_logged_model(run).model_id}").predict(request)
    singles = [mlflow.pyfunc.load_model(f"models:/{_logged_model(r).model_id}").predict(request).to_numpy()
               for r in members]
    assert answer.shape == (1, 37)
    np.testing.assert_allclose(answer.to_numpy(), np.tensordot(weights, singles, axes=1), atol=1e-3)

    env = {**command_env(in_world["uri"], in_world["root"] / "cache"), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "gz_experiments", "evaluate", f"model_uri={_model_uri(run)}",
                           f"data_dir={synthetic_dir}", "tta=false"], cwd=in_world["root"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test_rmse" in done.stdout


def test_ensemble_of_the_best_runs_of_an_approach(in_world):
    metrics, run = _build(experiment=EXPERIMENT, approach="cnn_cropped", top_k="2", tta="false",
                          register="gz-ensemble", blend="mean")
    assert run.data.params["blend"] == "mean" and run.data.params["blend_weights"] == "0.5000,0.5000"
    assert metrics["test_rmse"] == pytest.approx(metrics["test_rmse_equal_weights"], abs=1e-6)
    assert "val_rmse_blend" not in metrics
    assert set(run.data.params["member_run_ids"].split(",")) == {r.info.run_id for r in in_world["members"]}
    assert run.info.experiment_id == mlflow.get_experiment_by_name(EXPERIMENT).experiment_id
    assert "test_rmse_tta" not in metrics and np.isfinite(metrics["test_rmse"])
    versions = mlflow.MlflowClient().search_model_versions("name = 'gz-ensemble'")
    assert [v.run_id for v in versions] == [run.info.run_id]


def test_members_on_different_data_are_one_error_line(in_world):
    env = {**command_env(in_world["uri"], in_world["root"] / "cache"), "PYTHONPATH": str(PROJECT_ROOT)}
    models = f"{_model_uri(in_world['members'][0])},{_model_uri(in_world['other'])}"
    done = mlflow_run("ensemble", {"models": models}, env, in_world["root"])
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "different data" in errors[0], done.stderr[-3000:]


def test_members_on_different_data_score_on_a_given_folder(in_world, synthetic_dir):
    """Different crops and input sizes too: evaluate prepares each member's own input."""
    from gz_experiments.commands.evaluate import evaluate
    models = f"{_model_uri(in_world['members'][0])},{_model_uri(in_world['other'])}"
    metrics, run = _build(models=models, data_dir=str(synthetic_dir), n_train="96", n_val="32", n_test="32",
                          split_seed="42", tta="false")
    assert run.data.params["n_test_used"] == "32" and np.isfinite(metrics["test_rmse"])
    scored = evaluate(_model_uri(run), str(synthetic_dir), tta=False, progress=False)
    assert np.isfinite(scored["test_rmse"])
    assert mlflow.last_active_run().data.params["image_size"] == "48,56"
