"""Everything that talks to MLflow: the experiment, runs and their states, what a run records
(params, metrics, datasets, figures, notes), the model registry and the preflight checks."""
