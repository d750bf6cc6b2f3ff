"""Which models an ensemble averages: from URIs (`models=`), or the best runs of one approach in an
experiment (`experiment=… approach=… top_k=…`), each with the training run it came from."""
from __future__ import annotations

from dataclasses import dataclass

from gz_experiments.errors import GzError
from gz_experiments.served import serving
from gz_experiments.served.ensemble import MemberModel
from gz_experiments.tracking import logged_models, store

SELECTION_METRIC = "best_val_rmse"


class EnsembleError(GzError):
    """The members can't make an ensemble as asked; the message names them and says what to do."""


@dataclass(frozen=True)
class Member:
    model: MemberModel
    run: object | None   # mlflow's Run; None: a model folder on disk, logged by no run we can see

    @property
    def name(self) -> str:
        if self.run is None:
            return self.model.uri
        return f"{self.run.info.run_name or self.run.info.run_id} ({self.model.uri})"


def resolve(uris: list[str]) -> list[Member]:
    """Each URI's model downloaded and checked to be this project's, with its training run."""
    if len(uris) < 2:
        raise EnsembleError(f"an ensemble needs at least 2 models; got {uris or 'none'}")
    resolved = [_resolved(uri) for uri in uris]
    twice = {uri for uri in resolved if resolved.count(uri) > 1}
    if twice:
        given = ", ".join(u for u, r in zip(uris, resolved) if r in twice)
        raise EnsembleError(f"models lists a model twice: {given} (each member must be another model)")
    members = []
    for uri in resolved:
        run = _run_of(uri)
        members.append(Member(_download(uri, run.info.run_id if run else None), run))
    return members


def _resolved(uri: str) -> str:
    """`runs:/<run_id>/model` as the run's one model (`models:/<model_id>`); other URIs as given."""
    try:
        return logged_models.resolve(uri)
    except logged_models.RunModelError as error:
        raise EnsembleError(f"model {uri!r}: {error}") from None
    except store.ReadError as error:
        raise EnsembleError(f"model {uri!r} cannot be loaded ({error})") from None


def _download(uri: str, run_id: str | None) -> MemberModel:
    try:
        folder = store.download(uri)
        conf = store.pyfunc_conf(folder)
    except store.ReadError as error:
        raise EnsembleError(f"model {uri!r} cannot be loaded ({error}); give models:/<model_id>, "
                            f"runs:/<run_id>/model, models:/<name>@<alias> or models:/<name>/<version>") from None
    loader = serving.loader_of(conf.get("loader_module"))
    if loader is None:
        raise EnsembleError(f"model {uri!r} was not logged by gz-experiments; give models this project trained")
    return MemberModel(uri, run_id, folder, loader, conf["data"])


def _run_of(uri: str):
    """The run that logged the model behind `runs:/…` or `models:/…` (None for a plain path)."""
    try:
        return store.source_run_of_model(uri)
    except store.ReadError as error:
        raise EnsembleError(f"the run behind model {uri!r} cannot be found ({error})") from None


def best_runs(experiment: str, approach: str, top_k: int, fingerprint: str | None = None) -> list[str]:
    """`models:/<model_id>` of the `top_k` finished training runs of `approach` with the lowest
    validation RMSE (`best_val_rmse`); they must share one data fingerprint (same data, split and
    preprocessing). Sweep trials are not among them: a trial trains briefly and is pruned or kept by
    its study; give a trial's model by its URI to use it."""
    experiment_id = store.experiment_id(experiment)
    if experiment_id is None:
        raise EnsembleError(f"experiment {experiment!r} does not exist; give the name the UI shows")
    where = f"tags.approach = '{approach}' AND attributes.status = 'FINISHED'"
    if fingerprint:
        where += f" AND params.data_fingerprint = '{fingerprint}'"
    found = store.find_runs(where, [experiment_id], order_by=[f"metrics.{SELECTION_METRIC} ASC"])
    chosen = []
    for run in found:
        if len(chosen) == top_k:
            break
        model = _model_of(run) if SELECTION_METRIC in run.data.metrics and not logged_models.is_trial(run) else None
        if model is not None:
            chosen.append((run, model))
    if len(chosen) < top_k:
        raise EnsembleError(f"experiment {experiment!r} has {len(chosen)} finished {approach} training runs (sweep "
                            f"trials aside) with a model and {SELECTION_METRIC}"
                            f"{' on data ' + fingerprint if fingerprint else ''}; top_k={top_k} needs {top_k}")
    prints = {run.data.params.get("data_fingerprint") for run, _ in chosen}
    if len(prints) > 1:
        listed = "; ".join(f"{r.info.run_name} {r.data.params.get('data_fingerprint')}" for r, _ in chosen)
        raise EnsembleError(f"the {top_k} best {approach} runs were trained on different data or splits ({listed}); "
                            f"pass data_fingerprint=<one of them> to choose among runs on the same data")
    return [model for _, model in chosen]


def _model_of(run) -> str | None:
    """The run's one model as `models:/<model_id>`; None for a run that logged none (a diverged
    training) or whose model is not whole."""
    try:
        model = logged_models.one_model(run.info.run_id)
    except (logged_models.RunModelError, *store.ReadError):
        return None
    return f"models:/{model.model_id}" if model.status.name == "READY" else None
