"""Optuna sweeps over an approach's `SEARCH_SPACE`, tracked in MLflow: one parent run per study,
however many workers and resumes, one nested run per trial, pruned on per-epoch `val_rmse`.

The study lives in an RDB storage (a local SQLite file by default), so an invocation with the same
`study_name` resumes it, and the same command run on several machines against one PostgreSQL URL
makes them parallel workers. `n_trials` is the study's total of complete + pruned trials, shared
by all workers; a worker that dies stops its heartbeat, its trial turns FAIL and is retried.
The study's first worker creates the parent and records it in the study; every worker puts its
trials under it; the worker that finds the budget met logs the summary and the best trial's test
score on it, once, and ends it FINISHED (`parent` has the rules, `mlflow run` and dead workers too).

Modules, each importing only those before it: options → claim → study → trial → worker → parent, report → run.
"""
from gz_experiments.sweep.options import SweepError, SweepOptions, parse_options
from gz_experiments.sweep.report import format_summary
from gz_experiments.sweep.run import sweep
from gz_experiments.sweep.study import open_study, safe_url

__all__ = ["SweepError", "SweepOptions", "format_summary", "open_study", "parse_options", "safe_url", "sweep"]
