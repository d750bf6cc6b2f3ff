"""What a sweep's parent MLflow run records: its setup before the trials, and after them the
study's counts, best parameters, Optuna's plots, the best trial's model and — once per study —
that model's test RMSE."""
from __future__ import annotations

import tempfile
import warnings

from gz_experiments.config import flat_params, override
from gz_experiments.tracking import logged_models, store
from gz_experiments.sweep.options import SweepOptions
from gz_experiments.sweep.study import safe_url
from gz_experiments.sweep.trial import param_key

TEST_RECORD = "test_of_best_trial"   # study user attr: the test split is scored once per study


def log_setup(rec, options: SweepOptions, config, space: dict, described: dict[str, str]) -> None:
    searched = {key.split("[")[0] for key in space}
    fixed = {k: v for k, v in flat_params(config).items() if k not in searched and k != "approach"}
    rec.params({"approach": options.approach, "n_trials": options.n_trials, "study_name": options.name,
                "storage": safe_url(options.storage), "pruner": options.pruner, **described, **fixed})
    rec.tags({"storage": safe_url(options.storage)})
    rec.json({key: repr(distribution) for key, distribution in space.items()}, "search_space.json")
    rec.describe(f"**Optuna sweep** `{options.name}` of **{options.approach}**: {options.n_trials} trials "
                 f"searching {', '.join(sorted(searched))}, each a nested run `trial-N` (expand this run), "
                 f"pruned on per-epoch `val_rmse` ({options.pruner}). After the trials: the best trial's "
                 f"`best_val_rmse`, parameters (`best_*`), model (`best_model/`) and its `test_rmse`; "
                 f"Optuna's plots among the artifacts.")


def summarize(rec, study, config) -> dict:
    """Log the whole study's outcome (every worker's trials) on its parent run; called under the
    study's ClaimLock (`parent.finish`)."""
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False)
    close_orphaned_runs(trials)
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL,
              "running": TrialState.RUNNING}
    summary = {f"n_{name}": sum(t.state == state for t in trials) for name, state in states.items()}
    rec.results(summary)
    log_plots(rec, study, summary["n_complete"])
    if summary["n_complete"] == 0:
        rec.tags({"best_trial": "none: no trial completed"})
        return summary
    best = study.best_trial
    best_run = best.user_attrs["mlflow_run_id"]
    rec.params({f"best_{param_key(k)}": v for k, v in best.params.items()})
    rec.tags({"best_trial": best.number, "best_run_id": best_run})
    rec.results({"best_val_rmse": best.value})
    copy_model(rec, best_run)
    test = test_metrics(study, best, config)
    rec.results(test)
    if config.tracking.register:
        rec.register(config.tracking.register, test.get("test_rmse"), run_id=best_run)
    return {**summary, "best_trial": best.number, "best_val_rmse": best.value,
            **{f"best_{k}": v for k, v in best.params.items()},
            **{k: v for k, v in test.items() if "_q" not in k}}


def copy_model(rec, run_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rec.folder(store.download(logged_models.uri_of_run(run_id), into=tmp), "best_model")


def test_metrics(study, best, config) -> dict[str, float]:
    """The best trial's model on the test split — the same split (data_dir, n_*, seed) its
    validation used. Recorded in the study, so later workers and resumes reuse the number."""
    from gz_experiments.data.dataset import prepare
    from gz_experiments.served.serving import load_predictor
    from gz_experiments.scoring import evaluate_split
    recorded = study.user_attrs.get(TEST_RECORD)
    if recorded and recorded["trial"] == best.number:
        return recorded["metrics"]
    best_config = override(config, best.params)
    data = prepare(best_config.data, progress=False)
    predictor = load_predictor(logged_models.uri_of_run(best.user_attrs["mlflow_run_id"]))
    metrics = evaluate_split(predictor, data.test.images, data.test.labels, best_config.tta)
    study.set_user_attr(TEST_RECORD, {"trial": best.number, "metrics": metrics})
    return metrics


def log_plots(rec, study, n_complete: int) -> None:
    import matplotlib.pyplot as plt
    import numpy as np
    import optuna
    from optuna.visualization import matplotlib as plots

    import gz_experiments.figures  # noqa: F401  selects the Agg backend
    wanted = {"optimization_history.png": plots.plot_optimization_history,
              "parallel_coordinate.png": plots.plot_parallel_coordinate}
    if n_complete >= 2:
        wanted["param_importances.png"] = plots.plot_param_importances
    else:
        rec.text(f"Parameter importances need at least 2 complete trials; the study has {n_complete}.\n",
                 "param_importances.txt")
    for name, plot in wanted.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                figure = np.ravel(plot(study))[0].figure
            rec.figure(figure, name)
            plt.close(figure)
        except Exception as error:   # a plot is a nicety: say why it is missing, keep the summary
            rec.text(f"{name} could not be drawn: {type(error).__name__}: {error}\n", name.replace(".png", ".txt"))


def close_orphaned_runs(trials) -> None:
    """A worker killed mid-trial leaves its trial's MLflow run RUNNING; once Optuna has marked the trial
    FAIL (no heartbeat, or its process gone), end it FAILED too, so nothing stays 'running' forever in
    the UI. (The study's parent is shared: `parent` ends it.)"""
    for trial in trials:
        if trial.state.name != "FAIL" or "mlflow_run_id" not in trial.user_attrs:
            continue
        trial_run = trial.user_attrs["mlflow_run_id"]
        if not store.is_running(trial_run):
            continue
        cause = trial.user_attrs.get("error", f"worker {trial.user_attrs.get('worker', '?')} stopped sending heartbeats")
        reason = f"{cause}; trial {trial.number} was marked FAIL and its parameters are retried"
        store.tag_run(trial_run, {"trial_state": "failed"})
        store.end_run(trial_run, "FAILED", {"error": reason})


def format_summary(summary: dict, options: SweepOptions) -> str:
    """The summary as the CLI prints it, with where to watch the study."""
    lines = [f"{key:>24} {value:.4f}" if isinstance(value, float) else f"{key:>24} {value}"
             for key, value in sorted(summary.items())]
    lines.append(f"study {options.name!r} in {safe_url(options.storage)}; watch it with: "
                 f"optuna-dashboard {safe_url(options.storage)}   and: gz-experiments ui")
    return "\n".join(lines)
