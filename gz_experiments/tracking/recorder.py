"""What a command records, through one object: `with recording(...) as rec:` opens (or adopts) the
MLflow run in the right experiment, and `rec` logs its parameters, per-epoch metrics, results,
figures, tables, datasets, model, registration and description. How a run looks in MLflow is
decided here and in the modules it calls, not in the commands.

Like big_vision's metric writer or Flax's `writer`: commands say *what* happened (an epoch ended,
the test split scored 0.09), the recorder says *how* MLflow shows it.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import mlflow

from gz_experiments.tracking import (datasets, experiment, links, logged_models, metric_groups, registry, runs,
                                     run_notes)

# Keras' history keys -> the per-epoch metric names (the contract with sweeps, reports and the UI).
KERAS_TO_METRIC = runs.KERAS_TO_METRIC


@contextlib.contextmanager
def recording(name: str | None = None, tags: dict | None = None, *, experiment_name: str | None = None,
              nested: bool = False, parent_run_id: str | None = None, experiment_id: str | None = None):
    """The run to record into (see `runs.run` for which one), as a `Recorder`; ended FAILED or
    KILLED with the error when the block raises. A top-level run goes to `experiment_name` (default
    galaxy-zoo) or `experiment_id`, made ready for the UI; a nested one goes where its parent is."""
    if experiment_id is None and not (nested or parent_run_id):
        experiment_id = experiment.use(experiment_name)
    with runs.run(name, tags, nested=nested, parent_run_id=parent_run_id, experiment_id=experiment_id) as run:
        yield Recorder(run.info.run_id, run.info.experiment_id)


def into_run(run_id: str, write, failure: BaseException | None = None):
    """`write(recorder)` into an existing run (a sweep's shared parent), which is then ended:
    FINISHED, or FAILED with `failure`; an error inside `write` ends it with that error."""
    run = mlflow.start_run(run_id=run_id)
    try:
        result = write(Recorder(run_id, run.info.experiment_id))
        if failure is not None:
            runs.record_failure(failure)
    except BaseException as error:
        runs.record_failure(error)
        mlflow.end_run(runs._end_status(error))
        raise
    mlflow.end_run("FINISHED" if failure is None else "FAILED")
    return result


class Recorder:
    """One MLflow run, as the commands write it."""

    def __init__(self, run_id: str, experiment_id: str):
        self.run_id, self.experiment_id = run_id, experiment_id
        self.test_dataset = None   # the test split's dataset entity, once logged: results are tied to it
        self.model_id: str | None = None

    # ---- parameters, tags, description -----------------------------------------------------------

    def params(self, params: dict) -> None:
        """Log resolved values (booleans as true/false, None as none), except keys the run holds
        already: `mlflow run` logs every -P value before our command starts, in the user's
        spelling, and MLflow refuses to change a param."""
        logged = mlflow.get_run(self.run_id).data.params
        fresh = {k: spelled(v) for k, v in params.items() if k not in logged}
        if fresh:
            mlflow.log_params(fresh)

    def tags(self, tags: dict) -> None:
        mlflow.set_tags({k: spelled(v) for k, v in tags.items()})

    def describe(self, text: str) -> None:
        """The run's description (the run page's first paragraph, the Description column)."""
        mlflow.set_tag(run_notes.NOTE_TAG, text)

    def rename(self, name: str) -> None:
        mlflow.set_tag(run_notes.NAME_TAG, name)

    def name_training(self, config, defaults=None, label: str | None = None, keys=None) -> None:
        """`cnn_cropped epochs=5 #1f2e`: what differs from `defaults` (the approach's own config)."""
        run_notes.name_run(config, defaults, label, keys)

    def describe_training(self, config, split_sizes=None, metrics=None, error: BaseException | None = None) -> None:
        run_notes.describe_training(config, split_sizes, metrics, error)

    def describe_baseline(self, config, split_sizes, metrics) -> None:
        run_notes.describe_baseline(config, split_sizes, metrics)

    @property
    def parent_run_id(self) -> str | None:
        return mlflow.get_run(self.run_id).data.tags.get(run_notes.PARENT_TAG)

    # ---- metrics ---------------------------------------------------------------------------------

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """One epoch's curves (`train_loss`, `train_rmse`, `val_loss`, `val_rmse`), step = epoch."""
        mlflow.log_metrics(metrics, step=epoch)

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        mlflow.log_metric(name, value, step=step)

    def results(self, metrics: dict[str, float]) -> None:
        """Single values after training or scoring. The per-question RMSE (`test_rmse_q1` …) is one
        metric per prefix with step = question (`test_rmse_by_question`), so a run page shows one
        chart in question order. The test scores are tied to the test split's dataset and the
        logged model (the Models tab), when those are known."""
        single, by_question = metric_groups.split_questions(metrics)
        tied = {k: v for k, v in single.items() if metric_groups.is_test_score(k)}
        plain = {k: v for k, v in single.items() if k not in tied}
        if plain:
            mlflow.log_metrics(plain)
        if tied:
            mlflow.log_metrics(tied, dataset=self.test_dataset, model_id=self.model_id)
        for name, values in by_question.items():
            for question, value in values.items():
                mlflow.log_metric(name, value, step=question)

    # ---- data ------------------------------------------------------------------------------------

    def splits(self, source, ids_by_split: dict) -> dict[str, str]:
        """train/val/test as the run's dataset inputs (named after the folder read); their digests."""
        entities = datasets.log_splits(source, ids_by_split)
        self.test_dataset = entities.get("test")
        return {split: entity.digest for split, entity in entities.items()}

    def scored(self, source, ids) -> None:
        """The galaxies `evaluate` scored, as the run's input; its results are tied to them."""
        self.test_dataset = datasets.log_scored(source, ids)

    # ---- files -----------------------------------------------------------------------------------

    def figure(self, figure, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            figure.savefig(path, dpi=100, bbox_inches="tight")
            mlflow.log_artifact(str(path))

    def table(self, frame, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            frame.to_csv(path, index=False)
            mlflow.log_artifact(str(path))

    def text(self, text: str, name: str) -> None:
        mlflow.log_text(text, name)

    def json(self, value: dict, name: str) -> None:
        mlflow.log_dict(value, name)

    def file(self, path: str | Path, folder: str | None = None) -> None:
        mlflow.log_artifact(str(path), folder)

    def folder(self, path: str | Path, folder: str | None = None) -> None:
        mlflow.log_artifacts(str(path), folder)

    # ---- the model -------------------------------------------------------------------------------

    def model(self, predictor, config, input_example_jpeg: bytes | None = None) -> str:
        """The trained network as a LoggedModel of this run, named for what it is (`galaxy_cnn-seed1`,
        or `trial-7` in a sweep's trial run); its id (results logged next are tied to it)."""
        from gz_experiments.served import serving
        run = mlflow.get_run(self.run_id)
        trial = run.data.tags.get(logged_models.TRIAL_TAG)
        name = logged_models.model_name(config, trial=int(trial) if trial is not None else None)
        self.model_id = serving.log(predictor, name=name, input_example_jpeg=input_example_jpeg).model_id
        logged_models.describe(self.model_id, logged_models.description(config, run, trial))
        return self.model_id

    def ensemble_model(self, members, weights=None) -> str:
        """The ensemble as a LoggedModel of this run, `ensemble-<k>-members`; its id."""
        from gz_experiments.served import ensemble
        name = logged_models.model_name(members=len(members))
        self.model_id = ensemble.log(members, name=name, weights=weights).model_id
        run = mlflow.get_run(self.run_id)
        logged_models.describe(self.model_id, logged_models.description(None, run, members=members))
        return self.model_id

    def register(self, name: str, test_rmse: float | None, model_id: str | None = None,
                 run_id: str | None = None) -> tuple[str, bool, str]:
        """A new version of registered model `name`; the champion alias moves if it is better."""
        return registry.register(name, run_id or self.run_id, test_rmse, model_id=model_id)

    # ---- where it is -----------------------------------------------------------------------------

    def link(self) -> str:
        return links.run_link(self.experiment_id, self.run_id)


def spelled(value) -> object:
    """One spelling per value in MLflow: true/false for booleans, none for None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else value
