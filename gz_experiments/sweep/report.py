"""What a sweep's parent MLflow run records: its setup before the trials, and after them the
study's counts, best parameters, Optuna's plots, the best trial's model and — once per study —
that model's test RMSE."""
from __future__ import annotations

import tempfile
import warnings

import mlflow
from mlflow.tracking import MlflowClient

from gz_experiments.tracking import metric_groups, registry
from gz_experiments.tracking import runs as tracking
from gz_experiments.config import flat_params, override
from gz_experiments.sweep.options import SweepOptions
from gz_experiments.sweep.study import safe_url
from gz_experiments.sweep.trial import mlflow_key

TEST_RECORD = "test_of_best_trial"   # study user attr: the test split is scored once per study


def log_setup(options: SweepOptions, config, space: dict, described: dict[str, str]) -> None:
    searched = {key.split("[")[0] for key in space}
    fixed = {k: v for k, v in flat_params(config).items() if k not in searched and k != "approach"}
    tracking.log_params({"approach": options.approach, "n_trials": options.n_trials, "study_name": options.name,
                         "storage": safe_url(options.storage), "pruner": options.pruner, **described, **fixed})
    mlflow.set_tag("storage", safe_url(options.storage))
    mlflow.log_dict({key: repr(distribution) for key, distribution in space.items()}, "search_space.json")


def summarize(study, config, claim) -> dict:
    """Log the whole study's outcome (every worker's trials) on this invocation's parent run."""
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False)
    close_orphaned_runs(trials)
    states = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL,
              "running": TrialState.RUNNING}
    summary = {f"n_{name}": sum(t.state == state for t in trials) for name, state in states.items()}
    mlflow.log_metrics(summary)
    log_plots(study, summary["n_complete"])
    if summary["n_complete"] == 0:
        mlflow.set_tag("best_trial", "none: no trial completed")
        return summary
    best = study.best_trial
    best_run = best.user_attrs["mlflow_run_id"]
    mlflow.log_params({f"best_{mlflow_key(k)}": v for k, v in best.params.items()})
    mlflow.set_tags({"best_trial": best.number, "best_run_id": best_run})
    mlflow.log_metric("best_val_rmse", best.value)
    copy_model(best_run)
    with claim():
        test = test_metrics(study, best, config)
    mlflow.log_metrics(metric_groups.grouped(test))
    if config.tracking.register:
        registry.register(config.tracking.register, best_run, test.get("test_rmse"))
    return {**summary, "best_trial": best.number, "best_val_rmse": best.value,
            **{f"best_{k}": v for k, v in best.params.items()},
            **{k: v for k, v in test.items() if "_q" not in k}}


def copy_model(run_id: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{run_id}/model", dst_path=tmp)
        mlflow.log_artifacts(local, "best_model")


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
    predictor = load_predictor(f"runs:/{best.user_attrs['mlflow_run_id']}/model")
    metrics = evaluate_split(predictor, data.test.images, data.test.labels, best_config.tta)
    study.set_user_attr(TEST_RECORD, {"trial": best.number, "metrics": metrics})
    return metrics


def log_plots(study, n_complete: int) -> None:
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
        mlflow.log_text(f"Parameter importances need at least 2 complete trials; the study has {n_complete}.\n",
                        "param_importances.txt")
    for name, plot in wanted.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                figure = np.ravel(plot(study))[0].figure
            tracking.log_figure(figure, name)
            plt.close(figure)
        except Exception as error:   # a plot is a nicety: say why it is missing, keep the summary
            mlflow.log_text(f"{name} could not be drawn: {type(error).__name__}: {error}\n",
                            name.replace(".png", ".txt"))


def close_orphaned_runs(trials) -> None:
    """A worker killed mid-trial leaves its MLflow runs RUNNING; once Optuna has marked the trial
    FAIL (no heartbeat, or its process gone), end them FAILED too, so nothing stays 'running' forever in the UI."""
    client, current = MlflowClient(), mlflow.active_run().info.run_id
    for trial in trials:
        if trial.state.name != "FAIL" or "mlflow_run_id" not in trial.user_attrs:
            continue
        trial_run, parent_run = trial.user_attrs["mlflow_run_id"], trial.user_attrs.get("mlflow_parent_run_id")
        if not _still_running(client, trial_run):
            continue
        cause = trial.user_attrs.get("error", f"worker {trial.user_attrs.get('worker', '?')} stopped sending heartbeats")
        reason = f"{cause}; trial {trial.number} was marked FAIL and its parameters are retried"
        client.set_tag(trial_run, "trial_state", "failed")
        for run_id in (trial_run, parent_run):
            if run_id and run_id != current and _still_running(client, run_id):
                client.set_tag(run_id, "error", reason)
                client.set_terminated(run_id, "FAILED")


def _still_running(client, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.status == "RUNNING"
    except mlflow.exceptions.MlflowException:   # logged to another tracking server
        return False


def format_summary(summary: dict, options: SweepOptions) -> str:
    """The summary as the CLI prints it, with where to watch the study."""
    lines = [f"{key:>24} {value:.4f}" if isinstance(value, float) else f"{key:>24} {value}"
             for key, value in sorted(summary.items())]
    lines.append(f"study {options.name!r} in {safe_url(options.storage)}; watch it with: "
                 f"optuna-dashboard {safe_url(options.storage)}   and: mlflow ui")
    return "\n".join(lines)
