"""The averaging predictor and the logged ensemble model, on tiny Keras models built here (no
training): the mean of members with their own input size and crop, tree-valid output, the same
pyfunc input and columns as a single model; member choice and the common test split from runs."""
from __future__ import annotations

import base64
import io

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gz_experiments import tree

TOLERANCE = 1e-5


def _jpegs(n: int = 3, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (424, 424, 3), dtype=np.uint8)).save(buffer, "JPEG")
        out.append(buffer.getvalue())
    return out


def _member(image_size: int, crop, output: str = "sigmoid", seed: int = 0):
    import experiments
    import keras
    from gz_experiments.config import override
    from gz_experiments.models import build_model
    from gz_experiments.served.predictor import Predictor
    config = override(experiments.load("cnn_cropped").CONFIG, image_size=image_size, filters="4,8",
                      crop=crop if crop else "none", output=output)
    keras.utils.set_random_seed(seed)
    return Predictor(build_model(config.model, image_size), image_size, crop)


@pytest.fixture(scope="module")
def members():
    """Different input sizes and crops, as a cnn_full and a cnn_cropped member would have."""
    return [_member(32, None, seed=1), _member(40, 250, seed=2)]


def test_average_is_the_mean_of_members_each_with_its_own_preprocessing(members):
    from gz_experiments.served.averaging import AveragingPredictor
    ensemble = AveragingPredictor(members)
    assert ensemble.inputs == ((32, None), (40, 250))
    jpegs = _jpegs()
    for tta in (False, True):
        expected = np.mean([m.predict_jpegs(jpegs, tta=tta) for m in members], axis=0)
        np.testing.assert_allclose(ensemble.predict_jpegs(jpegs, tta=tta), expected, atol=1e-6)
    assert not np.allclose(members[0].predict_jpegs(jpegs), members[1].predict_jpegs(jpegs))


def test_tree_valid_members_give_tree_valid_averages():
    from gz_experiments.served.averaging import AveragingPredictor
    members = [_member(32, None, "tree", seed=3), _member(40, 250, "tree", seed=4), _member(32, 200, "tree", seed=5)]
    averaged = AveragingPredictor(members).predict_jpegs(_jpegs(4, seed=1), tta=True)
    assert averaged.shape == (4, tree.N_OUTPUTS)
    assert averaged.min() >= 0 and averaged.max() <= 1 + TOLERANCE
    assert tree.constraint_violation(averaged).max() < TOLERANCE


def _saved_members(members, tmp_path):
    from gz_experiments.served import serving
    from gz_experiments.served.ensemble import MemberModel
    saved = []
    for i, member in enumerate(members):
        serving.save(member, tmp_path / f"member{i}")
        saved.append(MemberModel(f"member{i}", None, tmp_path / f"member{i}", serving.__name__, "data"))
    return saved


def test_the_saved_ensemble_loads_and_serves_like_a_single_model(members, tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from gz_experiments.served import serving
    from gz_experiments.served import ensemble as ensemble_model
    path = tmp_path / "ensemble"
    ensemble_model.save_model(path, Model(), _saved_members(members, tmp_path))
    assert Model.load(str(path / "MLmodel")).signature == serving.SIGNATURE
    jpegs = _jpegs(2)
    frame = pd.DataFrame({"image": [base64.b64encode(j).decode() for j in jpegs]})
    served = mlflow.pyfunc.load_model(str(path)).predict(frame, params={"tta": True})
    assert list(served.columns) == list(tree.CLASS_COLUMNS)
    expected = np.mean([m.predict_jpegs(jpegs, tta=True) for m in members], axis=0)
    np.testing.assert_allclose(served.to_numpy(), expected, atol=1e-6)
    # evaluate and predict load models through serving.load_predictor: it gives the averaging one.
    loaded = serving.load_predictor(str(path))
    assert loaded.inputs == ((32, None), (40, 250))
    np.testing.assert_allclose(loaded.predict_jpegs(jpegs), np.mean([m.predict_jpegs(jpegs) for m in members], 0),
                               atol=1e-6)
    bad = pd.DataFrame({"image": [frame["image"][0], "not base64!"]})
    with pytest.raises(MlflowException, match="row 1 of 'image'"):
        mlflow.pyfunc.load_model(str(path)).predict(bad)


@pytest.mark.parametrize("given, message", [
    ({}, "either models"),
    ({"models": "runs:/a/model,runs:/b/model", "experiment": "e", "approach": "a"}, "either models"),
    ({"models": "runs:/a/model"}, "at least 2"),
    ({"experiment": "e"}, "go together"),
    ({"models": "runs:/a/model,runs:/b/model", "n_test": "10"}, "data_dir"),
    ({"experiment": "e", "approach": "a", "top_k": "0"}, "top_k"),
    ({"models": "runs:/a/model,runs:/b/model", "tta": "maybe"}, "tta"),
    ({"models": "runs:/a/model,runs:/b/model", "modles": "x"}, "modles"),
    ({"models": "runs:/a/model,runs:/b/model", "blend": "median"}, "'blend' must be one of fit, mean"),
])
def test_bad_options_are_one_clear_error(given, message):
    from gz_experiments.ensemble.options import parse_options
    from gz_experiments.errors import ConfigError
    with pytest.raises(ConfigError, match=message):
        parse_options(given)


def test_options_as_mlflow_run_passes_them():
    from gz_experiments.ensemble.options import parse_options
    options = parse_options({"experiment": "gz", "approach": "galaxy_cnn", "top_k": "2.0", "register": "none",
                             "data_dir": "/d", "n_test": "50"})
    assert options.top_k == 2 and options.register is None and options.split.n_test == 50
    assert options.split.n_train == 8000 and options.split.split_seed == 42
    assert options.blend == "fit" and parse_options({"models": "runs:/a/m,runs:/b/m", "blend": "MEAN"}).blend == "mean"


def _fake_training_run(name, *, data_path="/data/a", fingerprint="f1", test_ids=(1, 2, 3), best_val=0.1,
                       approach="galaxy_cnn", model=True, trial=None):
    """A finished run as training leaves it (params, split.csv, best_val_rmse, a LoggedModel), or as
    a sweep's trial leaves it (tagged with its number)."""
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tag("approach", approach)
        if trial is not None:
            mlflow.set_tag("trial_number", trial)
        mlflow.log_params({"data_path": data_path, "data_fingerprint": fingerprint})
        mlflow.log_metric("best_val_rmse", best_val)
        rows = [(i, "test") for i in test_ids] + [(100 + i, "train") for i in range(3)]
        mlflow.log_text(pd.DataFrame(rows, columns=[tree.ID_COLUMN, "split"]).to_csv(index=False), "split.csv")
        if model:
            mlflow.create_external_model(name=f"{approach}-seed1" if trial is None else f"trial-{trial}")
    return mlflow.get_run(run.info.run_id)


def test_members_share_a_test_split_or_the_error_says_which_differ():
    from gz_experiments.ensemble.members import EnsembleError, Member
    from gz_experiments.served.ensemble import MemberModel
    from gz_experiments.ensemble.scored_images import members_test_split

    def member(run):
        return Member(MemberModel(f"runs:/{run.info.run_id}/model", run.info.run_id, None, "", ""), run)
    a, b = member(_fake_training_run("a")), member(_fake_training_run("b"))
    common = members_test_split([a, b])
    assert list(common.ids) == [1, 2, 3] and common.data_path == "/data/a" and common.fingerprint == "f1"
    assert members_test_split([a, member(_fake_training_run("a2", data_path="/data/x/../a"))]).data_path == "/data/a"
    other_data = member(_fake_training_run("c", data_path="/data/b"))
    with pytest.raises(EnsembleError, match="different data"):
        members_test_split([a, other_data])
    other_split = member(_fake_training_run("d", test_ids=(1, 2, 4)))
    with pytest.raises(EnsembleError, match="test splits differ"):
        members_test_split([a, other_split])


def test_best_runs_by_validation_rmse_on_one_data_fingerprint():
    from gz_experiments.ensemble.members import EnsembleError, best_runs
    mlflow.set_experiment("gz")
    runs = {name: _fake_training_run(name, best_val=v, fingerprint=f) for name, v, f in
            [("r1", 0.12, "f1"), ("r2", 0.10, "f1"), ("r3", 0.11, "f2"), ("r4", 0.13, "f1")]}
    _fake_training_run("other approach", best_val=0.01, approach="cnn_full")
    _fake_training_run("diverged", best_val=0.05, model=False)
    _fake_training_run("sweep trial", best_val=0.04, trial=3)   # the README: top_k picks training runs
    client = mlflow.MlflowClient()
    uri = {name: f"models:/{m.model_id}" for name, r in runs.items()
           for m in client.search_logged_models([r.info.experiment_id], f"source_run_id = '{r.info.run_id}'")}
    assert best_runs("gz", "galaxy_cnn", 1) == [uri["r2"]]
    with pytest.raises(EnsembleError, match="different data or splits"):
        best_runs("gz", "galaxy_cnn", 2)
    assert best_runs("gz", "galaxy_cnn", 2, fingerprint="f1") == [uri["r2"], uri["r1"]]
    with pytest.raises(EnsembleError, match="needs 5"):
        best_runs("gz", "galaxy_cnn", 5)
    with pytest.raises(EnsembleError, match="does not exist"):
        best_runs("nope", "galaxy_cnn", 2)
