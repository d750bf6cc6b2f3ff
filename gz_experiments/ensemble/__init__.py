"""Ensembles of logged models: one MLflow model averaging its members' predictions.

averaging (the predictor) ← model (the logged MLflow model) ← members (which models) ←
scored_images (which images) ← build (the run; `command`, what the CLI calls) ← options (what the
CLI was told: an `EnsembleOptions`).
"""
