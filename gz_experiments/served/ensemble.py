"""The logged ensemble: one MLflow model whose python_function flavour averages its members.

It holds a copy of each member's network and preprocessing (`data/members/<i>/`, exactly what the
member's own loader reads) and `data/ensemble.json` naming each member's loader, URI and run, so it
loads without the members' runs, and `evaluate`, `predict`, `mlflow models serve` and
`mlflow.pyfunc.load_model` take it as they take a single model: same input, columns and signature.
"""
from __future__ import annotations

import importlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.models import Model
from mlflow.models.model import ModelInfo

from gz_experiments.served import serving
from gz_experiments.served.averaging import AveragingPredictor

MANIFEST = "ensemble.json"
ENVIRONMENT_FILES = ("requirements.txt", "python_env.yaml", "conda.yaml")


@dataclass(frozen=True)
class MemberModel:
    """A member's model as downloaded: its folder and the python_function flavour's settings."""
    uri: str
    run_id: str | None
    folder: Path
    loader_module: str
    data: str


def save_model(path, mlflow_model: Model, members: list[MemberModel], weights=None, **_) -> None:
    """`Model.log`'s flavour hook: this module is the flavour the ensemble is logged with."""
    path = Path(path)
    manifest = []
    for i, member in enumerate(members):
        shutil.copytree(member.folder / member.data, path / "data" / "members" / str(i))
        manifest.append({"uri": member.uri, "run_id": member.run_id, "loader_module": member.loader_module,
                         "data": f"members/{i}"})
    for entry, weight in zip(manifest, weights if weights is not None else [None] * len(manifest)):
        entry["weight"] = None if weight is None else float(weight)   # None: the plain mean
    (path / "data" / MANIFEST).write_text(json.dumps({"members": manifest}, indent=1) + "\n")
    shutil.copytree(serving.PACKAGE, path / "code" / serving.PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    # The members were trained by this project's pinned environment: the ensemble runs in the same.
    environment = {}
    for name in ENVIRONMENT_FILES:
        if (members[0].folder / name).is_file():
            shutil.copy(members[0].folder / name, path / name)
            environment[name] = name
    if "requirements.txt" not in environment:
        (path / "requirements.txt").write_text("\n".join(serving.requirements()) + "\n")
    mlflow.pyfunc.add_to_model(mlflow_model, loader_module=__name__, data="data", code="code",
                               conda_env=environment.get("conda.yaml"),
                               python_env=environment.get("python_env.yaml"))
    mlflow_model.signature = serving.SIGNATURE
    mlflow_model.save(str(path / "MLmodel"))


def log(members: list[MemberModel], name: str, weights=None) -> ModelInfo:
    """The ensemble (with its blend `weights`, or the plain mean) as a model `name` of the active
    run; `models:/<model_id>` and `runs:/<run_id>/<name>` load it."""
    return Model.log(None, name=name, flavor=sys.modules[__name__], flavor_name="python_function",
                     members=members, weights=weights, validate_serving_input=False, step=serving.UNTIED_STEP)


def predictor_of(members: list[MemberModel]) -> AveragingPredictor:
    """The averaging predictor straight from the members' downloaded folders."""
    return AveragingPredictor([load_member(m) for m in members])


def load_member(member: MemberModel):
    """One member's predictor; `serving.DamagedModelError` when its files are incomplete."""
    return _load_member(member.loader_module, member.folder / member.data)


def _load_pyfunc(data_path: str) -> AveragingPredictor:
    """MLflow's hook for `mlflow.pyfunc.load_model` and `mlflow models serve`; also what
    `serving.load_predictor` calls for an ensemble."""
    data = Path(data_path)
    try:
        manifest = json.loads((data / MANIFEST).read_text())
    except serving.DAMAGED as error:
        raise serving.damaged(data.parent, error) from None
    weights = [m.get("weight") for m in manifest["members"]]
    return AveragingPredictor([_load_member(m["loader_module"], data / m["data"]) for m in manifest["members"]],
                              None if None in weights else weights)


def _load_member(loader_module: str, data_path: Path):
    loader = serving.loader_of(loader_module)
    if loader is None:   # never import whatever a file names
        raise ValueError(f"member loader {loader_module!r} in {data_path} is not this project's")
    return importlib.import_module(loader)._load_pyfunc(str(data_path))
