"""`predict`: images_test_rev1 (folder, zip or data_dir) → the competition's submission CSV."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import mlflow
import numpy as np
import pandas as pd
import pytest

from conftest import PROJECT_ROOT
from gz_experiments import tree
from gz_experiments.served import serving
from gz_experiments.config import ConfigError
from gz_experiments.data.source import DataError
from gz_experiments.commands.predict import PredictOptions, predict
from gz_experiments.options import parse, parse_overrides

TEST_FOLDER = "images_test_rev1"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An (untrained) cnn_cropped network saved as the MLflow model training logs: predict's input."""
    import experiments
    from gz_experiments.config import override
    from gz_experiments.models import build_model
    from gz_experiments.served.predictor import Predictor
    config = override(experiments.load("cnn_cropped").CONFIG, image_size=48)
    model = build_model(config.model, config.data.image_size)
    path = tmp_path_factory.mktemp("model") / "model"
    serving.save(Predictor(model, config.data.image_size, config.data.crop), path)
    return path


def test_writes_submission_with_header_and_a_row_per_image(model_dir, synthetic_dir, tmp_path):
    out = tmp_path / "submission.csv"
    predict(str(model_dir), str(synthetic_dir / TEST_FOLDER), str(out), batch_size=3, progress=False)

    written = pd.read_csv(out)
    assert list(written.columns) == list(tree.LABELS_HEADER)
    files = sorted((synthetic_dir / TEST_FOLDER).glob("*.jpg"))
    assert len(files) == 8
    assert written[tree.ID_COLUMN].tolist() == sorted(int(f.stem) for f in files)
    values = written[list(tree.CLASS_COLUMNS)].to_numpy()
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
    # Same numbers as the served model's own path for those files (CSV keeps 6 decimals).
    predictor = serving.load_predictor(str(model_dir))
    ordered = sorted(files, key=lambda f: int(f.stem))
    np.testing.assert_allclose(values, predictor.predict_jpegs([f.read_bytes() for f in ordered]), atol=1e-5)

    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    assert run.data.tags["approach"] == "predict" and run.info.status == "FINISHED"
    assert run.data.metrics["n_predicted"] == 8 and run.data.metrics["n_bad_images"] == 0
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
    assert artifacts == ["submission.csv"]


def test_zip_and_data_dir_give_the_same_csv(model_dir, synthetic_dir, tmp_path):
    archive = tmp_path / f"{TEST_FOLDER}.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in (synthetic_dir / TEST_FOLDER).glob("*.jpg"):
            z.write(f, f"{TEST_FOLDER}/{f.name}")
    from_zip = predict(str(model_dir), str(archive), str(tmp_path / "a.csv"), progress=False)
    from_data_dir = predict(str(model_dir), str(synthetic_dir), str(tmp_path / "b.csv"), progress=False)
    assert len(from_zip) == 8
    pd.testing.assert_frame_equal(from_zip, from_data_dir)


def test_tta_averages_the_eight_dihedral_views(model_dir, synthetic_dir, tmp_path):
    from gz_experiments.data.images import preprocess
    frame = predict(str(model_dir), str(synthetic_dir), str(tmp_path / "tta.csv"), tta=True, progress=False)
    predictor = serving.load_predictor(str(model_dir))
    files = [synthetic_dir / TEST_FOLDER / f"{i}.jpg" for i in frame[tree.ID_COLUMN]]
    images = np.stack([preprocess(f.read_bytes(), predictor.image_size, predictor.crop) for f in files])
    views = [np.rot90(flipped, k, axes=(1, 2)) for flipped in (images, images[:, :, ::-1]) for k in range(4)]
    expected = np.mean([predictor.model(np.float32(v) / 255.0).numpy() for v in views], axis=0)
    plain = predictor.predict_images(images)
    tta = frame[list(tree.CLASS_COLUMNS)].to_numpy()
    np.testing.assert_allclose(tta, expected, atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-4   # the views really differ for an untrained net


def _damage(data_dir):
    """Truncate one test image and replace another with text; return their ids."""
    files = sorted((data_dir / TEST_FOLDER).glob("*.jpg"))
    files[0].write_bytes(files[0].read_bytes()[:300])
    files[1].write_text("not a jpeg")
    return [files[0].name, files[1].name]


def test_unreadable_images_are_one_clear_error_from_the_cli(model_dir, data_copy, tmp_path):
    bad = _damage(data_copy)
    out = tmp_path / "submission.csv"
    result = subprocess.run(
        [sys.executable, "-m", "gz_experiments", "predict", f"model_uri={model_dir}",
         f"images={data_copy / TEST_FOLDER}", f"out={out}"],
        cwd=PROJECT_ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "2 of 8 images are unreadable" in error[0] and "skip_bad_images=true" in error[0]
    assert all(name in error[0] for name in bad)
    assert not out.exists()   # no submission that silently lacks rows
    listed = pd.read_csv(f"{out}.errors.csv")
    assert sorted(listed["file"].map(lambda f: f.rsplit("/", 1)[-1])) == sorted(bad)
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    assert run.info.status == "FAILED" and "unreadable" in run.data.tags["error"]


def test_skip_bad_images_warns_lists_them_and_predicts_the_rest(model_dir, data_copy, tmp_path):
    bad = _damage(data_copy)
    out = tmp_path / "submission.csv"
    with pytest.warns(UserWarning, match="2 of 8 images are unreadable"):
        frame = predict(str(model_dir), str(data_copy), str(out), skip_bad_images=True, progress=False)
    assert len(frame) == 6 and len(pd.read_csv(out)) == 6
    assert not set(frame[tree.ID_COLUMN]) & {int(name.split(".")[0]) for name in bad}
    listed = pd.read_csv(f"{out}.errors.csv")
    assert len(listed) == 2 and listed["error"].str.len().min() > 0
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    assert run.data.metrics["n_bad_images"] == 2
    assert {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)} == \
        {"submission.csv", "submission.csv.errors.csv"}


@pytest.mark.parametrize("tokens, message", [
    (["images=x"], "predict: missing 'model_uri'"),
    (["model_uri=m", "images=x", "colour=red"], "predict: unknown parameter 'colour'"),
    (["model_uri=m", "images=x", "batch_size=0"], "'batch_size' must be at least 1"),
    (["model_uri=m", "images=x", "tta=maybe"], "'tta' must be true or false"),
])
def test_bad_options_are_clear_errors(tokens, message):
    with pytest.raises(ConfigError, match=message):
        parse(PredictOptions, parse_overrides(tokens), "predict")


def test_an_unusable_out_fails_before_anything_is_predicted(model_dir, synthetic_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out, message in [(tmp_path, "is a folder; give a file name"),                 # an existing folder
                         (blocker / "s.csv", "cannot write .* give a path in a writable folder")]:
        with pytest.raises(ConfigError, match=f"parameter 'out': .*{message}"):
            predict(str(model_dir), str(synthetic_dir), str(out), progress=False)
    for run in mlflow.search_runs(search_all_experiments=True, output_format="list"):
        assert run.info.status == "FAILED" and "n_images" not in run.data.metrics   # nothing was predicted


def test_missing_images_and_bad_model_uri_are_clear_errors(model_dir, synthetic_dir, tmp_path):
    with pytest.raises(DataError, match="neither a folder nor a .zip"):
        predict(str(model_dir), str(tmp_path / "nowhere"), str(tmp_path / "s.csv"), progress=False)
    with pytest.raises(DataError, match="holds no <GalaxyID>.jpg"):
        predict(str(model_dir), str(tmp_path), str(tmp_path / "s.csv"), progress=False)
    with pytest.raises(ConfigError, match="cannot be loaded"):
        predict("runs:/0123456789abcdef/model", str(synthetic_dir), str(tmp_path / "s.csv"), progress=False)
    import keras
    foreign = tmp_path / "foreign"   # an MLflow Keras model without this project's preprocessing
    mlflow.keras.save_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), str(foreign))
    with pytest.raises(ConfigError, match="not logged by gz-experiments"):
        predict(str(foreign), str(synthetic_dir), str(tmp_path / "s.csv"), progress=False)
