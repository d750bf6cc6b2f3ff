"""Ensembles of logged models: one MLflow model averaging its members' predictions.

averaging (the predictor) ← model (the logged MLflow model) ← members (which models) ←
test_split (which images) ← build (the run) ← command (the CLI's options).
"""
