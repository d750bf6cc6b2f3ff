"""The report's results table in one command: every approach on one seeded split, each a nested
MLflow run under one parent run, which holds the table, its figures and `test_rmse/<approach>`.

Resumable: an approach already FINISHED on the same data (fingerprint of the split's labels and
images) and the same configuration (hash of its parameters, tracking-only ones left out) is reused,
not retrained — after a crash, or when a rerun lists more approaches. `from=<parent run id>`
rebuilds the table and figures from a report's finished runs without training.

options (what to run) <- plan (jobs, hashes, data fingerprint) <- run (train or reuse each job)
runs (find and read back MLflow runs) <- publish (table.py, figures.py on the parent run) <- run
"""
from gz_experiments.report.options import ReportOptions, parse_options
from gz_experiments.report.run import report

__all__ = ["ReportOptions", "parse_options", "report"]
