"""The logged MLflow model: Keras flavour (the network) plus a python_function flavour that takes
base64 JPEGs and answers the 37 named columns, preprocessed exactly as in training."""
from __future__ import annotations

import importlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from gz_experiments import tree
from gz_experiments.predictor import Predictor

PREPROCESSING = "preprocessing.json"
# Loader modules whose `_load_pyfunc` gives a predictor: one network, or an ensemble averaging several.
PREDICTOR_LOADERS = (__name__, "gz_experiments.ensemble.model")
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "image")]),
    outputs=Schema([ColSpec("double", c) for c in tree.CLASS_COLUMNS]),
    params=ParamSchema([ParamSpec("tta", "boolean", False)]),
)


def requirements() -> list[str]:
    """Pinned to what trained the model; given explicitly so MLflow doesn't spend seconds inferring."""
    from importlib.metadata import version
    names = ("tensorflow-cpu", "keras", "mlflow", "numpy", "pandas", "pillow")
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except Exception:   # e.g. tensorflow (GPU build) instead of tensorflow-cpu
            continue
    return pins


def save(predictor: Predictor, path: Path) -> None:
    # The Keras flavour only takes tensor signatures; ours (base64 JPEG in, named columns out) is set
    # on the MLmodel below, so its "saving without a signature" warning would mislead.
    quiet = logging.getLogger("mlflow.keras.save")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        mlflow.keras.save_model(predictor.model, str(path), pip_requirements=requirements())
    finally:
        quiet.setLevel(level)
    data = path / "data"
    (data / PREPROCESSING).write_text(json.dumps({"image_size": predictor.image_size, "crop": predictor.crop}))
    package = Path(__file__).parent
    shutil.copytree(package, path / "code" / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    mlmodel = Model.load(str(path / "MLmodel"))
    conf = mlmodel.flavors["python_function"]
    conf.update(loader_module=__name__, data="data", code="code")
    mlmodel.signature = SIGNATURE
    mlmodel.save(str(path / "MLmodel"))


def log(predictor: Predictor, artifact_path: str = "model") -> str:
    with tempfile.TemporaryDirectory() as tmp:
        save(predictor, Path(tmp) / artifact_path)
        mlflow.log_artifacts(str(Path(tmp) / artifact_path), artifact_path)
    return f"runs:/{mlflow.active_run().info.run_id}/{artifact_path}"


def _load_pyfunc(data_path: str) -> Predictor:
    """MLflow's hook for `mlflow.pyfunc.load_model` and `mlflow models serve`."""
    import keras

    import gz_experiments.layers  # noqa: F401  registers the decision-tree layer for loading
    data = Path(data_path)
    preprocessing = json.loads((data / PREPROCESSING).read_text())
    model = keras.saving.load_model(str(data / "model.keras"), compile=False)
    return Predictor(model, preprocessing["image_size"], preprocessing["crop"])


def load_predictor(model_uri: str):
    """The `Predictor` behind a logged model (an `AveragingPredictor` for an ensemble), for fast
    batch evaluation on cached arrays.

    Loaded through this module's own hook: pyfunc's wrapper has no `get_raw_model` for a
    loader-module model, and would put the model's copy of the package on sys.path."""
    local = Path(mlflow.artifacts.download_artifacts(model_uri))
    conf = Model.load(str(local / "MLmodel")).flavors.get("python_function", {})
    if conf.get("loader_module") not in PREDICTOR_LOADERS:
        raise MlflowException(f"{model_uri} was not logged by gz-experiments (no {__name__} loader)")
    return importlib.import_module(conf["loader_module"])._load_pyfunc(str(local / conf["data"]))
