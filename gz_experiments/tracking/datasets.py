"""The data a run used, as MLflow dataset inputs: the Datasets column and filter of the UI.

Each split is a dataset of GalaxyIDs and their 37 vote fractions (never the pixels), its source the
data folder, its digest a hash of exactly those IDs and labels — so two runs scored on the same
galaxies show the same digest whatever their preprocessing, and a registered model's test data can
be compared with another's (`registry`)."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import mlflow
import numpy as np
from mlflow.data.sources import LocalArtifactDatasetSource

from gz_experiments.data.source import Source
from gz_experiments.tracking import races

CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}


def digest(source: Source, ids) -> str:
    """Equal for the same galaxies with the same labels, in any order."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    labels = np.ascontiguousarray(source.labels.loc[ids].to_numpy(np.float32))
    return hashlib.blake2b(ids.tobytes() + labels.tobytes(), digest_size=8).hexdigest()


def dataset(source: Source, ids, name: str):
    frame = source.labels.loc[np.asarray(ids, dtype=np.int64)].reset_index()
    return mlflow.data.from_pandas(frame, source=LocalArtifactDatasetSource(str(source.root.resolve())),
                                   name=name, digest=digest(source, ids))


def _log(entity, context: str) -> None:
    """Two runs logging the same dataset at once (sweep workers) race for its row: made again."""
    with warnings.catch_warnings():   # "integer columns can't hold missing values": GalaxyIDs never miss
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        races.retrying(lambda: mlflow.log_input(entity, context=context))


def label(data_dir: str | Path) -> str:
    """The data set's short name: its folder (`galaxy-zoo-sample`); the built-in synthetic set,
    generated into the cache's `synthetic/n2000-seed0`, is `synthetic-n2000-seed0` however it was
    named on the command line (`data_dir=synthetic` or the cache folder)."""
    path = Path(str(data_dir)).expanduser()
    if path.parent.name == "synthetic" and path.name.startswith("n"):
        return f"synthetic-{path.name}"
    return path.name or str(data_dir)


def log_splits(source: Source, ids_by_split: dict) -> dict:
    """Log train/val/test as the run's inputs (contexts training/validation/testing), named after
    the folder the data were read from (one name for the same data, whichever command ran);
    returns the dataset entities by split."""
    entities = {}
    for split, ids in ids_by_split.items():
        entity = dataset(source, ids, f"{label(source.root)}-{split}")
        _log(entity, CONTEXTS[split])
        entities[split] = entity
    return entities


def log_scored(source: Source, ids, context: str = "evaluation"):
    """The galaxies `evaluate` scored, as one input of its run; returns the dataset entity."""
    entity = dataset(source, ids, f"{label(source.root)}-all")
    _log(entity, context)
    return entity


def testing_digest(run_id: str) -> str | None:
    """The digest of the test split a run logged (what its test RMSE was measured on)."""
    inputs = mlflow.MlflowClient().get_run(run_id).inputs
    for dataset_input in (inputs.dataset_inputs if inputs else []):
        if any(t.key == "mlflow.data.context" and t.value == CONTEXTS["test"] for t in dataset_input.tags):
            return dataset_input.dataset.digest
    return None

