"""The logged MLflow model: Keras flavour (the network) plus a python_function flavour that takes
base64 JPEGs and answers the 37 named columns, preprocessed exactly as in training."""
from __future__ import annotations

import base64
import importlib
import json
import logging
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.models.utils import _save_example
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from gz_experiments import tree
from gz_experiments.errors import ConfigError, GzError
from gz_experiments.served.predictor import Predictor
from gz_experiments.tracking import logged_models

PREPROCESSING = "preprocessing.json"
# Loader modules whose `_load_pyfunc` gives a predictor: one network, or an ensemble averaging several.
PREDICTOR_LOADERS = (__name__, "gz_experiments.served.ensemble")
# The same loaders under the names models logged before `served/` existed record in their MLmodel.
LEGACY_LOADERS = {"gz_experiments.serving": __name__, "gz_experiments.ensemble.model": "gz_experiments.served.ensemble"}
# The whole package travels with each model (its `code/`): the loader imports beyond `served/`.
PACKAGE = Path(__file__).parents[1]
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "image")]),
    outputs=Schema([ColSpec("double", c) for c in tree.CLASS_COLUMNS]),
    params=ParamSchema([ParamSpec("tta", "boolean", False)]),
)


def requirements() -> list[str]:
    """Pinned to what trained the model; given explicitly so MLflow doesn't spend seconds inferring."""
    from importlib.metadata import version
    # Whichever TensorFlow build trained it (tensorflow-cpu, or tensorflow from the `gpu` extra): the
    # first one found is pinned, so a model trained on a GPU machine still brings TensorFlow along.
    names = ("tensorflow-cpu|tensorflow", "keras", "mlflow", "numpy", "pandas", "pillow")
    pins = []
    for choices in names:
        for name in choices.split("|"):
            try:
                pins.append(f"{name}=={version(name)}")
                break
            except Exception:   # not installed
                continue
    return pins


def save(predictor: Predictor, path: Path, mlflow_model: Model | None = None,
         input_example_jpeg: bytes | None = None) -> None:
    mlflow_model = mlflow_model or Model()
    # The Keras flavour only takes tensor signatures; ours (base64 JPEG in, named columns out) is set
    # on the MLmodel below, so its "saving without a signature" warning would mislead.
    quiet = logging.getLogger("mlflow.keras.save")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        mlflow.keras.save_model(predictor.model, str(path), mlflow_model=mlflow_model,
                                pip_requirements=requirements())
    finally:
        quiet.setLevel(level)
    data = path / "data"
    (data / PREPROCESSING).write_text(json.dumps({"image_size": predictor.image_size, "crop": predictor.crop}))
    shutil.copytree(PACKAGE, path / "code" / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    conf = mlflow_model.flavors["python_function"]
    conf.update(loader_module=__name__, data="data", code="code")
    mlflow_model.signature = SIGNATURE
    if input_example_jpeg is not None:   # what a serving request looks like, shown on the model's page
        _save_example(mlflow_model, pd.DataFrame({"image": [base64.b64encode(input_example_jpeg).decode()]}),
                      str(path))
    mlflow_model.save(str(path / "MLmodel"))


def save_model(path, mlflow_model: Model, predictor: Predictor, input_example_jpeg: bytes | None = None,
               **_) -> None:
    """`Model.log`'s flavour hook: this module is the flavour MLflow logs a LoggedModel with."""
    save(predictor, Path(path), mlflow_model, input_example_jpeg)


# The step a model is logged at: MLflow ties every metric the run holds at that step to the model,
# and at step 0 that is the first system-metrics sample ("CPU 0 %" as the model's first metric).
# No metric is logged at this step; the recorder ties the test scores to the model explicitly.
UNTIED_STEP = -1


def log(predictor: Predictor, name: str, input_example_jpeg: bytes | None = None) -> ModelInfo:
    """The model as an MLflow 3 LoggedModel `name` of the active run (the experiment's Models tab,
    with the run's parameters); `models:/<model_id>` and `runs:/<run_id>/<name>` load it."""
    return Model.log(None, name=name, flavor=sys.modules[__name__], flavor_name="keras", predictor=predictor,
                     input_example_jpeg=input_example_jpeg, step=UNTIED_STEP,
                     validate_serving_input=False)   # loading it back costs seconds; tests serve it instead


class DamagedModelError(GzError):
    """A logged model whose files are missing or damaged (its logging died: a full disk, kill -9)."""


# What reading a missing, truncated or overwritten model file raises (zipfile's BadZipFile included).
DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _load_pyfunc(data_path: str) -> Predictor:
    """MLflow's hook for `mlflow.pyfunc.load_model` and `mlflow models serve`. A model whose files
    are incomplete is one `DamagedModelError` saying which file and why, not Keras' traceback."""
    import keras

    import gz_experiments.models.layers  # noqa: F401  registers the decision-tree layer for loading
    data = Path(data_path)
    try:
        preprocessing = json.loads((data / PREPROCESSING).read_text())
        model = keras.saving.load_model(str(data / "model.keras"), compile=False)
    except DAMAGED as error:
        raise damaged(data.parent, error) from None
    return Predictor(model, preprocessing["image_size"], preprocessing["crop"])


def damaged(folder: Path, error: BaseException) -> DamagedModelError:
    why = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return DamagedModelError(f"the model in {folder} can't be loaded: its files are missing or damaged ({why}); "
                             f"it was not logged completely (a full disk, or its process was killed): "
                             f"train or log it again")


def load_predictor(model_uri: str):
    """The `Predictor` behind a logged model (an `AveragingPredictor` for an ensemble), for fast
    batch evaluation on cached arrays.

    Loaded through this module's own hook: pyfunc's wrapper has no `get_raw_model` for a
    loader-module model, and would put the model's copy of the package on sys.path.
    `runs:/<run_id>/model` is the run's one model, whatever its name. A URI that names no model
    of this project, or a model whose files are damaged, is a ConfigError (one line from the CLI).
    The download is removed once the model is in memory."""
    with tempfile.TemporaryDirectory(prefix="gz-model-") as folder:
        try:
            resolved = logged_models.resolve(model_uri)
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=resolved, dst_path=folder))
            conf = Model.load(str(local / "MLmodel")).flavors.get("python_function", {})
            loader = loader_of(conf.get("loader_module"))
            if loader is None:
                raise MlflowException(f"{model_uri} was not logged by gz-experiments (no {__name__} loader)")
        except logged_models.RunModelError as error:   # a run with no model, or several
            raise ConfigError(f"model_uri {model_uri!r}: {error}") from None
        except (MlflowException, OSError) as error:   # unknown run, missing path, not our model
            raise ConfigError(f"model_uri {model_uri!r} cannot be loaded ({error}); give models:/<model_id> "
                              f"(printed after training), runs:/<run_id>/model or models:/<name>@<alias>") from None
        try:
            return importlib.import_module(loader)._load_pyfunc(str(local / conf.get("data", "data")))
        except DamagedModelError as error:
            raise ConfigError(f"model_uri {model_uri!r}: {error}") from None


def loader_of(loader_module: str | None) -> str | None:
    """This project's loader module for the name an MLmodel records, or None if it is not ours."""
    loader_module = LEGACY_LOADERS.get(loader_module, loader_module)
    return loader_module if loader_module in PREDICTOR_LOADERS else None
