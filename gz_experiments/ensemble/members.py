"""Which models an ensemble averages: from URIs (`models=`), or the best runs of one approach in an
experiment (`experiment=… approach=… top_k=…`), each with the training run it came from."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from gz_experiments.served import downloads, serving
from gz_experiments.served.ensemble import MemberModel
from gz_experiments.errors import GzError

SELECTION_METRIC = "best_val_rmse"


class EnsembleError(GzError):
    """The members can't make an ensemble as asked; the message names them and says what to do."""


@dataclass(frozen=True)
class Member:
    model: MemberModel
    run: Run | None   # None: a model folder on disk, logged by no run we can see

    @property
    def name(self) -> str:
        if self.run is None:
            return self.model.uri
        return f"{self.run.info.run_name or self.run.info.run_id} ({self.model.uri})"


def resolve(uris: list[str]) -> list[Member]:
    """Each URI's model downloaded and checked to be this project's, with its training run."""
    if len(uris) < 2:
        raise EnsembleError(f"an ensemble needs at least 2 models; got {uris or 'none'}")
    if len(set(uris)) < len(uris):
        raise EnsembleError(f"models lists a model twice: {', '.join(uris)}")
    members = []
    for uri in uris:
        run = _run_of(uri)
        members.append(Member(_download(uri, run.info.run_id if run else None), run))
    return members


def _download(uri: str, run_id: str | None) -> MemberModel:
    try:
        folder = downloads.download(uri)   # kept until the ensemble is logged; removed when the command ends
        conf = Model.load(str(folder / "MLmodel")).flavors.get("python_function", {})
    except (MlflowException, OSError) as error:
        raise EnsembleError(f"model {uri!r} cannot be loaded ({error}); give runs:/<run_id>/model, "
                            f"models:/<name>@<alias> or models:/<name>/<version>") from None
    loader = serving.loader_of(conf.get("loader_module"))
    if loader is None:
        raise EnsembleError(f"model {uri!r} was not logged by gz-experiments; give models this project trained")
    return MemberModel(uri, run_id, folder, loader, conf["data"])


def _run_of(uri: str) -> Run | None:
    """The run that logged the model behind `runs:/…` or `models:/…` (None for a plain path)."""
    from mlflow.store.artifact.utils.models import get_model_name_and_version
    client = MlflowClient()
    try:
        if uri.startswith("runs:/"):
            return client.get_run(uri[len("runs:/"):].split("/")[0])
        if uri.startswith("models:/"):
            found = get_model_name_and_version(client, uri)
            run_id = client.get_logged_model(found[0]).source_run_id if len(found) == 1 else \
                client.get_model_version(*found).run_id
            return client.get_run(run_id) if run_id else None
    except MlflowException as error:
        raise EnsembleError(f"the run behind model {uri!r} cannot be found ({error})") from None
    return None


def best_runs(experiment: str, approach: str, top_k: int, fingerprint: str | None = None) -> list[str]:
    """`runs:/<id>/model` of the `top_k` finished runs of `approach` with the lowest validation RMSE
    (`best_val_rmse`); they must share one data fingerprint (same data, split and preprocessing)."""
    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        raise EnsembleError(f"experiment {experiment!r} does not exist; give the name the UI shows")
    where = f"tags.approach = '{approach}' AND attributes.status = 'FINISHED'"
    if fingerprint:
        where += f" AND params.data_fingerprint = '{fingerprint}'"
    runs = [r for r in MlflowClient().search_runs([found.experiment_id], where, max_results=1000,
                                                  order_by=[f"metrics.{SELECTION_METRIC} ASC"])
            if SELECTION_METRIC in r.data.metrics and _has_model(r)][:top_k]
    if len(runs) < top_k:
        raise EnsembleError(f"experiment {experiment!r} has {len(runs)} finished {approach} runs with a model and "
                            f"{SELECTION_METRIC}{' on data ' + fingerprint if fingerprint else ''}; "
                            f"top_k={top_k} needs {top_k}")
    prints = {r.data.params.get("data_fingerprint") for r in runs}
    if len(prints) > 1:
        listed = "; ".join(f"{r.info.run_name} {r.data.params.get('data_fingerprint')}" for r in runs)
        raise EnsembleError(f"the {top_k} best {approach} runs were trained on different data or splits ({listed}); "
                            f"pass data_fingerprint=<one of them> to choose among runs on the same data")
    return [f"runs:/{r.info.run_id}/model" for r in runs]


def _has_model(run: Run) -> bool:
    """Sweep trials train without logging a model: they can't be members."""
    try:
        downloads.download(f"runs:/{run.info.run_id}/model/MLmodel")
    except (MlflowException, OSError):
        return False
    return True
