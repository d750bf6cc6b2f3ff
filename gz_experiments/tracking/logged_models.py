"""The LoggedModels our runs log: what each is called, so that the Models tab says what it is
(`galaxy_cnn-seed1`, `trial-7`, `ensemble-3-members`), and which model a URI means.

MLflow 3 finds `runs:/<run_id>/<path>` by the model's *name* (a LoggedModel named `<path>` that the
run logged). Our commands also take `runs:/<run_id>/model` — the run's one model, whatever its name —
by turning it into `models:/<model_id>` here; MLflow's own tools (`mlflow models serve`,
`mlflow.pyfunc.load_model`) need `models:/<model_id>` or `runs:/<run_id>/<its name>`.
"""
from __future__ import annotations

from mlflow import MlflowClient

from gz_experiments.errors import GzError

RUN_MODEL = "model"              # `runs:/<run_id>/model`: the run's one model
TRIAL_TAG = "trial_number"       # a sweep trial's run carries it; its model is `trial-<number>`
WHAT_TO_GIVE = ("give models:/<model_id> (each command that logs a model prints it: `model: models:/m-…`), "
                "or runs:/<run_id>/model of a run that logged one model")


class RunModelError(GzError):
    """`runs:/<run_id>/model` names a run with no model, or with several."""


def model_name(config=None, *, trial: int | None = None, members: int | None = None) -> str:
    """The name a model is logged under: a training run's `<approach>-seed<seed>` (`-refit` when it
    trained on train + validation), a sweep trial's `trial-<number>`, an ensemble's
    `ensemble-<k>-members`. The only place names are decided."""
    if members is not None:
        return f"ensemble-{members}-members"
    if trial is not None:
        return f"trial-{trial}"
    name = f"{config.approach}-seed{config.seed}"
    return f"{name}-refit" if config.data.refit else name


def description(config, run, trial=None, members=None) -> str:
    """What the Models tab's Description column and a model's page say about it (`run`: the one logging it)."""
    run_name, run_id = run.info.run_name, run.info.run_id
    if members is not None:
        what = f"Ensemble of {len(members)} models: {', '.join(m.uri for m in members)}"
    elif trial is not None:
        what = f"Sweep trial {trial}'s {config.approach} network (seed {config.seed})"
    else:
        refit = ", refit on train + validation" if config.data.refit else ""
        what = f"{config.approach} network, seed {config.seed}{refit}"
    return (f"{what}; logged by run '{run_name}' ({run_id}). Its test RMSE is logged against the "
            "test dataset; the run's page has its parameters, curves and figures.")


def describe(model_id: str, text: str) -> None:
    """A LoggedModel's description: the note the MLflow UI shows for it."""
    MlflowClient().set_logged_model_tags(model_id, {"mlflow.note.content": text})


def of_run(run_id: str, client: MlflowClient | None = None) -> list:
    """The LoggedModels `run_id` logged (any status), oldest first."""
    client = client or MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    found, token = [], None
    while True:
        page = client.search_logged_models(experiment_ids=[experiment_id], page_token=token,
                                           filter_string=f"source_run_id = '{run_id}'")
        found += list(page)
        token = page.token
        if not token:
            return sorted(found, key=lambda m: m.creation_timestamp)


def uri_of_run(run_id: str, client: MlflowClient | None = None) -> str:
    """`models:/<model_id>` of the run's one model; `RunModelError` when it has none or several."""
    return f"models:/{one_model(run_id, client).model_id}"


def resolve(uri: str) -> str:
    """`runs:/<run_id>/model` as `models:/<model_id>` of the run's one model (a file in it,
    `runs:/<run_id>/model/<file>`, as `runs:/<run_id>/<its name>/<file>`); any other URI (or a path)
    as given. An unknown run raises MLflow's own error."""
    if not uri.startswith("runs:/"):
        return uri
    run_id, _, path = uri[len("runs:/"):].partition("/")
    first, _, rest = path.partition("/")
    if first != RUN_MODEL:
        return uri
    model = one_model(run_id)
    return f"runs:/{run_id}/{model.name}/{rest}" if rest else f"models:/{model.model_id}"


def is_trial(run) -> bool:
    """A sweep trial's run (its model is `trial-<number>`)."""
    return TRIAL_TAG in run.data.tags


def one_model(run_id: str, client: MlflowClient | None = None):
    """The run's one LoggedModel; `RunModelError`, saying what to give instead, when it has none or several."""
    client = client or MlflowClient()
    models = of_run(run_id, client)
    named = [m for m in models if m.name == RUN_MODEL]   # what MLflow itself would match
    if len(models) == 1 or len(named) == 1:
        return named[0] if named else models[0]
    run = client.get_run(run_id)
    who = f"run {run_id} ({run.info.run_name})" if run.info.run_name else f"run {run_id}"
    if not models:
        raise RunModelError(f"{who} logged no model (a report, sweep or seeds run holds none itself: its "
                            f"child runs do; a failed run may have stopped before); {WHAT_TO_GIVE}")
    listed = ", ".join(f"{m.name}: models:/{m.model_id}" for m in models)
    raise RunModelError(f"{who} logged {len(models)} models ({listed}); give one of them as models:/<model_id>")
