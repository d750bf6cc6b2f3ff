"""gz-experiments: train and compare deep models for Galaxy Zoo morphology, tracked in MLflow."""
__version__ = "0.1.0"
